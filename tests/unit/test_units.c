/* Unit tests for src/units.c: numbers, durations, sizes, rates. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "units.h"

#include <string.h>

#define SENTINEL UINT64_C(0xdeadbeefcafef00d)

/* Parse with parse_uint and return the value, failing the test on error. */
static uint64_t
uint_ok(const char *s, uint64_t max)
{
	uint64_t v = SENTINEL;

	if (parse_uint(s, max, &v) != 0)
		fail_msg("parse_uint(\"%s\") rejected", s);
	return v;
}

static void
uint_bad(const char *s, uint64_t max)
{
	uint64_t v = SENTINEL;

	if (parse_uint(s, max, &v) != -1)
		fail_msg("parse_uint(\"%s\", %llu) accepted, gave %llu", s,
		         (unsigned long long)max, (unsigned long long)v);
	/* A rejected input leaves the output untouched. */
	assert_true(v == SENTINEL);
}

static uint64_t
duration_ok(const char *s)
{
	uint64_t v = SENTINEL;

	if (parse_duration(s, &v) != 0)
		fail_msg("parse_duration(\"%s\") rejected", s);
	return v;
}

static void
duration_bad(const char *s)
{
	uint64_t v = SENTINEL;

	if (parse_duration(s, &v) != -1)
		fail_msg("parse_duration(\"%s\") accepted", s);
	assert_true(v == SENTINEL);
}

static uint64_t
size_ok(const char *s)
{
	uint64_t v = SENTINEL;

	if (parse_size(s, &v) != 0)
		fail_msg("parse_size(\"%s\") rejected", s);
	return v;
}

static void
size_bad(const char *s)
{
	uint64_t v = SENTINEL;

	if (parse_size(s, &v) != -1)
		fail_msg("parse_size(\"%s\") accepted", s);
	assert_true(v == SENTINEL);
}

static void
rate_ok(const char *s, uint64_t count, uint64_t period_ms)
{
	struct rate r = {SENTINEL, SENTINEL};

	if (parse_rate(s, &r) != 0)
		fail_msg("parse_rate(\"%s\") rejected", s);
	assert_true(r.count == count);
	assert_true(r.period_ms == period_ms);
}

static void
rate_bad(const char *s)
{
	struct rate r;

	if (parse_rate(s, &r) != -1)
		fail_msg("parse_rate(\"%s\") accepted", s);
}

static void
byte_rate_ok(const char *s, uint64_t count, uint64_t period_ms)
{
	struct rate r = {SENTINEL, SENTINEL};

	if (parse_byte_rate(s, &r) != 0)
		fail_msg("parse_byte_rate(\"%s\") rejected", s);
	assert_true(r.count == count);
	assert_true(r.period_ms == period_ms);
}

static void
byte_rate_bad(const char *s)
{
	struct rate r;

	if (parse_byte_rate(s, &r) != -1)
		fail_msg("parse_byte_rate(\"%s\") accepted", s);
}

