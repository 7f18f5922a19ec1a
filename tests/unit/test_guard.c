/* guard: every UDP check, each shown to reject what it must and only that. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "gro.h"
#include "guard.h"
#include "guard_test.h"
#include "log.h"
#include "policy.h"
#include "ratelimit.h"

#include <stdio.h>
#include <string.h>

static struct policy pol;
static struct facts facts;

/* What the guard reports to the counters. */
static struct guard_stats
stats_of(const struct udp_guard *g)
{
	struct guard_stats st;

	udp_guard_stats(g, &st);
	return st;
}

/* A test policy on top of the defaults, and local broadcast 198.18.0.255. */
static struct udp_guard *
guard_with(const char *text, unsigned share)
{
	struct policy_error err;

	policy_defaults(&pol, NULL);
	if (text != NULL)
		assert_int_equal(policy_parse(text, strlen(text), &pol, &err),
		                 0);
	memset(&facts, 0, sizeof(facts));
	memset(facts.secret, 7, sizeof(facts.secret));
	assert_int_equal(parse_ipaddr("198.18.0.255", &facts.broadcast[0]), 0);
	facts.nbroadcast = 1;
	/* The host: 127.0.0.1 and ::1 on lo (index 1), 198.18.0.1 and
	 * 2001:db8::1 on index 2. */
	assert_int_equal(parse_ipaddr("127.0.0.1", &facts.local[0]), 0);
	assert_int_equal(parse_ipaddr("::1", &facts.local[1]), 0);
	assert_int_equal(parse_ipaddr("198.18.0.1", &facts.local[2]), 0);
	assert_int_equal(parse_ipaddr("2001:db8::1", &facts.local[3]), 0);
	facts.nlocal = 4;
	facts.loopback_ifindex[0] = 1;
	facts.nloopback = 1;
	return udp_guard_new(&pol, &facts, share);
}

static struct datagram
datagram(const char *src, uint16_t sport, const char *dst, const char *payload,
         int ifindex)
{
	struct datagram d = {.sport = sport,
	                     .ifindex = ifindex,
	                     .payload = (const uint8_t *)payload,
	                     .len = strlen(payload)};

	assert_int_equal(parse_ipaddr(src, &d.src), 0);
	assert_int_equal(parse_ipaddr(dst, &d.dst), 0);
	return d;
}

/* As it arrives on interface ifindex. */
static enum guard_reason
check_on(struct udp_guard *g, int ifindex, const char *src, uint16_t sport,
         const char *dst, const char *payload, uint64_t now)
{
	struct datagram d = datagram(src, sport, dst, payload, ifindex);

	return udp_guard_check(g, &d, now);
}

/* As the kernel delivers it: on lo to a loopback address, else on 2. */
static enum guard_reason
check(struct udp_guard *g, const char *src, uint16_t sport, const char *dst,
      const char *payload, uint64_t now)
{
	struct ipaddr to;

	assert_int_equal(parse_ipaddr(dst, &to), 0);
	return check_on(g, guard_is_loopback(&to) ? 1 : 2, src, sport, dst,
	                payload, now);
}

static void
test_denied_source_ports(void **state)
{
	struct udp_guard *g = guard_with(NULL, 1);
	static const uint16_t denied[] = {0,    7,    19,   53,   123,   1023,
	                                  1900, 3702, 5353, 5683, 11211, 27020};

	(void)state;
	for (size_t i = 0; i < sizeof(denied) / sizeof(*denied); i++)
		assert_int_equal(check(g, "198.18.1.1", denied[i], "198.18.0.1",
		                       "x", 1000 + i),
		                 GUARD_port);
	assert_int_equal(check(g, "198.18.1.1", 40000, "198.18.0.1", "x", 2000),
	                 GUARD_ok);
	udp_guard_free(g);
}

static void
test_bad_sources(void **state)
{
	struct udp_guard *g = guard_with(NULL, 1);
	static const char *const bad[] = {
	    "0.0.0.0",         "0.1.2.3",      "224.0.0.1", "239.255.255.250",
	    "255.255.255.255", "198.18.0.255", "240.0.0.1", "::",
	    "ff02::1",         "127.0.0.1",    "::1",       "::ffff:127.0.0.1",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		const char *dst = strchr(bad[i], ':') && !strstr(bad[i], "ffff")
		                      ? "2001:db8::1"
		                      : "198.18.0.1";
		assert_int_equal(check(g, bad[i], 40000, dst, "x", 1000 + i),
		                 GUARD_bad_source);
	}
	/* Loopback to loopback is an ordinary local client. */
	assert_int_equal(check(g, "127.0.0.1", 40000, "127.0.0.1", "x", 2000),
	                 GUARD_ok);
	assert_int_equal(check(g, "::1", 40000, "::1", "x", 2001), GUARD_ok);
	udp_guard_free(g);
}

static void
test_own_addresses_are_bad_sources(void **state)
{
	struct udp_guard *g = guard_with(NULL, 1);

	(void)state;
	/* From outside (accept_local=1, forwarding): forged. */
	assert_int_equal(
	    check_on(g, 2, "198.18.0.1", 40000, "198.18.0.1", "x", 1),
	    GUARD_bad_source);
	assert_int_equal(
	    check_on(g, 2, "2001:db8::1", 40000, "2001:db8::1", "x", 2),
	    GUARD_bad_source);
	assert_int_equal(
	    check_on(g, 3, "198.18.0.1", 40000, "198.18.7.7", "x", 3),
	    GUARD_bad_source);
	/* On lo only the host itself can send: the host talking to itself. */
	assert_int_equal(
	    check_on(g, 1, "198.18.0.1", 40000, "198.18.0.1", "x", 4),
	    GUARD_ok);
	assert_int_equal(
	    check_on(g, 1, "2001:db8::1", 40000, "2001:db8::1", "x", 5),
	    GUARD_ok);
	/* A neighbour of the host's address is not the host. */
	assert_int_equal(
	    check_on(g, 2, "198.18.0.2", 40000, "198.18.0.1", "x", 6),
	    GUARD_ok);
	udp_guard_free(g);
}

static void
test_broadcast_and_multicast_destinations(void **state)
{
	struct udp_guard *g = guard_with(NULL, 1);

	(void)state;
	assert_int_equal(
	    check(g, "198.18.1.1", 40000, "255.255.255.255", "x", 1),
	    GUARD_bad_dest);
	assert_int_equal(check(g, "198.18.1.1", 40000, "198.18.0.255", "x", 2),
	                 GUARD_bad_dest);
	assert_int_equal(check(g, "198.18.1.1", 40000, "224.0.0.1", "x", 3),
	                 GUARD_bad_dest);
	assert_int_equal(check(g, "2001:db8::5", 40000, "ff02::1", "x", 4),
	                 GUARD_bad_dest);
	assert_int_equal(check(g, "198.18.1.1", 40000, "198.18.0.1", "x", 5),
	                 GUARD_ok);
	udp_guard_free(g);
}

static void
test_deny_list_longest_prefix(void **state)
{
	struct udp_guard *g =
	    guard_with("deny 198.18.0.0/15\nallow 198.18.7.0/24\n", 1);

	(void)state;
	assert_int_equal(check(g, "198.19.1.1", 40000, "198.18.0.1", "x", 1),
	                 GUARD_deny);
	assert_int_equal(check(g, "198.18.7.9", 40000, "198.18.0.1", "x", 2),
	                 GUARD_ok);
	/* IPv4-mapped is judged as IPv4. */
	assert_int_equal(
	    check(g, "::ffff:198.19.1.1", 40000, "198.18.0.1", "x", 3),
	    GUARD_deny);
	udp_guard_free(g);
}

