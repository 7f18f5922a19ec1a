/* guard: cheap stateless checks first, then the per-source table. */
#include "guard.h"
#include "gro.h"
#include "guard_test.h"
#include "log.h"
#include "ratelimit.h"
#include "siphash.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define LOOP_TABLE_SHARE 8 /* loop-hold entries: rate-table-size / 8 */
#define LOOP_TABLE_MIN   64
/* Datagrams of a GRO buffer whose loop keys are hashed, and their sets
 * fetched, before the first of them is looked up. */
#define KEYS_AHEAD 16

/* A source prefix's state in the UDP rate table (its entry's owner part,
 * ratelimit.h). */
struct udp_source {
	struct bucket packets; /* udp-rate */
	struct bucket bytes;   /* udp-byte-rate */
	uint32_t logged;       /* drop lines logged for it (log.h) */
};

/* An aggregate prefix's, in the aggregates' table. */
struct udp_aggregate {
	struct bucket packets; /* udp-aggregate-rate */
};

struct udp_guard {
	const struct policy *policy;
	const struct facts *facts;
	struct rate_table *table;      /* per source prefix: rates */
	struct rate_table *aggregates; /* per aggregate prefix: its rate */
	struct loop_table *loops; /* per source, port and payload: loop holds */
	struct bucket_cfg global_cfg; /* this worker's share */
	unsigned share;               /* of the global rate: 1 / workers */
	struct bucket global;
	bool global_primed;
	bool rates_unlimited; /* no UDP rate at all: no bucket to consult */
	struct udp_source *last_source;       /* of the last check */
	struct udp_aggregate *last_aggregate; /* its aggregate's */
	bool source_exempt; /* the last source check: rate-exempt */
	/* The loop key's hash with the last source check's address and port
	 * absorbed: each datagram of its buffer only adds its payload. */
	struct siphash_state loop_head;
	/* The last source check: its datagram's source, port, destination
	 * and interface, its time and its answer (same_source). */
	struct datagram last_checked;
	uint64_t last_checked_at;
	enum guard_reason last_verdict;
	bool checked_once;
	uint64_t evictions; /* table pressure: sources forgotten */
	uint64_t exempted;  /* passed without the rate limits */
};

static const char *const reason_names[] = {
#define GUARD_NAME(name) #name,
    GUARD_REASONS(GUARD_NAME)
#undef GUARD_NAME
};

const char *
guard_reason_name(enum guard_reason r)
{
	return r < GUARD_NREASONS ? reason_names[r] : "?";
}

static bool
v4_in(const struct ipaddr *a, uint8_t first, uint8_t mask)
{
	return a->family == AF_INET && (a->bytes[0] & mask) == first;
}

bool
guard_is_loopback(const struct ipaddr *a)
{
	static const uint8_t v6_loopback[16] = {[15] = 1};

	if (a->family == AF_INET)
		return a->bytes[0] == 127;
	return memcmp(a->bytes, v6_loopback, 16) == 0;
}

static bool
is_local_broadcast(const struct ipaddr *a, const struct facts *f)
{
	static const uint8_t all_ones[4] = {255, 255, 255, 255};

	if (a->family != AF_INET)
		return false;
	if (memcmp(a->bytes, all_ones, 4) == 0)
		return true;
	for (size_t i = 0; i < f->nbroadcast; i++)
		if (ipaddr_equal(a, &f->broadcast[i]))
			return true;
	return false;
}

static bool
is_multicast(const struct ipaddr *a)
{
	return v4_in(a, 224, 0xf0) ||
	       (a->family == AF_INET6 && a->bytes[0] == 0xff);
}

static bool
is_unspecified(const struct ipaddr *a)
{
	static const uint8_t zero[16];

	if (a->family == AF_INET)
		return a->bytes[0] == 0; /* 0.0.0.0/8: "this network" */
	return memcmp(a->bytes, zero, 16) == 0;
}

/* One of the host's own addresses (learned at start). */
static bool
is_local(const struct ipaddr *a, const struct facts *f)
{
	for (size_t i = 0; i < f->nlocal; i++)
		if (ipaddr_equal(a, &f->local[i]))
			return true;
	return false;
}

static bool
arrived_on_loopback(int ifindex, const struct facts *f)
{
	for (size_t i = 0; i < f->nloopback; i++)
		if (f->loopback_ifindex[i] == ifindex)
			return true;
	return false;
}

/* No honest peer sends from these; a reply would go nowhere or everywhere. */
bool
guard_bad_source(const struct datagram *d, const struct facts *f)
{
	const struct ipaddr *src = &d->src;

	if (is_unspecified(src) || is_multicast(src) ||
	    is_local_broadcast(src, f) || v4_in(src, 240, 0xf0))
		return true;
	/* Loopback only ever arrives on loopback; elsewhere it is forged. */
	if (guard_is_loopback(src) && !guard_is_loopback(&d->dst))
		return true;
	/* The host's own address from outside is forged too (the kernel
	 * takes it with accept_local=1 or when forwarding): the echo would
	 * go to the host itself. Only the host sends on a loopback
	 * interface, so from there it is the host talking to itself. */
	return is_local(src, f) && !arrived_on_loopback(d->ifindex, f);
}

