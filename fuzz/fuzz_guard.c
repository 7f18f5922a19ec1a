/*
 * fuzz_guard: the UDP guard (src/guard.c) over a stream of datagrams.
 *
 * Input: three header bytes, then records until the input runs out.
 *   byte 0, flags: 0x01 enforce log-only, 0x02 udp-loop-guard off,
 *     0x04 rate-table-size 64 (evictions), 0x08 a small udp-rate taken
 *     from byte 1 and 2, 0x10 small udp-byte-rate and udp-global-rate,
 *     0x20 allow/deny rules, 0x40 rate prefixes /32 and /128,
 *     0x80 the guard is one of 4 workers (global rate share 1/4).
 *   byte 1: udp-rate count 1..8 (bits 0-2), per minute if bit 3, loop
 *     guard tuning in bits 4-5, share 0 (taken as 1) if bit 6 and not
 *     flag 0x80, the built-in rate-table-size (16384) if bit 7 (else 1024,
 *     faster; or 64 by flag 0x04); byte 2: udp-rate burst 1..16 (bits
 *     0-3), rate-exempt 198.51.100.7 10.1.0.0/16 2001:db8:1::/48 if bit 7,
 *     embedded-ipv4 judge if bit 6, a small udp-aggregate-rate over
 *     aggregates of /8 and /32 if bit 5.
 *   record: h, src, dst, sport (2), len (2), tag, step.
 *     h bit 0: IPv6 (the datagram arrives on a v6 socket; v4-mapped folds
 *     to IPv4 as in udp.c); bit 1: src is one byte indexing a pool of
 *     interesting addresses, else raw 4 or 16 bytes; bit 2: same for dst;
 *     bit 3: dst of the other family; bit 4: it arrived on the loopback
 *     interface (index 1), else on index 2.
 *     len: payload length (records above udp-max-datagram are skipped, as
 *     udp.c drops them before the guard); tag: which bytes the payload is
 *     (payloads of equal len and tag are equal); step: clock advance in
 *     ms, < 0xc0 as is, 0xc0..0xfe (b & 0x3f) seconds, 0xff three days.
 *
 * A fresh guard per input (so a reproducer needs no history); the policy
 * is the built-in one plus the lines the flags select, parsed by
 * policy_parse. The clock never goes backwards (it is CLOCK_MONOTONIC).
 *
 * Invariants, for every datagram the guard answers GUARD_ok:
 *  - its source port is not in udp-deny-source-ports (and not below 1024,
 *    which the built-in list denies);
 *  - guard_bad_source and guard_bad_dest say no; the ACL allows the source;
 *    a source that is one of the host's own addresses arrived on loopback
 *    (and, independently, the rules this harness added allow it);
 *  - the destination is not 255.255.255.255, a known directed broadcast,
 *    224.0.0.0/4 or ff00::/8; the source is not unspecified, multicast, or
 *    loopback towards a non-loopback destination;
 *  - per source prefix (a model keyed like the guard, reset when the table
 *    no longer holds the key, i.e. after an eviction): oks since the entry
 *    appeared <= burst + rate * elapsed / period, and the same for bytes;
 *    the same per aggregate prefix for udp-aggregate-rate; all oks
 *    together <= the worker's share of the global rate;
 *  - an IPv6 source that carries an IPv4 address (the harness's own
 *    reading of the forms addr.h lists) is refused for its port or as a
 *    bad source under embedded-ipv4 drop; under judge, every invariant
 *    above holds for the IPv4 address it carries (its rate prefix, its
 *    aggregate, the ACL, the bad sources: loopback, the host's own);
 *  - the loop guard matches an exact model: the `repeats`-th equal payload
 *    from one host and port within `window` is refused, then that payload
 *    from that host and port for `hold`, and nothing else: no neighbour,
 *    no other port or payload (the model is reset when the guard's loop
 *    table no longer holds the key, i.e. after an eviction);
 *  - the echo udp.c sends is the request itself: d.len and d.payload are
 *    what was checked, len <= udp-max-datagram (amplification <= 1).
 * A rate-exempt source (the harness's own reading of the prefixes) is
 * never refused for a rate or the table, takes no rate-table entry, is
 * not charged to its prefix's or the global budget, and is counted by
 * udp_guard_exempted once per answer; every other invariant holds for it.
 * A second guard sees the same datagrams as udp.c hands GRO buffers to
 * it: each run of consecutive records from one source, port, destination
 * and interface at one time, of one length but a shorter last one (at
 * most 64 datagrams, 65,535 bytes), is one buffer, decided by
 * udp_guard_source_check once and udp_guard_payload_checks; its verdicts
 * are the first guard's, datagram by datagram, and so are its evictions
 * and rate-exempt count after each buffer.
 * And always: rate_table_bytes(udp_guard_table(g)) never changes.
 * enforce log-only does not change the verdict (udp.c echoes anyway and
 * counts udp_would_drop); it is toggled only to check that.
 */
