/* guard: cheap stateless checks first, then the per-source table. */
#include "guard.h"
#include "gro.h"
#include "siphash.h"

#include <stdlib.h>
#include <string.h>

#define LOOP_TABLE_SHARE 8 /* loop-hold entries: rate-table-size / 8 */
#define LOOP_TABLE_MIN   64
/* Datagrams of a GRO buffer whose loop keys are hashed, and their sets
 * fetched, before the first of them is looked up. */
#define KEYS_AHEAD 16

struct udp_guard {
	const struct policy *policy;
	const struct facts *facts;
	struct rate_table *table; /* per source prefix: rates */
	struct loop_table *loops; /* per source, port and payload: loop holds */
	struct bucket_cfg global_cfg; /* this worker's share */
	struct bucket global;
	bool global_primed;
	bool rates_unlimited; /* no UDP rate at all: no bucket to consult */
	struct rate_entry *last_source; /* of the last check, for the log */
	bool source_exempt;             /* the last source check: rate-exempt */
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

bool
guard_is_local(const struct ipaddr *a, const struct facts *f)
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
	return guard_is_local(src, f) && !arrived_on_loopback(d->ifindex, f);
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
	g->table = rate_table_new(p->rate_table_size, f->secret);
	/* Loops are short (a run within `window`) or held: the table needs
	 * room for the loops in flight, not for every source. Touched by
	 * every datagram, it is kept small so that memory does not follow a
	 * flood of distinct payloads. */
	g->loops = loop_table_new(loop_table_size(p));
	if (g->table == NULL || g->loops == NULL) {
		udp_guard_free(g);
		return NULL;
	}
	if (share == 0)
		share = 1;
	g->global_cfg = p->udp_global_rate;
	if (g->global_cfg.rate > 0) {
		g->global_cfg.rate = (g->global_cfg.rate + share - 1) / share;
		g->global_cfg.burst = (g->global_cfg.burst + share - 1) / share;
	}
	/* Unlimited buckets grant everything and keep no state (ratelimit.c):
	 * skipping them changes no verdict. */
	g->rates_unlimited = p->udp_rate.rate == 0 &&
	                     p->udp_byte_rate.rate == 0 &&
	                     g->global_cfg.rate == 0;
	return g;
}

void
udp_guard_free(struct udp_guard *g)
{
	if (g == NULL)
		return;
	rate_table_free(g->table);
	loop_table_free(g->loops);
	free(g);
}

uint64_t
udp_guard_evictions(const struct udp_guard *g)
{
	return g->evictions;
}

uint64_t
udp_guard_exempted(const struct udp_guard *g)
{
	return g->exempted;
}

bool
guard_rate_exempt(const struct policy *p, const struct ipaddr *src)
{
	return p->rate_exempt.n > 0 && acl_match(&p->rate_exempt, src) != NULL;
}

struct rate_entry *
udp_guard_source(struct udp_guard *g)
{
	return g->last_source;
}

const struct rate_table *
udp_guard_table(const struct udp_guard *g)
{
	return g->table;
}

const struct loop_table *
udp_guard_loop_table(const struct udp_guard *g)
{
	return g->loops;
}

/* The loop key's hash with d's family, address, port and zero padding to
 * whole words absorbed: one SipHash pass over it and then the payload (not
 * a hash of the payload's hash). SipHash-1-3, as CPython's and Rust's hash
 * tables against hash flooding: it runs over every payload (SECURITY.md). */
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

