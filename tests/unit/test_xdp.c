/* xdp: the prefilter run by the kernel (BPF_PROG_TEST_RUN) over packets
 * built here: each guard's reason dropped and counted, everything else and
 * every malformed packet passed, no packet ever modified, and nothing
 * dropped that the real guard (src/guard.c) would have answered. Needs
 * root (CAP_BPF, CAP_NET_ADMIN); skipped without. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "bpf/prefilter.h"
#include "guard.h"
#include "guard_test.h"
#include "log.h"
#include "policy.h"
#include "sandbox.h"
#include "xdp.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PORT     7
#define EPHEM    40000
#define SRV4     "198.18.0.1"
#define SRV6     "2001:db8::1"
#define CLI4     "198.18.0.2"
#define CLI6     "2001:db8::2"
#define MAX_PKT  2048
#define XDP_DROP 1
#define XDP_PASS 2

static const char base_policy[] = "deny 198.19.0.0/16 2001:db8:dead::/48\n"
                                  "allow 198.19.7.0/24\n"
                                  "udp-max-datagram 1000\n";

static struct policy pol;
static struct facts facts;
static struct xdp_prefilter *x;
/* What the facts call a loopback interface. BPF_PROG_TEST_RUN delivers
 * on the namespace's loopback device, ifindex 1. */
static int loopback_ifindex = 1;

struct pkt {
	uint8_t b[MAX_PKT];
	size_t len;
};

/* ------------------------------------------------------------ builders */

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
eth(struct pkt *p, uint16_t type)
{
	memset(p->b, 0, 14);
	memset(p->b, 0x02, 6);
	memset(p->b + 6, 0x04, 6);
	put16(p->b + 12, type);
	p->len = 14;
}

/* UDP (or TCP: a bare 20-byte header) after whatever p holds. */
static void
l4(struct pkt *p, int proto, uint16_t sport, uint16_t dport, size_t payload)
{
	uint8_t *h = p->b + p->len;
	size_t hl = proto == IPPROTO_UDP ? 8 : 20;

	memset(h, 0, hl + payload);
	put16(h, sport);
	put16(h + 2, dport);
	if (proto == IPPROTO_UDP)
		put16(h + 4, (uint16_t)(8 + payload));
	else
		h[12] = 5 << 4;
	memset(h + hl, 'x', payload);
	p->len += hl + payload;
}

static void
v4(struct pkt *p, int proto, const char *src, const char *dst, uint16_t sport,
   uint16_t dport, size_t payload, size_t optlen)
{
	uint8_t *ip;
	size_t hl = 20 + optlen;

	eth(p, ETH_P_IP);
	ip = p->b + p->len;
	memset(ip, 0, hl);
	ip[0] = (uint8_t)(0x40 | (hl / 4));
	ip[8] = 64;
	ip[9] = (uint8_t)proto;
	assert_int_equal(inet_pton(AF_INET, src, ip + 12), 1);
	assert_int_equal(inet_pton(AF_INET, dst, ip + 16), 1);
	memset(ip + 20, 1, optlen); /* NOPs */
	p->len += hl;
	l4(p, proto, sport, dport, payload);
	put16(ip + 2, (uint16_t)(p->len - 14));
}

/* IPv6 with the extension headers ext[0..n) (each 8 bytes, next header
 * chained) before the transport header. */
static void
v6(struct pkt *p, int proto, const char *src, const char *dst, uint16_t sport,
   uint16_t dport, const uint8_t *ext, size_t n)
{
	uint8_t *ip;

	eth(p, ETH_P_IPV6);
	ip = p->b + p->len;
	memset(ip, 0, 40);
	ip[0] = 0x60;
	ip[6] = n ? ext[0] : (uint8_t)proto;
	ip[7] = 64;
	assert_int_equal(inet_pton(AF_INET6, src, ip + 8), 1);
	assert_int_equal(inet_pton(AF_INET6, dst, ip + 24), 1);
	p->len += 40;
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = p->b + p->len;
		memset(e, 0, 8);
		e[0] = i + 1 < n ? ext[i + 1] : (uint8_t)proto;
		p->len += 8;
	}
	l4(p, proto, sport, dport, 16);
	put16(ip + 4, (uint16_t)(p->len - 54));
}

static void
udp4(struct pkt *p, const char *src, uint16_t sport, const char *dst)
{
	v4(p, IPPROTO_UDP, src, dst, sport, PORT, 16, 0);
}

static void
udp6(struct pkt *p, const char *src, uint16_t sport, const char *dst)
{
	v6(p, IPPROTO_UDP, src, dst, sport, PORT, NULL, 0);
}

