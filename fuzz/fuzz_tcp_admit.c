/*
 * fuzz_tcp_admit: the TCP admission decision (tcp_guard_admit in
 * src/guard.c) over a stream of connects and closes.
 *
 * Input: three header bytes, then records until the input runs out.
 *   byte 0, flags: 0x01 enforce log-only, 0x02 allow/deny rules,
 *     0x04 rate-table-size 64 (table pressure), 0x08 tcp-connect-rate
 *     2/s burst 3, 0x10 tcp-prefix-v4 24 and tcp-prefix-v6 48 (one
 *     level; else the built-in levels 32 24 and 64 56 48), 0x40
 *     tcp-max-connections-per-aggregate 1 + (byte 2 >> 4) and
 *     tcp-aggregate-connect-rate 3/s burst 4, 0x80 embedded-ipv4 judge, 0x20
 *     fuzz_guard's rate-exempt prefixes (exempt.h): 198.51.100.7 (a /24
 *     key shared with 198.51.100.8 under 0x10), 10.1.0.0/16 (10.1.0.1,
 *     denied by 0x02) and 2001:db8:1::/48.
 *   byte 1: the worker's cap, 1 + (b % 48).
 *   byte 2: tcp-max-connections-per-source, 1 + (b % 16).
 *   record: op, arg.
 *     op < 0xc0: a connect from pool address (op % NPOOL), the clock
 *       advancing by arg ms;
 *     op >= 0xc0: close open connection number (arg % open).
 *
 * A fresh guard per input. The harness keeps its own model of the open
 * connections (which source key each belongs to, and the prefix of each
 * at every level) and checks, after every decision:
 *  - never past a cap: an admitted connection finds room (fewer than cap
 *    open) or comes with an eviction, and with enforce on, its source held
 *    fewer than tcp-max-connections-per-source; open <= cap always;
 *  - hierarchical max-min fairness: an eviction never takes from an
 *    aggregate (coarsest prefix) that holds fewer than the newcomer's,
 *    and takes from a different aggregate only if it holds more; at the
 *    first level where the victim's and the newcomer's prefixes part, the
 *    victim's holds more than the newcomer's and as many as any of its
 *    siblings; below that, each of the victim's prefixes is a largest
 *    among its siblings;
 *  - a refusal for max happens only at the cap and when the newcomer's
 *    aggregate holds as many as the largest (no aggregate holds more than
 *    its share while another is refused), and its prefix at every level
 *    as many as the largest of its siblings; deny only when the ACL
 *    denies (and with enforce on, always then); table only without an
 *    entry;
 *  - an IPv6 source that carries an IPv4 address (64:ff9b::/96 in the
 *    pool) is refused as bad_source under embedded-ipv4 drop, and keyed
 *    by its IPv4 address under judge;
 *  - per_aggregate only when the newcomer's aggregate holds the cap;
 *  - tcp_guard_active and tcp_guard_largest agree with the model; every
 *    open connection's entry is still its source's (pinned entries are
 *    never evicted); the table never changes size;
 *  - with enforce on, an allowed source whose key holds
 *    tcp-max-connections-per-source is refused for exactly that.
 * A rate-exempt source (the harness's own reading of the prefixes) skips
 * tcp-connect-rate and nothing else, as SECURITY.md and echod.conf(5)
 * say: it is never refused for the rate (nor a would-refuse in log-only),
 * and a.rate_exempt says so exactly when it has an entry; taking a
 * connection does not spend its key's connect bucket (checked when an
 * open connection pins that entry, so the bucket is seen before and
 * after). It keeps its TCP entry, so it counts toward the per-source cap
 * and the largest-holder eviction like anyone (the model above does not
 * tell it apart), and the table, a resource, refuses it only as it would
 * anyone: without an entry.
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

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_CAP     48
#define MAX_RECORDS 4096

static const char *const pool[] = {
    "10.0.0.1",          "10.0.0.2",          "10.0.0.3",
    "10.0.1.1",          "10.1.0.1",          "10.2.3.4",
    "198.51.100.7",      "198.51.100.8",      "203.0.113.9",
    "192.0.2.1",         "192.0.2.2",         "8.8.8.8",
    "2001:db8::1",       "2001:db8::2",       "2001:db8:0:1::1",
    "2001:db8:1::7",     "2001:db9::1",       "2a00::1",
    "::ffff:10.0.0.1",   "fe80::1",           "2001:db8:0:100::1",
    "2001:db8:0:101::1", "2001:db8:1:100::1", "2a00:0:0:ff00::1",
    "10.0.0.4",          "64:ff9b::a00:5",    "64:ff9b::c633:6409",
};
#define NPOOL      (sizeof(pool) / sizeof(*pool))
#define MAX_LEVELS POLICY_MAX_LEVELS

struct open_conn {
	struct ipaddr key;
	struct ipaddr level[MAX_LEVELS]; /* its prefix at each level */
	unsigned nlevels;
	struct tcp_source *entry;
};

