/* Unit tests for src/log.c: utc_fields, the calendar of the ts= field,
 * against known dates and against the C library's gmtime_r; and quiet
 * logging, which writes nothing to stderr. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"

#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void
assert_utc(time_t t, int y, int mo, int d, int h, int mi, int s)
{
	int f[6];

	utc_fields(t, f);
	assert_int_equal(f[0], y);
	assert_int_equal(f[1], mo);
	assert_int_equal(f[2], d);
	assert_int_equal(f[3], h);
	assert_int_equal(f[4], mi);
	assert_int_equal(f[5], s);
}

static void
test_known_dates(void **state)
{
	(void)state;
	assert_utc(0, 1970, 1, 1, 0, 0, 0);
	assert_utc(-1, 1969, 12, 31, 23, 59, 59);
	assert_utc(-86400, 1969, 12, 31, 0, 0, 0);
	assert_utc(-86401, 1969, 12, 30, 23, 59, 59);
	assert_utc(951782400, 2000, 2, 29, 0, 0, 0); /* 400-year leap day */
	assert_utc(951868800, 2000, 3, 1, 0, 0, 0);
	assert_utc(1078012800, 2004, 2, 29, 0, 0, 0); /* ordinary leap day */
	/* Centuries not divisible by 400 have no Feb 29. */
	assert_utc(-2203977600, 1900, 2, 28, 0, 0, 0);
	assert_utc(-2203977600 + 86400, 1900, 3, 1, 0, 0, 0);
	assert_utc(4107456000, 2100, 2, 28, 0, 0, 0);
	assert_utc(4107456000 + 86400, 2100, 3, 1, 0, 0, 0);
	assert_utc(2147483647, 2038, 1, 19, 3, 14, 7);
	assert_utc(2147483648, 2038, 1, 19, 3, 14, 8);
	assert_utc(253402300799, 9999, 12, 31, 23, 59, 59);
	assert_utc(-62135596800, 1, 1, 1, 0, 0, 0);
	assert_utc(1796083200 + 3723, 2026, 12, 1, 1, 2, 3);
}

static void
assert_like_gmtime(time_t t)
{
	struct tm tm;
	int f[6];

	memset(&tm, 0, sizeof(tm));
	assert_non_null(gmtime_r(&t, &tm));
	utc_fields(t, f);
	assert_int_equal(f[0], tm.tm_year + 1900);
	assert_int_equal(f[1], tm.tm_mon + 1);
	assert_int_equal(f[2], tm.tm_mday);
	assert_int_equal(f[3], tm.tm_hour);
	assert_int_equal(f[4], tm.tm_min);
	assert_int_equal(f[5], tm.tm_sec);
}

/* Every day boundary (and the second either side) of years 1600-2500,
 * then a pseudo-random sweep of seconds from year 1 to 9999. */
static void
test_agrees_with_gmtime(void **state)
{
	uint64_t x = 0x9e3779b97f4a7c15u;

	(void)state;
	for (time_t day = -11676096000; day <= 16725225600; day += 86400) {
		assert_like_gmtime(day - 1);
		assert_like_gmtime(day);
	}
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
		assert_like_gmtime(-62135596800 + (time_t)(x % (253402300800u +
		                                                62135596800u)));
	}
}

/* What log lines reach stderr while f runs: stderr is a pipe meanwhile. */
static ssize_t
stderr_of(void (*f)(void), char *out, size_t len)
{
	int p[2], saved = dup(STDERR_FILENO);
	ssize_t n;

	assert_true(saved >= 0);
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	assert_true(dup2(p[1], STDERR_FILENO) >= 0);
	f();
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(p[1]);
	n = read(p[0], out, len);
	close(p[0]);
	return n < 0 ? 0 : n;
}

static void
log_an_error(void)
{
	log_always(LOG_ERROR, "listener_failed", "fd=%d", 100000);
	log_signal_safe(LOG_ERROR, "signal_line", "x=1");
}

static void
test_quiet_writes_nothing(void **state)
{
	char out[1024];
	ssize_t n;

	(void)state;
	log_init(LOG_INFO, "worker", 0);
	log_set_quiet(true);
	assert_int_equal(stderr_of(log_an_error, out, sizeof(out)), 0);
	log_set_quiet(false);
	n = stderr_of(log_an_error, out, sizeof(out) - 1);
	assert_true(n > 0);
	out[n] = '\0';
	assert_non_null(strstr(out, "level=error event=listener_failed"));
	assert_non_null(strstr(out, "event=signal_line"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_dates),
	    cmocka_unit_test(test_agrees_with_gmtime),
	    cmocka_unit_test(test_quiet_writes_nothing),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