/* ------------------------------------------------------------ running */

/* The verdict; the packet must come out byte for byte as it went in. */
static int
run(const struct pkt *p)
{
	uint8_t out[MAX_PKT + 256];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->b,
	            .data_size_in = (uint32_t)p->len, .data_out = out,
	            .data_size_out = sizeof(out), .repeat = 1);

	assert_int_equal(bpf_prog_test_run_opts(xdp_prog_fd(x), &o), 0);
	assert_int_equal(o.data_size_out, p->len);
	assert_memory_equal(out, p->b, p->len);
	assert_true(o.retval == XDP_DROP || o.retval == XDP_PASS);
	return (int)o.retval;
}

static void
counts(uint64_t *c)
{
	assert_int_equal(xdp_read_counters(x, c, PF_NREASONS), 0);
}

/* Run p; it must get `want`, and only counter `reason` (or none) moves. */
static void
expect(const struct pkt *p, int want, int reason)
{
	uint64_t before[PF_NREASONS], after[PF_NREASONS];

	counts(before);
	assert_int_equal(run(p), want);
	counts(after);
	for (int i = 0; i < PF_NREASONS; i++)
		assert_int_equal(after[i] - before[i], i == reason ? 1 : 0);
}

static int
load(const char *extra)
{
	struct policy_error err;
	char text[512], msg[256];
	struct xdp_listener l[5] = {
	    {IPPROTO_UDP, {AF_INET, {0}}, PORT},
	    {IPPROTO_UDP, {AF_INET6, {0}}, PORT},
	    {IPPROTO_TCP, {AF_INET, {0}}, PORT},
	    {IPPROTO_TCP, {AF_INET6, {0}}, PORT},
	    {IPPROTO_UDP, {AF_INET, {0}}, 9}, /* SRV4:9 only */
	};

	policy_defaults(&pol, NULL);
	snprintf(text, sizeof(text), "%s%s", base_policy, extra);
	assert_int_equal(policy_parse(text, strlen(text), &pol, &err), 0);
	memset(&facts, 0, sizeof(facts));
	memset(facts.secret, 7, sizeof(facts.secret));
	assert_int_equal(parse_ipaddr("198.18.0.255", &facts.broadcast[0]), 0);
	facts.nbroadcast = 1;
	assert_int_equal(parse_ipaddr("198.18.0.1", &facts.local[0]), 0);
	assert_int_equal(parse_ipaddr("2001:db8::1", &facts.local[1]), 0);
	facts.nlocal = 2;
	facts.loopback_ifindex[0] = loopback_ifindex;
	facts.nloopback = 1;
	assert_int_equal(parse_ipaddr(SRV4, &l[4].addr), 0);
	x = xdp_load(&pol, &facts, l, 5, msg, sizeof(msg));
	if (x == NULL)
		fprintf(stderr, "xdp_load: %s\n", msg);
	assert_non_null(x);
	return 0;
}

static int
setup(void **state)
{
	(void)state;
	return load("");
}

static int
teardown(void **state)
{
	(void)state;
	xdp_unload(x);
	x = NULL;
	return 0;
}

/* ------------------------------------------------------------ reasons */

static void
test_legitimate_passes(void **state)
{
	struct pkt p;

	(void)state;
	udp4(&p, CLI4, EPHEM, SRV4);
	expect(&p, XDP_PASS, -1);
	udp6(&p, CLI6, EPHEM, SRV6);
	expect(&p, XDP_PASS, -1);
	v4(&p, IPPROTO_TCP, CLI4, SRV4, EPHEM, PORT, 0, 0);
	expect(&p, XDP_PASS, -1);
	v6(&p, IPPROTO_TCP, CLI6, SRV6, EPHEM, PORT, NULL, 0);
	expect(&p, XDP_PASS, -1);
	/* Allowed by the longer prefix inside the denied /16. */
	udp4(&p, "198.19.7.7", EPHEM, SRV4);
	expect(&p, XDP_PASS, -1);
}

static void
test_denied_source_port(void **state)
{
	static const uint16_t denied[] = {0, 7, 19, 53, 123, 1900, 11211};
	struct pkt p;

	(void)state;
	for (size_t i = 0; i < sizeof(denied) / sizeof(*denied); i++) {
		udp4(&p, CLI4, denied[i], SRV4);
		expect(&p, XDP_DROP, PF_udp_drop_port);
		udp6(&p, CLI6, denied[i], SRV6);
		expect(&p, XDP_DROP, PF_udp_drop_port);
	}
	/* TCP has no source-port rule. */
	v4(&p, IPPROTO_TCP, CLI4, SRV4, 19, PORT, 0, 0);
	expect(&p, XDP_PASS, -1);
}

