/* guard: cheap stateless checks first, then the per-source table. */
#include "guard.h"

#include <stdlib.h>
#include <string.h>

struct udp_guard {
	const struct policy *policy;
	const struct facts *facts;
	struct rate_table *table;
	struct bucket_cfg global_cfg; /* this worker's share */
	struct bucket global;
	bool global_primed;
	struct rate_entry *last_source; /* of the last check, for the log */
	uint64_t evictions;             /* table pressure: sources forgotten */
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

/* No honest peer sends from these; a reply would go nowhere or everywhere. */
bool
guard_bad_source(const struct ipaddr *src, const struct ipaddr *dst,
                 const struct facts *f)
{
	if (is_unspecified(src) || is_multicast(src) ||
	    is_local_broadcast(src, f) || v4_in(src, 240, 0xf0))
		return true;
	/* Loopback only ever arrives on loopback; elsewhere it is forged. */
	return guard_is_loopback(src) && !guard_is_loopback(dst);
}

/* A datagram to many hosts must not get an answer from each (fraggle). */
bool
guard_bad_dest(const struct ipaddr *dst, const struct facts *f)
{
	return is_multicast(dst) || is_local_broadcast(dst, f) ||
	       is_unspecified(dst);
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
	if (g->table == NULL) {
		free(g);
		return NULL;
	}
	if (share == 0)
		share = 1;
	g->global_cfg = p->udp_global_rate;
	if (g->global_cfg.rate > 0) {
		g->global_cfg.rate = (g->global_cfg.rate + share - 1) / share;
		g->global_cfg.burst = (g->global_cfg.burst + share - 1) / share;
	}
	return g;
}

void
udp_guard_free(struct udp_guard *g)
{
	if (g == NULL)
		return;
	rate_table_free(g->table);
	free(g);
}

uint64_t
udp_guard_evictions(const struct udp_guard *g)
{
	return g->evictions;
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

/* The same payload from the same port, again and again, at a loop's pace. */
static bool
looping(struct udp_guard *g, struct rate_entry *e, const struct datagram *d,
        uint64_t now)
{
	const struct policy *p = g->policy;
	uint8_t head[2 + sizeof(d->src)];
	uint64_t h;

	if (!p->loop_guard)
		return false;
	if (now < e->suppressed_until)
		return true;
	/* A loop is one host and port sending one payload again and again. */
	head[0] = (uint8_t)(d->sport >> 8);
	head[1] = (uint8_t)d->sport;
	memcpy(head + 2, &d->src, sizeof(d->src));
	h = siphash24(g->facts->secret, d->payload, d->len) ^
	    siphash24(g->facts->secret, head, sizeof(head));
	if (e->loop_repeats > 0 && h == e->loop_hash &&
	    now - e->loop_first_ms <= p->loop_window_ms) {
		e->loop_repeats++;
	} else {
		e->loop_hash = h;
		e->loop_repeats = 1;
		e->loop_first_ms = now;
	}
	if (e->loop_repeats >= p->loop_repeats) {
		e->suppressed_until = now + p->loop_hold_ms;
		e->loop_repeats = 0;
		return true;
	}
	return false;
}

enum guard_reason
udp_guard_check(struct udp_guard *g, const struct datagram *d, uint64_t now)
{
	const struct policy *p = g->policy;
	struct ipaddr key;
	struct rate_entry *e;
	bool created, evicted;

	g->last_source = NULL;
	if (portset_has(&p->udp_deny_ports, d->sport))
		return GUARD_port;
	if (guard_bad_source(&d->src, &d->dst, g->facts))
		return GUARD_bad_source;
	if (guard_bad_dest(&d->dst, g->facts))
		return GUARD_bad_dest;
	if (!acl_allows(&p->acl, &d->src))
		return GUARD_deny;
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
	if (looping(g, e, d, now))
		return GUARD_loop;
	/* Both allowances must hold before either is spent. */
	if (bucket_level(&e->packets, &p->udp_rate, now) < 1 ||
	    bucket_level(&e->bytes, &p->udp_byte_rate, now) < d->len)
		return GUARD_rate;
	bucket_take(&e->packets, &p->udp_rate, now, 1);
	bucket_take(&e->bytes, &p->udp_byte_rate, now, d->len);
	if (!g->global_primed) {
		bucket_init(&g->global, &g->global_cfg, now);
		g->global_primed = true;
	}
	if (!bucket_take(&g->global, &g->global_cfg, now, 1))
		return GUARD_global_rate;
	return GUARD_ok;
}
