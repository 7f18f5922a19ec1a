/* Unit tests for src/addr.c: addresses, prefixes, endpoints, port sets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static void
ip_ok(const char *s, int family, const uint8_t *bytes, size_t n)
{
	struct ipaddr a;
	uint8_t want[16] = {0};

	memset(&a, 0xaa, sizeof(a));
	if (parse_ipaddr(s, &a) != 0)
		fail_msg("parse_ipaddr(\"%s\") rejected", s);
	assert_int_equal(a.family, family);
	memcpy(want, bytes, n);
	/* Unused bytes of an IPv4 address are zero. */
	assert_memory_equal(a.bytes, want, 16);
}

static void
ip_bad(const char *s)
{
	struct ipaddr a;

	if (parse_ipaddr(s, &a) != -1)
		fail_msg("parse_ipaddr(\"%s\") accepted", s);
}

static void
cidr_ok(const char *s, int family, const uint8_t *bytes, size_t n,
        unsigned prefix)
{
	struct cidr c;
	uint8_t want[16] = {0};

	memset(&c, 0xaa, sizeof(c));
	if (parse_cidr(s, &c) != 0)
		fail_msg("parse_cidr(\"%s\") rejected", s);
	assert_int_equal(c.addr.family, family);
	memcpy(want, bytes, n);
	assert_memory_equal(c.addr.bytes, want, 16);
	assert_int_equal(c.prefix, prefix);
}

static void
cidr_bad(const char *s)
{
	struct cidr c;

	if (parse_cidr(s, &c) != -1)
		fail_msg("parse_cidr(\"%s\") accepted", s);
}

static struct ipaddr
ip(const char *s)
{
	struct ipaddr a;

	if (parse_ipaddr(s, &a) != 0)
		fail_msg("parse_ipaddr(\"%s\") rejected", s);
	return a;
}

static struct cidr
cidr(const char *s)
{
	struct cidr c;

	if (parse_cidr(s, &c) != 0)
		fail_msg("parse_cidr(\"%s\") rejected", s);
	return c;
}

/* Check an IPv4 endpoint: address bytes, port, has_port. */
static void
ep4_ok(const char *s, const uint8_t addr[4], uint16_t port, bool has_port)
{
	struct endpoint ep;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ep.ss;

	memset(&ep, 0xaa, sizeof(ep));
	if (parse_endpoint(s, &ep) != 0)
		fail_msg("parse_endpoint(\"%s\") rejected", s);
	assert_int_equal(ep.ss.ss_family, AF_INET);
	assert_int_equal(ep.len, sizeof(struct sockaddr_in));
	assert_memory_equal(&sin->sin_addr, addr, 4);
	assert_int_equal(ntohs(sin->sin_port), port);
	assert_int_equal(endpoint_port(&ep), port);
	assert_int_equal(ep.has_port, has_port);
}

static void
ep6_ok(const char *s, const uint8_t addr[16], uint16_t port, bool has_port)
{
	struct endpoint ep;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ep.ss;

	memset(&ep, 0xaa, sizeof(ep));
	if (parse_endpoint(s, &ep) != 0)
		fail_msg("parse_endpoint(\"%s\") rejected", s);
	assert_int_equal(ep.ss.ss_family, AF_INET6);
	assert_int_equal(ep.len, sizeof(struct sockaddr_in6));
	assert_memory_equal(&sin6->sin6_addr, addr, 16);
	assert_int_equal(ntohs(sin6->sin6_port), port);
	assert_int_equal(endpoint_port(&ep), port);
	assert_int_equal(sin6->sin6_flowinfo, 0);
	assert_int_equal(sin6->sin6_scope_id, 0);
	assert_int_equal(ep.has_port, has_port);
}

static void
ep_bad(const char *s)
{
	struct endpoint ep;

	if (parse_endpoint(s, &ep) != -1)
		fail_msg("parse_endpoint(\"%s\") accepted", s);
}

static void
range_ok(const char *s, uint16_t lo, uint16_t hi)
{
	uint16_t l = 1234, h = 4321;

	if (parse_port_range(s, &l, &h) != 0)
		fail_msg("parse_port_range(\"%s\") rejected", s);
	assert_int_equal(l, lo);
	assert_int_equal(h, hi);
}