static void
test_bad_sources(void **state)
{
	static const char *const v4src[] = {
	    "0.1.2.3",         "224.0.0.9",    "239.1.1.1", "240.0.0.1",
	    "255.255.255.255", "198.18.0.255", "127.0.0.1"};
	static const char *const v6src[] = {"::", "ff02::1", "::1"};
	struct pkt p;

	(void)state;
	for (size_t i = 0; i < sizeof(v4src) / sizeof(*v4src); i++) {
		udp4(&p, v4src[i], EPHEM, SRV4);
		expect(&p, XDP_DROP, PF_udp_drop_bad_source);
	}
	for (size_t i = 0; i < sizeof(v6src) / sizeof(*v6src); i++) {
		udp6(&p, v6src[i], EPHEM, SRV6);
		expect(&p, XDP_DROP, PF_udp_drop_bad_source);
	}
	/* Loopback to loopback is what loopback is for. */
	udp4(&p, "127.0.0.1", EPHEM, "127.0.0.1");
	expect(&p, XDP_PASS, -1);
}

static void
test_bad_destinations(void **state)
{
	static const char *const v4dst[] = {"198.18.0.255", "255.255.255.255",
	                                    "224.0.0.1", "0.0.0.0"};
	struct pkt p;

	(void)state;
	for (size_t i = 0; i < sizeof(v4dst) / sizeof(*v4dst); i++) {
		udp4(&p, CLI4, EPHEM, v4dst[i]);
		expect(&p, XDP_DROP, PF_udp_drop_bad_dest);
	}
	udp6(&p, CLI6, EPHEM, "ff02::1");
	expect(&p, XDP_DROP, PF_udp_drop_bad_dest);
}

static void
test_deny_list(void **state)
{
	struct pkt p;

	(void)state;
	udp4(&p, "198.19.1.1", EPHEM, SRV4);
	expect(&p, XDP_DROP, PF_udp_drop_deny);
	udp6(&p, "2001:db8:dead::9", EPHEM, SRV6);
	expect(&p, XDP_DROP, PF_udp_drop_deny);
	v4(&p, IPPROTO_TCP, "198.19.1.1", SRV4, EPHEM, PORT, 0, 0);
	expect(&p, XDP_DROP, PF_tcp_drop_deny);
	v6(&p, IPPROTO_TCP, "2001:db8:dead::9", SRV6, EPHEM, PORT, NULL, 0);
	expect(&p, XDP_DROP, PF_tcp_drop_deny);
}

/* The first failing check names the reason, in the guard's order. */
static void
test_reason_order_is_the_guards(void **state)
{
	struct pkt p;

	(void)state;
	udp4(&p, "198.19.1.1", 19, "198.18.0.255");
	expect(&p, XDP_DROP, PF_udp_drop_port);
	udp4(&p, "0.0.0.1", EPHEM, "198.18.0.255");
	expect(&p, XDP_DROP, PF_udp_drop_bad_source);
	udp4(&p, "198.19.1.1", EPHEM, "198.18.0.255");
	expect(&p, XDP_DROP, PF_udp_drop_bad_dest);
}

/* The host's own address as a source: forged from outside, the host
 * itself on a loopback interface (as the guard judges it). */
static void
test_own_address_sources(void **state)
{
	struct pkt p;

	(void)state;
	udp4(&p, SRV4, EPHEM, SRV4);
	expect(&p, XDP_PASS, -1); /* arrives on lo, a loopback interface */
	teardown(NULL);
	loopback_ifindex = 9999; /* now lo is "outside" */
	load("");
	loopback_ifindex = 1;
	udp4(&p, SRV4, EPHEM, SRV4);
	expect(&p, XDP_DROP, PF_udp_drop_bad_source);
	udp6(&p, SRV6, EPHEM, SRV6);
	expect(&p, XDP_DROP, PF_udp_drop_bad_source);
	udp4(&p, CLI4, EPHEM, SRV4);
	expect(&p, XDP_PASS, -1);
	teardown(NULL);
	load("");
}

/* ------------------------------------------------------------ not ours */