#include "acl.h"
#include "addr.h"
#include "facts.h"
#include "guard.h"
#include "guard_test.h"
#include "log.h"
#include "policy.h"
#include "ratelimit.h"

#include "exempt.h"
#include "fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the guard reports to the counters. */
static struct guard_stats
stats_of(const struct udp_guard *g)
{
	struct guard_stats st;

	udp_guard_stats(g, &st);
	return st;
}

typedef unsigned __int128 u128;

#define MAX_RECORDS 2048
#define MODEL_SLOTS 4096 /* > MAX_RECORDS: open addressing never fills */
#define PATTERN_LEN (65536 + 256)

static const char *const pool_v4[] = {
    "0.0.0.0",         "0.1.2.3",        "127.0.0.1",       "127.1.2.3",
    "10.0.0.1",        "10.1.2.3",       "10.2.3.4",        "10.2.3.5",
    "192.168.1.255",   "10.255.255.255", "255.255.255.255", "224.0.0.1",
    "239.255.255.250", "240.0.0.1",      "198.51.100.7",    "198.51.100.8",
    "203.0.113.9",     "192.0.2.1",      "8.8.8.8",         "198.51.100.255",
};
static const char *const pool_v6[] = {
    "::",
    "::1",
    "ff02::1",
    "ff05::2",
    "fe80::1",
    "2001:db8::1",
    "2001:db8:0:1::1",
    "2001:db8:1::7",
    "2001:db8:1:2::9",
    "2001:db9::1",
    "::ffff:10.1.2.3",
    "::ffff:127.0.0.1",
    "::ffff:255.255.255.255",
    "64:ff9b::1.2.3.4",
    "2a00:1450::1",
    "::2",
    "2002:a01:203::1",          /* 6to4 of 10.1.2.3 */
    "2001:0:1:2:3:4:f5fd:fcfb", /* Teredo of 10.2.3.4 (own) */
    "64:ff9b:1::7f00:1",        /* NAT64 local of 127.0.0.1 */
    "::203.0.113.9",            /* IPv4-compatible */
    "64:ff9b::c633:6407",       /* NAT64 of 198.51.100.7 */
};
#define NPOOL4 (sizeof(pool_v4) / sizeof(*pool_v4))
#define NPOOL6 (sizeof(pool_v6) / sizeof(*pool_v6))

/* Per source prefix (rates) or per loop key (hold, run). */
struct model {
	struct ipaddr key;
	unsigned gen;
	uint64_t t0, oks, bytes;
	uint64_t hold_until;
	unsigned run;       /* equal payloads seen by looping() this window */
	uint64_t run_first; /* when the run started */
};

static struct model models[MODEL_SLOTS], loop_models[MODEL_SLOTS];
static struct model agg_models[MODEL_SLOTS];
static unsigned gen;
static struct ipaddr ip4[NPOOL4], ip6[NPOOL6];
static uint8_t pattern[PATTERN_LEN];
static struct facts facts;
static struct policy defaults;