/* A datagram to many hosts must not get an answer from each (fraggle). */
bool
guard_bad_dest(const struct ipaddr *dst, const struct facts *f)
{
	return is_multicast(dst) || is_local_broadcast(dst, f) ||
	       is_unspecified(dst);
}

size_t
loop_table_size(const struct policy *p)
{
	size_t n = p->rate_table_size / LOOP_TABLE_SHARE;

	return n < LOOP_TABLE_MIN ? LOOP_TABLE_MIN : n;
}

struct udp_guard *
udp_guard_new(const struct policy *p, const struct facts *f, unsigned share)
{
	struct udp_guard *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->policy = p;
	g->facts = f;
	g->table = rate_table_new(p->rate_table_size, sizeof(struct udp_source),
	                          f->secret);
	g->aggregates = rate_table_new(p->rate_table_size,
	                               sizeof(struct udp_aggregate), f->secret);
	/* Loops are short (a run within `window`) or held: the table needs
	 * room for the loops in flight, not for every source. Touched by
	 * every datagram, it is kept small so that memory does not follow a
	 * flood of distinct payloads. */
	g->loops = loop_table_new(loop_table_size(p));
	if (g->table == NULL || g->aggregates == NULL || g->loops == NULL) {
		udp_guard_free(g);
		return NULL;
	}
	g->share = share > 0 ? share : 1;
	udp_guard_policy_changed(g);
	return g;
}

void
udp_guard_policy_changed(struct udp_guard *g)
{
	const struct policy *p = g->policy;

	g->global_cfg = p->udp_global_rate;
	if (g->global_cfg.rate > 0) {
		g->global_cfg.rate =
		    (g->global_cfg.rate + g->share - 1) / g->share;
		g->global_cfg.burst =
		    (g->global_cfg.burst + g->share - 1) / g->share;
	}
	/* Unlimited buckets grant everything and keep no state (ratelimit.c):
	 * skipping them changes no verdict. */
	g->rates_unlimited =
	    p->udp_rate.rate == 0 && p->udp_byte_rate.rate == 0 &&
	    p->udp_aggregate_rate.rate == 0 && g->global_cfg.rate == 0;
	/* The last source check's answer was the old policy's. */
	g->checked_once = false;
}

void
udp_guard_free(struct udp_guard *g)
{
	if (g == NULL)
		return;
	rate_table_free(g->table);
	rate_table_free(g->aggregates);
	loop_table_free(g->loops);
	free(g);
}

size_t
udp_guard_bytes(const struct policy *p)
{
	return sizeof(struct udp_guard) +
	       rate_table_bytes_for(p->rate_table_size,
	                            sizeof(struct udp_source)) +
	       rate_table_bytes_for(p->rate_table_size,
	                            sizeof(struct udp_aggregate)) +
	       loop_table_bytes_for(loop_table_size(p));
}

void
udp_guard_stats(const struct udp_guard *g, struct guard_stats *out)
{
	*out = (struct guard_stats){.entries = rate_table_used(g->table),
	                            .evictions = g->evictions,
	                            .exempted = g->exempted};
}

bool
udp_guard_may_log(struct udp_guard *g, struct log_limit *l, unsigned r)
{
	struct udp_source *s = g->last_source;

	return log_limit_allow(l, r, s != NULL ? &s->logged : NULL) != 0;
}

/*
 * How the guards see a source: src itself, or, for an IPv6 form that
 * carries an IPv4 address (addr.h), that address (in *out either way).
 * false: such a form under embedded-ipv4 drop, a bad source.
 */
static bool
judged_source(const struct policy *p, const struct ipaddr *src,
              struct ipaddr *out)
{
	if (ipaddr_embedded_v4(src, out) == EMBEDDED_NONE) {
		*out = *src;
		return true;
	}
	return p->embedded_ipv4_judge;
}

/* Is src in the policy's rate-exempt prefixes? Such a source skips the
 * rate limits (UDP's per-source and global rates, TCP's connect and byte
 * rates) and every other check still applies to it. */
static bool
rate_exempt(const struct policy *p, const struct ipaddr *src)
{
	return p->rate_exempt.n > 0 && acl_match(&p->rate_exempt, src) != NULL;
}

const void *
udp_guard_source(const struct udp_guard *g)
{
	return g->last_source;
}

const struct rate_table *
udp_guard_table(const struct udp_guard *g)
{
	return g->table;
}