static void
test_other_traffic_untouched(void **state)
{
	struct pkt p;

	(void)state;
	/* Another port, another address on a port bound to one address. */
	v4(&p, IPPROTO_UDP, CLI4, SRV4, 19, 8, 16, 0);
	expect(&p, XDP_PASS, -1);
	v4(&p, IPPROTO_UDP, CLI4, "198.18.0.9", 19, 9, 16, 0);
	expect(&p, XDP_PASS, -1);
	v4(&p, IPPROTO_UDP, CLI4, SRV4, 19, 9, 16, 0);
	expect(&p, XDP_DROP, PF_udp_drop_port);
	/* TCP to a UDP-only port, ICMP, ARP, a VLAN tag. */
	v4(&p, IPPROTO_TCP, "198.19.1.1", SRV4, EPHEM, 9, 0, 0);
	expect(&p, XDP_PASS, -1);
	v4(&p, IPPROTO_ICMP, "0.0.0.1", SRV4, 0, 0, 16, 0);
	expect(&p, XDP_PASS, -1);
	udp4(&p, CLI4, 19, SRV4);
	put16(p.b + 12, ETH_P_ARP);
	expect(&p, XDP_PASS, -1);
	put16(p.b + 12, ETH_P_8021Q);
	expect(&p, XDP_PASS, -1);
	/* Oversize: udp.c's own drop, before any guard. */
	v4(&p, IPPROTO_UDP, CLI4, SRV4, 19, PORT, 1001, 0);
	expect(&p, XDP_PASS, -1);
	/* IPv4-mapped addresses are the guards' to judge. */
	udp6(&p, "::ffff:198.19.1.1", 19, SRV6);
	expect(&p, XDP_PASS, -1);
}

/* ------------------------------------------------------------ malformed */

/* A packet that would be dropped, cut short anywhere inside its headers:
 * every cut passes. */
static void
truncations_pass(const struct pkt *whole, size_t headers)
{
	struct pkt p = *whole;

	for (size_t n = ETH_HLEN; n < headers; n++) {
		p.len = n;
		expect(&p, XDP_PASS, -1);
	}
	expect(whole, XDP_DROP, PF_udp_drop_port);
}

static void
test_truncated_headers(void **state)
{
	struct pkt p;
	const uint8_t hop[] = {IPPROTO_HOPOPTS, IPPROTO_DSTOPTS};

	(void)state;
	udp4(&p, CLI4, 19, SRV4);
	truncations_pass(&p, 14 + 20 + 8);
	v4(&p, IPPROTO_UDP, CLI4, SRV4, 19, PORT, 4, 40);
	truncations_pass(&p, 14 + 60 + 8);
	udp6(&p, CLI6, 19, SRV6);
	truncations_pass(&p, 14 + 40 + 8);
	v6(&p, IPPROTO_UDP, CLI6, SRV6, 19, PORT, hop, 2);
	truncations_pass(&p, 14 + 40 + 16 + 8);
}

static void
test_ipv4_header_fields(void **state)
{
	struct pkt p;

	(void)state;
	udp4(&p, CLI4, 19, SRV4);
	p.b[14] = 0x44; /* IHL 4 */
	expect(&p, XDP_PASS, -1);
	p.b[14] = 0x55; /* version 5 */
	expect(&p, XDP_PASS, -1);
	p.b[14] = 0x4f; /* IHL 15: options past the end */
	expect(&p, XDP_PASS, -1);
	udp4(&p, CLI4, 19, SRV4);
	put16(p.b + 16, 12); /* total length shorter than the header */
	expect(&p, XDP_PASS, -1);
	/* Fragments: first (MF), middle, last. */
	udp4(&p, CLI4, 19, SRV4);
	p.b[20] = 0x20;
	expect(&p, XDP_PASS, -1);
	p.b[20] = 0x20;
	p.b[21] = 0x10;
	expect(&p, XDP_PASS, -1);
	p.b[20] = 0x00;
	expect(&p, XDP_PASS, -1);
	/* DF alone is not a fragment. */
	p.b[20] = 0x40;
	p.b[21] = 0;
	expect(&p, XDP_DROP, PF_udp_drop_port);
	/* UDP length below its own header. */
	udp4(&p, CLI4, 19, SRV4);
	put16(p.b + 34 + 4, 7);
	expect(&p, XDP_PASS, -1);
	/* Options of every length are skipped, not parsed. */
	for (size_t opt = 4; opt <= 40; opt += 4) {
		v4(&p, IPPROTO_UDP, CLI4, SRV4, 19, PORT, 8, opt);
		expect(&p, XDP_DROP, PF_udp_drop_port);
	}
}