static void
range_bad(const char *s)
{
	uint16_t l, h;

	if (parse_port_range(s, &l, &h) != -1)
		fail_msg("parse_port_range(\"%s\") accepted", s);
}

static const uint8_t v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                        0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t v6_doc1[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                    0,    0,    0,    0,    0, 0, 0, 1};

/* ---- parse_ipaddr ---- */

static void
test_ipaddr_v4(void **state)
{
	(void)state;
	ip_ok("1.2.3.4", AF_INET, (const uint8_t[]){1, 2, 3, 4}, 4);
	ip_ok("0.0.0.0", AF_INET, (const uint8_t[]){0, 0, 0, 0}, 4);
	ip_ok("255.255.255.255", AF_INET, (const uint8_t[]){255, 255, 255, 255},
	      4);
	ip_ok("127.0.0.1", AF_INET, (const uint8_t[]){127, 0, 0, 1}, 4);
	ip_ok("198.18.0.1", AF_INET, (const uint8_t[]){198, 18, 0, 1}, 4);
}

static void
test_ipaddr_v6(void **state)
{
	(void)state;
	ip_ok("::1", AF_INET6, v6_loopback, 16);
	ip_ok("::", AF_INET6, (const uint8_t[16]){0}, 16);
	ip_ok("2001:db8::1", AF_INET6, v6_doc1, 16);
	ip_ok("2001:DB8:0:0:0:0:0:1", AF_INET6, v6_doc1, 16);
	ip_ok("fe80::aa:bbcc", AF_INET6,
	      (const uint8_t[16]){0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	                          0xaa, 0xbb, 0xcc},
	      16);
	ip_ok("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", AF_INET6,
	      (const uint8_t[16]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                          0xff, 0xff},
	      16);
	/* IPv4-compatible (not mapped) stays IPv6. */
	ip_ok(
	    "::1.2.3.4", AF_INET6,
	    (const uint8_t[16]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},
	    16);
	/* ffff in another position is not the mapped prefix. */
	ip_ok("::ffff:0:1.2.3.4", AF_INET6,
	      (const uint8_t[16]){0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1,
	                          2, 3, 4},
	      16);
}

static void
test_ipaddr_v4_mapped_folds(void **state)
{
	(void)state;
	ip_ok("::ffff:1.2.3.4", AF_INET, (const uint8_t[]){1, 2, 3, 4}, 4);
	ip_ok("::FFFF:1.2.3.4", AF_INET, (const uint8_t[]){1, 2, 3, 4}, 4);
	ip_ok("::ffff:102:304", AF_INET, (const uint8_t[]){1, 2, 3, 4}, 4);
	ip_ok("0:0:0:0:0:ffff:7f00:1", AF_INET, (const uint8_t[]){127, 0, 0, 1},
	      4);
	ip_ok("::ffff:0.0.0.0", AF_INET, (const uint8_t[]){0, 0, 0, 0}, 4);
	assert_true(ipaddr_equal(&(struct ipaddr){0}, &(struct ipaddr){0}));
	{
		struct ipaddr a = ip("::ffff:10.1.2.3"), b = ip("10.1.2.3");
		assert_true(ipaddr_equal(&a, &b));
	}
}

static void
test_ipaddr_rejects(void **state)
{
	(void)state;
	ip_bad("");
	ip_bad("localhost");
	ip_bad("1.2.3");
	ip_bad("1.2.3.4.5");
	ip_bad("256.1.1.1");
	ip_bad("1.2.3.4 ");
	ip_bad(" 1.2.3.4");
	ip_bad("1.2.3.4/32");
	ip_bad("1.2.3.4:7");
	ip_bad("[::1]");
	ip_bad(":::1");
	ip_bad("1::2::3");
	ip_bad("::1%lo");
	ip_bad("12345::1");
}

static void
test_ipaddr_equal(void **state)
{
	struct ipaddr a = ip("1.2.3.4"), b = ip("1.2.3.4"), c = ip("1.2.3.5");
	struct ipaddr d = ip("::1"), e = ip("::1");
	struct ipaddr z4 = ip("0.0.0.0"), z6 = ip("::");

	(void)state;
	assert_true(ipaddr_equal(&a, &b));
	assert_false(ipaddr_equal(&a, &c));
	assert_true(ipaddr_equal(&d, &e));
	assert_false(ipaddr_equal(&a, &d));
	/* Same bytes, different family. */
	assert_false(ipaddr_equal(&z4, &z6));
}