static void
init_once(void)
{
	static bool done;
	uint32_t x = 2463534242u;

	if (done)
		return;
	done = true;
	for (size_t i = 0; i < NPOOL4; i++)
		CHECK(parse_ipaddr(pool_v4[i], &ip4[i]) == 0);
	for (size_t i = 0; i < NPOOL6; i++)
		CHECK(parse_ipaddr(pool_v6[i], &ip6[i]) == 0);
	for (size_t i = 0; i < PATTERN_LEN; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		pattern[i] = (uint8_t)x;
	}
	for (int i = 0; i < SIPHASH_KEY_LEN; i++)
		facts.secret[i] = (uint8_t)(0x11 * i + 7);
	CHECK(parse_ipaddr("192.168.1.255", &facts.broadcast[0]) == 0);
	CHECK(parse_ipaddr("10.255.255.255", &facts.broadcast[1]) == 0);
	CHECK(parse_ipaddr("198.51.100.255", &facts.broadcast[2]) == 0);
	facts.nbroadcast = 3;
	/* Own addresses: some of the pools', on lo (1) and elsewhere. */
	CHECK(parse_ipaddr("127.0.0.1", &facts.local[0]) == 0);
	CHECK(parse_ipaddr("::1", &facts.local[1]) == 0);
	CHECK(parse_ipaddr("10.2.3.4", &facts.local[2]) == 0);
	CHECK(parse_ipaddr("2001:db8::1", &facts.local[3]) == 0);
	facts.nlocal = 4;
	facts.loopback_ifindex[0] = 1;
	facts.nloopback = 1;
	policy_defaults(&defaults, NULL);
	udp_guard_free(NULL); /* allowed, like free(NULL) */
}

static struct model *
model_in(struct model *table, const struct ipaddr *key)
{
	uint32_t h = 2166136261u;
	const uint8_t *b = key->bytes;

	h = (h ^ key->family) * 16777619u;
	for (int i = 0; i < 16; i++)
		h = (h ^ b[i]) * 16777619u;
	for (uint32_t i = 0;; i++) {
		struct model *m = &table[(h + i) % MODEL_SLOTS];
		if (m->gen != gen) {
			memset(m, 0, sizeof(*m));
			m->gen = gen;
			m->key = *key;
			return m;
		}
		if (ipaddr_equal(&m->key, key))
			return m;
	}
}

/* One address: a pool index or raw bytes, folded as udp.c folds. */
static bool
take_addr(const uint8_t **p, size_t *left, bool v6, bool pooled,
          struct ipaddr *out)
{
	if (pooled) {
		if (*left < 1)
			return false;
		*out = v6 ? ip6[**p % NPOOL6] : ip4[**p % NPOOL4];
		(*p)++;
		(*left)--;
		return true;
	}
	if (v6) {
		struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
		if (*left < 16)
			return false;
		memcpy(&sin6.sin6_addr, *p, 16);
		ipaddr_from_sockaddr((const struct sockaddr *)&sin6, out, NULL);
		*p += 16;
		*left -= 16;
	} else {
		struct sockaddr_in sin = {.sin_family = AF_INET};
		if (*left < 4)
			return false;
		memcpy(&sin.sin_addr, *p, 4);
		ipaddr_from_sockaddr((const struct sockaddr *)&sin, out, NULL);
		*p += 4;
		*left -= 4;
	}
	return true;
}

static bool
v4_is(const struct ipaddr *a, const char *s)
{
	struct ipaddr b;

	return parse_ipaddr(s, &b) == 0 && ipaddr_equal(a, &b);
}

/* The harness's own reading of the IPv6 forms that carry an IPv4
 * address: NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4 2002::/16, Teredo
 * 2001::/32 (inverted), ::/96 but :: and ::1. The address in *v4. */
static bool
carries_v4(const struct ipaddr *s, struct ipaddr *v4)
{
	static const uint8_t zero[12];
	const uint8_t *b = s->bytes;
	bool nat64 = b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b;
	size_t at = 12;
	uint8_t flip = 0;

	if (s->family != AF_INET6)
		return false;
	if (nat64 && (memcmp(b + 4, zero, 8) == 0 || (b[4] == 0 && b[5] == 1)))
		at = 12;
	else if (b[0] == 0x20 && b[1] == 0x02)
		at = 2;
	else if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0)
		flip = 0xff;
	else if (memcmp(b, zero, 12) != 0 ||
	         (b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1))
		return false;
	memset(v4, 0, sizeof(*v4));
	v4->family = AF_INET;
	for (int i = 0; i < 4; i++)
		v4->bytes[i] = b[at + (size_t)i] ^ flip;
	return true;
}