const struct rate_table *
udp_guard_aggregate_table(const struct udp_guard *g)
{
	return g->aggregates;
}

const struct loop_table *
udp_guard_loop_table(const struct udp_guard *g)
{
	return g->loops;
}

/* The loop key's hash with d's family, address, port and zero padding to
 * whole words absorbed: one SipHash pass over it and then the payload (not
 * a hash of the payload's hash). SipHash-1-3, as CPython's and Rust's hash
 * tables against hash flooding: it runs over every payload (docs/design.md). */
static void
loop_key_head(const struct udp_guard *g, const struct datagram *d,
              struct siphash_state *s)
{
	uint8_t head[24] = {0};

	_Static_assert(1 + sizeof(d->src.bytes) + 2 <= sizeof(head),
	               "the loop key's head fits in three words");
	head[0] = d->src.family;
	memcpy(head + 1, d->src.bytes, sizeof(d->src.bytes));
	head[17] = (uint8_t)(d->sport >> 8);
	head[18] = (uint8_t)d->sport;
	siphash13_state(s, g->facts->secret, head, sizeof(head));
}

void
udp_guard_loop_key(const struct udp_guard *g, const struct datagram *d,
                   struct ipaddr *key)
{
	struct siphash_state head;
	uint64_t h;

	loop_key_head(g, d, &head);
	h = siphash13_continue(&head, d->payload, d->len);
	memset(key, 0, sizeof(*key));
	key->family = AF_UNSPEC;
	memcpy(key->bytes, &h, sizeof(h));
}

/*
 * A loop runs between two services: one address and port sending one
 * payload back at the pace of the round trip. The run and the hold are
 * kept for exactly that (source, port, payload), so a forged "loop" from
 * a host holds only that host's port and payload, never its neighbours,
 * and `repeats` within `window` sets the pace: faster than any prober.
 */
static bool
looping(struct udp_guard *g, uint64_t key, uint64_t now)
{
	const struct policy *p = g->policy;
	struct loop_entry *e = loop_table_get(g->loops, key, now);

	/* Held: a run that reached the repeats ends in a hold and a hold
	 * ends before a run starts; as the clock never goes back, the one
	 * time of the entry (ratelimit.h) is the run's start or the hold's
	 * end, never both live. */
	if (e->repeats == 0 && now < e->suppressed_until)
		return true;
	if (e->repeats > 0 && now - e->first_ms <= p->loop_window_ms) {
		e->repeats++;
	} else {
		e->repeats = 1;
		e->first_ms = now;
	}
	if (e->repeats >= p->loop_repeats) {
		e->suppressed_until = now + p->loop_hold_ms;
		e->repeats = 0;
		return true;
	}
	return false;
}

/*
 * Is d from the source, port, destination and interface of the last
 * source check, at its time? Then that check's answer and state hold for
 * d as they stand: the stateless checks read only those, and the rate
 * table, which only source checks change, still holds that check's entry,
 * seen at this time already. Consecutive datagrams of one sender are
 * common where GRO merges none (a batch of single datagrams).
 */
static bool
same_source(const struct udp_guard *g, const struct datagram *d, uint64_t now)
{
	const struct datagram *l = &g->last_checked;

	return g->checked_once && now == g->last_checked_at &&
	       d->sport == l->sport && d->ifindex == l->ifindex &&
	       ipaddr_equal(&d->src, &l->src) && ipaddr_equal(&d->dst, &l->dst);
}

/* The checks of d's source (guard.h), each time. An IPv6 source that
 * carries an IPv4 address is a bad source, or is judged as that address
 * (embedded-ipv4); the loop key and the reply keep the real one. */
static enum guard_reason
source_verdict(struct udp_guard *g, const struct datagram *d, uint64_t now)
{
	const struct policy *p = g->policy;
	struct datagram judged = *d;
	struct ipaddr key;
	struct udp_source *e;
	struct udp_aggregate *agg;
	bool created, evicted;

	g->last_source = NULL;
	g->last_aggregate = NULL;
	g->source_exempt = false;
	if (portset_has(&p->udp_deny_ports, d->sport))
		return GUARD_port;
	if (!judged_source(p, &d->src, &judged.src) ||
	    guard_bad_source(&judged, g->facts))
		return GUARD_bad_source;
	if (guard_bad_dest(&d->dst, g->facts))
		return GUARD_bad_dest;
	if (!acl_allows(&p->acl, &judged.src))
		return GUARD_deny;
	if (p->loop_guard)
		loop_key_head(g, d, &g->loop_head);
	/* rate-exempt: no rate, no share of the global cap (a flood that
	 * spends it must not starve the exempt monitor) and no table entry
	 * (it evicts no one); the loop guard still holds, and it keeps its
	 * own table. */
	if (rate_exempt(p, &judged.src)) {
		g->source_exempt = true;
		return GUARD_ok;
	}
	ipaddr_prefix(&judged.src,
	              judged.src.family == AF_INET ? p->rate_prefix_v4
	                                           : p->rate_prefix_v6,
	              &key);
	e = rate_table_get(g->table, &key, now, &created, &evicted);
	if (e == NULL)
		return GUARD_table;
	g->evictions += evicted;
	if (created) {
		bucket_init(&e->packets, &p->udp_rate, now);
		bucket_init(&e->bytes, &p->udp_byte_rate, now);
	}
	ipaddr_prefix(&judged.src,
	              judged.src.family == AF_INET ? p->udp_aggregate_prefix_v4
	                                           : p->udp_aggregate_prefix_v6,
	              &key);
	/* Nothing pins a UDP entry: never NULL. */
	agg = rate_table_get(g->aggregates, &key, now, &created, &evicted);
	if (agg == NULL)
		return GUARD_table;
	g->evictions += evicted;
	if (created)
		bucket_init(&agg->packets, &p->udp_aggregate_rate, now);
	g->last_source = e;
	g->last_aggregate = agg;
	return GUARD_ok;
}