/* ---- parse_cidr ---- */

static void
test_cidr_v4(void **state)
{
	(void)state;
	cidr_ok("10.0.0.0/8", AF_INET, (const uint8_t[]){10, 0, 0, 0}, 4, 8);
	cidr_ok("192.168.1.0/24", AF_INET, (const uint8_t[]){192, 168, 1, 0}, 4,
	        24);
	cidr_ok("198.18.0.0/15", AF_INET, (const uint8_t[]){198, 18, 0, 0}, 4,
	        15);
	cidr_ok("1.2.3.4/32", AF_INET, (const uint8_t[]){1, 2, 3, 4}, 4, 32);
	cidr_ok("1.2.3.4", AF_INET, (const uint8_t[]){1, 2, 3, 4}, 4, 32);
	cidr_ok("0.0.0.0/0", AF_INET, (const uint8_t[]){0, 0, 0, 0}, 4, 0);
	cidr_ok("128.0.0.0/1", AF_INET, (const uint8_t[]){128, 0, 0, 0}, 4, 1);
	cidr_ok("1.2.3.4/31", AF_INET, (const uint8_t[]){1, 2, 3, 4}, 4, 31);
}

static void
test_cidr_v6(void **state)
{
	(void)state;
	cidr_ok("2001:db8::/32", AF_INET6,
	        (const uint8_t[]){0x20, 0x01, 0x0d, 0xb8}, 4, 32);
	cidr_ok("2001:db8::1/128", AF_INET6, v6_doc1, 16, 128);
	cidr_ok("2001:db8::1", AF_INET6, v6_doc1, 16, 128);
	cidr_ok("::/0", AF_INET6, (const uint8_t[16]){0}, 16, 0);
	cidr_ok("::1/128", AF_INET6, v6_loopback, 16, 128);
	cidr_ok("fe80::/10", AF_INET6, (const uint8_t[]){0xfe, 0x80}, 2, 10);
	cidr_ok("8000::/1", AF_INET6, (const uint8_t[]){0x80}, 1, 1);
}

static void
test_cidr_v4_mapped(void **state)
{
	(void)state;
	cidr_ok("::ffff:198.18.0.0/111", AF_INET,
	        (const uint8_t[]){198, 18, 0, 0}, 4, 15);
	cidr_ok("::ffff:1.2.3.4/128", AF_INET, (const uint8_t[]){1, 2, 3, 4}, 4,
	        32);
	cidr_ok("::ffff:1.2.3.4", AF_INET, (const uint8_t[]){1, 2, 3, 4}, 4,
	        32);
	cidr_ok("::ffff:0.0.0.0/96", AF_INET, (const uint8_t[]){0, 0, 0, 0}, 4,
	        0);
	cidr_ok("::ffff:10.0.0.0/104", AF_INET, (const uint8_t[]){10, 0, 0, 0},
	        4, 8);
	/* Shorter than the mapped prefix itself: not an IPv4 prefix. */
	cidr_bad("::ffff:0.0.0.0/95");
	cidr_bad("::ffff:0.0.0.0/0");
	/* Host bits past the IPv4 length. */
	cidr_bad("::ffff:198.19.0.0/111");
	cidr_bad("::ffff:1.2.3.4/120");
	cidr_bad("::ffff:1.2.3.4/129");
}

static void
test_cidr_rejects(void **state)
{
	(void)state;
	cidr_bad("");
	cidr_bad("/8");
	cidr_bad("10.0.0.0/");
	cidr_bad("10.0.0.1/8"); /* host bits set */
	cidr_bad("11.0.0.0/7");
	cidr_bad("1.2.3.4/24");
	cidr_bad("198.19.0.0/15");
	cidr_bad("1.2.3.4/0");
	cidr_bad("2001:db8::1/64");
	cidr_bad("2001:db9::/31");
	cidr_bad("::1/0");
	cidr_bad("10.0.0.0/33"); /* prefix too long */
	cidr_bad("10.0.0.0/128");
	cidr_bad("::/129");
	cidr_bad("10.0.0.0/-1");
	cidr_bad("10.0.0.0/+8");
	cidr_bad("10.0.0.0/8 ");
	cidr_bad("10.0.0.0/ 8");
	cidr_bad("10.0.0.0/8/8");
	cidr_bad("10.0.0.0/x");
	cidr_bad("10.0.0.0/99999999999999999999");
	cidr_bad("localhost/8");
	cidr_bad("10.0.0/8");
}