/* The harness's own reading of "never answer this", not guard.c's. */
static void
check_answerable(const struct datagram *d, const struct policy *p,
                 bool acl_rules)
{
	const struct ipaddr *s = &d->src, *t = &d->dst;
	static const uint8_t zero[16];

	CHECK(!portset_has(&p->udp_deny_ports, d->sport));
	CHECK(d->sport >= 1024);
	CHECK(!guard_bad_source(d, &facts));
	for (size_t i = 0; i < facts.nlocal; i++)
		if (ipaddr_equal(s, &facts.local[i]))
			CHECK(d->ifindex == 1);
	CHECK(!guard_bad_dest(t, &facts));
	CHECK(acl_allows(&p->acl, s));

	if (t->family == AF_INET) {
		CHECK(!v4_is(t, "255.255.255.255"));
		CHECK((t->bytes[0] & 0xf0) != 224);
		for (size_t i = 0; i < facts.nbroadcast; i++)
			CHECK(!ipaddr_equal(t, &facts.broadcast[i]));
		CHECK(memcmp(t->bytes, zero, 4) != 0);
	} else {
		CHECK(t->bytes[0] != 0xff);
		CHECK(memcmp(t->bytes, zero, 16) != 0);
	}
	if (s->family == AF_INET) {
		CHECK(memcmp(s->bytes, zero, 4) != 0);
		CHECK((s->bytes[0] & 0xf0) != 224);
		CHECK(!v4_is(s, "255.255.255.255"));
		if (s->bytes[0] == 127)
			CHECK(guard_is_loopback(t));
	} else {
		CHECK(memcmp(s->bytes, zero, 16) != 0);
		CHECK(s->bytes[0] != 0xff);
	}
	if (acl_rules) {
		/* deny 10.0.0.0/8 2001:db8::/32, allow 10.1.0.0/16 10.2.3.4
		 * 2001:db8:1::/48 */
		if (s->family == AF_INET && s->bytes[0] == 10)
			CHECK(s->bytes[1] == 1 || v4_is(s, "10.2.3.4"));
		if (s->family == AF_INET6 && s->bytes[0] == 0x20 &&
		    s->bytes[1] == 0x01 && s->bytes[2] == 0x0d &&
		    s->bytes[3] == 0xb8)
			CHECK(s->bytes[4] == 0 && s->bytes[5] == 1);
	}
}

/* took <= burst + rate * elapsed / period, for a bucket that started full
 * `elapsed` ms ago (burst 0 means rate, as ratelimit.c documents). */
static void
check_budget(const struct bucket_cfg *c, uint64_t took, uint64_t elapsed)
{
	uint64_t burst = c->burst ? c->burst : c->rate;
	uint64_t period = c->period_ms ? c->period_ms : 1;

	if (c->rate == 0)
		return;
	CHECK((u128)took * period <=
	      (u128)burst * period + (u128)c->rate * elapsed);
}

static void
build_policy(struct policy *p, const uint8_t *hdr, unsigned *share)
{
	static const char *const loop_tuning[] = {
	    "",
	    "udp-loop-guard on repeats 2 window 100ms hold 1s\n",
	    "udp-loop-guard on repeats 3 window 10s hold 500ms\n",
	    "udp-loop-guard on repeats 5 window 1s hold 60s\n",
	};
	char text[1024];
	size_t n = 0;
	struct policy_error err;

#define ADD(...) n += (size_t)snprintf(text + n, sizeof(text) - n, __VA_ARGS__)
	if (hdr[0] & 0x01)
		ADD("enforce log-only\n");
	if (hdr[0] & 0x02)
		ADD("udp-loop-guard off\n");
	else
		ADD("%s", loop_tuning[(hdr[1] >> 4) & 3]);
	/* The built-in 16384 slots cost a 1.7 MB calloc and wipe per input
	 * (~2 ms, mostly page faults): use it only when asked. */
	if (hdr[0] & 0x04)
		ADD("rate-table-size 64\n");
	else if (!(hdr[1] & 0x80))
		ADD("rate-table-size 1024\n");
	if (hdr[0] & 0x08)
		ADD("udp-rate %u/%s burst %u\n", 1 + (hdr[1] & 7),
		    hdr[1] & 8 ? "m" : "s", 1 + hdr[2] % 16);
	if (hdr[0] & 0x10)
		ADD("udp-byte-rate 2k/s burst 3k\n"
		    "udp-global-rate 50/s burst 20\n");
	if (hdr[0] & 0x20)
		ADD("deny 10.0.0.0/8 2001:db8::/32\n"
		    "allow 10.1.0.0/16 10.2.3.4 2001:db8:1::/48\n");
	if (hdr[0] & 0x40)
		ADD("rate-prefix-v4 32\nrate-prefix-v6 128\n");
	if (hdr[2] & 0x80)
		ADD(FUZZ_RATE_EXEMPT);
	if (hdr[2] & 0x40)
		ADD("embedded-ipv4 judge\n");
	if (hdr[2] & 0x20)
		ADD("udp-aggregate-rate 3/s burst 5\n"
		    "udp-aggregate-prefix-v4 8\nudp-aggregate-prefix-v6 32\n");
#undef ADD
	CHECK(n < sizeof(text));
	memcpy(p, &defaults, sizeof(*p));
	if (policy_parse(text, n, p, &err) != 0) {
		fprintf(stderr, "harness policy:%u: %s\n", err.line, err.msg);
		abort();
	}
	/* share 0 is taken as 1 by udp_guard_new. */
	*share = hdr[0] & 0x80 ? 4 : (hdr[1] & 0x40 ? 0 : 1);
}