enum guard_reason
udp_guard_source_check(struct udp_guard *g, const struct datagram *d,
                       uint64_t now)
{
	if (same_source(g, d, now))
		return g->last_verdict;
	g->last_verdict = source_verdict(g, d, now);
	g->last_checked = *d;
	g->last_checked_at = now;
	g->checked_once = true;
	return g->last_verdict;
}

/* The checks of one datagram of len bytes whose loop key (if the loop
 * guard is on) is loop_key: the loop guard, then the rates. Inline in
 * both callers: it runs for every datagram. */
static inline __attribute__((always_inline)) enum guard_reason
payload_verdict(struct udp_guard *g, size_t len, uint64_t loop_key,
                uint64_t now)
{
	const struct policy *p = g->policy;
	struct udp_source *e = g->last_source;
	struct udp_aggregate *agg = g->last_aggregate;

	if (p->loop_guard && looping(g, loop_key, now))
		return GUARD_loop;
	if (g->source_exempt) {
		g->exempted++;
		return GUARD_ok;
	}
	if (g->rates_unlimited)
		return GUARD_ok;
	/* Every allowance must hold before any is spent. */
	if (bucket_level(&e->packets, &p->udp_rate, now) < 1 ||
	    bucket_level(&e->bytes, &p->udp_byte_rate, now) < len)
		return GUARD_rate;
	if (!bucket_take(&agg->packets, &p->udp_aggregate_rate, now, 1))
		return GUARD_aggregate_rate;
	bucket_take(&e->packets, &p->udp_rate, now, 1);
	bucket_take(&e->bytes, &p->udp_byte_rate, now, len);
	if (!g->global_primed) {
		bucket_init(&g->global, &g->global_cfg, now);
		g->global_primed = true;
	}
	if (!bucket_take(&g->global, &g->global_cfg, now, 1))
		return GUARD_global_rate;
	return GUARD_ok;
}

enum guard_reason
udp_guard_payload_check(struct udp_guard *g, const struct datagram *d,
                        uint64_t now)
{
	uint64_t key = 0;

	if (g->policy->loop_guard)
		key = siphash13_continue(&g->loop_head, d->payload, d->len);
	return payload_verdict(g, d->len, key, now);
}

void
udp_guard_payload_checks(struct udp_guard *g, const uint8_t *buf, size_t len,
                         size_t segsize, size_t nsegs, uint64_t now,
                         enum guard_reason *verdict)
{
	/* Every datagram is segsize long but the last (gro.h). */
	size_t last_len = gro_segment_len(len, segsize, nsegs - 1);
	uint64_t key[KEYS_AHEAD];

	if (nsegs == 1) { /* a datagram alone: nothing to overlap */
		struct datagram d = {.payload = buf, .len = last_len};

		verdict[0] = udp_guard_payload_check(g, &d, now);
		return;
	}
	if (!g->policy->loop_guard)
		memset(key, 0, sizeof(key));
	for (size_t first = 0; first < nsegs; first += KEYS_AHEAD) {
		size_t n =
		    nsegs - first < KEYS_AHEAD ? nsegs - first : KEYS_AHEAD;

		/* The hashes depend neither on one another (four or two at a
		 * time, side by side) nor on the table, which only the
		 * lookups change. */
		for (size_t i = 0, step; g->policy->loop_guard && i < n;
		     i += step) {
			size_t seg = first + i;
			const uint8_t *p = buf + seg * segsize;
			/* Four whole segments ahead (only then are their
			 * pointers inside the buffer) and an AVX2 CPU. */
			bool four_done = i + 3 < n && (seg + 4 < nsegs ||
			                               last_len == segsize);

			if (four_done) {
				const void *four[4] = {p, p + segsize,
				                       p + 2 * segsize,
				                       p + 3 * segsize};

				four_done = siphash13_continue4(
				    &g->loop_head, four, segsize, &key[i]);
			}
			if (four_done) {
				step = 4;
			} else if (i + 1 < n) {
				siphash13_continue2(
				    &g->loop_head, p, segsize, p + segsize,
				    seg + 2 < nsegs ? segsize : last_len,
				    &key[i]);
				step = 2;
			} else {
				key[i] = siphash13_continue(
				    &g->loop_head, p,
				    seg + 1 < nsegs ? segsize : last_len);
				step = 1;
			}
			for (size_t j = i; j < i + step; j++)
				loop_table_prefetch(g->loops, key[j]);
		}
		for (size_t i = 0, seg = first; i < n; i++, seg++)
			verdict[seg] = payload_verdict(
			    g, seg + 1 < nsegs ? segsize : last_len, key[i],
			    now);
	}
}