static void
test_ipv6_extension_headers(void **state)
{
	const uint8_t walk[] = {IPPROTO_HOPOPTS, IPPROTO_DSTOPTS,
	                        IPPROTO_ROUTING, IPPROTO_DSTOPTS};
	const uint8_t frag[] = {IPPROTO_FRAGMENT};
	const uint8_t ah[] = {IPPROTO_AH};
	const uint8_t unknown[] = {253};
	uint8_t deep[9];
	struct pkt p;

	(void)state;
	v6(&p, IPPROTO_UDP, CLI6, SRV6, 19, PORT, walk, 4);
	expect(&p, XDP_DROP, PF_udp_drop_port);
	/* A routing header with segments left: not for this host yet. */
	p.b[54 + 16 + 3] = 1;
	expect(&p, XDP_PASS, -1);
	v6(&p, IPPROTO_UDP, CLI6, SRV6, 19, PORT, frag, 1);
	expect(&p, XDP_PASS, -1);
	v6(&p, IPPROTO_UDP, CLI6, SRV6, 19, PORT, ah, 1);
	expect(&p, XDP_PASS, -1);
	v6(&p, IPPROTO_UDP, CLI6, SRV6, 19, PORT, unknown, 1);
	expect(&p, XDP_PASS, -1);
	/* Seven headers are walked; eight are more than the program does. */
	memset(deep, IPPROTO_DSTOPTS, sizeof(deep));
	v6(&p, IPPROTO_UDP, CLI6, SRV6, 19, PORT, deep, 7);
	expect(&p, XDP_DROP, PF_udp_drop_port);
	v6(&p, IPPROTO_UDP, CLI6, SRV6, 19, PORT, deep, 8);
	expect(&p, XDP_PASS, -1);
	/* An extension header whose length runs past the packet. */
	v6(&p, IPPROTO_UDP, CLI6, SRV6, 19, PORT, walk, 1);
	p.b[54 + 1] = 255;
	expect(&p, XDP_PASS, -1);
	/* Version 4 in an IPv6 frame. */
	udp6(&p, CLI6, 19, SRV6);
	p.b[14] = 0x40;
	expect(&p, XDP_PASS, -1);
}

/* ------------------------------------------------------------ bucket */

/* Twice the guard's burst passes from one /24, then the prefix is held;
 * other prefixes are not. */
static void
test_prefix_bucket(void **state)
{
	uint64_t before[PF_NREASONS], after[PF_NREASONS];
	unsigned passed = 0, total = 2 * 200 + 100;
	struct pkt p;

	(void)state;
	counts(before);
	for (unsigned i = 0; i < total; i++) {
		char src[32];
		snprintf(src, sizeof(src), "198.18.9.%u", 1 + i % 250);
		udp4(&p, src, EPHEM, SRV4);
		passed += run(&p) == XDP_PASS;
	}
	counts(after);
	/* 400 at once, and at 200/s whatever the loop's time allowed. */
	assert_true(passed >= 400 && passed < 440);
	assert_int_equal(after[PF_udp_drop_rate] - before[PF_udp_drop_rate],
	                 total - passed);
	udp4(&p, "198.18.10.1", EPHEM, SRV4);
	expect(&p, XDP_PASS, -1);
	udp6(&p, "2001:db8:0:1::1", EPHEM, SRV6);
	expect(&p, XDP_PASS, -1);
}

/* rate-exempt prefixes skip the bucket (and do not spend it): all of 500
 * pass where the same /24's other hosts get twice the burst; every other
 * reason still drops them. */
static void
test_rate_exempt_skips_the_bucket(void **state)
{
	uint64_t before[PF_NREASONS], after[PF_NREASONS];
	unsigned passed = 0, total = 500;
	struct pkt p;

	(void)state;
	teardown(NULL);
	load("rate-exempt 198.18.11.7 2001:db8:0:11::/64 198.19.1.0/24\n");
	counts(before);
	for (unsigned i = 0; i < total; i++) {
		udp4(&p, "198.18.11.7", EPHEM, SRV4);
		passed += run(&p) == XDP_PASS;
		udp6(&p, "2001:db8:0:11::9", EPHEM, SRV6);
		passed += run(&p) == XDP_PASS;
	}
	counts(after);
	assert_int_equal(passed, 2 * total);
	assert_int_equal(after[PF_udp_drop_rate], before[PF_udp_drop_rate]);
	passed = 0;
	for (unsigned i = 0; i < total; i++) {
		udp4(&p, "198.18.11.8", EPHEM, SRV4);
		passed += run(&p) == XDP_PASS;
	}
	assert_true(passed >= 400 && passed < 440);
	/* The other reasons still hold for an exempt source. */
	udp4(&p, "198.18.11.7", 19, SRV4);
	expect(&p, XDP_DROP, PF_udp_drop_port);
	udp4(&p, "198.19.1.1", EPHEM, SRV4); /* exempt, and denied */
	expect(&p, XDP_DROP, PF_udp_drop_deny);
	udp4(&p, "198.18.11.7", EPHEM, "198.18.0.255");
	expect(&p, XDP_DROP, PF_udp_drop_bad_dest);
}

