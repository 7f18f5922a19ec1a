/* Unit tests for src/acl.c: longest prefix wins, default allow. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "acl.h"
#include "addr.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Add "ADDR/LEN" with a verdict; the return value of acl_add. */
static int
add(struct acl *a, const char *s, bool allow)
{
	struct cidr c;

	if (parse_cidr(s, &c) != 0)
		fail_msg("parse_cidr(\"%s\") failed", s);
	return acl_add(a, &c, allow);
}

static bool
allows(const struct acl *a, const char *s)
{
	struct ipaddr ip;

	if (parse_ipaddr(s, &ip) != 0)
		fail_msg("parse_ipaddr(\"%s\") failed", s);
	return acl_allows(a, &ip);
}

static void
test_empty_allows_all(void **state)
{
	struct acl a = {.n = 0};

	(void)state;
	acl_finish(&a);
	assert_true(allows(&a, "198.18.0.1"));
	assert_true(allows(&a, "0.0.0.0"));
	assert_true(allows(&a, "255.255.255.255"));
	assert_true(allows(&a, "2001:db8::1"));
	assert_true(allows(&a, "::"));
}

static void
check_nested(const struct acl *a)
{
	assert_true(allows(a, "198.18.5.7"));
	assert_true(allows(a, "198.18.5.0"));
	assert_true(allows(a, "198.18.5.255"));
	assert_false(allows(a, "198.18.6.1"));
	assert_false(allows(a, "198.18.0.0"));
	assert_false(allows(a, "198.19.255.255"));
	assert_true(allows(a, "198.20.0.1"));
	assert_true(allows(a, "198.17.255.255"));
	assert_true(allows(a, "2001:db8::1"));
}

static void
test_nested_prefixes(void **state)
{
	struct acl a = {.n = 0};

	(void)state;
	assert_int_equal(add(&a, "198.18.0.0/15", false), 0);
	assert_int_equal(add(&a, "198.18.5.0/24", true), 0);
	acl_finish(&a);
	check_nested(&a);
}

/* The longer prefix wins whichever was added first. */
static void
test_order_does_not_matter(void **state)
{
	struct acl a = {.n = 0};

	(void)state;
	assert_int_equal(add(&a, "198.18.5.0/24", true), 0);
	assert_int_equal(add(&a, "198.18.0.0/15", false), 0);
	acl_finish(&a);
	check_nested(&a);
	assert_true(a.rules[0].net.prefix == 24);
	assert_true(a.rules[1].net.prefix == 15);
}

/* Many rules in scrambled order end up sorted longest first. */
static void
test_finish_sorts(void **state)
{
	static const struct {
		const char *net;
		bool allow;
	} rules[] = {
	    {"10.0.0.0/8", true},     {"10.1.2.3/32", true},
	    {"0.0.0.0/0", false},     {"10.1.0.0/16", false},
	    {"2001:db8::/32", false}, {"10.1.2.0/24", true},
	    {"::/0", true},           {"2001:db8::1/128", true},
	    {"192.0.2.0/24", true},   {"10.2.0.0/16", false},
	    {"172.16.0.0/12", true},
	};
	const size_t nrules = sizeof(rules) / sizeof(rules[0]);
	struct acl a = {.n = 0};
	size_t i;

	(void)state;
	for (i = 0; i < nrules; i++)
		assert_int_equal(add(&a, rules[i].net, rules[i].allow), 0);
	acl_finish(&a);
	assert_true(a.n == nrules);
	for (i = 1; i < a.n; i++)
		assert_true(a.rules[i - 1].net.prefix >= a.rules[i].net.prefix);
	/* Calling it again (policy.c does, per directive) changes nothing. */
	acl_finish(&a);
	for (i = 1; i < a.n; i++)
		assert_true(a.rules[i - 1].net.prefix >= a.rules[i].net.prefix);

	assert_true(allows(&a, "10.1.2.3"));       /* /32 */
	assert_true(allows(&a, "10.1.2.4"));       /* /24 */
	assert_false(allows(&a, "10.1.3.1"));      /* /16 */
	assert_true(allows(&a, "10.3.0.1"));       /* /8 */
	assert_false(allows(&a, "10.2.0.1"));      /* /16 */
	assert_false(allows(&a, "11.0.0.1"));      /* /0 */
	assert_true(allows(&a, "172.31.255.255")); /* /12 */
	assert_false(allows(&a, "172.32.0.0"));    /* /0 */
	assert_true(allows(&a, "2001:db8::1"));    /* /128 */
	assert_false(allows(&a, "2001:db8::2"));   /* /32 */
	assert_true(allows(&a, "2001:db9::"));     /* /0 */
}