/* A GRO buffer being gathered for the second guard (the header). */
#define GRO_MAX_SEGS  64
#define GRO_MAX_BYTES 65535
struct gro_run {
	struct datagram first; /* source, port, destination, interface */
	uint64_t now;
	size_t n, len, segsize; /* datagrams, bytes, the first one's length */
	enum guard_reason verdict[GRO_MAX_SEGS]; /* the first guard's */
};
static uint8_t gro_buf[GRO_MAX_BYTES];

/* Does d, at now, continue run b as the next datagram of one buffer? */
static bool
gro_continues(const struct gro_run *b, const struct datagram *d, uint64_t now)
{
	return b->n > 0 && b->n < GRO_MAX_SEGS && now == b->now &&
	       b->segsize > 0 && b->len == b->n * b->segsize && d->len > 0 &&
	       d->len <= b->segsize && b->len + d->len <= GRO_MAX_BYTES &&
	       d->sport == b->first.sport && d->ifindex == b->first.ifindex &&
	       ipaddr_equal(&d->src, &b->first.src) &&
	       ipaddr_equal(&d->dst, &b->first.dst);
}

/* The second guard decides run b as one buffer: the first guard's
 * verdicts, evictions and exempt count. */
static void
gro_flush(struct gro_run *b, struct udp_guard *second,
          const struct udp_guard *first)
{
	enum guard_reason source, verdict[GRO_MAX_SEGS];
	struct datagram d = b->first;

	if (b->n == 0)
		return;
	d.payload = gro_buf;
	d.len = b->n > 1 ? b->segsize : b->len;
	source = udp_guard_source_check(second, &d, b->now);
	if (source == GUARD_ok)
		udp_guard_payload_checks(second, gro_buf, b->len, b->segsize,
		                         b->n, b->now, verdict);
	for (size_t i = 0; i < b->n; i++)
		CHECK((source == GUARD_ok ? verdict[i] : source) ==
		      b->verdict[i]);
	CHECK(stats_of(second).evictions == stats_of(first).evictions);
	CHECK(stats_of(second).exempted == stats_of(first).exempted);
	b->n = 0;
}

/* d, at now, with the first guard's verdict r, joins the buffer being
 * gathered or starts one (gro_flush ended the last unless d continues
 * it, before the first guard saw d). */
static void
gro_add(struct gro_run *b, const struct datagram *d, uint64_t now,
        enum guard_reason r)
{
	if (b->n == 0) {
		b->first = *d;
		b->now = now;
		b->len = 0;
		b->segsize = d->len;
	}
	memcpy(gro_buf + b->len, d->payload, d->len);
	b->len += d->len;
	b->verdict[b->n++] = r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct policy p;
	struct udp_guard *g, *second;
	static struct gro_run run;
	struct rate_table *table, *aggregates;
	struct loop_table *loops;
	struct bucket_cfg global;
	const uint8_t *in;
	size_t left, table_bytes, loop_bytes;
	uint64_t now = 1000000, start = now, total_oks = 0, evictions = 0;
	uint64_t exempt_oks = 0;
	struct log_limit drop_log = {.summary_event = "udp_drop_summary"};
	unsigned share, records = 0;
	bool trace;