/* ------------------------------------------------------------ modes */

static void
test_log_only_passes_and_counts(void **state)
{
	struct pkt p;

	(void)state;
	teardown(NULL);
	load("enforce log-only\n");
	udp4(&p, CLI4, 19, SRV4);
	expect(&p, XDP_PASS, PF_would_drop);
	v4(&p, IPPROTO_TCP, "198.19.1.1", SRV4, EPHEM, PORT, 0, 0);
	expect(&p, XDP_PASS, PF_would_drop);
}

/* ------------------------------------------------------------ model */

/* Where a datagram would reach echod: the same fields the kernel gives
 * the socket (well-formed packets only; -1 otherwise). */
static int
decode(const struct pkt *p, struct datagram *d, uint16_t *dport, int *proto)
{
	const uint8_t *ip = p->b + 14;
	size_t off;

	memset(d, 0, sizeof(*d));
	if (p->len < 14 + 40)
		return -1;
	if (p->b[12] == 0x08 && p->b[13] == 0x00 && (ip[0] >> 4) == 4) {
		off = 14 + (size_t)(ip[0] & 15) * 4;
		d->src.family = d->dst.family = AF_INET;
		memcpy(d->src.bytes, ip + 12, 4);
		memcpy(d->dst.bytes, ip + 16, 4);
		*proto = ip[9];
	} else if (p->b[12] == 0x86 && p->b[13] == 0xdd) {
		off = 14 + 40;
		d->src.family = d->dst.family = AF_INET6;
		memcpy(d->src.bytes, ip + 8, 16);
		memcpy(d->dst.bytes, ip + 24, 16);
		*proto = ip[6];
	} else {
		return -1;
	}
	if (off + 8 > p->len)
		return -1;
	d->sport = (uint16_t)(p->b[off] << 8 | p->b[off + 1]);
	*dport = (uint16_t)(p->b[off + 2] << 8 | p->b[off + 3]);
	d->ifindex = 1; /* where BPF_PROG_TEST_RUN delivers */
	d->len = 16;
	d->payload = (const uint8_t *)"xxxxxxxxxxxxxxxx";
	return 0;
}

/*
 * Random mutations of well-formed packets, 20000 of them, under policy
 * `extra`: whatever the program drops decodes to a datagram for echod
 * that the real guard also refuses (for UDP), or a TCP connection that
 * tcp_guard_admit refuses. The guards here are fresh for each packet and
 * neither has a rate limit (the buckets have their own tests above).
 * Some sources are embedded IPv4 forms: of a denied address, of an
 * ordinary one, of loopback.
 */
static void
drops_only_what_the_guard_drops(const char *extra)
{
	static const char *const embedded[] = {
	    "64:ff9b::c613:101", "2002:c612:707::1", "64:ff9b::7f00:1",
	    "2001:0:4136:e378:8000:63bf:39ec:fefe", "::198.18.7.7"};
	struct udp_guard *g;
	struct tcp_guard *t;
	unsigned seed = 12345, drops = 0;
	struct pkt p;
	char text[256];

	teardown(NULL);
	/* A small table: a fresh UDP guard is made for every drop. */
	snprintf(text, sizeof(text),
	         "udp-rate unlimited\nudp-aggregate-rate unlimited\n"
	         "tcp-connect-rate unlimited\nrate-table-size 1024\n%s",
	         extra);
	load(text);
	g = udp_guard_new(&pol, &facts, 1);
	/* Its admission changes no count (nothing is opened) and its
	 * connect rate is unlimited: one guard judges every drop. */
	t = tcp_guard_new(&pol, &facts, 10);
	assert_non_null(g);
	assert_non_null(t);
	for (int i = 0; i < 20000; i++) {
		struct datagram d;
		uint16_t dport = 0;
		int proto = 0;
		switch (i % 6) {
		case 0:
			udp4(&p, CLI4, EPHEM, SRV4);
			break;
		case 1:
			udp6(&p, CLI6, EPHEM, SRV6);
			break;
		case 2:
			v4(&p, IPPROTO_TCP, CLI4, SRV4, EPHEM, PORT, 0, 0);
			break;
		case 3:
			udp6(&p, embedded[i / 6 % 5], EPHEM, SRV6);
			break;
		case 4:
			v6(&p, IPPROTO_TCP, embedded[i / 6 % 5], SRV6, EPHEM,
			   PORT, NULL, 0);
			break;
		default:
			udp4(&p, "198.19.1.1", EPHEM, SRV4);
			break;
		}
		/* Flip up to 3 bytes in the headers (addresses, ports, ...). */
		for (int k = 0; k < 1 + i % 3; k++) {
			size_t at = 12 + (size_t)rand_r(&seed) % 50;
			if (at < p.len)
				p.b[at] = (uint8_t)rand_r(&seed);
		}
		if (run(&p) != XDP_DROP)
			continue;
		drops++;
		assert_int_equal(decode(&p, &d, &dport, &proto), 0);
		if (proto == IPPROTO_TCP) {
			struct tcp_admission a;

			tcp_guard_admit(t, &d.src, 1000, &a);
			assert_false(a.admit);
			continue;
		}
		assert_int_equal(proto, IPPROTO_UDP);
		assert_true(dport == PORT || dport == 9);
		udp_guard_free(g);
		g = udp_guard_new(&pol, &facts, 1);
		assert_int_not_equal(udp_guard_check(g, &d, 1000), GUARD_ok);
	}
	udp_guard_free(g);
	tcp_guard_free(t);
	/* The mix must have exercised the drop side. */
	assert_true(drops > 1000);
}