enum guard_reason
udp_guard_check(struct udp_guard *g, const struct datagram *d, uint64_t now)
{
	enum guard_reason r = udp_guard_source_check(g, d, now);

	return r != GUARD_ok ? r : udp_guard_payload_check(g, d, now);
}

/* ---------------------------------------------------------------- TCP */

/*
 * Connections are counted at every prefix level, each level in a table of
 * its own. An entry that holds connections sits in a group of its
 * siblings (the prefixes of the same parent; for aggregates, all
 * aggregates) that hold as many; a parent's groups are kept most held
 * first, and a group's members in the order they came to hold that many.
 * A connection opened or closed moves each entry of its chain into the
 * neighbouring group (made if missing): O(1) per level. The largest child
 * of any entry is then its first group's first member, and the victim of
 * an eviction is found in O(levels), however many connections are open.
 */
struct share_group {
	uint32_t held;                   /* connections each member holds */
	struct tcp_source *first, *last; /* members, longest held first */
	struct share_group *prev, *next; /* the siblings' groups, circular */
};

/* A prefix's state in its level's table (its entry's owner part,
 * ratelimit.h). Its entry is pinned while it holds connections. */
struct tcp_source {
	/* tcp-connect-rate; for the coarsest of two or more levels (an
	 * aggregate), tcp-aggregate-connect-rate. */
	struct bucket connects;
	struct bucket bytes; /* tcp-byte-rate (the finest level only) */
	uint32_t held;       /* open connections it counts */
	uint32_t logged;     /* lines logged about it (log.h) */
	/* The entry of the next coarser prefix, the group of siblings that
	 * hold as many connections as this one (NULL while it holds none)
	 * and its place in it, and its own children's groups, most held
	 * first (a circular list). */
	struct tcp_source *parent;
	struct share_group *group;
	struct tcp_source *level_prev, *level_next;
	struct share_group *children;
};

struct tcp_guard {
	const struct policy *policy;
	const struct facts *facts;
	struct rate_table *tables[POLICY_MAX_LEVELS]; /* finest first */
	unsigned cap, active;
	struct share_group *aggregates; /* groups of the coarsest entries */
	struct share_group *pool;       /* every group, allocated once */
	struct share_group *spare;      /* the ones used and given back */
	size_t nfresh, ngroups;         /* pool[nfresh..ngroups): never used */
	uint64_t evictions;
};

static const char *const tcp_reason_names[] = {
#define TCP_NAME(name) #name,
    TCP_REASONS(TCP_NAME)
#undef TCP_NAME
};

const char *
tcp_reason_name(enum tcp_reason r)
{
	return r < TCP_NREASONS ? tcp_reason_names[r] : "?";
}

static unsigned
tcp_levels(const struct policy *p, int family, const unsigned **lengths)
{
	if (family == AF_INET) {
		*lengths = p->tcp_prefix_v4;
		return p->tcp_levels_v4;
	}
	*lengths = p->tcp_prefix_v6;
	return p->tcp_levels_v6;
}

/* The levels of the deeper family: the tables the guard keeps. */
static unsigned
tcp_tables(const struct policy *p)
{
	return p->tcp_levels_v4 > p->tcp_levels_v6 ? p->tcp_levels_v4
	                                           : p->tcp_levels_v6;
}

/* Each group has a member that holds a connection, so a level has at
 * most cap groups; one more while a member moves between two. */
static size_t
tcp_groups(unsigned cap)
{
	return ((size_t)(cap > 0 ? cap : 1) + 1) * POLICY_MAX_LEVELS;
}

size_t
tcp_guard_bytes(const struct policy *p, unsigned cap)
{
	return sizeof(struct tcp_guard) +
	       tcp_tables(p) * rate_table_bytes_for(p->rate_table_size,
	                                            sizeof(struct tcp_source)) +
	       tcp_groups(cap) * sizeof(struct share_group);
}