/* ---- cidr_contains ---- */

static void
test_cidr_contains(void **state)
{
	struct cidr c8 = cidr("10.0.0.0/8");
	struct cidr c15 = cidr("198.18.0.0/15");
	struct cidr all4 = cidr("0.0.0.0/0");
	struct cidr host = cidr("1.2.3.4");
	struct cidr net6 = cidr("2001:db8::/32");
	struct cidr all6 = cidr("::/0");
	struct cidr mapped = cidr("::ffff:198.18.0.0/111");
	struct ipaddr a;

	(void)state;
	a = ip("10.0.0.0");
	assert_true(cidr_contains(&c8, &a));
	a = ip("10.255.255.255");
	assert_true(cidr_contains(&c8, &a));
	a = ip("11.0.0.0");
	assert_false(cidr_contains(&c8, &a));
	a = ip("9.255.255.255");
	assert_false(cidr_contains(&c8, &a));

	a = ip("198.18.0.1");
	assert_true(cidr_contains(&c15, &a));
	a = ip("198.19.255.255");
	assert_true(cidr_contains(&c15, &a));
	assert_true(cidr_contains(&mapped, &a));
	a = ip("198.20.0.0");
	assert_false(cidr_contains(&c15, &a));
	assert_false(cidr_contains(&mapped, &a));
	a = ip("198.17.255.255");
	assert_false(cidr_contains(&c15, &a));

	/* An IPv4-mapped client address matches IPv4 prefixes. */
	a = ip("::ffff:10.9.8.7");
	assert_true(cidr_contains(&c8, &a));

	a = ip("1.2.3.4");
	assert_true(cidr_contains(&host, &a));
	assert_true(cidr_contains(&all4, &a));
	a = ip("1.2.3.5");
	assert_false(cidr_contains(&host, &a));
	a = ip("255.255.255.255");
	assert_true(cidr_contains(&all4, &a));

	a = ip("2001:db8:ffff::1");
	assert_true(cidr_contains(&net6, &a));
	assert_true(cidr_contains(&all6, &a));
	a = ip("2001:db9::");
	assert_false(cidr_contains(&net6, &a));
}

static void
test_cidr_contains_family_mismatch(void **state)
{
	struct cidr all4 = cidr("0.0.0.0/0");
	struct cidr all6 = cidr("::/0");
	struct cidr zero4 = cidr("0.0.0.0/32");
	struct cidr zero6 = cidr("::/128");
	struct ipaddr v4 = ip("0.0.0.0"), v6 = ip("::");
	struct ipaddr v4b = ip("1.2.3.4"), v6b = ip("::1.2.3.4");

	(void)state;
	assert_false(cidr_contains(&all4, &v6));
	assert_false(cidr_contains(&all4, &v6b));
	assert_false(cidr_contains(&all6, &v4));
	assert_false(cidr_contains(&all6, &v4b));
	assert_false(cidr_contains(&zero4, &v6));
	assert_false(cidr_contains(&zero6, &v4));
	assert_true(cidr_contains(&all4, &v4b));
	assert_true(cidr_contains(&all6, &v6b));
}

/* ---- ipaddr_prefix ---- */