	init_once();
	trace = getenv("FUZZ_GUARD_TRACE") != NULL;
	if (size < 3)
		return 0;
	build_policy(&p, data, &share);
	in = data + 3;
	left = size - 3;

	g = udp_guard_new(&p, &facts, share);
	second = udp_guard_new(&p, &facts, share);
	CHECK(g != NULL && second != NULL);
	run.n = 0;
	/* Only for rate_table_find and loop_table_find, which read and never
	 * write. */
	table = (struct rate_table *)udp_guard_table(g);
	aggregates = (struct rate_table *)udp_guard_aggregate_table(g);
	table_bytes = rate_table_bytes(table);
	loops = (struct loop_table *)udp_guard_loop_table(g);
	loop_bytes = loop_table_bytes(loops);
	CHECK(loop_table_slots(loops) >= loop_table_size(&p));
	CHECK(loop_bytes <= table_bytes);
	/* The bound the worker states: the tables, and a little. */
	CHECK(udp_guard_bytes(&p) >=
	      table_bytes + loop_bytes + rate_table_bytes(aggregates));
	CHECK(udp_guard_bytes(&p) <=
	      table_bytes + loop_bytes + rate_table_bytes(aggregates) + 4096);
	CHECK(rate_table_slots(table) >= p.rate_table_size);
	global = p.udp_global_rate;
	if (share == 0)
		share = 1;
	if (global.rate > 0) {
		global.rate = (global.rate + share - 1) / share;
		global.burst = (global.burst + share - 1) / share;
	}
	gen++;