struct tcp_guard *
tcp_guard_new(const struct policy *p, const struct facts *f, unsigned cap)
{
	struct tcp_guard *g = calloc(1, sizeof(*g));
	unsigned levels = tcp_tables(p);
	size_t groups = tcp_groups(cap);
	bool ok = levels > 0 && levels <= POLICY_MAX_LEVELS;

	if (g == NULL)
		return NULL;
	g->policy = p;
	g->facts = f;
	g->cap = cap > 0 ? cap : 1;
	for (unsigned i = 0; ok && i < levels; i++) {
		g->tables[i] = rate_table_new(
		    p->rate_table_size, sizeof(struct tcp_source), f->secret);
		ok = g->tables[i] != NULL;
	}
	g->pool = calloc(groups, sizeof(*g->pool));
	if (!ok || g->pool == NULL) {
		tcp_guard_free(g);
		return NULL;
	}
	/* Handed out from the front when first needed, not chained now: a
	 * page of the pool costs memory only once a group is on it (chaining
	 * all 12,001 x 4 of the bench's policy touched 1.9 MiB). */
	g->ngroups = groups;
	return g;
}

void
tcp_guard_free(struct tcp_guard *g)
{
	if (g == NULL)
		return;
	for (unsigned i = 0; i < POLICY_MAX_LEVELS; i++)
		rate_table_free(g->tables[i]);
	free(g->pool);
	free(g);
}

unsigned
tcp_guard_active(const struct tcp_guard *g)
{
	return g->active;
}

unsigned
tcp_guard_cap(const struct tcp_guard *g)
{
	return g->cap;
}

/* The member that has held the most the longest, in a list of groups. */
static struct tcp_source *
largest_in(const struct share_group *list)
{
	return list != NULL ? list->first : NULL;
}

struct tcp_source *
tcp_guard_largest(const struct tcp_guard *g)
{
	struct tcp_source *e = largest_in(g->aggregates);

	while (e != NULL && e->children != NULL)
		e = largest_in(e->children);
	return e;
}

struct tcp_source *
tcp_guard_aggregate(struct tcp_source *e)
{
	while (e->parent != NULL)
		e = e->parent;
	return e;
}

struct tcp_source *
tcp_guard_parent(const struct tcp_source *s)
{
	return s->parent;
}

uint32_t
tcp_guard_held(const struct tcp_source *s)
{
	return s->held;
}

struct bucket
tcp_guard_connects(const struct tcp_source *s)
{
	return s->connects;
}

unsigned
tcp_guard_aggregate_prefix(const struct tcp_guard *g,
                           const struct tcp_source *s, struct ipaddr *prefix)
{
	const struct policy *p = g->policy;
	const unsigned *lengths;
	unsigned n;

	while (s->parent != NULL)
		s = s->parent;
	*prefix = *rate_entry_key(s);
	n = tcp_levels(p, prefix->family, &lengths);
	return lengths[n - 1];
}

void
tcp_guard_stats(const struct tcp_guard *g, struct guard_stats *out)
{
	*out = (struct guard_stats){.entries = rate_table_used(g->tables[0]),
	                            .evictions = g->evictions};
}

/* Does the source's byte rate pace this connection? */
static bool
byte_rated(const struct policy *p, const struct tcp_source *s, bool rate_exempt)
{
	return s != NULL && !rate_exempt && p->tcp_byte_rate.rate > 0;
}

uint64_t
tcp_guard_allowance(struct tcp_guard *g, struct tcp_source *s, bool rate_exempt,
                    uint64_t now)
{
	const struct policy *p = g->policy;

	if (!p->enforce || !byte_rated(p, s, rate_exempt))
		return UINT64_MAX;
	return bucket_level(&s->bytes, &p->tcp_byte_rate, now);
}

void
tcp_guard_charge(struct tcp_guard *g, struct tcp_source *s, bool rate_exempt,
                 uint64_t now, uint64_t n)
{
	const struct policy *p = g->policy;

	if (byte_rated(p, s, rate_exempt))
		bucket_take(&s->bytes, &p->tcp_byte_rate, now, n);
}

bool
tcp_guard_may_log(struct tcp_guard *g, struct log_limit *l, unsigned r,
                  struct tcp_source *s)
{
	(void)g;
	return log_limit_allow(l, r, s != NULL ? &s->logged : NULL) != 0;
}

const struct rate_table *
tcp_guard_table(const struct tcp_guard *g)
{
	return g->tables[0];
}

size_t
tcp_guard_entry_bytes(void)
{
	return rate_table_slot_bytes(sizeof(struct tcp_source));
}

size_t
tcp_guard_group_bytes(void)
{
	return sizeof(struct share_group);
}