/* The model's count of open connections per source key (at most one key
 * per pool address). */
static struct held {
	struct ipaddr key;
	unsigned n;
} model[NPOOL];
static unsigned nmodel;

static struct ipaddr addrs[NPOOL];
static struct facts facts;
static struct policy defaults;

static void
init_once(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	for (size_t i = 0; i < NPOOL; i++)
		CHECK(parse_ipaddr(pool[i], &addrs[i]) == 0);
	for (int i = 0; i < SIPHASH_KEY_LEN; i++)
		facts.secret[i] = (uint8_t)(0x13 * i + 5);
	policy_defaults(&defaults, NULL);
	tcp_guard_free(NULL);
}

static void
build_policy(struct policy *p, const uint8_t *hdr)
{
	char text[512];
	size_t n = 0;
	struct policy_error err;

#define ADD(...) n += (size_t)snprintf(text + n, sizeof(text) - n, __VA_ARGS__)
	if (hdr[0] & 0x01)
		ADD("enforce log-only\n");
	if (hdr[0] & 0x02)
		ADD("deny 10.0.0.0/8 2001:db8::/32\n"
		    "allow 10.0.0.0/24 2001:db8:1::/48\n");
	ADD("rate-table-size %u\n", hdr[0] & 0x04 ? 64 : 1024);
	if (hdr[0] & 0x08)
		ADD("tcp-connect-rate 2/s burst 3\n");
	if (hdr[0] & 0x10)
		ADD("tcp-prefix-v4 24\ntcp-prefix-v6 48\n");
	if (hdr[0] & 0x20)
		ADD(FUZZ_RATE_EXEMPT);
	if (hdr[0] & 0x40)
		ADD("tcp-max-connections-per-aggregate %u\n"
		    "tcp-aggregate-connect-rate 3/s burst 4\n",
		    1 + hdr[2] / 16);
	if (hdr[0] & 0x80)
		ADD("embedded-ipv4 judge\n");
	ADD("tcp-max-connections-per-source %u\n", 1 + hdr[2] % 16);
#undef ADD
	CHECK(n < sizeof(text));
	memcpy(p, &defaults, sizeof(*p));
	if (policy_parse(text, n, p, &err) != 0) {
		fprintf(stderr, "harness policy:%u: %s\n", err.line, err.msg);
		abort();
	}
}

/* The harness's reading of NAT64's 64:ff9b::/96, the one embedded form
 * in the pool (addr.c knows the rest): the address carried, in *v4. */
static bool
carries_v4(const struct ipaddr *a, struct ipaddr *v4)
{
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};

	if (a->family != AF_INET6 || memcmp(a->bytes, nat64, 12) != 0)
		return false;
	memset(v4, 0, sizeof(*v4));
	v4->family = AF_INET;
	memcpy(v4->bytes, a->bytes + 12, 4);
	return true;
}