static void
test_v6_rules_skip_v4(void **state)
{
	struct acl a = {.n = 0};

	(void)state;
	assert_int_equal(add(&a, "::/0", false), 0);
	acl_finish(&a);
	assert_true(allows(&a, "198.18.0.1"));
	assert_true(allows(&a, "0.0.0.0"));
	assert_false(allows(&a, "2001:db8::1"));
	assert_false(allows(&a, "::1"));
	/* ::ffff:198.18.0.1 is folded to IPv4 by the parser. */
	assert_true(allows(&a, "::ffff:198.18.0.1"));
}

static void
test_deny_all_but_one(void **state)
{
	struct acl a = {.n = 0};

	(void)state;
	assert_int_equal(add(&a, "0.0.0.0/0", false), 0);
	assert_int_equal(add(&a, "198.18.0.1/32", true), 0);
	acl_finish(&a);
	assert_true(allows(&a, "198.18.0.1"));
	assert_false(allows(&a, "198.18.0.2"));
	assert_false(allows(&a, "198.18.0.0"));
	assert_false(allows(&a, "0.0.0.0"));
	assert_false(allows(&a, "255.255.255.255"));
	/* v4 rules leave IPv6 alone. */
	assert_true(allows(&a, "2001:db8::1"));
}

/* An IPv4-mapped address is judged by the IPv4 rules, not the IPv6 ones. */
static void
test_v4_mapped(void **state)
{
	struct acl a = {.n = 0};
	struct ipaddr ip;

	(void)state;
	assert_int_equal(add(&a, "198.18.0.0/15", false), 0);
	assert_int_equal(add(&a, "::ffff:0:0/96", true), 0);
	acl_finish(&a);
	assert_int_equal(parse_ipaddr("::ffff:198.18.0.1", &ip), 0);
	assert_true(ip.family == AF_INET);
	assert_false(acl_allows(&a, &ip));
	assert_true(allows(&a, "::ffff:198.20.0.1"));
	assert_false(allows(&a, "198.18.0.1"));
}

static void
test_conflict_rejected(void **state)
{
	struct acl a = {.n = 0};

	(void)state;
	assert_int_equal(add(&a, "198.18.0.0/15", false), 0);
	assert_int_equal(add(&a, "198.18.0.0/15", true), -1);
	assert_true(a.n == 1);
	/* Same bytes, another length or family, is another prefix. */
	assert_int_equal(add(&a, "198.18.0.0/16", true), 0);
	assert_int_equal(add(&a, "0.0.0.0/0", true), 0);
	assert_int_equal(add(&a, "::/0", false), 0);
	assert_true(a.n == 4);
	/* Hosts: a bare address is a /32 or /128. */
	assert_int_equal(add(&a, "2001:db8::1", true), 0);
	assert_int_equal(add(&a, "2001:db8::1/128", false), -1);
	assert_true(a.n == 5);
	acl_finish(&a);
	assert_false(allows(&a, "198.19.0.1"));
	assert_true(allows(&a, "198.18.0.1"));
}

static void
test_duplicate_accepted(void **state)
{
	struct acl a = {.n = 0};

	(void)state;
	assert_int_equal(add(&a, "198.18.0.0/15", false), 0);
	assert_int_equal(add(&a, "198.18.0.0/15", false), 0);
	assert_true(a.n == 1);
	assert_int_equal(add(&a, "2001:db8::/32", true), 0);
	assert_int_equal(add(&a, "2001:db8::/32", true), 0);
	assert_true(a.n == 2);
	acl_finish(&a);
	assert_false(allows(&a, "198.18.0.1"));
}

static void
test_full_rejected(void **state)
{
	struct acl a = {.n = 0};
	char buf[32];
	int i;

	(void)state;
	for (i = 0; i < ACL_MAX; i++) {
		snprintf(buf, sizeof(buf), "10.%d.%d.0/24", i / 256, i % 256);
		assert_int_equal(add(&a, buf, i % 2 == 0), 0);
	}
	assert_true(a.n == ACL_MAX);
	assert_int_equal(add(&a, "198.18.0.0/15", false), -1);
	assert_true(a.n == ACL_MAX);
	/* A duplicate adds nothing, so it is still fine when full. */
	assert_int_equal(add(&a, "10.0.0.0/24", true), 0);
	assert_true(a.n == ACL_MAX);
	acl_finish(&a);
	assert_true(allows(&a, "10.0.0.1"));
	assert_false(allows(&a, "10.0.1.1"));
	assert_false(allows(&a, "10.1.255.1"));
	assert_true(allows(&a, "10.2.0.1"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_allows_all),
	    cmocka_unit_test(test_nested_prefixes),
	    cmocka_unit_test(test_order_does_not_matter),
	    cmocka_unit_test(test_finish_sorts),
	    cmocka_unit_test(test_v6_rules_skip_v4),
	    cmocka_unit_test(test_deny_all_but_one),
	    cmocka_unit_test(test_v4_mapped),
	    cmocka_unit_test(test_conflict_rejected),
	    cmocka_unit_test(test_duplicate_accepted),
	    cmocka_unit_test(test_full_rejected),
	};

	return cmocka_run_group_tests_name("acl", tests, NULL, NULL);
}
