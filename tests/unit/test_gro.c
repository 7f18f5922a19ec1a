/* Unit tests for src/gro.c: a GRO buffer's datagrams at the edges. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "gro.h"

/* Every datagram's length, and their sum is the buffer. */
static void
assert_split(size_t len, size_t segsize, size_t want_n, const size_t *want_lens)
{
	size_t n = gro_segments(len, segsize), sum = 0;

	assert_int_equal(n, want_n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(gro_segment_len(len, segsize, i),
		                 want_lens[i]);
		sum += want_lens[i];
	}
	assert_int_equal(sum, len);
	/* Past the last one there is nothing. */
	assert_int_equal(gro_segment_len(len, segsize, n), 0);
}

/* An empty datagram is still one datagram (RFC 862 echoes it). */
static void
test_empty(void **state)
{
	(void)state;
	assert_split(0, 0, 1, (const size_t[]){0});
	assert_split(0, 64, 1, (const size_t[]){0});
}

/* segsize 0: no GRO cmsg, a plain datagram of any length. */
static void
test_not_gro(void **state)
{
	(void)state;
	assert_split(1, 0, 1, (const size_t[]){1});
	assert_split(65507, 0, 1, (const size_t[]){65507});
}

/* Shorter than or as long as one segment: one datagram. */
static void
test_one_segment(void **state)
{
	(void)state;
	assert_split(63, 64, 1, (const size_t[]){63});
	assert_split(64, 64, 1, (const size_t[]){64});
}

static void
test_exact_multiple(void **state)
{
	(void)state;
	assert_split(128, 64, 2, (const size_t[]){64, 64});
	assert_split(3, 1, 3, (const size_t[]){1, 1, 1});
	assert_int_equal(gro_segments(64 * 64, 64), 64);
	assert_int_equal(gro_segment_len(64 * 64, 64, 63), 64);
}

static void
test_short_last(void **state)
{
	(void)state;
	assert_split(65, 64, 2, (const size_t[]){64, 1});
	assert_split(200, 64, 4, (const size_t[]){64, 64, 64, 8});
	/* The largest buffer: 46 whole segments and 1135 bytes. */
	assert_int_equal(gro_segments(65535, 1400), 47);
	assert_int_equal(gro_segment_len(65535, 1400, 46), 65535 - 46 * 1400);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_not_gro),
	    cmocka_unit_test(test_one_segment),
	    cmocka_unit_test(test_exact_multiple),
	    cmocka_unit_test(test_short_last),
	};

	return cmocka_run_group_tests_name("gro", tests, NULL, NULL);
}
