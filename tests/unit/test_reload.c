/* Unit tests for src/reload.c's decisions: which keywords a reload may
 * change, and when the XDP prefilter would drop what a new policy echoes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "policy.h"
#include "reload.h"
#include "siphash.h"

#include <stdio.h>
#include <string.h>

static void
parse_ok(const char *text, struct policy *p)
{
	struct policy_error err;

	policy_defaults(p, NULL);
	if (policy_parse(text, strlen(text), p, &err) != 0)
		fail_msg("line %u: %s", err.line, err.msg);
}

static const char *
loosens(const char *old_text, const char *new_text)
{
	static struct policy old, new_policy;

	parse_ok(old_text, &old);
	parse_ok(new_text, &new_policy);
	return reload_xdp_loosens(&old, &new_policy);
}

static void
test_xdp_tightening_passes(void **state)
{
	(void)state;
	assert_null(loosens("", ""));
	assert_null(loosens("", "deny 198.51.100.0/24\n"));
	assert_null(loosens("deny 198.51.100.0/24\n",
	                    "deny 198.51.100.0/24 203.0.113.0/24\n"));
	assert_null(loosens("", "udp-rate 50/s burst 100\n"));
	assert_null(loosens("udp-rate unlimited\n", "udp-rate 50/s\n"));
	assert_null(loosens("", "udp-deny-source-ports 0-1023 1194 1434 1900 "
	                        "3283 3478 3702 5060 5353 5683 6881 10001 "
	                        "11211 17185 26000 27015-27030 30120 32414 "
	                        "33848 37810 8080\n"));
	assert_null(loosens("enforce log-only\n", ""));
	assert_null(loosens("rate-exempt 192.0.2.1 192.0.2.2\n",
	                    "rate-exempt 192.0.2.1\n"));
	assert_null(loosens("", "udp-max-datagram 1400\n"));
	assert_null(loosens("", "udp-aggregate-rate 10/s burst 20\n"));
	assert_null(loosens("embedded-ipv4 judge\n", "embedded-ipv4 drop\n"));
}

static void
test_xdp_loosening_is_named(void **state)
{
	(void)state;
	assert_string_equal(loosens("", "enforce log-only\n"), "enforce");
	assert_string_equal(loosens("", "udp-deny-source-ports 0-1022\n"),
	                    "udp-deny-source-ports");
	assert_string_equal(loosens("deny 198.51.100.0/24\n", ""),
	                    "allow/deny");
	/* An allow inside a denied prefix lets some of it through. */
	assert_string_equal(loosens("deny 198.51.100.0/24\n",
	                            "deny 198.51.100.0/24\n"
	                            "allow 198.51.100.7\n"),
	                    "allow/deny");
	assert_string_equal(loosens("", "rate-exempt 192.0.2.1\n"),
	                    "rate-exempt");
	assert_string_equal(loosens("", "udp-rate 101/s burst 200\n"),
	                    "udp-rate");
	assert_string_equal(loosens("", "udp-rate 100/s burst 201\n"),
	                    "udp-rate");
	assert_string_equal(loosens("", "udp-rate unlimited\n"), "udp-rate");
	assert_string_equal(loosens("udp-max-datagram 1400\n", ""),
	                    "udp-max-datagram");
	assert_string_equal(loosens("", "udp-aggregate-rate unlimited\n"),
	                    "udp-aggregate-rate");
	assert_string_equal(
	    loosens("embedded-ipv4 drop\n", "embedded-ipv4 judge\n"),
	    "embedded-ipv4");
}

/* What the workers read on every decision may change; what was used to
 * build the process may not. */
static void
test_live_keywords(void **state)
{
	static const char *const live[] = {"deny",
	                                   "allow",
	                                   "udp-rate",
	                                   "enforce",
	                                   "tcp-idle-timeout",
	                                   "udp-deny-source-ports"};
	static const char *const restart[] = {"listen",
	                                      "workers",
	                                      "user",
	                                      "chroot",
	                                      "rate-table-size",
	                                      "rate-prefix-v4",
	                                      "tcp-prefix-v6",
	                                      "xdp-prefilter",
	                                      "metrics",
	                                      "udp-receive-buffer",
	                                      "tcp-buffer",
	                                      "tcp-max-connections",
	                                      "log",
	                                      "sandbox-violation",
	                                      "no-such-keyword",
	                                      "udp-aggregate-prefix-v4"};

	(void)state;
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		assert_true(reload_keyword_live(live[i]));
	for (size_t i = 0; i < sizeof(restart) / sizeof(restart[0]); i++)
		assert_false(reload_keyword_live(restart[i]));
}

/* The digest is of -T's text: an operator can recompute it. */
static void
test_digest_is_of_the_printed_text(void **state)
{
	static const uint8_t zero[SIPHASH_KEY_LEN];
	static char text[POLICY_PRINT_MAX];
	char digest[RELOAD_DIGEST_LEN], want[RELOAD_DIGEST_LEN];
	struct policy p;
	int n;

	(void)state;
	parse_ok("deny 192.0.2.0/24\n", &p);
	n = policy_print(&p, text, sizeof(text));
	assert_true(n > 0);
	snprintf(want, sizeof(want), "%016llx",
	         (unsigned long long)siphash24(zero, text, (size_t)n));
	reload_digest_of(&p, digest);
	assert_string_equal(digest, want);
	parse_ok("", &p);
	reload_digest_of(&p, want);
	assert_string_not_equal(digest, want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xdp_tightening_passes),
	    cmocka_unit_test(test_xdp_loosening_is_named),
	    cmocka_unit_test(test_live_keywords),
	    cmocka_unit_test(test_digest_is_of_the_printed_text),
	};

	return cmocka_run_group_tests_name("reload", tests, NULL, NULL);
}