static struct share_group *
group_new(struct tcp_guard *g, uint32_t held)
{
	struct share_group *gr = g->spare;

	/* Never both empty: tcp_guard_new counted the most groups in use. */
	if (gr != NULL) {
		g->spare = gr->next;
	} else {
		assert(g->nfresh < g->ngroups);
		gr = &g->pool[g->nfresh++];
	}
	*gr = (struct share_group){.held = held};
	return gr;
}

/* Put gr in the circular list *list before `at` (NULL: at the end). */
static void
group_insert(struct share_group **list, struct share_group *gr,
             struct share_group *at)
{
	struct share_group *before = at != NULL ? at : *list;

	if (before == NULL) {
		gr->prev = gr->next = gr;
		*list = gr;
		return;
	}
	gr->next = before;
	gr->prev = before->prev;
	before->prev->next = gr;
	before->prev = gr;
	if (at == *list)
		*list = gr;
}

/* Take gr, now without members, out of *list and back to the spares. */
static void
group_drop(struct tcp_guard *g, struct share_group **list,
           struct share_group *gr)
{
	if (gr->next == gr) {
		*list = NULL;
	} else {
		gr->prev->next = gr->next;
		gr->next->prev = gr->prev;
		if (*list == gr)
			*list = gr->next;
	}
	gr->next = g->spare;
	g->spare = gr;
}

static void
member_append(struct share_group *gr, struct tcp_source *e)
{
	e->group = gr;
	e->level_next = NULL;
	e->level_prev = gr->last;
	if (gr->last != NULL)
		gr->last->level_next = e;
	else
		gr->first = e;
	gr->last = e;
}

static void
member_remove(struct share_group *gr, struct tcp_source *e)
{
	if (e->level_prev != NULL)
		e->level_prev->level_next = e->level_next;
	else
		gr->first = e->level_next;
	if (e->level_next != NULL)
		e->level_next->level_prev = e->level_prev;
	else
		gr->last = e->level_prev;
	e->level_prev = e->level_next = NULL;
	e->group = NULL;
}

static struct share_group **
siblings(struct tcp_guard *g, struct tcp_source *e)
{
	return e->parent != NULL ? &e->parent->children : &g->aggregates;
}

/* e holds one more: into the group just before its own (or the last
 * group, for its first), made if that one holds another count. */
static void
count_up(struct tcp_guard *g, struct tcp_source *e)
{
	struct share_group **list = siblings(g, e), *from = e->group, *to;
	struct share_group *above;
	uint32_t held = e->held + 1;

	if (from != NULL)
		above = from != *list ? from->prev : NULL;
	else
		above = *list != NULL ? (*list)->prev : NULL;
	if (above != NULL && above->held == held) {
		to = above;
	} else {
		to = group_new(g, held);
		group_insert(list, to, from);
	}
	if (from != NULL) {
		member_remove(from, e);
		if (from->first == NULL)
			group_drop(g, list, from);
	}
	member_append(to, e);
	e->held = held;
	rate_entry_pin(e);
}

/* e holds one fewer: into the group just after its own, made if that one
 * holds another count; none at 0. */
static void
count_down(struct tcp_guard *g, struct tcp_source *e)
{
	struct share_group **list = siblings(g, e), *from = e->group, *to;
	uint32_t held = e->held - 1;

	member_remove(from, e);
	if (held > 0) {
		struct share_group *below =
		    from->next != *list ? from->next : NULL;

		if (below != NULL && below->held == held) {
			to = below;
		} else {
			to = group_new(g, held);
			group_insert(list, to, below);
		}
		member_append(to, e);
	}
	if (from->first == NULL)
		group_drop(g, list, from);
	e->held = held;
	rate_entry_unpin(e);
}

void
tcp_guard_opened(struct tcp_guard *g, struct tcp_source *e)
{
	g->active++;
	for (; e != NULL; e = e->parent)
		count_up(g, e);
}

void
tcp_guard_closed(struct tcp_guard *g, struct tcp_source *e)
{
	g->active--;
	for (; e != NULL; e = e->parent)
		count_down(g, e);
}

/*
 * At the cap, from the coarsest level down (chain[n - 1] is the
 * newcomer's aggregate): if the newcomer's prefix holds fewer than the
 * largest among its siblings, the victim is that largest one's largest
 * child's ... largest source. If it holds as many, it is one of the
 * largest: the choice is made inside it, one level down. NULL when the
 * newcomer's source itself holds as many as its largest sibling: letting
 * it in would only trade places.
 */
static struct tcp_source *
choose_victim(const struct tcp_guard *g, struct tcp_source *const *chain,
              unsigned n)
{
	const struct share_group *list = g->aggregates;

	for (unsigned i = n; i-- > 0;) {
		struct tcp_source *mine = chain[i], *top = largest_in(list);

		if (top == NULL)
			return NULL;
		if (mine->held < top->held) {
			while (top->children != NULL)
				top = largest_in(top->children);
			return top;
		}
		list = mine->children;
	}
	return NULL;
}

