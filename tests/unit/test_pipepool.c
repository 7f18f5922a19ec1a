/* Unit tests for src/pipepool.c on real pipes: the bound, lending and
 * taking back, the emptying of a pipe given back with bytes in it, the
 * size, and that freeing closes every pipe, lent ones too. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "pipepool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define PIPE_BYTES (256 * 1024)

/* Open descriptors of this process. */
static int
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the DIR's own */
}

static void
test_bound(void **state)
{
	struct pipe_pool *pool;
	struct pipe_ends e[4];
	int before = open_fds();

	(void)state;
	pool = pipe_pool_new(3, PIPE_BYTES);
	assert_non_null(pool);
	assert_int_equal(pipe_pool_count(pool), 3);
	assert_int_equal(open_fds(), before + 6);
	for (int i = 0; i < 3; i++)
		assert_true(pipe_pool_take(pool, &e[i]));
	assert_int_equal(pipe_pool_busy(pool), 3);
	assert_false(pipe_pool_take(pool, &e[3])); /* never a fourth */
	pipe_pool_put(pool, e[1], 0);
	assert_int_equal(pipe_pool_busy(pool), 2);
	assert_true(pipe_pool_take(pool, &e[3]));
	assert_int_equal(e[3].rd, e[1].rd); /* the same pipe, lent again */
	assert_int_equal(open_fds(), before + 6); /* nothing made on demand */
	pipe_pool_free(pool);                     /* lent ones too */
	assert_int_equal(open_fds(), before);
}

static void
test_given_back_empty(void **state)
{
	struct pipe_pool *pool = pipe_pool_new(1, PIPE_BYTES);
	struct pipe_ends e, again;
	static char big[100000];
	char c;

	(void)state;
	assert_true(pipe_pool_take(pool, &e));
	/* Non-blocking both ends: an empty pipe says EAGAIN. */
	assert_int_equal(read(e.rd, &c, 1), -1);
	assert_int_equal(errno, EAGAIN);
	memset(big, 'x', sizeof(big));
	assert_int_equal(write(e.wr, big, sizeof(big)), (ssize_t)sizeof(big));
	pipe_pool_put(pool, e, sizeof(big));
	assert_true(pipe_pool_take(pool, &again));
	assert_int_equal(again.rd, e.rd);
	assert_int_equal(read(again.rd, &c, 1), -1); /* no byte of the last */
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(pipe_pool_count(pool), 1);
	pipe_pool_free(pool);
}

static void
test_size(void **state)
{
	struct pipe_pool *pool = pipe_pool_new(1, PIPE_BYTES);
	struct pipe_ends e;

	(void)state;
	assert_true(pipe_pool_take(pool, &e));
	/* One transfer fits; the kernel may refuse past the user's quota, and
	 * the pipe then keeps its default size. */
	int size = fcntl(e.rd, F_GETPIPE_SZ);
	assert_true(size == PIPE_BYTES || size == 65536);
	pipe_pool_free(pool);
}

static void
test_empty_pool(void **state)
{
	struct pipe_pool *pool = pipe_pool_new(0, PIPE_BYTES);
	struct pipe_ends e;

	(void)state;
	assert_non_null(pool);
	assert_int_equal(pipe_pool_count(pool), 0);
	assert_false(pipe_pool_take(pool, &e));
	assert_false(pipe_pool_take(NULL, &e));
	assert_int_equal(pipe_pool_busy(NULL), 0);
	pipe_pool_free(pool);
	pipe_pool_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bound),
	    cmocka_unit_test(test_given_back_empty),
	    cmocka_unit_test(test_size),
	    cmocka_unit_test(test_empty_pool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
