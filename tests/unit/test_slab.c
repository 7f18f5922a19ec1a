/* Unit tests for src/slab.c: the bound, zeroed objects side by side,
 * reuse of the one given back, pages untouched until used, and the
 * memory it states. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "slab.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct obj {
	uint64_t a, b;
	char name[24];
};

static void
test_bound_and_zeroed(void **state)
{
	struct slab *s = slab_new(sizeof(struct obj), 3);
	struct obj *o[3];

	(void)state;
	assert_non_null(s);
	for (int i = 0; i < 3; i++) {
		o[i] = slab_alloc(s);
		assert_non_null(o[i]);
		assert_int_equal((uintptr_t)o[i] % _Alignof(struct obj), 0);
		assert_true(o[i]->a == 0 && o[i]->b == 0 && o[i]->name[0] == 0);
		memset(o[i], 0xa5, sizeof(*o[i]));
	}
	/* Side by side: no header between two objects. */
	assert_ptr_equal(o[1], o[0] + 1);
	assert_ptr_equal(o[2], o[1] + 1);
	assert_int_equal(slab_in_use(s), 3);
	assert_null(slab_alloc(s)); /* never a fourth */
	slab_free(s, o[1]);
	assert_int_equal(slab_in_use(s), 2);
	struct obj *again = slab_alloc(s);
	assert_ptr_equal(again, o[1]);               /* the one given back, */
	assert_true(again->a == 0 && again->b == 0); /* zeroed again */
	for (size_t i = 0; i < sizeof(again->name); i++)
		assert_int_equal(again->name[i], 0);
	assert_int_equal(o[0]->a, 0xa5a5a5a5a5a5a5a5ULL); /* neighbours kept */
	assert_int_equal(o[2]->b, 0xa5a5a5a5a5a5a5a5ULL);
	slab_free(s, NULL);
	assert_int_equal(slab_in_use(s), 3);
	slab_destroy(s); /* objects in use too */
	slab_destroy(NULL);
}

/* Every object given back is handed out again before a new one. */
static void
test_reuse_before_fresh(void **state)
{
	struct slab *s = slab_new(sizeof(struct obj), 100);
	struct obj *o[100];

	(void)state;
	for (int i = 0; i < 10; i++)
		o[i] = slab_alloc(s);
	for (int i = 0; i < 10; i += 2)
		slab_free(s, o[i]);
	for (int i = 0; i < 5; i++) {
		struct obj *x = slab_alloc(s);
		assert_true(x >= o[0] && x <= o[9]);
		assert_int_equal((x - o[0]) % 2, 0);
	}
	assert_ptr_equal(slab_alloc(s), o[9] + 1);
	assert_int_equal(slab_in_use(s), 11);
	slab_destroy(s);
}

/* Room for 10,000 costs memory only where objects were used. */
static void
test_untouched_until_used(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	struct slab *s = slab_new(sizeof(struct obj), 10000);
	struct obj *first = slab_alloc(s);
	uintptr_t start = (uintptr_t)first & ~(uintptr_t)(page - 1);
	unsigned char resident[64];

	(void)state;
	assert_non_null(first);
	/* The 64 pages after the first object's: mapped, none resident. */
	assert_int_equal(
	    mincore((void *)(start + (uintptr_t)page), 64 * page, resident), 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(resident[i] & 1, 0);
	assert_int_equal(mincore((void *)start, page, resident), 0);
	assert_int_equal(resident[0] & 1, 1);
	slab_destroy(s);
}

static void
test_bytes_and_limits(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	struct slab *s;

	(void)state;
	/* The objects, page-rounded, and the bookkeeping: a true bound. */
	assert_true(slab_bytes(sizeof(struct obj), 10000) >=
	            10000 * sizeof(struct obj));
	assert_true(slab_bytes(sizeof(struct obj), 10000) <=
	            10000 * sizeof(struct obj) + (unsigned long long)page +
	                256);
	assert_null(slab_new(sizeof(struct obj), SIZE_MAX / 8));
	s = slab_new(sizeof(struct obj), 0);
	assert_non_null(s);
	assert_null(slab_alloc(s));
	slab_destroy(s);
	/* Smaller than the free list's link: still one object each. */
	s = slab_new(1, 2);
	char *a = slab_alloc(s), *b = slab_alloc(s);
	assert_non_null(a);
	assert_non_null(b);
	assert_null(slab_alloc(s));
	slab_free(s, a);
	slab_free(s, b);
	assert_ptr_equal(slab_alloc(s), b);
	assert_ptr_equal(slab_alloc(s), a);
	slab_destroy(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bound_and_zeroed),
	    cmocka_unit_test(test_reuse_before_fresh),
	    cmocka_unit_test(test_untouched_until_used),
	    cmocka_unit_test(test_bytes_and_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