/* src's prefixes at the policy's levels, finest first; their count. */
static unsigned
levels_of(const struct policy *p, const struct ipaddr *src,
          struct ipaddr *level)
{
	const unsigned *len =
	    src->family == AF_INET ? p->tcp_prefix_v4 : p->tcp_prefix_v6;
	unsigned n =
	    src->family == AF_INET ? p->tcp_levels_v4 : p->tcp_levels_v6;

	CHECK(n >= 1 && n <= MAX_LEVELS);
	for (unsigned i = 0; i < n; i++)
		ipaddr_prefix(src, len[i], &level[i]);
	return n;
}

/* A chain's prefix at `depth` from the top (0: the aggregate), or NULL
 * if the chain is not that deep. */
static const struct ipaddr *
at_depth(const struct ipaddr *level, unsigned nlevels, unsigned depth)
{
	return depth < nlevels ? &level[nlevels - 1 - depth] : NULL;
}

/* Open connections under prefix `pre` at `depth`. */
static unsigned
count_at(const struct open_conn *open, unsigned n, unsigned depth,
         const struct ipaddr *pre)
{
	unsigned c = 0;

	for (unsigned i = 0; i < n; i++) {
		const struct ipaddr *x =
		    at_depth(open[i].level, open[i].nlevels, depth);
		c += x != NULL && ipaddr_equal(x, pre);
	}
	return c;
}

/* The most any prefix at `depth` holds among the children of `parent`
 * (at depth - 1; NULL at depth 0: all aggregates). */
static unsigned
most_at(const struct open_conn *open, unsigned n, unsigned depth,
        const struct ipaddr *parent)
{
	unsigned top = 0;

	for (unsigned i = 0; i < n; i++) {
		const struct ipaddr *x =
		    at_depth(open[i].level, open[i].nlevels, depth);
		const struct ipaddr *up =
		    depth > 0
		        ? at_depth(open[i].level, open[i].nlevels, depth - 1)
		        : NULL;
		unsigned c;

		if (x == NULL || (parent != NULL && !ipaddr_equal(up, parent)))
			continue;
		c = count_at(open, n, depth, x);
		if (c > top)
			top = c;
	}
	return top;
}

/* The entry an open connection from key pins, or NULL. */
static struct tcp_source *
pinned_entry(const struct open_conn *open, unsigned n, const struct ipaddr *key)
{
	for (unsigned i = 0; i < n; i++)
		if (ipaddr_equal(&open[i].key, key))
			return open[i].entry;
	return NULL;
}

static struct held *
model_for(const struct ipaddr *key)
{
	for (unsigned i = 0; i < nmodel; i++)
		if (ipaddr_equal(&model[i].key, key))
			return &model[i];
	CHECK(nmodel < NPOOL);
	model[nmodel] = (struct held){*key, 0};
	return &model[nmodel++];
}

/* How many open connections the model has for key. */
static unsigned
held(const struct ipaddr *key)
{
	return model_for(key)->n;
}

/* Remove open[i] as the server would close it. */
static void
close_conn(struct tcp_guard *g, struct open_conn *open, unsigned *n, unsigned i)
{
	tcp_guard_closed(g, open[i].entry);
	model_for(&open[i].key)->n--;
	open[i] = open[--*n];
}

/* The guard's counts at every level are the model's, and its largest is
 * the largest aggregate's largest child's ... largest source. */