/* A refusal: the first check that failed, and nothing to open. */
static void
refuse(struct tcp_admission *out, enum tcp_reason r)
{
	out->admit = false;
	out->verdict = r;
	out->evict = NULL;
}

/* An IPv6 source judged as the IPv4 address it carries: that address
 * must not be a bad source either. It arrived over IPv6, so an IPv4
 * loopback or own address inside it is forged. */
static bool
tcp_bad_source(const struct tcp_guard *g, const struct ipaddr *src,
               const struct ipaddr *judged)
{
	struct datagram d = {.src = *judged, .ifindex = -1};

	if (!g->policy->embedded_ipv4_judge)
		return false;
	return judged->family != src->family && guard_bad_source(&d, g->facts);
}

/* The entries of src's prefixes, finest first, made if missing, each
 * linked to the next as its parent; the count, or 0 (nothing linked) when
 * a table has no slot left for one (all pinned). */
static unsigned
tcp_chain(struct tcp_guard *g, const struct ipaddr *src, uint64_t now,
          struct tcp_source **chain)
{
	const struct policy *p = g->policy;
	const unsigned *lengths;
	unsigned n = tcp_levels(p, src->family, &lengths);

	for (unsigned i = 0; i < n; i++) {
		struct ipaddr key;
		bool created, evicted;
		struct tcp_source *e;

		ipaddr_prefix(src, lengths[i], &key);
		e = rate_table_get(g->tables[i], &key, now, &created, &evicted);
		if (e == NULL)
			return 0;
		g->evictions += evicted;
		if (created) {
			bucket_init(&e->connects,
			            i == 0 ? &p->tcp_connect_rate
			                   : &p->tcp_aggregate_connect_rate,
			            now);
			bucket_init(&e->bytes, &p->tcp_byte_rate, now);
		}
		chain[i] = e;
	}
	/* Linked only now: an entry that holds connections already has
	 * this parent, and one that holds none is linked before use. */
	for (unsigned i = 0; i + 1 < n; i++)
		chain[i]->parent = chain[i + 1];
	chain[n - 1]->parent = NULL;
	return n;
}

/* The abuse checks of a source that has its chain: the first that fails.
 * Both connect buckets must hold a token before either is spent. */
static enum tcp_reason
tcp_limits(const struct policy *p, struct tcp_source *const *chain, unsigned n,
           bool exempt, uint64_t now)
{
	struct tcp_source *e = chain[0], *agg = chain[n - 1];
	bool aggregated = n > 1;

	if (e->held >= p->tcp_max_per_source)
		return TCP_per_source;
	if (aggregated && agg->held >= p->tcp_max_per_aggregate)
		return TCP_per_aggregate;
	if (exempt)
		return TCP_ok;
	if (bucket_level(&e->connects, &p->tcp_connect_rate, now) < 1)
		return TCP_rate;
	if (aggregated && !bucket_take(&agg->connects,
	                               &p->tcp_aggregate_connect_rate, now, 1))
		return TCP_aggregate_rate;
	bucket_take(&e->connects, &p->tcp_connect_rate, now, 1);
	return TCP_ok;
}

void
tcp_guard_admit(struct tcp_guard *g, const struct ipaddr *src, uint64_t now,
                struct tcp_admission *out)
{
	const struct policy *p = g->policy;
	enum tcp_reason abuse = TCP_ok;
	struct tcp_source *chain[POLICY_MAX_LEVELS];
	struct ipaddr judged;
	unsigned n;

	*out = (struct tcp_admission){.verdict = TCP_ok};
	if (!judged_source(p, src, &judged) || tcp_bad_source(g, src, &judged))
		abuse = TCP_bad_source;
	else if (!acl_allows(&p->acl, &judged))
		abuse = TCP_deny;
	if (abuse != TCP_ok && p->enforce) {
		refuse(out, abuse);
		return;
	}
	n = tcp_chain(g, &judged, now, chain);
	if (n == 0) { /* a resource: holds in log-only too */
		refuse(out, TCP_table);
		return;
	}
	out->source = chain[0];
	/* rate-exempt skips the connect rates, not the caps: its entries
	 * count its connections as anyone's. */
	out->rate_exempt = rate_exempt(p, &judged);
	if (abuse == TCP_ok)
		abuse = tcp_limits(p, chain, n, out->rate_exempt, now);
	if (abuse != TCP_ok && p->enforce) {
		refuse(out, abuse);
		return;
	}
	/* The cap is a resource: log-only or not, it holds. */
	if (g->active >= g->cap) {
		out->evict = choose_victim(g, chain, n);
		if (out->evict == NULL) {
			refuse(out, TCP_max);
			return;
		}
	}
	out->admit = true;
	out->verdict = abuse;
}