static void
test_loop_guard_suppresses_repeats(void **state)
{
	struct udp_guard *g =
	    guard_with("udp-loop-guard on repeats 4 window 1s hold 10s\n", 1);
	uint64_t t = 1000;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    check(g, "198.18.1.1", 20008, "198.18.0.1", "ping", t++),
		    GUARD_ok);
	assert_int_equal(
	    check(g, "198.18.1.1", 20008, "198.18.0.1", "ping", t++),
	    GUARD_loop);
	/* Held: that source, port and payload, for the hold... */
	assert_int_equal(
	    check(g, "198.18.1.1", 20008, "198.18.0.1", "ping", t + 5000),
	    GUARD_loop);
	/* ...and nothing else: another payload, port, or host of the /24. */
	assert_int_equal(
	    check(g, "198.18.1.1", 20008, "198.18.0.1", "other", t + 5001),
	    GUARD_ok);
	assert_int_equal(
	    check(g, "198.18.1.1", 20009, "198.18.0.1", "ping", t + 5002),
	    GUARD_ok);
	assert_int_equal(
	    check(g, "198.18.1.2", 20008, "198.18.0.1", "ping", t + 5003),
	    GUARD_ok);
	/* After the hold, a new run: held again at its 4th. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(check(g, "198.18.1.1", 20008, "198.18.0.1",
		                       "ping", t + 10001 + (uint64_t)i),
		                 GUARD_ok);
	assert_int_equal(
	    check(g, "198.18.1.1", 20008, "198.18.0.1", "ping", t + 10004),
	    GUARD_loop);
	udp_guard_free(g);
}

/* The hold's key: source address, port and payload, all of them. */
static void
test_loop_hold_key(void **state)
{
	struct udp_guard *g = guard_with(NULL, 1);
	struct datagram a = datagram("198.18.1.1", 20008, "198.18.0.1", "p", 2);
	struct datagram v[] = {
	    datagram("198.18.1.2", 20008, "198.18.0.1", "p", 2),
	    datagram("198.18.1.1", 20009, "198.18.0.1", "p", 2),
	    datagram("198.18.1.1", 20008, "198.18.0.1", "q", 2),
	    datagram("::ffff:198.18.1.2", 20008, "198.18.0.1", "p", 2),
	    datagram("2001:db8::c612:101", 20008, "2001:db8::1", "p", 2),
	};
	struct ipaddr ka, kb;

	(void)state;
	udp_guard_loop_key(g, &a, &ka);
	assert_int_equal(ka.family, AF_UNSPEC);
	/* Where it was sent and how it arrived do not matter. */
	kb = ka;
	a.dst.bytes[3] = 99;
	a.ifindex = 7;
	udp_guard_loop_key(g, &a, &kb);
	assert_true(ipaddr_equal(&ka, &kb));
	for (size_t i = 0; i < sizeof(v) / sizeof(*v); i++) {
		udp_guard_loop_key(g, &v[i], &kb);
		assert_false(ipaddr_equal(&ka, &kb));
	}
	/* v[3] is v[0] (mapped folds to IPv4). */
	udp_guard_loop_key(g, &v[0], &ka);
	udp_guard_loop_key(g, &v[3], &kb);
	assert_true(ipaddr_equal(&ka, &kb));
	udp_guard_free(g);
}

static void
test_loop_guard_spares_slow_and_varied(void **state)
{
	struct udp_guard *g =
	    guard_with("udp-loop-guard on repeats 4 window 1s hold 10s\n", 1);

	(void)state;
	/* An echoping at 1/s repeats its payload, but not at a loop's pace. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(check(g, "198.18.1.1", 40000, "198.18.0.1",
		                       "same", 1000 + (uint64_t)i * 1001),
		                 GUARD_ok);
	/* Fast but each payload different: a client, not a loop. */
	for (int i = 0; i < 10; i++) {
		char p[8];
		snprintf(p, sizeof(p), "n%d", i);
		assert_int_equal(
		    check(g, "198.18.2.1", 40000, "198.18.0.1", p, 50000 + i),
		    GUARD_ok);
	}
	udp_guard_free(g);
}

/* The default policy tells a prober from a loop by pace. */
static void
test_loop_guard_default_pace(void **state)
{
	struct udp_guard *g = guard_with(NULL, 1);

	(void)state;
	/* A monitoring probe: one payload from one port at 20/s. */
	for (int i = 0; i < 40; i++)
		assert_int_equal(check(g, "198.18.1.1", 40000, "198.18.0.1",
		                       "monitor", 1000 + (uint64_t)i * 50),
		                 GUARD_ok);
	/* A loop at a LAN's round trip: the 5th is held. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(check(g, "198.18.1.1", 20008, "198.18.0.1",
		                       "loop", 5000 + (uint64_t)i),
		                 GUARD_ok);
	assert_int_equal(
	    check(g, "198.18.1.1", 20008, "198.18.0.1", "loop", 5004),
	    GUARD_loop);
	udp_guard_free(g);
}

static void
test_rate_per_prefix(void **state)
{
	struct udp_guard *g = guard_with("udp-rate 10/s burst 10\n", 1);

	(void)state;
	for (int i = 0; i < 10; i++) {
		char src[32];
		/* Ten hosts of one /24 share one allowance. */
		snprintf(src, sizeof(src), "198.18.1.%d", i + 1);
		assert_int_equal(check(g, src, 40000, "198.18.0.1", "x", 1000),
		                 GUARD_ok);
	}
	assert_int_equal(
	    check(g, "198.18.1.200", 40000, "198.18.0.1", "x", 1000),
	    GUARD_rate);
	/* Another /24 has its own. */
	assert_int_equal(check(g, "198.18.2.1", 40000, "198.18.0.1", "x", 1000),
	                 GUARD_ok);
	/* 100 ms later one token is back. */
	assert_int_equal(check(g, "198.18.1.5", 40000, "198.18.0.1", "x", 1100),
	                 GUARD_ok);
	assert_int_equal(check(g, "198.18.1.5", 40000, "198.18.0.1", "x", 1100),
	                 GUARD_rate);
	udp_guard_free(g);
}

static void
test_rate_prefix_v6(void **state)
{
	struct udp_guard *g = guard_with("udp-rate 2/s burst 2\n", 1);

	(void)state;
	assert_int_equal(
	    check(g, "2001:db8:0:1::1", 40000, "2001:db8::1", "x", 1000),
	    GUARD_ok);
	/* Same /56 (2001:db8:0:0-ff), other host. */
	assert_int_equal(
	    check(g, "2001:db8:0:ff::9", 40000, "2001:db8::1", "x", 1000),
	    GUARD_ok);
	assert_int_equal(
	    check(g, "2001:db8:0:2::1", 40000, "2001:db8::1", "x", 1000),
	    GUARD_rate);
	/* Next /56 starts at 2001:db8:0:100::. */
	assert_int_equal(
	    check(g, "2001:db8:0:100::1", 40000, "2001:db8::1", "x", 1000),
	    GUARD_ok);
	udp_guard_free(g);
}

static void
test_byte_rate(void **state)
{
	struct udp_guard *g = guard_with("udp-byte-rate 1k/s burst 1k\n", 1);
	char big[601];

	(void)state;
	memset(big, 'a', 600);
	big[600] = '\0';
	assert_int_equal(check(g, "198.18.1.1", 40000, "198.18.0.1", big, 10),
	                 GUARD_ok);
	big[0] = 'b';
	assert_int_equal(check(g, "198.18.1.1", 40000, "198.18.0.1", big, 10),
	                 GUARD_rate);
	udp_guard_free(g);

	/* A datagram refused for its bytes costs no datagram token. */
	g = guard_with("udp-rate 1/s burst 2\nudp-byte-rate 1k/s burst 1k\n",
	               1);
	big[0] = 'c';
	assert_int_equal(check(g, "198.18.1.1", 40000, "198.18.0.1", big, 10),
	                 GUARD_ok); /* tokens: 1 datagram, 424 bytes */
	big[0] = 'd';
	assert_int_equal(check(g, "198.18.1.1", 40000, "198.18.0.1", big, 10),
	                 GUARD_rate); /* 600 > 424 bytes */
	/* The datagram token is still there for a small one. */
	assert_int_equal(check(g, "198.18.1.1", 40000, "198.18.0.1", "x", 10),
	                 GUARD_ok);
	assert_int_equal(check(g, "198.18.1.1", 40000, "198.18.0.1", "y", 10),
	                 GUARD_rate);
	udp_guard_free(g);
}