static void
test_ipaddr_prefix(void **state)
{
	struct ipaddr a = ip("255.255.255.255"), out;
	struct ipaddr b = ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");

	(void)state;
	ipaddr_prefix(&a, 32, &out);
	assert_int_equal(out.family, AF_INET);
	assert_memory_equal(out.bytes,
	                    ((const uint8_t[16]){255, 255, 255, 255}), 16);
	ipaddr_prefix(&a, 24, &out);
	assert_memory_equal(out.bytes, ((const uint8_t[16]){255, 255, 255, 0}),
	                    16);
	ipaddr_prefix(&a, 15, &out);
	assert_memory_equal(out.bytes, ((const uint8_t[16]){255, 254, 0, 0}),
	                    16);
	ipaddr_prefix(&a, 1, &out);
	assert_memory_equal(out.bytes, ((const uint8_t[16]){128}), 16);
	ipaddr_prefix(&a, 0, &out);
	assert_int_equal(out.family, AF_INET);
	assert_memory_equal(out.bytes, ((const uint8_t[16]){0}), 16);
	/* Longer than the family: the whole address. */
	ipaddr_prefix(&a, 200, &out);
	assert_memory_equal(out.bytes,
	                    ((const uint8_t[16]){255, 255, 255, 255}), 16);

	ipaddr_prefix(&b, 128, &out);
	assert_int_equal(out.family, AF_INET6);
	assert_memory_equal(out.bytes, b.bytes, 16);
	ipaddr_prefix(&b, 65, &out);
	assert_memory_equal(out.bytes,
	                    ((const uint8_t[16]){0xff, 0xff, 0xff, 0xff, 0xff,
	                                         0xff, 0xff, 0xff, 0x80}),
	                    16);
	ipaddr_prefix(&b, 127, &out);
	assert_memory_equal(
	    out.bytes,
	    ((const uint8_t[16]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                         0xfe}),
	    16);
	ipaddr_prefix(&b, 0, &out);
	assert_int_equal(out.family, AF_INET6);
	assert_memory_equal(out.bytes, ((const uint8_t[16]){0}), 16);

	/* In place. */
	b = ip("2001:db8:1234::1");
	ipaddr_prefix(&b, 32, &b);
	assert_memory_equal(b.bytes,
	                    ((const uint8_t[16]){0x20, 0x01, 0x0d, 0xb8}), 16);
}

/* ---- parse_endpoint ---- */

static void
test_endpoint_v4(void **state)
{
	(void)state;
	ep4_ok("127.0.0.1", (const uint8_t[]){127, 0, 0, 1}, 0, false);
	ep4_ok("127.0.0.1:7007", (const uint8_t[]){127, 0, 0, 1}, 7007, true);
	ep4_ok("0.0.0.0", (const uint8_t[]){0, 0, 0, 0}, 0, false);
	ep4_ok("1.2.3.4:65535", (const uint8_t[]){1, 2, 3, 4}, 65535, true);
	ep4_ok("1.2.3.4:1", (const uint8_t[]){1, 2, 3, 4}, 1, true);
	/* IPv4-mapped IPv6 becomes an IPv4 socket address. */
	ep4_ok("::ffff:1.2.3.4", (const uint8_t[]){1, 2, 3, 4}, 0, false);
	ep4_ok("[::ffff:1.2.3.4]:9", (const uint8_t[]){1, 2, 3, 4}, 9, true);
}

static void
test_endpoint_v6(void **state)
{
	(void)state;
	ep6_ok("[::1]:7007", v6_loopback, 7007, true);
	ep6_ok("::1", v6_loopback, 0, false);
	ep6_ok("[::1]", v6_loopback, 0, false);
	ep6_ok("::", (const uint8_t[16]){0}, 0, false);
	ep6_ok("[2001:db8::1]:7", v6_doc1, 7, true);
	ep6_ok("2001:db8::1", v6_doc1, 0, false);
	/* A bare IPv6 address takes no port: this is ::1:7007, port unset. */
	ep6_ok("::1:7007",
	       (const uint8_t[16]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	                           0x70, 0x07},
	       0, false);
}

static void
test_endpoint_rejects(void **state)
{
	(void)state;
	ep_bad("");
	ep_bad("localhost");
	ep_bad("localhost:7");
	ep_bad("1.2.3.4:");
	ep_bad("1.2.3.4:70000");
	ep_bad("1.2.3.4:65536");
	ep_bad("1.2.3.4:-1");
	ep_bad("1.2.3.4:x");
	ep_bad("1.2.3.4: 7");
	ep_bad("1.2.3.4:7 ");
	ep_bad("1.2.3.4:99999999999999999999");
	ep_bad(":7");
	ep_bad("[::1");
	ep_bad("[::1]:");
	ep_bad("[::1]7");
	ep_bad("[::1]:70000");
	ep_bad("[::1]:x");
	ep_bad("[]");
	ep_bad("[]:7");
	ep_bad("[localhost]:7");
	ep_bad("::1]:7");
	ep_bad("1.2.3.4:7:8");
	ep_bad("::ffff:1.2.3.4:7");
	ep_bad("1.2.3");
	ep_bad(" 1.2.3.4");
}