static void
check_state(struct tcp_guard *g, const struct open_conn *open, unsigned n,
            const struct rate_table *table, size_t table_bytes)
{
	struct tcp_source *largest = tcp_guard_largest(g);

	CHECK(tcp_guard_active(g) == n);
	CHECK(n <= tcp_guard_cap(g));
	CHECK(rate_table_bytes(table) == table_bytes);
	if (n == 0) {
		CHECK(largest == NULL);
		return;
	}
	CHECK(largest != NULL);
	for (unsigned i = 0; i < n; i++) {
		const struct tcp_source *e = open[i].entry;

		CHECK(ipaddr_equal(rate_entry_key(e), &open[i].key));
		CHECK(tcp_guard_held(e) == held(&open[i].key));
		for (unsigned l = 0; l < open[i].nlevels;
		     l++, e = tcp_guard_parent(e)) {
			unsigned depth = open[i].nlevels - 1 - l;

			CHECK(e != NULL);
			CHECK(
			    ipaddr_equal(rate_entry_key(e), &open[i].level[l]));
			CHECK(tcp_guard_held(e) ==
			      count_at(open, n, depth, &open[i].level[l]));
			/* Its table entry is pinned exactly while it holds. */
			CHECK(rate_entry_pins(e) == tcp_guard_held(e));
		}
		CHECK(e == NULL);
		if (open[i].entry != largest)
			continue;
		/* The largest: a largest among its siblings at each level. */
		for (unsigned d = 0; d < open[i].nlevels; d++)
			CHECK(count_at(open, n, d,
			               at_depth(open[i].level, open[i].nlevels,
			                        d)) ==
			      most_at(open, n, d,
			              d > 0 ? at_depth(open[i].level,
			                               open[i].nlevels, d - 1)
			                    : NULL));
		largest = NULL; /* found */
	}
	CHECK(largest == NULL);
}

/*
 * What the guard says of an admitted source: its aggregate is the
 * coarsest of its levels; its byte allowance is unlimited unless the
 * byte rate applies (enforced, not exempt), and a charge of n within it
 * takes exactly n; a line about it is counted for its reason; the
 * gauge counts the finest table's sources.
 */
static void
check_source(struct tcp_guard *g, const struct policy *p,
             const struct tcp_admission *a, uint64_t now, uint64_t n,
             const struct ipaddr *level, unsigned nlevels)
{
	static struct log_limit lines = {.summary_event = "tcp_log_summary"};
	bool rated = p->enforce && !a->rate_exempt && p->tcp_byte_rate.rate > 0;
	unsigned before_lines = lines.logged[a->verdict];
	uint64_t before, after;
	struct guard_stats st;
	struct ipaddr agg;
	unsigned len;

	tcp_guard_stats(g, &st);
	CHECK(st.entries == rate_table_used(tcp_guard_table(g)));
	CHECK(st.exempted == 0);
	if (tcp_guard_may_log(g, &lines, a->verdict, a->source))
		CHECK(lines.logged[a->verdict] == before_lines + 1);
	else
		CHECK(lines.logged[a->verdict] == before_lines);
	if (a->source == NULL)
		return;
	len = tcp_guard_aggregate_prefix(g, a->source, &agg);
	CHECK(ipaddr_equal(&agg, &level[nlevels - 1]));
	CHECK(len == (agg.family == AF_INET
	                  ? p->tcp_prefix_v4[p->tcp_levels_v4 - 1]
	                  : p->tcp_prefix_v6[p->tcp_levels_v6 - 1]));
	before = tcp_guard_allowance(g, a->source, a->rate_exempt, now);
	tcp_guard_charge(g, a->source, a->rate_exempt, now, n);
	after = tcp_guard_allowance(g, a->source, a->rate_exempt, now);
	if (!rated)
		CHECK(before == UINT64_MAX && after == UINT64_MAX);
	else
		CHECK(after == (n <= before ? before - n : before));
}

/* Is the newcomer's prefix at every depth as large as its largest
 * sibling (the only case where max refuses)? */
static bool
largest_all_the_way(const struct open_conn *open, unsigned n,
                    const struct ipaddr *level, unsigned nlevels)
{
	for (unsigned d = 0; d < nlevels; d++) {
		const struct ipaddr *mine = at_depth(level, nlevels, d);
		const struct ipaddr *up =
		    d > 0 ? at_depth(level, nlevels, d - 1) : NULL;

		if (count_at(open, n, d, mine) < most_at(open, n, d, up))
			return false;
	}
	return true;
}