/* The checks of d's source (guard.h), each time. */
static enum guard_reason
source_verdict(struct udp_guard *g, const struct datagram *d, uint64_t now)
{
	const struct policy *p = g->policy;
	struct ipaddr key;
	struct rate_entry *e;
	bool created, evicted;

	g->last_source = NULL;
	g->source_exempt = false;
	if (portset_has(&p->udp_deny_ports, d->sport))
		return GUARD_port;
	if (guard_bad_source(d, g->facts))
		return GUARD_bad_source;
	if (guard_bad_dest(&d->dst, g->facts))
		return GUARD_bad_dest;
	if (!acl_allows(&p->acl, &d->src))
		return GUARD_deny;
	if (p->loop_guard)
		loop_key_head(g, d, &g->loop_head);
	/* rate-exempt: no rate, no share of the global cap (a flood that
	 * spends it must not starve the exempt monitor) and no table entry
	 * (it evicts no one); the loop guard still holds, and it keeps its
	 * own table. */
	if (guard_rate_exempt(p, &d->src)) {
		g->source_exempt = true;
		return GUARD_ok;
	}
	ipaddr_prefix(&d->src,
	              d->src.family == AF_INET ? p->rate_prefix_v4
	                                       : p->rate_prefix_v6,
	              &key);
	e = rate_table_get(g->table, &key, now, &created, &evicted);
	if (e == NULL)
		return GUARD_table;
	g->last_source = e;
	g->evictions += evicted;
	if (created) {
		bucket_init(&e->packets, &p->udp_rate, now);
		bucket_init(&e->bytes, &p->udp_byte_rate, now);
	}
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
	struct rate_entry *e = g->last_source;

	if (p->loop_guard && looping(g, loop_key, now))
		return GUARD_loop;
	if (g->source_exempt) {
		g->exempted++;
		return GUARD_ok;
	}
	if (g->rates_unlimited)
		return GUARD_ok;
	/* Both allowances must hold before either is spent. */
	if (bucket_level(&e->packets, &p->udp_rate, now) < 1 ||
	    bucket_level(&e->bytes, &p->udp_byte_rate, now) < len)
		return GUARD_rate;
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

struct tcp_guard {
	const struct policy *policy;
	struct rate_table *table;
	unsigned cap, active;
	unsigned top;               /* the most connections any source holds */
	struct rate_entry **levels; /* [n]: sources holding n, n = 1..cap, */
	struct rate_entry **tails;  /* in the order they came to hold n */
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

struct tcp_guard *
tcp_guard_new(const struct policy *p, const struct facts *f, unsigned cap)
{
	struct tcp_guard *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->policy = p;
	g->cap = cap > 0 ? cap : 1;
	g->table = rate_table_new(p->rate_table_size, f->secret);
	g->levels = calloc((size_t)g->cap + 1, sizeof(*g->levels));
	g->tails = calloc((size_t)g->cap + 1, sizeof(*g->tails));
	if (g->table == NULL || g->levels == NULL || g->tails == NULL) {
		tcp_guard_free(g);
		return NULL;
	}
	return g;
}

void
tcp_guard_free(struct tcp_guard *g)
{
	if (g == NULL)
		return;
	rate_table_free(g->table);
	free(g->levels);
	free(g->tails);
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

struct rate_entry *
tcp_guard_largest(const struct tcp_guard *g)
{
	return g->top > 0 ? g->levels[g->top] : NULL;
}

uint64_t
tcp_guard_evictions(const struct tcp_guard *g)
{
	return g->evictions;
}

const struct rate_table *
tcp_guard_table(const struct tcp_guard *g)
{
	return g->table;
}

/* Sources are kept in lists by how many connections they hold, so the
 * largest holder is found in O(1) however many connections are open; of
 * equal holders, the one that has held that many longest comes first
 * (the newest arrival at a level is the last to lose a connection). */
static void
level_unlink(struct tcp_guard *g, struct rate_entry *e)
{
	if (e->level_prev != NULL)
		e->level_prev->level_next = e->level_next;
	else
		g->levels[e->pinned] = e->level_next;
	if (e->level_next != NULL)
		e->level_next->level_prev = e->level_prev;
	else
		g->tails[e->pinned] = e->level_prev;
	e->level_prev = e->level_next = NULL;
}

static void
level_link(struct tcp_guard *g, struct rate_entry *e)
{
	e->level_next = NULL;
	e->level_prev = g->tails[e->pinned];
	if (e->level_prev != NULL)
		e->level_prev->level_next = e;
	else
		g->levels[e->pinned] = e;
	g->tails[e->pinned] = e;
}

void
tcp_guard_opened(struct tcp_guard *g, struct rate_entry *e)
{
	g->active++;
	if (e == NULL)
		return;
	if (e->pinned > 0)
		level_unlink(g, e);
	e->pinned++;
	level_link(g, e);
	if (e->pinned > g->top)
		g->top = e->pinned;
}

void
tcp_guard_closed(struct tcp_guard *g, struct rate_entry *e)
{
	g->active--;
	if (e == NULL)
		return;
	level_unlink(g, e);
	e->pinned--;
	if (e->pinned > 0)
		level_link(g, e);
	while (g->top > 0 && g->levels[g->top] == NULL)
		g->top--;
}

/* A refusal: the first check that failed, and nothing to open. */
static void
refuse(struct tcp_admission *out, enum tcp_reason r)
{
	out->admit = false;
	out->verdict = r;
	out->evict = NULL;
}

void
tcp_guard_admit(struct tcp_guard *g, const struct ipaddr *src, uint64_t now,
                struct tcp_admission *out)
{
	const struct policy *p = g->policy;
	enum tcp_reason abuse = TCP_ok;
	struct rate_entry *e, *largest;
	struct ipaddr key;
	bool created, evicted;

	*out = (struct tcp_admission){.verdict = TCP_ok};
	if (!acl_allows(&p->acl, src)) {
		if (p->enforce) {
			refuse(out, TCP_deny);
			return;
		}
		abuse = TCP_deny;
	}
	ipaddr_prefix(
	    src, src->family == AF_INET ? p->tcp_prefix_v4 : p->tcp_prefix_v6,
	    &key);
	e = rate_table_get(g->table, &key, now, &created, &evicted);
	if (e == NULL) { /* a resource: holds in log-only too */
		refuse(out, TCP_table);
		return;
	}
	out->source = e;
	g->evictions += evicted;
	if (created) {
		bucket_init(&e->packets, &p->tcp_connect_rate, now);
		bucket_init(&e->bytes, &p->tcp_byte_rate, now);
	}
	/* rate-exempt skips the connect rate, not the per-source cap: its
	 * entry counts its connections as anyone's. */
	out->rate_exempt = guard_rate_exempt(p, src);
	if (abuse == TCP_ok && e->pinned >= p->tcp_max_per_source)
		abuse = TCP_per_source;
	else if (abuse == TCP_ok && !out->rate_exempt &&
	         !bucket_take(&e->packets, &p->tcp_connect_rate, now, 1))
		abuse = TCP_rate;
	if (abuse != TCP_ok && p->enforce) {
		refuse(out, abuse);
		return;
	}
	/* The cap is a resource: log-only or not, it holds. */
	if (g->active >= g->cap) {
		largest = tcp_guard_largest(g);
		if (largest == NULL || largest->pinned <= e->pinned) {
			refuse(out, TCP_max);
			return;
		}
		out->evict = largest;
	}
	out->admit = true;
	out->verdict = abuse;
}