static void
duration_fmt(uint64_t ms, const char *want)
{
	char buf[32];

	memset(buf, 'X', sizeof(buf));
	format_duration(ms, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

/* ---- parse_uint ---- */

static void
test_uint_valid(void **state)
{
	(void)state;
	assert_true(uint_ok("0", 0) == 0);
	assert_true(uint_ok("0", 10) == 0);
	assert_true(uint_ok("1", 10) == 1);
	assert_true(uint_ok("10", 10) == 10);
	assert_true(uint_ok("007", 10) == 7);
	assert_true(uint_ok("65535", 65535) == 65535);
	assert_true(uint_ok("4294967295", UINT32_MAX) == UINT32_MAX);
	assert_true(uint_ok("1234567890", UINT64_MAX) == 1234567890);
	assert_true(uint_ok("18446744073709551615", UINT64_MAX) == UINT64_MAX);
	assert_true(uint_ok("18446744073709551614", UINT64_MAX) ==
	            UINT64_MAX - 1);
}

static void
test_uint_above_max(void **state)
{
	(void)state;
	uint_bad("11", 10);
	uint_bad("1", 0);
	uint_bad("65536", 65535);
	uint_bad("4294967296", UINT32_MAX);
	uint_bad("99999999999999999999", UINT32_MAX);
	uint_bad("99999999999999999999", UINT64_C(1) << 48);
}

/* Values that do not fit in 64 bits must be rejected whatever max is. */
static void
test_uint_overflow_64(void **state)
{
	(void)state;
	uint_bad("18446744073709551616", UINT64_MAX); /* 2^64 */
	uint_bad("99999999999999999999", UINT64_MAX);
	uint_bad("184467440737095516150", UINT64_MAX);
	uint_bad("999999999999999999999999999999", UINT64_MAX);
}

static void
test_uint_junk(void **state)
{
	(void)state;
	uint_bad("", 100);
	uint_bad("-1", 100);
	uint_bad("+1", 100);
	uint_bad(" 1", 100);
	uint_bad("1 ", 100);
	uint_bad("1.5", 100);
	uint_bad("0x10", 100);
	uint_bad("1a", 100);
	uint_bad("a", 100);
}

/* ---- parse_duration ---- */

static void
test_duration_units(void **state)
{
	(void)state;
	assert_true(duration_ok("500ms") == 500);
	assert_true(duration_ok("1ms") == 1);
	assert_true(duration_ok("0ms") == 0);
	assert_true(duration_ok("0s") == 0);
	assert_true(duration_ok("1s") == 1000);
	assert_true(duration_ok("30s") == 30000);
	assert_true(duration_ok("1m") == 60000);
	assert_true(duration_ok("5m") == 300000);
	assert_true(duration_ok("1h") == 3600000);
	assert_true(duration_ok("2h") == 7200000);
	assert_true(duration_ok("24h") == 86400000);
	assert_true(duration_ok("1500ms") == 1500);
	assert_true(duration_ok("0030s") == 30000);
}

static void
test_duration_edges(void **state)
{
	const uint64_t value_max = UINT64_C(1) << 48;

	(void)state;
	/* The largest number accepted is 2^48 = 281474976710656. */
	assert_true(duration_ok("281474976710656ms") == value_max);
	duration_bad("281474976710657ms");
	assert_true(duration_ok("281474976710s") == UINT64_C(281474976710000));
	duration_bad("281474976711s");
	assert_true(duration_ok("78187493h") == UINT64_C(78187493) * 3600000);
	duration_bad("78187494h");
}

static void
test_duration_rejects(void **state)
{
	(void)state;
	duration_bad("");
	duration_bad("1"); /* the unit is mandatory */
	duration_bad("30");
	duration_bad("0");
	duration_bad("s");
	duration_bad("ms");
	duration_bad("1.5s");
	duration_bad("-1");
	duration_bad("-1s");
	duration_bad("+1s");
	duration_bad(" 1s");
	duration_bad("1s ");
	duration_bad("1 s");
	duration_bad("1S");
	duration_bad("1MS");
	duration_bad("1H");
	duration_bad("1sec");
	duration_bad("1d");
	duration_bad("1us");
	duration_bad("1k");
	duration_bad("5x");
	duration_bad("1s1");
	duration_bad("1ms1");
	duration_bad("99999999999999999999s");
	duration_bad("99999999999999999999ms");
}

/* ---- parse_size ---- */

static void
test_size_units(void **state)
{
	(void)state;
	assert_true(size_ok("0") == 0);
	assert_true(size_ok("1") == 1);
	assert_true(size_ok("512") == 512);
	assert_true(size_ok("65507") == 65507);
	assert_true(size_ok("0k") == 0);
	assert_true(size_ok("1k") == 1024);
	assert_true(size_ok("64k") == 65536);
	assert_true(size_ok("16k") == 16384);
	assert_true(size_ok("1m") == 1048576);
	assert_true(size_ok("16m") == 16777216);
	assert_true(size_ok("1g") == 1073741824);
	assert_true(size_ok("4g") == UINT64_C(4294967296));
}

static void
test_size_edges(void **state)
{
	(void)state;
	assert_true(size_ok("281474976710656") == UINT64_C(1) << 48);
	size_bad("281474976710657");
	assert_true(size_ok("274877906944k") == UINT64_C(1) << 48);
	size_bad("274877906945k");
	assert_true(size_ok("268435456m") == UINT64_C(1) << 48);
	size_bad("268435457m");
	assert_true(size_ok("262144g") == UINT64_C(1) << 48);
	size_bad("262145g");
}

static void
test_size_rejects(void **state)
{
	(void)state;
	size_bad("");
	size_bad("k");
	size_bad("1.5k");
	size_bad("-1");
	size_bad("+1");
	size_bad(" 1");
	size_bad("1 ");
	size_bad("1 k");
	size_bad("1k ");
	size_bad("1K");
	size_bad("1M");
	size_bad("1G");
	size_bad("1kb");
	size_bad("1b");
	size_bad("1t");
	size_bad("1s");
	size_bad("5x");
	size_bad("1k1");
	size_bad("99999999999999999999");
	size_bad("99999999999999999999k");
}

/* ---- parse_rate ---- */

static void
test_rate_valid(void **state)
{
	(void)state;
	rate_ok("100/s", 100, 1000);
	rate_ok("6000/m", 6000, 60000);
	rate_ok("10/h", 10, 3600000);
	rate_ok("1/s", 1, 1000);
	rate_ok("0/s", 0, 1000);
	rate_ok("281474976710656/h", UINT64_C(1) << 48, 3600000);
}

static void
test_rate_rejects(void **state)
{
	(void)state;
	rate_bad("");
	rate_bad("100");
	rate_bad("5x");
	rate_bad("1/ms"); /* the period is s, m or h */
	rate_bad("/s");
	rate_bad("1/");
	rate_bad("/");
	rate_bad("1/d");
	rate_bad("1/S");
	rate_bad("1/sec");
	rate_bad("1/s ");
	rate_bad(" 1/s");
	rate_bad("1 /s");
	rate_bad("1/ s");
	rate_bad("-1/s");
	rate_bad("1.5/s");
	rate_bad("1k/s"); /* counts take no size unit */
	rate_bad("1/s/s");
	rate_bad("1/2s");
	rate_bad("99999999999999999999/s");
	rate_bad("281474976710657/s");
}

/* ---- parse_byte_rate ---- */

static void
test_byte_rate_valid(void **state)
{
	(void)state;
	byte_rate_ok("64k/s", 65536, 1000);
	byte_rate_ok("1m/m", 1048576, 60000);
	byte_rate_ok("1g/h", 1073741824, 3600000);
	byte_rate_ok("512/s", 512, 1000);
	byte_rate_ok("0/s", 0, 1000);
}

static void
test_byte_rate_rejects(void **state)
{
	(void)state;
	byte_rate_bad("");
	byte_rate_bad("64k");
	byte_rate_bad("5x");
	byte_rate_bad("1/ms");
	byte_rate_bad("1k/ms");
	byte_rate_bad("/s");
	byte_rate_bad("k/s");
	byte_rate_bad("1/");
	byte_rate_bad("1k/");
	byte_rate_bad("1K/s");
	byte_rate_bad("1kb/s");
	byte_rate_bad("1.5k/s");
	byte_rate_bad("-1k/s");
	byte_rate_bad("1k/s ");
	byte_rate_bad(" 1k/s");
	byte_rate_bad("1k/d");
	byte_rate_bad("99999999999999999999/s");
	byte_rate_bad("262145g/s");
}

/* ---- format_duration ---- */

static void
test_format_duration(void **state)
{
	(void)state;
	duration_fmt(0, "0ms");
	duration_fmt(1, "1ms");
	duration_fmt(500, "500ms");
	duration_fmt(999, "999ms");
	duration_fmt(1000, "1s");
	duration_fmt(1500, "1500ms");
	duration_fmt(1001, "1001ms");
	duration_fmt(30000, "30s");
	duration_fmt(59000, "59s");
	duration_fmt(60000, "1m");
	duration_fmt(90000, "90s");
	duration_fmt(300000, "5m");
	duration_fmt(3540000, "59m");
	duration_fmt(3600000, "1h");
	duration_fmt(5400000, "90m");
	duration_fmt(7200000, "2h");
	duration_fmt(86400000, "24h");
	duration_fmt(3600001, "3600001ms");
	duration_fmt(UINT64_MAX, "18446744073709551615ms");
}

static void
test_format_duration_truncates(void **state)
{
	char buf[4];

	(void)state;
	memset(buf, 'X', sizeof(buf));
	format_duration(1500, buf, sizeof(buf));
	assert_string_equal(buf, "150");
	format_duration(30000, buf, 2);
	assert_string_equal(buf, "3");
}

/* Every formatted duration parses back to the same number of ms. */
static void
test_format_duration_roundtrip(void **state)
{
	static const uint64_t vals[] = {
	    1,     100,    999,     1000,    1500,    30000,   60000,
	    90000, 300000, 3600000, 5400000, 7200000, 86400000};
	char buf[32];

	(void)state;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint64_t back = SENTINEL;

		format_duration(vals[i], buf, sizeof(buf));
		assert_int_equal(parse_duration(buf, &back), 0);
		assert_true(back == vals[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uint_valid),
	    cmocka_unit_test(test_uint_above_max),
	    cmocka_unit_test(test_uint_overflow_64),
	    cmocka_unit_test(test_uint_junk),
	    cmocka_unit_test(test_duration_units),
	    cmocka_unit_test(test_duration_edges),
	    cmocka_unit_test(test_duration_rejects),
	    cmocka_unit_test(test_size_units),
	    cmocka_unit_test(test_size_edges),
	    cmocka_unit_test(test_size_rejects),
	    cmocka_unit_test(test_rate_valid),
	    cmocka_unit_test(test_rate_rejects),
	    cmocka_unit_test(test_byte_rate_valid),
	    cmocka_unit_test(test_byte_rate_rejects),
	    cmocka_unit_test(test_format_duration),
	    cmocka_unit_test(test_format_duration_truncates),
	    cmocka_unit_test(test_format_duration_roundtrip),
	};

	return cmocka_run_group_tests_name("units", tests, NULL, NULL);
}