/* The eviction of victim for a newcomer whose chain is level[]: fair at
 * every level (the header's invariant). */
static void
check_eviction(const struct open_conn *open, unsigned n,
               const struct open_conn *victim, const struct ipaddr *level,
               unsigned nlevels)
{
	unsigned vn = victim->nlevels, d = 0, vagg, magg;

	vagg = count_at(open, n, 0, at_depth(victim->level, vn, 0));
	magg = count_at(open, n, 0, at_depth(level, nlevels, 0));
	CHECK(vagg >= magg);
	/* Where the chains part. */
	while (d < vn && d < nlevels &&
	       ipaddr_equal(at_depth(victim->level, vn, d),
	                    at_depth(level, nlevels, d)))
		d++;
	CHECK(d < vn);
	if (d > 0)
		CHECK(vagg == magg);
	else
		CHECK(vagg > magg);
	for (unsigned k = 0; k < d; k++) /* shared: the newcomer's largest */
		CHECK(count_at(open, n, k, at_depth(level, nlevels, k)) ==
		      most_at(open, n, k,
		              k > 0 ? at_depth(level, nlevels, k - 1) : NULL));
	CHECK(d >= nlevels ||
	      count_at(open, n, d, at_depth(victim->level, vn, d)) >
	          count_at(open, n, d, at_depth(level, nlevels, d)));
	for (unsigned k = d; k < vn; k++) /* the victim's: largest */
		CHECK(
		    count_at(open, n, k, at_depth(victim->level, vn, k)) ==
		    most_at(open, n, k,
		            k > 0 ? at_depth(victim->level, vn, k - 1) : NULL));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct policy p;
	struct open_conn open[MAX_CAP];
	struct tcp_guard *g;
	const struct rate_table *table;
	size_t table_bytes;
	uint64_t now = 1000000;
	unsigned cap, n = 0, records = 0;

	init_once();
	if (size < 3)
		return 0;
	build_policy(&p, data);
	nmodel = 0;
	cap = 1 + data[1] % MAX_CAP;
	g = tcp_guard_new(&p, &facts, cap);
	CHECK(g != NULL);
	CHECK(tcp_guard_cap(g) == cap);
	table = tcp_guard_table(g);
	table_bytes = rate_table_bytes(table);
	/* Each level's table: its slots of the size SECURITY.md states. */
	CHECK(table_bytes >= rate_table_slots(table) * tcp_guard_entry_bytes());
	CHECK(tcp_guard_group_bytes() >= 4 * sizeof(void *));
	/* The bound the worker states: every level's table and the groups. */
	CHECK(tcp_guard_bytes(&p, cap) >=
	      table_bytes + (size_t)cap * tcp_guard_group_bytes());

	for (size_t at = 3; at + 1 < size && records++ < MAX_RECORDS; at += 2) {
		uint8_t op = data[at], arg = data[at + 1];
		const struct ipaddr *src = &addrs[op % NPOOL];
		struct tcp_admission a;
		struct ipaddr judged, level[MAX_LEVELS];
		const struct ipaddr *key = &level[0];
		struct tcp_source *pinned;
		struct bucket connects = {0, 0};
		unsigned mine, nlevels, agg;
		bool exempt, carries, allowed;

		if (op >= 0xc0) {
			if (n > 0)
				close_conn(g, open, &n, arg % n);
			check_state(g, open, n, table, table_bytes);
			continue;
		}
		now += arg;
		judged = *src;
		carries = carries_v4(src, &judged);
		nlevels = levels_of(&p, &judged, level);
		mine = held(key);
		agg = count_at(open, n, 0, at_depth(level, nlevels, 0));
		allowed = acl_allows(&p.acl, &judged);
		exempt = (data[0] & 0x20) && fuzz_exempt_source(&judged);
		pinned = pinned_entry(open, n, key);
		if (pinned != NULL)
			connects = tcp_guard_connects(pinned);
		tcp_guard_admit(g, src, now, &a);
		CHECK(a.rate_exempt == (exempt && a.source != NULL));
		if (exempt) {
			struct bucket now_connects;

			CHECK(a.verdict != TCP_rate &&
			      a.verdict != TCP_aggregate_rate);
			if (pinned != NULL) {
				now_connects = tcp_guard_connects(pinned);
				CHECK(memcmp(&now_connects, &connects,
				             sizeof(connects)) == 0);
			}
		}
		if (carries && !p.embedded_ipv4_judge)
			CHECK((a.verdict == TCP_bad_source &&
			       (!a.admit || !p.enforce)) ||
			      (!p.enforce && !a.admit));
		if (a.verdict == TCP_bad_source)
			CHECK(carries && !p.embedded_ipv4_judge);
		if (p.enforce && allowed && a.source != NULL &&
		    mine >= p.tcp_max_per_source && a.verdict != TCP_bad_source)
			CHECK(a.verdict == TCP_per_source && !a.admit);
		CHECK(a.verdict < TCP_NREASONS);
		CHECK(strcmp(tcp_reason_name(a.verdict), "?") != 0);
		CHECK(a.source == NULL ||
		      ipaddr_equal(rate_entry_key(a.source), key));
		CHECK(a.source == NULL || tcp_guard_held(a.source) == mine);
		check_source(g, &p, &a, now, arg, level, nlevels);
		if (!allowed && a.verdict != TCP_bad_source)
			CHECK(a.verdict == TCP_deny ||
			      (!p.enforce && !a.admit));
		if (a.verdict == TCP_deny)
			CHECK(!allowed);
		if (a.verdict == TCP_table)
			CHECK(a.source == NULL && !a.admit);
		if (a.verdict == TCP_per_source)
			CHECK(mine >= p.tcp_max_per_source);
		if (a.verdict == TCP_per_aggregate)
			CHECK(nlevels > 1 && agg >= p.tcp_max_per_aggregate);
		if (a.verdict == TCP_aggregate_rate)
			CHECK(nlevels > 1);
		if (a.verdict == TCP_max)
			CHECK(!a.admit && n == cap &&
			      largest_all_the_way(open, n, level, nlevels));
		if (!a.admit) {
			CHECK(a.evict == NULL);
			CHECK(a.verdict != TCP_ok);
			CHECK(a.verdict == TCP_table || a.verdict == TCP_max ||
			      p.enforce);
			check_state(g, open, n, table, table_bytes);
			continue;
		}
		/* Admitted: never past a cap. */
		CHECK(a.source != NULL);
		if (p.enforce) {
			CHECK(a.verdict == TCP_ok);
			CHECK(mine < p.tcp_max_per_source);
			CHECK(nlevels == 1 || agg < p.tcp_max_per_aggregate);
		}
		CHECK((a.evict != NULL) == (n == cap));
		if (a.evict != NULL) {
			unsigned i = 0;

			while (i < n && open[i].entry != a.evict)
				i++;
			CHECK(i < n);
			check_eviction(open, n, &open[i], level, nlevels);
			close_conn(g, open, &n, i);
			CHECK(n == cap - 1);
		}
		CHECK(n < cap);
		tcp_guard_opened(g, a.source);
		open[n].key = *key;
		memcpy(open[n].level, level, sizeof(level));
		open[n].nlevels = nlevels;
		open[n].entry = a.source;
		n++;
		model_for(key)->n++;
		check_state(g, open, n, table, table_bytes);
	}
	while (n > 0)
		close_conn(g, open, &n, n - 1);
	check_state(g, open, n, table, table_bytes);
	tcp_guard_free(g);
	return 0;
}