	while (left >= 1 && records++ < MAX_RECORDS) {
		struct datagram d, judged;
		struct ipaddr key, agg_key, loop_key;
		uint64_t loop_hash;
		struct model *m, *am, *lm;
		bool carries;
		enum guard_reason r;
		uint8_t h = *in++;
		uint16_t len;
		uint8_t tag, step;
		bool v6 = h & 1;
		left--;

		if (!take_addr(&in, &left, v6, h & 2, &d.src) ||
		    !take_addr(&in, &left, (h & 8) ? !v6 : v6, h & 4, &d.dst) ||
		    left < 6)
			break;
		d.ifindex = h & 16 ? 1 : 2;
		d.sport = (uint16_t)(in[0] << 8 | in[1]);
		len = (uint16_t)(in[2] << 8 | in[3]);
		tag = in[4];
		step = in[5];
		in += 6;
		left -= 6;

		if (step < 0xc0)
			now += step;
		else if (step < 0xff)
			now += (uint64_t)(step & 0x3f) * 1000;
		else
			now += UINT64_C(3) * 24 * 3600 * 1000;
		/* udp.c drops oversize datagrams before asking the guard. */
		if (len > p.udp_max_datagram)
			continue;
		d.payload = pattern + tag;
		d.len = len;

		/* The source as the guard judges it. */
		judged = d;
		carries = carries_v4(&d.src, &judged.src);
		ipaddr_prefix(&judged.src,
		              judged.src.family == AF_INET ? p.rate_prefix_v4
		                                           : p.rate_prefix_v6,
		              &key);
		m = model_in(models, &key);
		if (rate_table_find(table, &key) == NULL) {
			/* New or evicted: the guard starts it afresh. */
			m->t0 = now;
			m->oks = m->bytes = 0;
		}
		ipaddr_prefix(&judged.src,
		              judged.src.family == AF_INET
		                  ? p.udp_aggregate_prefix_v4
		                  : p.udp_aggregate_prefix_v6,
		              &agg_key);
		am = model_in(agg_models, &agg_key);
		if (rate_table_find(aggregates, &agg_key) == NULL) {
			am->t0 = now;
			am->oks = 0;
		}
		udp_guard_loop_key(g, &d, &loop_key);
		CHECK(loop_key.family == AF_UNSPEC);
		lm = model_in(loop_models, &loop_key);
		memcpy(&loop_hash, loop_key.bytes, sizeof(loop_hash));
		if (loop_table_find(loops, loop_hash) == NULL)
			lm->hold_until = lm->run = 0;

		bool exempt =
		    (data[2] & 0x80) && fuzz_exempt_source(&judged.src);
		size_t used = rate_table_used(table);
		if (!gro_continues(&run, &d, now))
			gro_flush(&run, second, g);
		r = udp_guard_check(g, &d, now);
		gro_add(&run, &d, now, r);
		if (exempt) {
			CHECK(r != GUARD_rate && r != GUARD_global_rate &&
			      r != GUARD_aggregate_rate && r != GUARD_table);
			CHECK(rate_table_used(table) == used);
		}
		if (carries && !p.embedded_ipv4_judge)
			CHECK(r == GUARD_port || r == GUARD_bad_source);
		if (trace) {
			char a[64], b[64];
			format_ipaddr(&d.src, a, sizeof(a));
			format_ipaddr(&d.dst, b, sizeof(b));
			fprintf(stderr,
			        "t=%llu %s:%u -> %s len=%u tag=%u: %s\n",
			        (unsigned long long)now, a, d.sport, b, len,
			        tag, guard_reason_name(r));
		}
		CHECK(r < GUARD_NREASONS);
		CHECK(strcmp(guard_reason_name(r), "?") != 0);
		CHECK(rate_table_bytes(table) == table_bytes);
		/* The log's per-source limit sees the entry exactly when the
		 * check reached the table, and it is that source's prefix. */
		{
			const void *src = udp_guard_source(g);
			bool in_table =
			    !exempt &&
			    (r == GUARD_ok || r == GUARD_loop ||
			     r == GUARD_rate || r == GUARD_aggregate_rate ||
			     r == GUARD_global_rate);
			CHECK((src != NULL) == in_table);
			CHECK(src == NULL ||
			      ipaddr_equal(rate_entry_key(src), &key));
			CHECK(stats_of(g).entries == rate_table_used(table));
			/* The line budget: a line allowed is counted for
			 * its reason. */
			{
				unsigned before = drop_log.logged[r];

				if (udp_guard_may_log(g, &drop_log, r))
					CHECK(drop_log.logged[r] == before + 1);
				else
					CHECK(drop_log.logged[r] == before);
			}
			CHECK(stats_of(g).evictions >= evictions);
			evictions = stats_of(g).evictions;
		}
		/* What udp.c echoes: the payload it checked, no more. */
		CHECK(d.payload == pattern + tag && d.len == len);
		CHECK(d.len <= p.udp_max_datagram);

		/* The loop guard, modelled. */
		bool reached = r == GUARD_loop || r == GUARD_rate ||
		               r == GUARD_aggregate_rate ||
		               r == GUARD_global_rate || r == GUARD_ok;
		if (!p.loop_guard) {
			CHECK(r != GUARD_loop);
		} else if (reached) {
			if (now < lm->hold_until) {
				CHECK(r == GUARD_loop);
			} else {
				if (lm->run > 0 &&
				    now - lm->run_first <= p.loop_window_ms) {
					lm->run++;
				} else {
					lm->run = 1;
					lm->run_first = now;
				}
				if (lm->run >= p.loop_repeats) {
					CHECK(r == GUARD_loop);
					lm->hold_until = now + p.loop_hold_ms;
					lm->run = 0;
				} else {
					CHECK(r != GUARD_loop);
				}
			}
		}

		if (r != GUARD_ok)
			continue;
		check_answerable(&judged, &p, data[0] & 0x20);
		if (exempt) {
			CHECK(stats_of(g).exempted == ++exempt_oks);
			continue;
		}
		CHECK(stats_of(g).exempted == exempt_oks);
		m->oks++;
		m->bytes += len;
		total_oks++;
		check_budget(&p.udp_rate, m->oks, now - m->t0);
		check_budget(&p.udp_byte_rate, m->bytes, now - m->t0);
		am->oks++;
		check_budget(&p.udp_aggregate_rate, am->oks, now - am->t0);
		check_budget(&global, total_oks, now - start);
	}
	CHECK(rate_table_bytes(udp_guard_table(g)) == table_bytes);
	CHECK(loop_table_bytes(loops) == loop_bytes);
	gro_flush(&run, second, g);
	udp_guard_free(g);
	udp_guard_free(second);
	return 0;
}
