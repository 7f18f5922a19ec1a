/* Unit tests for src/logline.c: logfmt to JSON (values, escapes, numbers,
 * truncation) and the syslog prefix. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "logline.h"

#include <string.h>

static void
assert_json(const char *in, const char *want)
{
	char out[512];
	size_t n = logline_json(in, strlen(in), out, sizeof(out));

	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
}

static void
test_pairs_in_order(void **state)
{
	(void)state;
	assert_json("ts=2026-11-26T10:00:00.000Z level=info event=ready "
	            "role=main workers=2",
	            "{\"ts\":\"2026-11-26T10:00:00.000Z\",\"level\":\"info\","
	            "\"event\":\"ready\",\"role\":\"main\",\"workers\":2}");
	assert_json("", "{}");
	assert_json("   ", "{}");
}

static void
test_quoted_values_are_unescaped_then_escaped(void **state)
{
	(void)state;
	assert_json("msg=\"a \\\"b\\\" c\" n=1",
	            "{\"msg\":\"a \\\"b\\\" c\",\"n\":1}");
	assert_json("msg=\"back\\\\slash\"", "{\"msg\":\"back\\\\slash\"}");
	/* An unterminated quote ends at the end of the line. */
	assert_json("msg=\"open", "{\"msg\":\"open\"}");
}

static void
test_numbers_only_when_plain(void **state)
{
	(void)state;
	assert_json("a=0 b=007 c=12x d=-1 e=\"5\" f=",
	            "{\"a\":0,\"b\":\"007\",\"c\":\"12x\",\"d\":\"-1\","
	            "\"e\":\"5\",\"f\":\"\"}");
	assert_json("big=1234567890123456789",
	            "{\"big\":\"1234567890123456789\"}");
}

static void
test_bare_words_and_odd_bytes(void **state)
{
	(void)state;
	assert_json("lonely k=v", "{\"lonely\":\"\",\"k\":\"v\"}");
	assert_json("k=\x01\x7f\xff", "{\"k\":\"\\u0001\\u007f\\u00ff\"}");
	assert_json("q\"k=v", "{\"q\\\"k\":\"v\"}");
}

static void
test_truncation_keeps_whole_pairs(void **state)
{
	char out[LOGLINE_JSON_MIN + 16];
	const char *in = "aaaa=1 bbbb=2 cccc=3 dddd=4";
	size_t n;

	(void)state;
	n = logline_json(in, strlen(in), out, sizeof(out));
	assert_string_equal(out, "{\"aaaa\":1,\"bbbb\":2,\"cccc\":3,"
	                         "\"truncated\":true}");
	assert_int_equal(n, strlen(out));
	n = logline_json(in, strlen(in), out, LOGLINE_JSON_MIN);
	assert_string_equal(out, "{\"aaaa\":1,\"truncated\":true}");
	n = logline_json("k=\"a long value\"", 16, out, LOGLINE_JSON_MIN);
	assert_string_equal(out, "{\"truncated\":true}");
	assert_int_equal(n, strlen(out));
}

static void
test_syslog_prefix(void **state)
{
	char out[64];

	(void)state;
	logline_syslog_prefix(0, 42, out, sizeof(out));
	assert_string_equal(out, "<27>echod[42]: ");
	logline_syslog_prefix(1, 42, out, sizeof(out));
	assert_string_equal(out, "<28>echod[42]: ");
	logline_syslog_prefix(2, 7, out, sizeof(out));
	assert_string_equal(out, "<30>echod[7]: ");
	logline_syslog_prefix(3, 7, out, sizeof(out));
	assert_string_equal(out, "<31>echod[7]: ");
	assert_int_equal(logline_syslog_prefix(2, 7, out, 5), 4);
	assert_string_equal(out, "<30>");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pairs_in_order),
	    cmocka_unit_test(test_quoted_values_are_unescaped_then_escaped),
	    cmocka_unit_test(test_numbers_only_when_plain),
	    cmocka_unit_test(test_bare_words_and_odd_bytes),
	    cmocka_unit_test(test_truncation_keeps_whole_pairs),
	    cmocka_unit_test(test_syslog_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