static void
test_drops_only_what_the_guard_drops(void **state)
{
	(void)state;
	drops_only_what_the_guard_drops("");
	drops_only_what_the_guard_drops("embedded-ipv4 judge\n");
	teardown(NULL);
	load("");
}

/* Embedded IPv4 forms, as the guards: bad sources by default (UDP and
 * TCP), or judged as the address they carry. */
static void
test_embedded_ipv4(void **state)
{
	static const char *const forms[] = {
	    "64:ff9b::c612:707", "64:ff9b:1::c612:707", "2002:c612:707::1",
	    "2001:0:4136:e378:8000:63bf:39ed:f8f8", "::198.18.7.7"};
	struct pkt p;

	(void)state;
	for (size_t i = 0; i < sizeof(forms) / sizeof(*forms); i++) {
		udp6(&p, forms[i], EPHEM, SRV6);
		expect(&p, XDP_DROP, PF_udp_drop_bad_source);
		v6(&p, IPPROTO_TCP, forms[i], SRV6, EPHEM, PORT, NULL, 0);
		expect(&p, XDP_DROP, PF_tcp_drop_bad_source);
		udp6(&p, forms[i], 19, SRV6); /* the port goes first */
		expect(&p, XDP_DROP, PF_udp_drop_port);
	}
	udp6(&p, "2001:1::1", EPHEM, SRV6); /* not Teredo's /32 */
	expect(&p, XDP_PASS, -1);
	teardown(NULL);
	load("embedded-ipv4 judge\n");
	for (size_t i = 0; i < sizeof(forms) / sizeof(*forms); i++) {
		udp6(&p, forms[i], EPHEM, SRV6);
		expect(&p, XDP_PASS, -1);
		v6(&p, IPPROTO_TCP, forms[i], SRV6, EPHEM, PORT, NULL, 0);
		expect(&p, XDP_PASS, -1);
	}
	/* Denied 198.19.1.1, loopback, multicast inside. */
	udp6(&p, "64:ff9b::c613:101", EPHEM, SRV6);
	expect(&p, XDP_DROP, PF_udp_drop_deny);
	v6(&p, IPPROTO_TCP, "2002:c613:101::1", SRV6, EPHEM, PORT, NULL, 0);
	expect(&p, XDP_DROP, PF_tcp_drop_deny);
	udp6(&p, "64:ff9b::7f00:1", EPHEM, SRV6);
	expect(&p, XDP_DROP, PF_udp_drop_bad_source);
	v6(&p, IPPROTO_TCP, "::224.0.0.1", SRV6, EPHEM, PORT, NULL, 0);
	expect(&p, XDP_DROP, PF_tcp_drop_bad_source);
	teardown(NULL);
	load("");
}

/* The aggregate bucket: a /48's 256 /56s share twice the guard's
 * aggregate burst; another /48 has its own. */
static void
test_aggregate_bucket(void **state)
{
	uint64_t before[PF_NREASONS], after[PF_NREASONS];
	unsigned passed = 0, total = 2 * 300 + 200;
	struct pkt p;

	(void)state;
	teardown(NULL);
	load("udp-aggregate-rate 10/s burst 300\n");
	counts(before);
	for (unsigned i = 0; i < total; i++) {
		char src[64];
		snprintf(src, sizeof(src), "2001:db8:5:%x::1", (i % 256) << 8);
		udp6(&p, src, EPHEM, SRV6);
		passed += run(&p) == XDP_PASS;
	}
	counts(after);
	assert_true(passed >= 600 && passed < 610);
	assert_int_equal(after[PF_udp_drop_aggregate_rate] -
	                     before[PF_udp_drop_aggregate_rate],
	                 total - passed);
	udp6(&p, "2001:db8:6::1", EPHEM, SRV6);
	expect(&p, XDP_PASS, -1);
	teardown(NULL);
	load("");
}