static void
test_global_rate_is_shared_by_workers(void **state)
{
	struct udp_guard *g = guard_with(
	    "udp-global-rate 10/s burst 10\nudp-rate unlimited\n", 2);
	int ok = 0;

	(void)state;
	for (int i = 0; i < 20; i++) {
		char src[32];
		snprintf(src, sizeof(src), "198.18.%d.1", i + 1);
		ok += check(g, src, 40000, "198.18.0.1", "x", 1000) == GUARD_ok;
	}
	/* This worker's share of a burst of 10 over 2 workers. */
	assert_int_equal(ok, 5);
	udp_guard_free(g);
}

/* Any one UDP rate still limits when the other two are unlimited (the
 * guard skips the buckets only when all three are), and with all three
 * unlimited nothing is refused for a rate. */
static void
test_one_rate_is_enough(void **state)
{
	static const struct {
		const char *policy;
		int oks; /* of 10 datagrams of 600 bytes, one source */
		enum guard_reason refused;
	} cases[] = {
	    {"udp-rate 3/s burst 3\nudp-byte-rate unlimited\n"
	     "udp-global-rate unlimited\n",
	     3, GUARD_rate},
	    {"udp-rate unlimited\nudp-byte-rate 2k/s burst 2k\n"
	     "udp-global-rate unlimited\n",
	     3, GUARD_rate},
	    {"udp-rate unlimited\nudp-byte-rate unlimited\n"
	     "udp-global-rate 4/s burst 4\n",
	     4, GUARD_global_rate},
	    {"udp-rate unlimited\nudp-byte-rate unlimited\n"
	     "udp-global-rate unlimited\n",
	     10, GUARD_ok},
	};
	char big[601];

	(void)state;
	memset(big, 'a', 600);
	big[600] = '\0';
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
		struct udp_guard *g = guard_with(cases[c].policy, 1);
		int oks = 0;

		for (int i = 0; i < 10; i++) {
			enum guard_reason r;

			big[0] = (char)('a' + i); /* no loop */
			r = check(g, "198.18.1.1", 40000, "198.18.0.1", big,
			          1000);
			if (r == GUARD_ok)
				oks++;
			else
				assert_int_equal(r, cases[c].refused);
		}
		assert_int_equal(oks, cases[c].oks);
		udp_guard_free(g);
	}
}

static void
test_table_memory_is_fixed(void **state)
{
	/* One aggregate per /16: the evictions counted are the sources'. */
	struct udp_guard *g = guard_with("rate-table-size 64\n"
	                                 "udp-aggregate-prefix-v4 16\n",
	                                 1);
	size_t before = rate_table_bytes(udp_guard_table(g));

	(void)state;
	for (int i = 0; i < 5000; i++) {
		char src[32];
		snprintf(src, sizeof(src), "198.%d.%d.1", 18 + (i >> 8) % 2,
		         i & 255);
		check(g, src, 40000, "198.18.0.1", "x", 1000 + (uint64_t)i);
	}
	assert_int_equal(rate_table_bytes(udp_guard_table(g)), before);
	assert_int_equal(rate_table_slots(udp_guard_table(g)), 64);
	assert_int_equal(loop_table_slots(udp_guard_loop_table(g)), 64);
	/* 512 prefixes cycling through 64 slots: nearly every one evicts. */
	assert_true(stats_of(g).evictions >= 4000);
	assert_true(stats_of(g).evictions <= 5000 - 64);
	udp_guard_free(g);
	/* The loop-hold table: an eighth of the rate table, never less. */
	g = guard_with(NULL, 1);
	assert_int_equal(loop_table_slots(udp_guard_loop_table(g)),
	                 pol.rate_table_size / 8);
	udp_guard_free(g);
}

/* TCP: one admission, as tcp.c applies it (evict, then open). */
static struct tcp_admission
tcp_connect(struct tcp_guard *g, const char *src, uint64_t now)
{
	struct tcp_admission a;
	struct ipaddr addr;

	assert_int_equal(parse_ipaddr(src, &addr), 0);
	tcp_guard_admit(g, &addr, now, &a);
	if (a.admit) {
		if (a.evict != NULL)
			tcp_guard_closed(g, a.evict);
		tcp_guard_opened(g, a.source);
	}
	return a;
}

static void
test_tcp_eviction_order(void **state)
{
	struct tcp_guard *g;
	struct tcp_admission a, b, c, first;

	(void)state;
	/* pol and facts; one level: the sources alone are compared. */
	udp_guard_free(guard_with("tcp-prefix-v4 32\n", 1));
	g = tcp_guard_new(&pol, &facts, 4);
	assert_non_null(g);
	first = tcp_connect(g, "198.18.1.1", 1);
	tcp_connect(g, "198.18.1.1", 2);
	b = tcp_connect(g, "198.18.1.2", 3); /* same /24, another source */
	c = tcp_connect(g, "198.18.2.1", 4);
	assert_true(first.admit && b.admit && c.admit);
	assert_ptr_not_equal(first.source, b.source);
	assert_int_equal(tcp_guard_active(g), 4);
	assert_ptr_equal(tcp_guard_largest(g), first.source);
	/* Full: a newcomer takes from the largest holder (2 > 0). */
	a = tcp_connect(g, "198.18.3.1", 5);
	assert_true(a.admit);
	assert_int_equal(a.verdict, TCP_ok);
	assert_ptr_equal(a.evict, first.source);
	assert_int_equal(tcp_guard_held(first.source), 1);
	assert_int_equal(tcp_guard_active(g), 4);
	/* Now all hold 1: of equal holders, the one that came to hold 1
	 * first (198.18.1.2) goes first, and a source that would hold as
	 * many as the largest is refused. */
	assert_ptr_equal(tcp_guard_largest(g), b.source);
	a = tcp_connect(g, "198.18.3.1", 6);
	assert_false(a.admit);
	assert_int_equal(a.verdict, TCP_max);
	assert_null(a.evict);
	a = tcp_connect(g, "198.18.4.1", 7);
	assert_true(a.admit);
	assert_ptr_equal(a.evict, b.source);
	assert_int_equal(tcp_guard_held(b.source), 0);
	assert_int_equal(tcp_guard_active(g), 4);
	tcp_guard_free(g);
}

static void
test_tcp_admission_checks(void **state)
{
	struct tcp_guard *g;
	struct tcp_admission a;

	(void)state;
	udp_guard_free(guard_with("tcp-max-connections-per-source 1\n"
	                          "deny 198.19.0.0/16\n"
	                          "tcp-connect-rate 2/m burst 2\n",
	                          1));
	g = tcp_guard_new(&pol, &facts, 100);
	a = tcp_connect(g, "198.19.1.1", 1);
	assert_false(a.admit);
	assert_int_equal(a.verdict, TCP_deny);
	assert_null(a.source);
	a = tcp_connect(g, "198.18.1.1", 2);
	assert_true(a.admit);
	a = tcp_connect(g, "198.18.1.1", 3);
	assert_false(a.admit);
	assert_int_equal(a.verdict, TCP_per_source);
	tcp_guard_closed(g, a.source);
	a = tcp_connect(g, "198.18.1.1", 4);
	assert_true(a.admit); /* the second token of the burst */
	tcp_guard_closed(g, a.source);
	a = tcp_connect(g, "198.18.1.1", 5);
	assert_false(a.admit);
	assert_int_equal(a.verdict, TCP_rate);
	assert_string_equal(tcp_reason_name(TCP_per_source), "per_source");
	assert_string_equal(tcp_reason_name(TCP_NREASONS), "?");
	tcp_guard_free(g);
}