static void
test_endpoint_set_port(void **state)
{
	struct endpoint ep;
	char buf[ADDR_STRLEN];

	(void)state;
	assert_int_equal(parse_endpoint("1.2.3.4", &ep), 0);
	endpoint_set_port(&ep, 7);
	assert_int_equal(endpoint_port(&ep), 7);
	format_sockaddr((const struct sockaddr *)&ep.ss, buf, sizeof(buf));
	assert_string_equal(buf, "1.2.3.4:7");

	assert_int_equal(parse_endpoint("[::1]:9", &ep), 0);
	endpoint_set_port(&ep, 65535);
	assert_int_equal(endpoint_port(&ep), 65535);
	format_sockaddr((const struct sockaddr *)&ep.ss, buf, sizeof(buf));
	assert_string_equal(buf, "[::1]:65535");
}

/* ---- parse_port_range ---- */

static void
test_port_range(void **state)
{
	(void)state;
	range_ok("7", 7, 7);
	range_ok("0", 0, 0);
	range_ok("65535", 65535, 65535);
	range_ok("1-1024", 1, 1024);
	range_ok("0-65535", 0, 65535);
	range_ok("80-80", 80, 80);
	range_ok("65534-65535", 65534, 65535);
	range_bad("");
	range_bad("-");
	range_bad("-5");
	range_bad("5-");
	range_bad("10-5");
	range_bad("65536");
	range_bad("1-65536");
	range_bad("70000-70001");
	range_bad("1-2-3");
	range_bad("1--2");
	range_bad(" 1-2");
	range_bad("1 -2");
	range_bad("1- 2");
	range_bad("1-2 ");
	range_bad("a-b");
	range_bad("1.5");
	range_bad("99999999999999999999");
}

/* ---- portset ---- */

static void
test_portset(void **state)
{
	static struct portset ps;
	unsigned n = 0;

	(void)state;
	memset(&ps, 0, sizeof(ps));
	for (uint32_t p = 0; p <= 65535; p++)
		assert_false(portset_has(&ps, (uint16_t)p));

	portset_add(&ps, 7, 7);
	portset_add(&ps, 60, 70);
	portset_add(&ps, 65535, 65535);
	portset_add(&ps, 0, 0);
	portset_add(&ps, 127, 128);
	for (uint32_t p = 0; p <= 65535; p++)
		if (portset_has(&ps, (uint16_t)p))
			n++;
	assert_int_equal(n, 1 + 11 + 1 + 1 + 2);
	assert_true(portset_has(&ps, 0));
	assert_false(portset_has(&ps, 1));
	assert_false(portset_has(&ps, 6));
	assert_true(portset_has(&ps, 7));
	assert_false(portset_has(&ps, 8));
	assert_false(portset_has(&ps, 59));
	assert_true(portset_has(&ps, 60));
	assert_true(portset_has(&ps, 63));
	assert_true(portset_has(&ps, 64));
	assert_true(portset_has(&ps, 70));
	assert_false(portset_has(&ps, 71));
	assert_false(portset_has(&ps, 126));
	assert_true(portset_has(&ps, 127));
	assert_true(portset_has(&ps, 128));
	assert_false(portset_has(&ps, 129));
	assert_false(portset_has(&ps, 65534));
	assert_true(portset_has(&ps, 65535));

	/* Adding again is idempotent. */
	portset_add(&ps, 60, 70);
	n = 0;
	for (uint32_t p = 0; p <= 65535; p++)
		if (portset_has(&ps, (uint16_t)p))
			n++;
	assert_int_equal(n, 16);
}