/* ------------------------------------------------------------ seal */

/* The address of the bpf-map mapping in /proc/self/maps, and its mode. */
static void *
counters_mapping(char *mode)
{
	char line[512];
	unsigned long lo = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "bpf-map") != NULL &&
		    sscanf(line, "%lx-%*x %4s", &lo, mode) == 2)
			break;
	fclose(f);
	return (void *)lo;
}

/* After xdp_seal: every map refuses bpf() writes (even root's), and the
 * counters are a shared read-only mapping that cannot become writable. */
static void
test_seal_freezes_and_maps_read_only(void **state)
{
	struct bpf_prog_info info;
	uint32_t ids[16], len = sizeof(info), nmaps;
	int prog;
	char mode[5] = "", err[256];
	void *view;

	(void)state;
	memset(&info, 0, sizeof(info));
	info.nr_map_ids = 16;
	info.map_ids = (uint64_t)(uintptr_t)ids;
	prog = dup(xdp_prog_fd(x)); /* keeps the program and its maps */
	assert_true(prog >= 0);
	assert_int_equal(bpf_obj_get_info_by_fd(prog, &info, &len), 0);
	nmaps = info.nr_map_ids;
	assert_true(nmaps >= 6);
	assert_int_equal(xdp_seal(x, err, sizeof(err)), 0);
	x = NULL;
	for (uint32_t i = 0; i < nmaps; i++) {
		uint8_t key[64] = {0}, value[64] = {0};
		int fd = bpf_map_get_fd_by_id(ids[i]);
		assert_true(fd >= 0);
		assert_int_not_equal(bpf_map_update_elem(fd, key, value, 0), 0);
		close(fd);
	}
	view = counters_mapping(mode);
	assert_non_null(view);
	assert_string_equal(mode, "r--s");
	assert_int_not_equal(mprotect(view, 4096, PROT_READ | PROT_WRITE), 0);
	close(prog);
	load("");
}

/* ------------------------------------------------------------ sandbox */

/* No process needs bpf() after the bootstrap: under either filter, the
 * call kills the process (a harmless query: the next program id). */
static void
test_bpf_kills_under_every_filter(void **state)
{
	enum sandbox_role roles[] = {SANDBOX_SUPERVISOR, SANDBOX_WORKER};

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		int status;
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			char err[256];
			union bpf_attr attr;
			if (sandbox_enter(roles[i], false, err, sizeof(err)))
				_exit(3);
			memset(&attr, 0, sizeof(attr));
			syscall(__NR_bpf, BPF_PROG_GET_NEXT_ID, &attr,
			        sizeof(attr));
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGSYS);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_legitimate_passes),
	    cmocka_unit_test(test_denied_source_port),
	    cmocka_unit_test(test_bad_sources),
	    cmocka_unit_test(test_bad_destinations),
	    cmocka_unit_test(test_deny_list),
	    cmocka_unit_test(test_reason_order_is_the_guards),
	    cmocka_unit_test(test_own_address_sources),
	    cmocka_unit_test(test_other_traffic_untouched),
	    cmocka_unit_test(test_truncated_headers),
	    cmocka_unit_test(test_ipv4_header_fields),
	    cmocka_unit_test(test_ipv6_extension_headers),
	    cmocka_unit_test(test_prefix_bucket),
	    cmocka_unit_test(test_rate_exempt_skips_the_bucket),
	    cmocka_unit_test(test_drops_only_what_the_guard_drops),
	    cmocka_unit_test(test_embedded_ipv4),
	    cmocka_unit_test(test_aggregate_bucket),
	    cmocka_unit_test(test_log_only_passes_and_counts),
	    cmocka_unit_test(test_bpf_kills_under_every_filter),
	    cmocka_unit_test(test_seal_freezes_and_maps_read_only),
	};

	if (geteuid() != 0) {
		puts("[  SKIPPED ] test_xdp: needs root to load XDP programs");
		return 0;
	}
	/* bpf() under every filter is a violation on purpose: its lines
	 * are no news (make test shows no error line when nothing failed). */
	log_set_quiet(true);
	return cmocka_run_group_tests(tests, setup, teardown);
}