/* rate-exempt: the per-source, byte and global rates do not apply and are
 * not charged, and no table entry is taken; a neighbour outside the
 * prefix, even in the same /24, is limited as before. */
static void
test_rate_exempt_udp(void **state)
{
	struct udp_guard *g =
	    guard_with("udp-rate 10/s burst 10\n"
	               "udp-byte-rate 1k/s burst 1k\n"
	               "udp-global-rate 20/s burst 20\n"
	               "udp-loop-guard off\n"
	               "rate-exempt 198.18.1.7 2001:db8:7::/48\n",
	               1);
	char payload[200];
	int ok = 0;

	(void)state;
	memset(payload, 'p', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	/* 200 datagrams of 199 bytes at one instant: far over every rate. */
	for (int i = 0; i < 200; i++) {
		ok += check(g, "198.18.1.7", 40000, "198.18.0.1", payload,
		            1000) == GUARD_ok;
		ok += check(g, "2001:db8:7:1::9", 40000, "2001:db8::1", payload,
		            1000) == GUARD_ok;
	}
	assert_int_equal(ok, 400);
	assert_int_equal(stats_of(g).exempted, 400);
	assert_int_equal(rate_table_used(udp_guard_table(g)), 0);
	/* The same /24 outside the exempt prefix: limited by the byte rate
	 * (1k / 199 = 5), and the global cap is still whole. */
	ok = 0;
	for (int i = 0; i < 20; i++)
		ok += check(g, "198.18.1.8", 40000, "198.18.0.1", payload,
		            1000) == GUARD_ok;
	assert_int_equal(ok, 5);
	ok = 0;
	for (int i = 0; i < 40; i++) {
		char src[32];
		snprintf(src, sizeof(src), "198.18.%d.1", 10 + i);
		ok += check(g, src, 40000, "198.18.0.1", "x", 1000) == GUARD_ok;
	}
	assert_int_equal(ok, 20 - 5); /* the global burst, less the 5 */
	/* Spent global cap: the exempt source still passes. */
	assert_int_equal(check(g, "198.18.1.7", 40000, "198.18.0.1", "y", 1000),
	                 GUARD_ok);
	assert_int_equal(stats_of(g).exempted, 401);
	udp_guard_free(g);
}

/* Every other check still applies to an exempt source. */
static void
test_rate_exempt_keeps_other_checks(void **state)
{
	struct udp_guard *g =
	    guard_with("rate-exempt 198.18.0.0/15 127.0.0.0/8 ::/0\n"
	               "deny 198.18.9.0/24\n",
	               1);

	(void)state;
	assert_int_equal(check(g, "198.18.1.1", 19, "198.18.0.1", "x", 1000),
	                 GUARD_port);
	assert_int_equal(
	    check_on(g, 2, "127.0.0.1", 40000, "198.18.0.1", "x", 1000),
	    GUARD_bad_source);
	assert_int_equal(
	    check_on(g, 2, "198.18.0.1", 40000, "198.18.0.1", "x", 1000),
	    GUARD_bad_source);
	assert_int_equal(
	    check(g, "198.18.1.1", 40000, "198.18.0.255", "x", 1000),
	    GUARD_bad_dest);
	assert_int_equal(check(g, "198.18.9.1", 40000, "198.18.0.1", "x", 1000),
	                 GUARD_deny);
	/* The loop guard: 5 repeats in 100 ms (the default) are held. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(check(g, "198.18.1.1", 40000, "198.18.0.1",
		                       "loop", 1000 + (uint64_t)i),
		                 GUARD_ok);
	assert_int_equal(
	    check(g, "198.18.1.1", 40000, "198.18.0.1", "loop", 1004),
	    GUARD_loop);
	assert_int_equal(stats_of(g).exempted, 4);
	udp_guard_free(g);
}

static void
test_rate_exempt_tcp(void **state)
{
	struct tcp_guard *g;
	struct tcp_admission a;

	(void)state;
	udp_guard_free(guard_with("tcp-max-connections-per-source 3\n"
	                          "tcp-connect-rate 2/m burst 2\n"
	                          "rate-exempt 198.18.1.7/32\n",
	                          1));
	g = tcp_guard_new(&pol, &facts, 100);
	/* Past the connect rate, up to the per-source cap; closing one
	 * makes room, and the rate never refuses. */
	for (int i = 0; i < 3; i++) {
		a = tcp_connect(g, "198.18.1.7", 1);
		assert_true(a.admit);
		assert_true(a.rate_exempt);
		assert_non_null(a.source);
	}
	a = tcp_connect(g, "198.18.1.7", 1);
	assert_false(a.admit);
	assert_int_equal(a.verdict, TCP_per_source);
	for (int i = 0; i < 10; i++) {
		tcp_guard_closed(g, a.source);
		a = tcp_connect(g, "198.18.1.7", 2);
		assert_true(a.admit);
	}
	/* Its neighbour is held to 2. */
	a = tcp_connect(g, "198.18.1.8", 3);
	assert_true(a.admit);
	assert_false(a.rate_exempt);
	tcp_guard_closed(g, a.source);
	a = tcp_connect(g, "198.18.1.8", 3);
	assert_true(a.admit);
	tcp_guard_closed(g, a.source);
	a = tcp_connect(g, "198.18.1.8", 3);
	assert_false(a.admit);
	assert_int_equal(a.verdict, TCP_rate);
	tcp_guard_free(g);

	/* log-only: no rate is checked for the exempt source, so it is never
	 * a would-refuse for one; its neighbour is. */
	udp_guard_free(guard_with("enforce log-only\n"
	                          "tcp-connect-rate 2/m burst 2\n"
	                          "rate-exempt 198.18.1.7/32\n",
	                          1));
	g = tcp_guard_new(&pol, &facts, 100);
	for (int i = 0; i < 5; i++) {
		a = tcp_connect(g, "198.18.1.7", 4);
		assert_true(a.admit);
		assert_int_equal(a.verdict, TCP_ok);
		a = tcp_connect(g, "198.18.1.8", 4);
		assert_true(a.admit);
		assert_int_equal(a.verdict, i < 2 ? TCP_ok : TCP_rate);
	}
	tcp_guard_free(g);
}

/*
 * A GRO buffer decided by the two halves (the source once, then each
 * datagram) gets the verdicts udp_guard_check gives each datagram alone:
 * rates, loop holds, a refused port and a rate-exempt source included.
 */
static void
test_split_check_is_udp_guard_check(void **state)
{
	static const char *const payloads[] = {"a", "same", "b", "same"};
	static const char policy[] = "udp-rate 10/s burst 10\n"
	                             "rate-exempt 198.18.3.0/24\n";
	struct udp_guard *whole = guard_with(policy, 1);
	struct udp_guard *split = guard_with(policy, 1);
	unsigned seen[GUARD_NREASONS] = {0};

	(void)state;
	for (int b = 0; b < 12; b++) {
		const char *src = b == 7       ? "198.18.3.7"
		                  : b % 3 == 0 ? "198.18.2.7"
		                               : "198.18.1.7";
		struct datagram d =
		    datagram(src, b == 5 ? 53 : 40000, "198.18.0.1", "", 2);
		uint64_t now = 1000 + 40 * (uint64_t)b;
		enum guard_reason source =
		    udp_guard_source_check(split, &d, now);

		for (int i = 0; i < 8; i++) {
			enum guard_reason w, s = source;

			d.payload = (const uint8_t *)payloads[i % 4];
			d.len = strlen(payloads[i % 4]);
			w = udp_guard_check(whole, &d, now);
			if (s == GUARD_ok)
				s = udp_guard_payload_check(split, &d, now);
			assert_int_equal(s, w);
			seen[w]++;
		}
	}
	/* The sequence went through every kind of decision. */
	assert_true(seen[GUARD_ok] > 0 && seen[GUARD_rate] > 0 &&
	            seen[GUARD_loop] > 0 && seen[GUARD_port] == 8);
	assert_true(stats_of(split).exempted > 0);
	assert_int_equal(stats_of(split).exempted, stats_of(whole).exempted);
	udp_guard_free(whole);
	udp_guard_free(split);
}

/*
 * A whole GRO buffer decided by udp_guard_payload_checks gets the verdicts
 * udp_guard_check gives each datagram alone, and leaves the same state:
 * buffers of 1 to 64 datagrams (odd and even counts, more than one run of
 * hashes ahead), a shorter last one, a plain datagram (no segment size),
 * repeats held within a buffer and across buffers, rates, a refused port
 * and a rate-exempt source.
 */
static void
test_buffer_check_is_udp_guard_check(void **state)
{
	static const char policy[] =
	    "udp-rate 20/s burst 40\n"
	    "udp-loop-guard on repeats 3 window 1s hold 10s\n"
	    "rate-exempt 198.18.3.0/24\n";
	static const size_t counts[] = {1, 2, 3, 16, 17, 33, 64, 5, 1};
	struct udp_guard *whole = guard_with(policy, 1);
	struct udp_guard *batch = guard_with(policy, 1);
	unsigned seen[GUARD_NREASONS] = {0};
	uint8_t buf[64 * 12];

	(void)state;
	for (size_t b = 0; b < 27; b++) {
		size_t nsegs = counts[b % 9], segsize = 8 + b % 5, len;
		const char *src = b % 4 == 3 ? "198.18.3.7" : "198.18.1.7";
		struct datagram d =
		    datagram(src, b == 13 ? 19 : 40000, "198.18.0.1", "", 2);
		uint64_t now = 1000 + 30 * (uint64_t)b;
		enum guard_reason source, v[64];

		/* Datagram i repeats i mod 7 within the buffer; the byte
		 * repeats across buffers every third buffer. */
		for (size_t i = 0; i < nsegs; i++)
			memset(buf + i * segsize,
			       (int)('a' + i % 7 + 7 * (b % 3)), segsize);
		len = nsegs * segsize;
		if (nsegs > 1 && b % 2 == 1)
			len -= segsize / 2; /* a shorter last datagram */
		if (nsegs == 1 && b % 2 == 0)
			segsize = 0; /* a datagram that came alone */
		assert_int_equal(gro_segments(len, segsize), nsegs);
		d.payload = buf;
		d.len = gro_segment_len(len, segsize, 0);
		source = udp_guard_source_check(batch, &d, now);
		if (source == GUARD_ok)
			udp_guard_payload_checks(batch, buf, len, segsize,
			                         nsegs, now, v);
		for (size_t i = 0; i < nsegs; i++) {
			enum guard_reason w;

			d.payload = buf + i * segsize;
			d.len = gro_segment_len(len, segsize, i);
			w = udp_guard_check(whole, &d, now);
			assert_int_equal(source == GUARD_ok ? v[i] : source, w);
			seen[w]++;
		}
	}
	/* The sequence went through every kind of decision. */
	assert_true(seen[GUARD_ok] > 0 && seen[GUARD_rate] > 0 &&
	            seen[GUARD_loop] > 0 && seen[GUARD_port] > 0);
	assert_true(stats_of(batch).exempted > 0);
	assert_int_equal(stats_of(batch).exempted, stats_of(whole).exempted);
	udp_guard_free(whole);
	udp_guard_free(batch);
}

/* A source check repeated for the same source, port, destination and
 * interface at the same time answers as the last one did; a change of any
 * of them, or of the time, is checked anew. */
static void
test_repeated_source_check(void **state)
{
	struct udp_guard *g = guard_with(NULL, 1);
	struct datagram d = datagram("127.0.0.1", 40000, "127.0.0.1", "x", 1);
	const void *e;

	(void)state;
	assert_int_equal(udp_guard_source_check(g, &d, 10), GUARD_ok);
	e = udp_guard_source(g);
	assert_non_null(e);
	assert_int_equal(udp_guard_source_check(g, &d, 10), GUARD_ok);
	assert_ptr_equal(udp_guard_source(g), e);
	/* The host's own address, not from the loopback interface. */
	d.ifindex = 2;
	assert_int_equal(udp_guard_source_check(g, &d, 10), GUARD_bad_source);
	assert_null(udp_guard_source(g));
	d.ifindex = 1;
	assert_int_equal(udp_guard_source_check(g, &d, 10), GUARD_ok);
	assert_ptr_equal(udp_guard_source(g), e);
	d.sport = 19;
	assert_int_equal(udp_guard_source_check(g, &d, 10), GUARD_port);
	d = datagram("198.18.1.1", 40000, "198.18.0.1", "x", 2);
	assert_int_equal(udp_guard_source_check(g, &d, 10), GUARD_ok);
	e = udp_guard_source(g);
	assert_int_equal(parse_ipaddr("198.18.0.255", &d.dst), 0);
	assert_int_equal(udp_guard_source_check(g, &d, 10), GUARD_bad_dest);
	d = datagram("198.18.2.1", 40000, "198.18.0.1", "x", 2);
	assert_int_equal(udp_guard_source_check(g, &d, 10), GUARD_ok);
	assert_true(udp_guard_source(g) != e); /* another /24 */
	/* Later: the entry is seen again, at the new time. */
	assert_int_equal(udp_guard_source_check(g, &d, 10), GUARD_ok);
	assert_int_equal(rate_entry_last_seen(udp_guard_source(g)), 10);
	assert_int_equal(udp_guard_source_check(g, &d, 11), GUARD_ok);
	assert_int_equal(rate_entry_last_seen(udp_guard_source(g)), 11);
	udp_guard_free(g);
}

/* ------------------------------------------------------------ levels */

/* Connect n times from src; every one admitted. */
static struct tcp_admission
tcp_fill(struct tcp_guard *g, const char *src, unsigned n, uint64_t now)
{
	struct tcp_admission a = {0};

	for (unsigned i = 0; i < n; i++) {
		a = tcp_connect(g, src, now);
		assert_true(a.admit);
	}
	return a;
}

/*
 * The /48 attack: with the cap full, 16 and then 256 /64s of one /48
 * cannot take a connection from another /48 that holds fewer; each fresh
 * /64 is judged inside its own /48 (its own connections are the ones it
 * can displace). A third /48 that holds nothing is let in at the cost of
 * the largest /48.
 */
static void
test_tcp_levels_v6(void **state)
{
	struct tcp_guard *g;
	struct tcp_admission a, legit[4];
	char src[64];

	(void)state;
	udp_guard_free(guard_with("tcp-connect-rate unlimited\n"
	                          "tcp-aggregate-connect-rate unlimited\n",
	                          1));
	assert_int_equal(pol.tcp_levels_v6, 3);
	g = tcp_guard_new(&pol, &facts, 8);
	assert_non_null(g);
	legit[0] = tcp_connect(g, "2001:db8:aaaa:1::1", 1);
	legit[1] = tcp_connect(g, "2001:db8:aaaa:2::1", 1);
	legit[2] = tcp_connect(g, "2001:db8:cccc:1::1", 1);
	legit[3] = tcp_connect(g, "2001:db8:cccc:2::1", 1);
	for (unsigned i = 0; i < 16 + 256; i++) {
		snprintf(src, sizeof(src), "2001:db8:bbbb:%x::1", i);
		a = tcp_connect(g, src, 2 + i);
		if (i < 4) { /* the free slots */
			assert_true(a.admit && a.evict == NULL);
			continue;
		}
		/* Its /48 holds 4, the others 2: only its own go. */
		assert_true(a.admit);
		assert_non_null(a.evict);
		assert_int_equal(rate_entry_key(a.evict)->bytes[4], 0xbb);
		assert_int_equal(rate_entry_key(a.evict)->bytes[5], 0xbb);
		assert_int_equal(tcp_guard_held(tcp_guard_aggregate(a.evict)),
		                 4);
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(tcp_guard_held(legit[i].source), 1);
	assert_int_equal(tcp_guard_held(tcp_guard_aggregate(legit[0].source)),
	                 2);
	/* A third /48: 0 < 4, the attacker's /48 pays. */
	a = tcp_connect(g, "2001:db8:dddd::1", 1000);
	assert_true(a.admit);
	assert_int_equal(rate_entry_key(a.evict)->bytes[4], 0xbb);
	/* The attacker's /48 holds 3, still the largest: only its own. */
	a = tcp_connect(g, "2001:db8:bbbb:ffff::1", 1001);
	assert_true(a.admit);
	assert_int_equal(rate_entry_key(a.evict)->bytes[4], 0xbb);
	assert_int_equal(tcp_guard_active(g), 8);
	tcp_guard_free(g);
}

/* IPv4: 64 addresses of one /24 against clients of two other /24s. */
static void
test_tcp_levels_v4(void **state)
{
	struct tcp_guard *g;
	struct tcp_admission a, legit[2];
	char src[32];

	(void)state;
	udp_guard_free(guard_with("tcp-connect-rate unlimited\n", 1));
	g = tcp_guard_new(&pol, &facts, 6);
	legit[0] = tcp_fill(g, "198.18.1.1", 2, 1);
	legit[1] = tcp_fill(g, "198.18.2.1", 2, 1);
	for (unsigned i = 0; i < 64; i++) {
		snprintf(src, sizeof(src), "198.18.3.%u", i + 1);
		a = tcp_connect(g, src, 2 + i);
		assert_true(a.admit);
		assert_true(
		    a.evict == NULL ||
		    (rate_entry_key(a.evict)->bytes[2] == 3 &&
		     tcp_guard_held(tcp_guard_aggregate(a.evict)) == 2));
	}
	assert_int_equal(tcp_guard_held(legit[0].source), 2);
	assert_int_equal(tcp_guard_held(legit[1].source), 2);
	tcp_guard_free(g);
}

/* Inside the largest aggregate, the largest /56 loses first, and inside
 * it the largest /64; a newcomer whose /48 ties the largest is judged
 * inside its own /48 (the tie-break among equal /48s does not matter). */
static void
test_tcp_victim_descends_the_levels(void **state)
{
	struct tcp_guard *g;
	struct tcp_admission a, big, small;

	(void)state;
	udp_guard_free(guard_with("tcp-connect-rate unlimited\n", 1));
	g = tcp_guard_new(&pol, &facts, 8);
	/* /48 A: /56 a1 holds 3 (one /64 2, another 1), /56 a2 holds 1. */
	big = tcp_fill(g, "2001:db8:a:100::1", 2, 1);
	tcp_fill(g, "2001:db8:a:101::1", 1, 1);
	small = tcp_fill(g, "2001:db8:a:200::1", 1, 1);
	/* /48 B holds 4: the cap is full. */
	tcp_fill(g, "2001:db8:b:100::1", 4, 1);
	assert_int_equal(tcp_guard_active(g), 8);
	/* A's newcomer ties B at the top: judged inside A, where /56 a1
	 * (3) is larger than its own a2 (1): a1's largest /64 pays. */
	a = tcp_connect(g, "2001:db8:a:201::1", 2);
	assert_true(a.admit);
	assert_ptr_equal(a.evict, big.source);
	assert_int_equal(tcp_guard_held(small.source), 1);
	/* B's newcomer in another /56: inside B, its /56 b1 pays. */
	a = tcp_connect(g, "2001:db8:b:200::1", 3);
	assert_true(a.admit);
	assert_int_equal(rate_entry_key(a.evict)->bytes[6], 1);
	assert_int_equal(rate_entry_key(a.evict)->bytes[5], 0xb);
	/* The /64 that is the largest at every level of its chain: letting
	 * it in would only trade places. */
	a = tcp_connect(g, "2001:db8:b:100::1", 4);
	assert_false(a.admit);
	assert_int_equal(a.verdict, TCP_max);
	assert_int_equal(tcp_guard_active(g), 8);
	tcp_guard_free(g);
}

/* The per-aggregate cap and connect rate: their own reasons, at the
 * coarsest level, however many sources share the aggregate. */
static void
test_tcp_aggregate_limits(void **state)
{
	struct tcp_guard *g;
	struct tcp_admission a;
	struct bucket connects;
	char src[32];

	(void)state;
	udp_guard_free(guard_with("tcp-max-connections-per-aggregate 3\n"
	                          "tcp-connect-rate unlimited\n",
	                          1));
	g = tcp_guard_new(&pol, &facts, 100);
	for (unsigned i = 0; i < 3; i++) {
		snprintf(src, sizeof(src), "198.18.5.%u", i + 1);
		assert_true(tcp_connect(g, src, 1).admit);
	}
	a = tcp_connect(g, "198.18.5.9", 1);
	assert_false(a.admit);
	assert_int_equal(a.verdict, TCP_per_aggregate);
	assert_string_equal(tcp_reason_name(a.verdict), "per_aggregate");
	assert_true(tcp_connect(g, "198.18.6.1", 1).admit);
	tcp_guard_free(g);

	udp_guard_free(
	    guard_with("tcp-aggregate-connect-rate 1/h burst 5\n", 1));
	g = tcp_guard_new(&pol, &facts, 100);
	for (unsigned i = 0; i < 5; i++) {
		snprintf(src, sizeof(src), "2001:db8:7:%x::1", i << 8);
		assert_true(tcp_connect(g, src, 1).admit);
	}
	a = tcp_connect(g, "2001:db8:7:ff00::1", 1);
	assert_false(a.admit);
	assert_int_equal(a.verdict, TCP_aggregate_rate);
	/* The source's own token was not spent by the refusal. */
	connects = tcp_guard_connects(a.source);
	assert_int_equal(bucket_level(&connects, &pol.tcp_connect_rate, 1),
	                 400);
	assert_true(tcp_connect(g, "2001:db8:8::1", 1).admit);
	tcp_guard_free(g);
}

/* What the levels cost (docs/design.md): 120 bytes a table slot, 40 a
 * group, on a 64-bit build. */
static void
test_tcp_level_memory(void **state)
{
	(void)state;
	if (sizeof(void *) != 8)
		skip();
	assert_int_equal(tcp_guard_entry_bytes(), 120);
	assert_int_equal(tcp_guard_group_bytes(), 40);
}

/* What the worker's memory bound asks of the guards: their tables (and
 * groups) as allocated, and a little for the guard itself. */
static void
test_guard_bytes(void **state)
{
	struct udp_guard *u = guard_with("rate-table-size 1000\n", 1);
	struct tcp_guard *t = tcp_guard_new(&pol, &facts, 50);
	size_t tables = rate_table_bytes(udp_guard_table(u)) +
	                rate_table_bytes(udp_guard_aggregate_table(u)) +
	                loop_table_bytes(udp_guard_loop_table(u));

	(void)state;
	assert_true(udp_guard_bytes(&pol) >= tables);
	assert_true(udp_guard_bytes(&pol) < tables + 1024);
	/* Three IPv6 levels by default: three tables of 1000 slots. */
	tables = 3 * rate_table_bytes(tcp_guard_table(t));
	assert_true(tcp_guard_bytes(&pol, 50) >=
	            tables + 51 * tcp_guard_group_bytes());
	assert_true(tcp_guard_bytes(&pol, 50) <
	            tables + 51 * 4 * tcp_guard_group_bytes() + 1024);
	tcp_guard_free(t);
	udp_guard_free(u);
}

/* The source's byte rate, behind the guard: the allowance is its tokens,
 * a charge spends them, refill brings them back; unlimited for an exempt
 * source, without an entry, and in log-only (which still charges). */
static void
test_tcp_byte_allowance(void **state)
{
	struct tcp_guard *g;
	struct tcp_admission a;

	(void)state;
	udp_guard_free(guard_with("tcp-byte-rate 1000/s burst 4000\n", 1));
	g = tcp_guard_new(&pol, &facts, 10);
	a = tcp_connect(g, "198.18.1.1", 0);
	assert_true(a.admit && !a.rate_exempt);
	assert_int_equal(tcp_guard_allowance(g, a.source, false, 0), 4000);
	tcp_guard_charge(g, a.source, false, 0, 3000);
	assert_int_equal(tcp_guard_allowance(g, a.source, false, 0), 1000);
	tcp_guard_charge(g, a.source, false, 0, 1000);
	assert_int_equal(tcp_guard_allowance(g, a.source, false, 0), 0);
	/* More than there is: nothing taken. */
	tcp_guard_charge(g, a.source, false, 500, 600);
	assert_int_equal(tcp_guard_allowance(g, a.source, false, 500), 500);
	/* Another connection of the same source shares the bucket. */
	assert_int_equal(tcp_connect(g, "198.18.1.1", 500).source, a.source);
	assert_int_equal(tcp_guard_allowance(g, a.source, false, 500), 500);
	/* Exempt, or no entry: no limit, nothing charged. */
	assert_int_equal(tcp_guard_allowance(g, a.source, true, 500),
	                 UINT64_MAX);
	tcp_guard_charge(g, a.source, true, 500, 500);
	assert_int_equal(tcp_guard_allowance(g, a.source, false, 500), 500);
	assert_int_equal(tcp_guard_allowance(g, NULL, false, 500), UINT64_MAX);
	tcp_guard_charge(g, NULL, false, 500, 500);
	tcp_guard_free(g);

	/* Log-only: every byte goes through, and is counted. */
	udp_guard_free(guard_with("tcp-byte-rate 1000/s burst 4000\n"
	                          "enforce log-only\n",
	                          1));
	g = tcp_guard_new(&pol, &facts, 10);
	a = tcp_connect(g, "198.18.1.1", 0);
	tcp_guard_charge(g, a.source, false, 0, 4000);
	assert_int_equal(tcp_guard_allowance(g, a.source, false, 0),
	                 UINT64_MAX);
	pol.enforce = true;
	assert_int_equal(tcp_guard_allowance(g, a.source, false, 0), 0);
	tcp_guard_free(g);
}

/* Log lines: a few per reason per window (log.h), and a few per source
 * while it is in the table, counted in the guard's entry. */
static void
test_may_log(void **state)
{
	struct udp_guard *g = guard_with("udp-rate 1/h burst 1\n", 1);
	static const char *const payloads[] = {"a", "b", "c", "d", "e"};
	struct log_limit l = {.summary_event = "udp_drop_summary"};
	struct tcp_guard *t;
	struct tcp_admission a;
	unsigned lines = 0;

	(void)state;
	/* One source over its rate: three lines, then silence. */
	check(g, "198.18.1.1", 40000, "198.18.0.1", "x", 1);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(check(g, "198.18.1.1", 40000, "198.18.0.1",
		                       payloads[i], 2 + (uint64_t)i),
		                 GUARD_rate);
		lines += udp_guard_may_log(g, &l, GUARD_rate);
	}
	assert_int_equal(lines, LOG_LIMIT_SOURCE_LINES);
	assert_int_equal(l.suppressed[GUARD_rate], 5 - LOG_LIMIT_SOURCE_LINES);
	/* Another source has its own count; the reason's budget is 5. */
	check(g, "198.18.2.1", 40000, "198.18.0.1", "x", 10);
	for (int i = 0; i < 3; i++) {
		check(g, "198.18.2.1", 40000, "198.18.0.1", payloads[i],
		      11 + (uint64_t)i);
		lines += udp_guard_may_log(g, &l, GUARD_rate);
	}
	assert_int_equal(lines, LOG_LIMIT_LINES);
	/* A drop before the table (no source) counts only the reason. */
	assert_int_equal(check(g, "198.18.3.1", 19, "198.18.0.1", "x", 20),
	                 GUARD_port);
	assert_true(udp_guard_may_log(g, &l, GUARD_port));
	udp_guard_free(g);

	udp_guard_free(guard_with("tcp-connect-rate 1/h burst 1\n", 1));
	t = tcp_guard_new(&pol, &facts, 10);
	memset(&l, 0, sizeof(l));
	lines = 0;
	tcp_connect(t, "198.18.1.1", 1);
	for (int i = 0; i < 5; i++) {
		a = tcp_connect(t, "198.18.1.1", 2);
		assert_int_equal(a.verdict, TCP_rate);
		lines += tcp_guard_may_log(t, &l, a.verdict, a.source);
	}
	assert_int_equal(lines, LOG_LIMIT_SOURCE_LINES);
	assert_true(tcp_guard_may_log(t, &l, TCP_deny, NULL));
	tcp_guard_free(t);
}

/* The aggregate an eviction's log line names: the coarsest prefix of the
 * source's chain, with its length. */
static void
test_tcp_aggregate_prefix(void **state)
{
	struct tcp_guard *g;
	struct tcp_admission a;
	struct ipaddr agg, want;

	(void)state;
	udp_guard_free(guard_with(NULL, 1));
	g = tcp_guard_new(&pol, &facts, 10);
	a = tcp_connect(g, "2001:db8:a:100::1", 1);
	assert_int_equal(tcp_guard_aggregate_prefix(g, a.source, &agg),
	                 pol.tcp_prefix_v6[pol.tcp_levels_v6 - 1]);
	assert_int_equal(parse_ipaddr("2001:db8:a::", &want), 0);
	ipaddr_prefix(&want, pol.tcp_prefix_v6[pol.tcp_levels_v6 - 1], &want);
	assert_true(ipaddr_equal(&agg, &want));
	a = tcp_connect(g, "198.18.7.9", 1);
	assert_int_equal(tcp_guard_aggregate_prefix(g, a.source, &agg),
	                 pol.tcp_prefix_v4[pol.tcp_levels_v4 - 1]);
	assert_int_equal(agg.family, AF_INET);
	tcp_guard_free(g);
}

/* UDP: 256 /56s of one /48 share its aggregate rate. */
static void
test_udp_aggregate_rate(void **state)
{
	struct udp_guard *g = guard_with("udp-rate 100/s burst 100\n"
	                                 "udp-aggregate-rate 10/s burst 300\n",
	                                 1);
	unsigned ok = 0;

	(void)state;
	for (unsigned i = 0; i < 256; i++) {
		char src[64];

		snprintf(src, sizeof(src), "2001:db8:5:%x::1", i << 8);
		for (int k = 0; k < 4; k++) {
			enum guard_reason r =
			    check(g, src, 40000 + k, "2001:db8::1", "x", 1000);
			assert_true(r == GUARD_ok || r == GUARD_aggregate_rate);
			ok += r == GUARD_ok;
		}
	}
	assert_int_equal(ok, 300);
	assert_string_equal(guard_reason_name(GUARD_aggregate_rate),
	                    "aggregate_rate");
	/* Another /48 has its own. */
	assert_int_equal(
	    check(g, "2001:db8:6::1", 40000, "2001:db8::1", "x", 1000),
	    GUARD_ok);
	udp_guard_free(g);
}

/* ------------------------------------------------------------ embedded */

/* Each embedded form of a denied, a bad and an ordinary IPv4 address. */
static const struct embedded_case {
	const char *src;
	enum guard_reason drop, judge;
} embedded_cases[] = {
    /* 198.19.1.1 (denied), 127.0.0.1, 198.18.0.1 (own), 198.18.7.7 */
    {"64:ff9b::c613:101", GUARD_bad_source, GUARD_deny},
    {"64:ff9b::7f00:1", GUARD_bad_source, GUARD_bad_source},
    {"64:ff9b::c612:1", GUARD_bad_source, GUARD_bad_source},
    {"64:ff9b::c612:707", GUARD_bad_source, GUARD_ok},
    {"64:ff9b:1:2:3:4:c613:101", GUARD_bad_source, GUARD_deny},
    {"64:ff9b:1::c612:707", GUARD_bad_source, GUARD_ok},
    {"2002:c613:101::1", GUARD_bad_source, GUARD_deny},
    {"2002:7f00:1:2::1", GUARD_bad_source, GUARD_bad_source},
    {"2002:c612:707::9", GUARD_bad_source, GUARD_ok},
    {"2001:0:4136:e378:8000:63bf:39ec:fefe", GUARD_bad_source, GUARD_deny},
    {"2001:0:4136:e378:8000:63bf:80ff:fffe", GUARD_bad_source,
     GUARD_bad_source},
    {"2001:0:4136:e378:8000:63bf:39ed:f8f8", GUARD_bad_source, GUARD_ok},
    {"::198.19.1.1", GUARD_bad_source, GUARD_deny},
    {"::198.18.0.1", GUARD_bad_source, GUARD_bad_source},
    {"::224.0.0.1", GUARD_bad_source, GUARD_bad_source},
    {"::198.18.7.7", GUARD_bad_source, GUARD_ok},
    /* Not embedded forms: judged as themselves. */
    {"2001:db8:7::1", GUARD_ok, GUARD_ok},
    {"2001:1::1", GUARD_ok, GUARD_ok},
    {"64:ff9c::1", GUARD_ok, GUARD_ok},
};

static void
check_embedded(bool judge)
{
	struct udp_guard *g = guard_with(judge ? "deny 198.19.0.0/16\n"
	                                         "embedded-ipv4 judge\n"
	                                       : "deny 198.19.0.0/16\n",
	                                 1);
	struct tcp_guard *t = tcp_guard_new(&pol, &facts, 10);

	for (size_t i = 0; i < sizeof(embedded_cases) / sizeof(*embedded_cases);
	     i++) {
		const struct embedded_case *c = &embedded_cases[i];
		enum guard_reason want = judge ? c->judge : c->drop;
		struct tcp_admission a;
		struct ipaddr src;

		assert_int_equal(
		    check(g, c->src, 40000, "2001:db8::1", "x", 1000 + i),
		    want);
		assert_int_equal(parse_ipaddr(c->src, &src), 0);
		tcp_guard_admit(t, &src, 1000 + i, &a);
		assert_int_equal(a.admit, want == GUARD_ok);
		if (want == GUARD_bad_source)
			assert_int_equal(a.verdict, TCP_bad_source);
		if (want == GUARD_deny)
			assert_int_equal(a.verdict, TCP_deny);
	}
	/* Still the first check: a denied port goes before. */
	assert_int_equal(
	    check(g, "64:ff9b::c613:101", 53, "2001:db8::1", "x", 2000),
	    GUARD_port);
	tcp_guard_free(t);
	udp_guard_free(g);
}

static void
test_embedded_ipv4_dropped_by_default(void **state)
{
	(void)state;
	check_embedded(false);
	assert_false(pol.embedded_ipv4_judge);
}

static void
test_embedded_ipv4_judged(void **state)
{
	(void)state;
	check_embedded(true);
}

/* Judged: the rate prefix is the IPv4 address's /24, shared with the
 * address itself and with every other form that carries it. */
static void
test_embedded_ipv4_shares_the_ipv4_rate(void **state)
{
	struct udp_guard *g = guard_with("embedded-ipv4 judge\n"
	                                 "udp-rate 10/s burst 4\n",
	                                 1);
	static const char *const forms[] = {"198.18.7.7", "64:ff9b::c612:708",
	                                    "2002:c612:709::1", "::198.18.7.10",
	                                    "2001:0:1:2:3:4:39ed:f8f4"};
	unsigned ok = 0;

	(void)state;
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < sizeof(forms) / sizeof(*forms); i++)
			ok += check(g, forms[i], 40000,
			            strchr(forms[i], ':') ? "2001:db8::1"
			                                  : "198.18.0.1",
			            "x", 1000) == GUARD_ok;
	assert_int_equal(ok, 4);
	udp_guard_free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_denied_source_ports),
	    cmocka_unit_test(test_bad_sources),
	    cmocka_unit_test(test_broadcast_and_multicast_destinations),
	    cmocka_unit_test(test_deny_list_longest_prefix),
	    cmocka_unit_test(test_loop_guard_suppresses_repeats),
	    cmocka_unit_test(test_loop_guard_spares_slow_and_varied),
	    cmocka_unit_test(test_loop_hold_key),
	    cmocka_unit_test(test_loop_guard_default_pace),
	    cmocka_unit_test(test_own_addresses_are_bad_sources),
	    cmocka_unit_test(test_tcp_eviction_order),
	    cmocka_unit_test(test_tcp_admission_checks),
	    cmocka_unit_test(test_rate_per_prefix),
	    cmocka_unit_test(test_split_check_is_udp_guard_check),
	    cmocka_unit_test(test_buffer_check_is_udp_guard_check),
	    cmocka_unit_test(test_repeated_source_check),
	    cmocka_unit_test(test_rate_prefix_v6),
	    cmocka_unit_test(test_byte_rate),
	    cmocka_unit_test(test_global_rate_is_shared_by_workers),
	    cmocka_unit_test(test_one_rate_is_enough),
	    cmocka_unit_test(test_table_memory_is_fixed),
	    cmocka_unit_test(test_rate_exempt_udp),
	    cmocka_unit_test(test_rate_exempt_keeps_other_checks),
	    cmocka_unit_test(test_rate_exempt_tcp),
	    cmocka_unit_test(test_tcp_levels_v6),
	    cmocka_unit_test(test_tcp_levels_v4),
	    cmocka_unit_test(test_tcp_victim_descends_the_levels),
	    cmocka_unit_test(test_tcp_aggregate_limits),
	    cmocka_unit_test(test_udp_aggregate_rate),
	    cmocka_unit_test(test_tcp_level_memory),
	    cmocka_unit_test(test_guard_bytes),
	    cmocka_unit_test(test_tcp_byte_allowance),
	    cmocka_unit_test(test_may_log),
	    cmocka_unit_test(test_tcp_aggregate_prefix),
	    cmocka_unit_test(test_embedded_ipv4_dropped_by_default),
	    cmocka_unit_test(test_embedded_ipv4_judged),
	    cmocka_unit_test(test_embedded_ipv4_shares_the_ipv4_rate),
	};

	return cmocka_run_group_tests_name("guard", tests, NULL, NULL);
}