static void
test_portset_full(void **state)
{
	static struct portset ps;

	(void)state;
	memset(&ps, 0, sizeof(ps));
	/* The whole range must terminate and set every port. */
	portset_add(&ps, 0, 65535);
	for (uint32_t p = 0; p <= 65535; p++)
		assert_true(portset_has(&ps, (uint16_t)p));
	for (size_t i = 0; i < sizeof(ps.bits) / sizeof(ps.bits[0]); i++)
		assert_true(ps.bits[i] == UINT64_MAX);
}

/* ---- format_sockaddr / format_ipaddr ---- */

static void
test_format_sockaddr(void **state)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_storage ss;
	char buf[ADDR_STRLEN];

	(void)state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(7);
	sin.sin_addr.s_addr = htonl(0x01020304);
	format_sockaddr((const struct sockaddr *)&sin, buf, sizeof(buf));
	assert_string_equal(buf, "1.2.3.4:7");

	sin.sin_port = htons(65535);
	sin.sin_addr.s_addr = htonl(0xffffffff);
	format_sockaddr((const struct sockaddr *)&sin, buf, sizeof(buf));
	assert_string_equal(buf, "255.255.255.255:65535");

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(7);
	memcpy(&sin6.sin6_addr, v6_doc1, 16);
	format_sockaddr((const struct sockaddr *)&sin6, buf, sizeof(buf));
	assert_string_equal(buf, "[2001:db8::1]:7");

	sin6.sin6_port = htons(0);
	memset(&sin6.sin6_addr, 0, 16);
	format_sockaddr((const struct sockaddr *)&sin6, buf, sizeof(buf));
	assert_string_equal(buf, "[::]:0");

	/* An IPv4-mapped peer on a v6 socket prints as IPv4. */
	memcpy(&sin6.sin6_addr,
	       (const uint8_t[16]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1,
	                           2, 3, 4},
	       16);
	sin6.sin6_port = htons(7007);
	format_sockaddr((const struct sockaddr *)&sin6, buf, sizeof(buf));
	assert_string_equal(buf, "1.2.3.4:7007");

	/* Not an IP family. */
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	format_sockaddr((const struct sockaddr *)&ss, buf, sizeof(buf));
	assert_string_equal(buf, "?");

	/* The longest form fits in ADDR_STRLEN. */
	memset(&sin6.sin6_addr, 0xff, 16);
	sin6.sin6_port = htons(65535);
	format_sockaddr((const struct sockaddr *)&sin6, buf, sizeof(buf));
	assert_string_equal(buf,
	                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

static void
test_ipaddr_from_sockaddr(void **state)
{
	struct sockaddr_in6 sin6;
	struct sockaddr_in sin;
	struct ipaddr a;
	uint16_t port = 0;

	(void)state;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(4242);
	memcpy(&sin6.sin6_addr,
	       (const uint8_t[16]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 9,
	                           8, 7, 6},
	       16);
	ipaddr_from_sockaddr((const struct sockaddr *)&sin6, &a, &port);
	assert_int_equal(a.family, AF_INET);
	assert_memory_equal(a.bytes, ((const uint8_t[16]){9, 8, 7, 6}), 16);
	assert_int_equal(port, 4242);

	memcpy(&sin6.sin6_addr, v6_doc1, 16);
	ipaddr_from_sockaddr((const struct sockaddr *)&sin6, &a, NULL);
	assert_int_equal(a.family, AF_INET6);
	assert_memory_equal(a.bytes, v6_doc1, 16);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(1);
	sin.sin_addr.s_addr = htonl(0x7f000001);
	ipaddr_from_sockaddr((const struct sockaddr *)&sin, &a, &port);
	assert_int_equal(a.family, AF_INET);
	assert_memory_equal(a.bytes, ((const uint8_t[16]){127, 0, 0, 1}), 16);
	assert_int_equal(port, 1);
}

static void
test_format_ipaddr(void **state)
{
	struct ipaddr a;
	char buf[ADDR_STRLEN];

	(void)state;
	a = ip("1.2.3.4");
	format_ipaddr(&a, buf, sizeof(buf));
	assert_string_equal(buf, "1.2.3.4");
	a = ip("2001:DB8:0:0::1");
	format_ipaddr(&a, buf, sizeof(buf));
	assert_string_equal(buf, "2001:db8::1");
	a = ip("::ffff:10.0.0.1");
	format_ipaddr(&a, buf, sizeof(buf));
	assert_string_equal(buf, "10.0.0.1");
	/* Too small a buffer gives "?", never a truncated address. */
	a = ip("2001:db8::1");
	format_ipaddr(&a, buf, 5);
	assert_string_equal(buf, "?");
}

/* Each IPv6 form that carries an IPv4 address, at its edges. */
static void
test_embedded_v4(void **state)
{
	static const struct {
		const char *addr;
		enum embedded_v4 kind;
		const char *v4;
	} cases[] = {
	    {"64:ff9b::c000:201", EMBEDDED_NAT64, "192.0.2.1"},
	    {"64:ff9b::", EMBEDDED_NAT64, "0.0.0.0"},
	    {"64:ff9b::1:0:0:c000:201", EMBEDDED_NONE, NULL},
	    {"64:ff9b:1::c000:201", EMBEDDED_NAT64_LOCAL, "192.0.2.1"},
	    {"64:ff9b:1:ffff:ffff:ffff:c000:201", EMBEDDED_NAT64_LOCAL,
	     "192.0.2.1"},
	    {"64:ff9b:2::c000:201", EMBEDDED_NONE, NULL},
	    {"2002:c000:201::1", EMBEDDED_6TO4, "192.0.2.1"},
	    {"2002:ffff:ffff:ffff::", EMBEDDED_6TO4, "255.255.255.255"},
	    {"2003::1", EMBEDDED_NONE, NULL},
	    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", EMBEDDED_TEREDO,
	     "192.0.2.45"},
	    {"2001:1::1", EMBEDDED_NONE, NULL},
	    {"2001:db8::1", EMBEDDED_NONE, NULL},
	    {"::c000:201", EMBEDDED_COMPAT, "192.0.2.1"},
	    {"::2", EMBEDDED_COMPAT, "0.0.0.2"},
	    {"::1", EMBEDDED_NONE, NULL},
	    {"::", EMBEDDED_NONE, NULL},
	    {"::1:0:0:1", EMBEDDED_NONE, NULL},
	    {"::ffff:192.0.2.1", EMBEDDED_NONE, NULL}, /* folded: IPv4 */
	    {"192.0.2.1", EMBEDDED_NONE, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct ipaddr a, v4, want;

		assert_int_equal(parse_ipaddr(cases[i].addr, &a), 0);
		memset(&v4, 0xa5, sizeof(v4));
		assert_int_equal(ipaddr_embedded_v4(&a, &v4), cases[i].kind);
		if (cases[i].v4 == NULL)
			continue;
		assert_int_equal(parse_ipaddr(cases[i].v4, &want), 0);
		assert_true(ipaddr_equal(&v4, &want));
		assert_memory_equal(&v4, &want, sizeof(want));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipaddr_v4),
	    cmocka_unit_test(test_embedded_v4),
	    cmocka_unit_test(test_ipaddr_v6),
	    cmocka_unit_test(test_ipaddr_v4_mapped_folds),
	    cmocka_unit_test(test_ipaddr_rejects),
	    cmocka_unit_test(test_ipaddr_equal),
	    cmocka_unit_test(test_cidr_v4),
	    cmocka_unit_test(test_cidr_v6),
	    cmocka_unit_test(test_cidr_v4_mapped),
	    cmocka_unit_test(test_cidr_rejects),
	    cmocka_unit_test(test_cidr_contains),
	    cmocka_unit_test(test_cidr_contains_family_mismatch),
	    cmocka_unit_test(test_ipaddr_prefix),
	    cmocka_unit_test(test_endpoint_v4),
	    cmocka_unit_test(test_endpoint_v6),
	    cmocka_unit_test(test_endpoint_rejects),
	    cmocka_unit_test(test_endpoint_set_port),
	    cmocka_unit_test(test_port_range),
	    cmocka_unit_test(test_portset),
	    cmocka_unit_test(test_portset_full),
	    cmocka_unit_test(test_format_sockaddr),
	    cmocka_unit_test(test_ipaddr_from_sockaddr),
	    cmocka_unit_test(test_format_ipaddr),
	};

	return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
