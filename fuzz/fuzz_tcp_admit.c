/*
 * fuzz_tcp_admit: the TCP admission decision (tcp_guard_admit in
 * src/guard.c) over a stream of connects and closes.
 *
 * Input: three header bytes, then records until the input runs out.
 *   byte 0, flags: 0x01 enforce log-only, 0x02 allow/deny rules,
 *     0x04 rate-table-size 64 (table pressure), 0x08 tcp-connect-rate
 *     2/s burst 3, 0x10 tcp-prefix-v4 24 and tcp-prefix-v6 48, 0x20
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
 * connections (which source key each belongs to) and checks, after every
 * decision:
 *  - never past a cap: an admitted connection finds room (fewer than cap
 *    open) or comes with an eviction, and with enforce on, its source held
 *    fewer than tcp-max-connections-per-source; open <= cap always;
 *  - an eviction always takes from the largest holder: the evicted
 *    source holds as many as any source, and more than the newcomer;
 *  - a refusal for max happens only at the cap and when no source holds
 *    more than the newcomer; deny only when the ACL denies (and with
 *    enforce on, always then); table only without an entry;
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
    "10.0.0.1",    "10.0.0.2",    "10.0.0.3",        "10.0.1.1",
    "10.1.0.1",    "10.2.3.4",    "198.51.100.7",    "198.51.100.8",
    "203.0.113.9", "192.0.2.1",   "192.0.2.2",       "8.8.8.8",
    "2001:db8::1", "2001:db8::2", "2001:db8:0:1::1", "2001:db8:1::7",
    "2001:db9::1", "2a00::1",     "::ffff:10.0.0.1", "fe80::1",
};
#define NPOOL (sizeof(pool) / sizeof(*pool))

struct open_conn {
	struct ipaddr key;
	struct rate_entry *entry;
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
	ADD("tcp-max-connections-per-source %u\n", 1 + hdr[2] % 16);
#undef ADD
	CHECK(n < sizeof(text));
	memcpy(p, &defaults, sizeof(*p));
	if (policy_parse(text, n, p, &err) != 0) {
		fprintf(stderr, "harness policy:%u: %s\n", err.line, err.msg);
		abort();
	}
}

/* The entry an open connection from key pins, or NULL. */
static struct rate_entry *
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

static unsigned
most_held(void)
{
	unsigned top = 0;

	for (unsigned i = 0; i < nmodel; i++)
		if (model[i].n > top)
			top = model[i].n;
	return top;
}

/* Remove open[i] as the server would close it. */
static void
close_conn(struct tcp_guard *g, struct open_conn *open, unsigned *n, unsigned i)
{
	tcp_guard_closed(g, open[i].entry);
	model_for(&open[i].key)->n--;
	open[i] = open[--*n];
}

static void
check_state(struct tcp_guard *g, const struct open_conn *open, unsigned n,
            const struct rate_table *table, size_t table_bytes)
{
	struct rate_entry *largest = tcp_guard_largest(g);

	CHECK(tcp_guard_active(g) == n);
	CHECK(n <= tcp_guard_cap(g));
	CHECK(rate_table_bytes(table) == table_bytes);
	if (n == 0) {
		CHECK(largest == NULL);
		return;
	}
	CHECK(largest != NULL);
	CHECK(largest->pinned == most_held());
	CHECK(held(&largest->key) == largest->pinned);
	for (unsigned i = 0; i < n; i++) {
		CHECK(ipaddr_equal(&open[i].entry->key, &open[i].key));
		CHECK(open[i].entry->pinned == held(&open[i].key));
	}
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

	for (size_t at = 3; at + 1 < size && records++ < MAX_RECORDS; at += 2) {
		uint8_t op = data[at], arg = data[at + 1];
		const struct ipaddr *src = &addrs[op % NPOOL];
		struct tcp_admission a;
		struct ipaddr key;
		struct rate_entry *pinned;
		struct bucket connects = {0, 0};
		unsigned mine, top;
		bool exempt;

		if (op >= 0xc0) {
			if (n > 0)
				close_conn(g, open, &n, arg % n);
			check_state(g, open, n, table, table_bytes);
			continue;
		}
		now += arg;
		ipaddr_prefix(src,
		              src->family == AF_INET ? p.tcp_prefix_v4
		                                     : p.tcp_prefix_v6,
		              &key);
		mine = held(&key);
		top = most_held();
		exempt = (data[0] & 0x20) && fuzz_exempt_source(src);
		pinned = pinned_entry(open, n, &key);
		if (pinned != NULL)
			connects = pinned->packets;
		tcp_guard_admit(g, src, now, &a);
		CHECK(a.rate_exempt == (exempt && a.source != NULL));
		if (exempt) {
			CHECK(a.verdict != TCP_rate);
			CHECK(pinned == NULL ||
			      memcmp(&pinned->packets, &connects,
			             sizeof(connects)) == 0);
		}
		if (p.enforce && acl_allows(&p.acl, src) && a.source != NULL &&
		    mine >= p.tcp_max_per_source)
			CHECK(a.verdict == TCP_per_source && !a.admit);
		CHECK(a.verdict < TCP_NREASONS);
		CHECK(strcmp(tcp_reason_name(a.verdict), "?") != 0);
		CHECK(a.source == NULL || ipaddr_equal(&a.source->key, &key));
		CHECK(a.source == NULL || a.source->pinned == mine);
		if (!acl_allows(&p.acl, src))
			CHECK(a.verdict == TCP_deny ||
			      (!p.enforce && !a.admit));
		if (a.verdict == TCP_deny)
			CHECK(!acl_allows(&p.acl, src));
		if (a.verdict == TCP_table)
			CHECK(a.source == NULL && !a.admit);
		if (a.verdict == TCP_per_source)
			CHECK(mine >= p.tcp_max_per_source);
		if (a.verdict == TCP_max)
			CHECK(!a.admit && n == cap && top <= mine);
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
		}
		CHECK((a.evict != NULL) == (n == cap));
		if (a.evict != NULL) {
			/* From the largest holder, larger than the newcomer. */
			CHECK(a.evict->pinned == top);
			CHECK(held(&a.evict->key) == top);
			CHECK(top > mine);
			for (unsigned i = 0; i < n; i++) {
				if (open[i].entry == a.evict) {
					close_conn(g, open, &n, i);
					break;
				}
			}
			CHECK(n == cap - 1);
		}
		CHECK(n < cap);
		tcp_guard_opened(g, a.source);
		open[n++] = (struct open_conn){key, a.source};
		model_for(&key)->n++;
		check_state(g, open, n, table, table_bytes);
	}
	while (n > 0)
		close_conn(g, open, &n, n - 1);
	check_state(g, open, n, table, table_bytes);
	tcp_guard_free(g);
	return 0;
}
