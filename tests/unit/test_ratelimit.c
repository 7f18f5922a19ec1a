/* Unit tests for src/ratelimit.c: token buckets and the per-source table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "addr.h"
#include "ratelimit.h"
#include "siphash.h"

#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#define HOUR_MS UINT64_C(3600000)

/* What an owner keeps in an entry (ratelimit.h): here, the UDP guard's
 * kind of state. */
struct test_state {
	struct bucket packets, bytes;
	uint32_t logged;
};
#define STATE sizeof(struct test_state)

static const uint8_t secret_a[SIPHASH_KEY_LEN] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};
static const uint8_t secret_b[SIPHASH_KEY_LEN] = {
    0xf0, 0x0d, 0xca, 0xfe, 0xde, 0xad, 0xbe, 0xef,
    0x13, 0x37, 0x42, 0x42, 0x99, 0x01, 0x77, 0x5a,
};

/* 198.18.x.y style test keys: 198.18/15 is the benchmarking range. */
static struct ipaddr
v4key(uint32_t n)
{
	struct ipaddr a;

	memset(&a, 0, sizeof(a));
	a.family = AF_INET;
	a.bytes[0] = (uint8_t)(n >> 24);
	a.bytes[1] = (uint8_t)(n >> 16);
	a.bytes[2] = (uint8_t)(n >> 8);
	a.bytes[3] = (uint8_t)n;
	return a;
}

static struct ipaddr
parsed(const char *s)
{
	struct ipaddr a;

	if (parse_ipaddr(s, &a) != 0)
		fail_msg("parse_ipaddr(\"%s\") failed", s);
	return a;
}

/* Take one token at a time until refused; the count taken. */
static uint64_t
drain(struct bucket *b, const struct bucket_cfg *cfg, uint64_t now)
{
	uint64_t n = 0;

	while (bucket_take(b, cfg, now, 1)) {
		n++;
		if (n > 1000000)
			fail_msg("bucket never runs dry");
	}
	return n;
}

static void
test_bucket_starts_full(void **state)
{
	struct bucket_cfg cfg = {100, 1000, 10};
	struct bucket b;

	(void)state;
	bucket_init(&b, &cfg, 5000);
	assert_true(bucket_level(&b, &cfg, 5000) == 10);
	assert_true(b.millitokens == 10000);
}

static void
test_bucket_drains_then_refuses(void **state)
{
	struct bucket_cfg cfg = {100, 1000, 10};
	struct bucket b;

	(void)state;
	bucket_init(&b, &cfg, 0);
	assert_true(drain(&b, &cfg, 0) == 10);
	assert_false(bucket_take(&b, &cfg, 0, 1));
	assert_true(bucket_level(&b, &cfg, 0) == 0);
	/* Taking zero tokens is always possible. */
	assert_true(bucket_take(&b, &cfg, 0, 0));
}

static void
test_bucket_take_many(void **state)
{
	struct bucket_cfg cfg = {100, 1000, 10};
	struct bucket b;

	(void)state;
	bucket_init(&b, &cfg, 0);
	assert_true(bucket_take(&b, &cfg, 0, 7));
	assert_false(bucket_take(&b, &cfg, 0, 4));
	assert_true(bucket_take(&b, &cfg, 0, 3));
	assert_true(bucket_level(&b, &cfg, 0) == 0);
}

/* 100/s is one token every 10 ms, exactly. */
static void
test_bucket_refill_exact(void **state)
{
	struct bucket_cfg cfg = {100, 1000, 10};
	struct bucket b;

	(void)state;
	bucket_init(&b, &cfg, 1000);
	drain(&b, &cfg, 1000);
	assert_true(bucket_level(&b, &cfg, 1009) == 0);
	assert_true(bucket_level(&b, &cfg, 1010) == 1);
	assert_true(bucket_take(&b, &cfg, 1010, 1));
	assert_false(bucket_take(&b, &cfg, 1010, 1));
	assert_true(bucket_level(&b, &cfg, 1050) == 4);
	assert_true(bucket_level(&b, &cfg, 1100) == 9);
	assert_true(bucket_level(&b, &cfg, 1110) == 10);
	assert_true(bucket_level(&b, &cfg, 1200) == 10);
}

/* 1 per hour: the token is there at 3600000 ms, not a millisecond before. */
static void
test_bucket_slow_rate(void **state)
{
	struct bucket_cfg cfg = {1, HOUR_MS, 1};
	struct bucket b1, b2;

	(void)state;
	bucket_init(&b1, &cfg, 0);
	assert_true(bucket_take(&b1, &cfg, 0, 1));
	b2 = b1;
	assert_false(bucket_take(&b1, &cfg, HOUR_MS - 1, 1));
	assert_true(bucket_take(&b1, &cfg, HOUR_MS, 1));
	assert_false(bucket_take(&b1, &cfg, HOUR_MS, 1));
	/* Untouched in between, the same edges hold. */
	assert_true(bucket_level(&b2, &cfg, HOUR_MS) == 1);
}

/*
 * A source that knocks every millisecond must still see the slow bucket
 * refill on time: fractions of a millitoken are not lost between calls.
 */
static void
test_bucket_polled_often(void **state)
{
	struct bucket_cfg slow = {1, 60000, 1}, odd = {3, 7, 10000};
	struct bucket b;
	uint64_t t;

	(void)state;
	bucket_init(&b, &slow, 0);
	assert_true(bucket_take(&b, &slow, 0, 1));
	for (t = 1; t < 60000; t++)
		assert_false(bucket_take(&b, &slow, t, 1));
	assert_true(bucket_take(&b, &slow, 60000, 1));

	/*
	 * 3 tokens per 7 ms has no whole-ms quantum of at most one token:
	 * refills come every 3 ms and lose under 0.1%.
	 */
	bucket_init(&b, &odd, 0);
	drain(&b, &odd, 0);
	assert_true(bucket_level(&b, &odd, 2) == 0);
	assert_true(bucket_level(&b, &odd, 3) == 1);
	for (t = 4; t < 7000; t++)
		assert_true(bucket_level(&b, &odd, t) <= (3 * t) / 7);
	t = bucket_level(&b, &odd, 7000);
	assert_true(t >= 2996 && t <= 3000);
}

static void
test_bucket_clock_backwards(void **state)
{
	struct bucket_cfg cfg = {100, 1000, 10};
	struct bucket b;

	(void)state;
	bucket_init(&b, &cfg, 1000000);
	drain(&b, &cfg, 1000000);
	/* Backwards: nothing is minted, and the new time is the reference. */
	assert_true(bucket_level(&b, &cfg, 500) == 0);
	assert_true(b.last_ms == 500);
	assert_false(bucket_take(&b, &cfg, 0, 1));
	assert_true(b.last_ms == 0);
	/* Forward again from 0, not from 1000000. */
	assert_true(bucket_level(&b, &cfg, 9) == 0);
	assert_true(bucket_level(&b, &cfg, 10) == 1);
	assert_true(bucket_level(&b, &cfg, 100) == 10);
}

static void
test_bucket_huge_jump(void **state)
{
	struct bucket_cfg cfg = {100, 1000, 10};
	struct bucket_cfg big = {UINT64_MAX, 1, UINT64_MAX};
	struct bucket_cfg slow = {1, UINT64_MAX, 5};
	struct bucket b;

	(void)state;
	bucket_init(&b, &cfg, 0);
	drain(&b, &cfg, 0);
	assert_true(bucket_level(&b, &cfg, UINT64_MAX / 2) == 10);
	assert_true(b.millitokens == 10000);
	drain(&b, &cfg, UINT64_MAX / 2);
	assert_true(bucket_level(&b, &cfg, UINT64_MAX) == 10);

	/* Extreme configurations: no overflow, capped at the saturated burst.
	 */
	bucket_init(&b, &big, 0);
	assert_true(bucket_take(&b, &big, 0, UINT64_MAX / 1000));
	assert_true(bucket_level(&b, &big, 0) == 0);
	assert_true(bucket_level(&b, &big, 1) == UINT64_MAX / 1000);
	assert_true(bucket_level(&b, &big, UINT64_MAX) == UINT64_MAX / 1000);

	bucket_init(&b, &slow, 0);
	drain(&b, &slow, 0);
	assert_true(bucket_level(&b, &slow, UINT64_MAX - 1) == 0);
	assert_true(bucket_level(&b, &slow, UINT64_MAX) == 1);
}

/* Idle time while full is not banked: the level never passes burst. */
static void
test_bucket_never_above_burst(void **state)
{
	struct bucket_cfg cfg = {100, 1000, 10};
	struct bucket b;
	uint64_t t;

	(void)state;
	bucket_init(&b, &cfg, 0);
	for (t = 0; t <= 100000; t += 997) {
		assert_true(bucket_level(&b, &cfg, t) == 10);
		assert_true(b.millitokens <= 10000);
	}
	assert_true(drain(&b, &cfg, 200000) == 10);
}

static void
test_bucket_unlimited(void **state)
{
	struct bucket_cfg cfg = {0, 1000, 0};
	struct bucket b;

	(void)state;
	bucket_init(&b, &cfg, 0);
	for (int i = 0; i < 1000; i++)
		assert_true(bucket_take(&b, &cfg, 0, 1000000));
	assert_true(bucket_take(&b, &cfg, 0, UINT64_MAX));
	assert_true(bucket_level(&b, &cfg, 0) == UINT64_MAX);
}

static void
test_bucket_take_above_burst(void **state)
{
	struct bucket_cfg cfg = {100, 1000, 10};
	struct bucket b;

	(void)state;
	bucket_init(&b, &cfg, 0);
	assert_false(bucket_take(&b, &cfg, 0, 11));
	assert_false(bucket_take(&b, &cfg, 0, UINT64_MAX));
	assert_false(bucket_take(&b, &cfg, UINT64_MAX / 2, 11));
	assert_false(bucket_take(&b, &cfg, UINT64_MAX, UINT64_MAX / 1000 + 1));
	/* Refusals took nothing. */
	assert_true(bucket_level(&b, &cfg, UINT64_MAX) == 10);
}

/* burst 0 means one period's worth (burst = rate); period 0 is 1 ms. */
static void
test_bucket_defaults(void **state)
{
	struct bucket_cfg cfg = {5, 1000, 0}, fast = {2, 0, 4};
	struct bucket b;

	(void)state;
	bucket_init(&b, &cfg, 0);
	assert_true(bucket_level(&b, &cfg, 0) == 5);
	assert_true(drain(&b, &cfg, 0) == 5);
	assert_true(bucket_level(&b, &cfg, 200) == 1);

	bucket_init(&b, &fast, 0);
	assert_true(drain(&b, &fast, 0) == 4);
	assert_true(bucket_level(&b, &fast, 1) == 2);
}

static void
test_table_get_then_find(void **state)
{
	struct rate_table *t = rate_table_new(64, STATE, secret_a);
	struct ipaddr k = parsed("198.18.0.1"), other = parsed("198.18.0.2");
	struct test_state *e, *f;
	bool created = false, evicted = true;

	(void)state;
	assert_non_null(t);
	assert_null(rate_table_find(t, &k));

	e = rate_table_get(t, &k, 100, &created, &evicted);
	assert_non_null(e);
	assert_true(created);
	assert_false(evicted);
	assert_true(ipaddr_equal(rate_entry_key(e), &k));
	assert_true(rate_entry_last_seen(e) == 100);
	assert_true(rate_entry_pins(e) == 0 && e->logged == 0);

	e->logged = 3;
	f = rate_table_get(t, &k, 200, &created, &evicted);
	assert_ptr_equal(e, f);
	assert_false(created);
	assert_false(evicted);
	assert_true(f->logged == 3);
	assert_true(rate_entry_last_seen(f) == 200);

	/* find leaves last_seen alone. */
	assert_ptr_equal(rate_table_find(t, &k), e);
	assert_true(rate_entry_last_seen(e) == 200);
	assert_null(rate_table_find(t, &other));

	/* The flags are optional. */
	assert_ptr_equal(rate_table_get(t, &k, 300, NULL, NULL), e);
	rate_table_free(t);
}

static void
test_table_evicts_least_recent(void **state)
{
	struct rate_table *t = rate_table_new(8, STATE, secret_a);
	struct ipaddr k[9];
	struct test_state *e;
	bool created, evicted;
	uint32_t i;

	(void)state;
	assert_non_null(t);
	assert_true(rate_table_slots(t) == 8);
	for (i = 0; i < 9; i++)
		k[i] = v4key(0xc6120000u + i);

	for (i = 0; i < 8; i++) {
		e = rate_table_get(t, &k[i], 10 + i, &created, &evicted);
		assert_non_null(e);
		assert_true(created);
		assert_false(evicted);
	}
	/* Touch k[0]: k[1] becomes the least recently seen. */
	assert_non_null(rate_table_get(t, &k[0], 100, &created, &evicted));
	assert_false(created);
	/* find does not count as seeing: k[1] stays the oldest. */
	assert_non_null(rate_table_find(t, &k[1]));

	e = rate_table_get(t, &k[8], 101, &created, &evicted);
	assert_non_null(e);
	assert_true(created);
	assert_true(evicted);
	assert_true(ipaddr_equal(rate_entry_key(e), &k[8]));
	assert_true(rate_entry_last_seen(e) == 101);
	assert_null(rate_table_find(t, &k[1]));
	for (i = 0; i < 9; i++)
		if (i != 1)
			assert_non_null(rate_table_find(t, &k[i]));
	rate_table_free(t);
}

/* An evicted slot comes back zeroed, not with the old source's state. */
static void
test_table_new_entry_zeroed(void **state)
{
	struct rate_table *t = rate_table_new(8, STATE, secret_a);
	struct test_state *e;
	struct ipaddr k;
	uint32_t i;

	(void)state;
	assert_non_null(t);
	for (i = 0; i < 8; i++) {
		k = v4key(0x0a000000u + i);
		e = rate_table_get(t, &k, i, NULL, NULL);
		assert_non_null(e);
		memset(&e->packets, 0xa5, sizeof(e->packets));
		memset(&e->bytes, 0x5a, sizeof(e->bytes));
		e->logged = 9;
	}
	k = v4key(0x0a0000ffu);
	e = rate_table_get(t, &k, 100, NULL, NULL);
	assert_non_null(e);
	assert_true(e->packets.millitokens == 0 && e->packets.last_ms == 0);
	assert_true(e->bytes.millitokens == 0 && e->bytes.last_ms == 0);
	assert_true(e->logged == 0 && rate_entry_pins(e) == 0);
	rate_table_free(t);
}

static void
test_table_pinned(void **state)
{
	struct rate_table *t = rate_table_new(8, STATE, secret_a);
	struct test_state *e[8], *n;
	struct ipaddr k, extra = v4key(0xc6120100u);
	bool created = true, evicted = true;
	uint32_t i;

	(void)state;
	assert_non_null(t);
	for (i = 0; i < 8; i++) {
		k = v4key(0xc6120000u + i);
		e[i] = rate_table_get(t, &k, 10 + i, NULL, NULL);
		assert_non_null(e[i]);
		rate_entry_pin(e[i]);
		assert_true(rate_entry_pins(e[i]) == 1);
	}
	/* Only the newest is unpinned: it goes, though others are older. */
	rate_entry_unpin(e[7]);
	assert_true(rate_entry_pins(e[7]) == 0);
	n = rate_table_get(t, &extra, 50, &created, &evicted);
	assert_ptr_equal(n, e[7]);
	assert_true(created && evicted);
	assert_null(rate_table_find(t, &(struct ipaddr){0}));
	k = v4key(0xc6120007u);
	assert_null(rate_table_find(t, &k));

	/* All pinned: a new source is refused, the old ones stay. */
	rate_entry_pin(n);
	rate_entry_pin(n);
	assert_true(rate_entry_pins(n) == 2);
	k = v4key(0xc6120200u);
	assert_null(rate_table_get(t, &k, 60, &created, &evicted));
	assert_false(created);
	assert_false(evicted);
	for (i = 0; i < 7; i++) {
		k = v4key(0xc6120000u + i);
		assert_ptr_equal(rate_table_find(t, &k), e[i]);
	}
	/* Known sources are still found by get. */
	assert_ptr_equal(rate_table_get(t, &extra, 61, &created, &evicted), n);
	assert_false(created);
	rate_table_free(t);
}

static void
test_table_rounding(void **state)
{
	static const size_t want[][2] = {
	    {0, 8}, {1, 8}, {7, 8}, {8, 8}, {9, 16}, {100, 104}, {4096, 4096},
	};
	struct rate_table *t;

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		t = rate_table_new(want[i][0], STATE, secret_a);
		assert_non_null(t);
		assert_true(rate_table_slots(t) == want[i][1]);
		assert_true(rate_table_bytes(t) >=
		            want[i][1] * rate_table_slot_bytes(STATE));
		assert_true(rate_table_bytes(t) <
		            want[i][1] * rate_table_slot_bytes(STATE) + 256);
		assert_true(rate_table_bytes(t) ==
		            rate_table_bytes_for(want[i][0], STATE));
		rate_table_free(t);
	}
}

static void
test_table_memory_constant(void **state)
{
	struct rate_table *t = rate_table_new(100, STATE, secret_a);
	size_t bytes, slots;
	struct ipaddr k;

	(void)state;
	assert_non_null(t);
	bytes = rate_table_bytes(t);
	slots = rate_table_slots(t);
	assert_true(slots == 104);
	for (uint32_t i = 0; i < 100000; i++) {
		k = v4key(i);
		assert_non_null(rate_table_get(t, &k, i, NULL, NULL));
	}
	assert_true(rate_table_bytes(t) == bytes);
	assert_true(rate_table_slots(t) == slots);
	rate_table_free(t);
}

static void
test_table_random_keys(void **state)
{
	struct rate_table *t = rate_table_new(4096, STATE, secret_b);
	struct test_state *e;
	size_t found = 0;
	struct ipaddr k;
	uint32_t i, n;

	(void)state;
	assert_non_null(t);
	assert_true(rate_table_slots(t) == 4096);
	for (i = 0; i < 100000; i++) {
		/* An odd multiplier is a bijection: distinct scattered keys. */
		n = i * 2654435761u + 0x9e3779b9u;
		k = v4key(n);
		e = rate_table_get(t, &k, i, NULL, NULL);
		assert_non_null(e);
		assert_true(ipaddr_equal(rate_entry_key(e), &k));
	}
	/* Every slot ends up used by exactly the key it says it holds. */
	for (i = 100000 - 4096; i < 100000; i++) {
		k = v4key(i * 2654435761u + 0x9e3779b9u);
		e = rate_table_find(t, &k);
		if (e != NULL) {
			assert_true(ipaddr_equal(rate_entry_key(e), &k));
			found++;
		}
	}
	/* The newest keys mostly survive; a poor hash would lose many. */
	assert_true(found > 4096 / 2);
	rate_table_free(t);
}

/* The family is part of the key: 1.2.3.4 is not 0102:0304::. */
static void
test_table_family_distinct(void **state)
{
	struct rate_table *t = rate_table_new(64, STATE, secret_a);
	struct ipaddr v4 = v4key(0x01020304u), v6 = v4;
	struct test_state *e4, *e6;
	bool created;

	(void)state;
	assert_non_null(t);
	v6.family = AF_INET6;
	e4 = rate_table_get(t, &v4, 1, &created, NULL);
	assert_non_null(e4);
	assert_true(created);
	e6 = rate_table_get(t, &v6, 2, &created, NULL);
	assert_non_null(e6);
	assert_true(created);
	assert_ptr_not_equal(e4, e6);
	assert_ptr_equal(rate_table_find(t, &v4), e4);
	assert_ptr_equal(rate_table_find(t, &v6), e6);
	assert_true(rate_entry_key(e4)->family == AF_INET);
	assert_true(rate_entry_key(e6)->family == AF_INET6);
	rate_table_free(t);
}

/*
 * Feed the same 64 keys to two 8-set tables in the same order; which get
 * evicts and which keys survive depends only on the set assignment, so
 * tables with different secrets must not behave identically. A weak check,
 * but deterministic for fixed secrets.
 */
static void
test_table_secret_matters(void **state)
{
	struct rate_table *ta = rate_table_new(64, STATE, secret_a);
	struct rate_table *tb = rate_table_new(64, STATE, secret_b);
	struct rate_table *ta2 = rate_table_new(64, STATE, secret_a);
	uint64_t ev_a = 0, ev_b = 0, ev_a2 = 0, in_a = 0, in_b = 0;
	struct ipaddr k;
	bool ev;
	uint32_t i;

	(void)state;
	assert_non_null(ta);
	assert_non_null(tb);
	assert_non_null(ta2);
	for (i = 0; i < 64; i++) {
		k = v4key(0xc6120000u + i);
		assert_non_null(rate_table_get(ta, &k, i, NULL, &ev));
		ev_a |= (uint64_t)ev << i;
		assert_non_null(rate_table_get(tb, &k, i, NULL, &ev));
		ev_b |= (uint64_t)ev << i;
		assert_non_null(rate_table_get(ta2, &k, i, NULL, &ev));
		ev_a2 |= (uint64_t)ev << i;
	}
	for (i = 0; i < 64; i++) {
		k = v4key(0xc6120000u + i);
		in_a |= (uint64_t)(rate_table_find(ta, &k) != NULL) << i;
		in_b |= (uint64_t)(rate_table_find(tb, &k) != NULL) << i;
	}
	/* The same secret is deterministic... */
	assert_true(ev_a == ev_a2);
	/* ...64 keys in 8 sets of 8 nearly always overflow a set... */
	assert_true(ev_a != 0 && ev_b != 0);
	/* ...and another secret spreads them differently. */
	assert_true(ev_a != ev_b || in_a != in_b);
	rate_table_free(ta);
	rate_table_free(tb);
	rate_table_free(ta2);
}

/* The loop table: a key picks its set by its top bits (key * sets / 2^64):
 * 9 keys below 2^61 share the first of the 8 sets of 64 slots, and the
 * 9th evicts the least recently seen, not the oldest; another set is left
 * alone. An entry keeps its state; a new one starts zeroed. */
static void
test_loop_table_sets(void **state)
{
	struct loop_table *t = loop_table_new(64);
	struct loop_entry *e;
	const uint64_t set1 = UINT64_C(1) << 61; /* the second set's first */
	size_t bytes;

	(void)state;
	assert_non_null(t);
	assert_int_equal(loop_table_slots(t), 64);
	bytes = loop_table_bytes(t);
	assert_int_equal(bytes, loop_table_bytes_for(64));
	assert_null(loop_table_find(t, 0));
	for (uint64_t i = 0; i < 8; i++) {
		e = loop_table_get(t, i * 8, 10 + i);
		assert_true(e->repeats == 0 && e->first_ms == 0 &&
		            e->suppressed_until == 0);
		e->repeats = (uint32_t)i + 1;
		e->suppressed_until = 1000 + i;
	}
	assert_non_null(loop_table_get(t, set1, 20));
	/* Seen again: key 0 is now more recent than key 8. */
	e = loop_table_get(t, 0, 30);
	assert_true(e->repeats == 1 && e->suppressed_until == 1000);
	e = loop_table_get(t, 64, 40); /* the 9th of set 0 */
	assert_true(e->repeats == 0 && e->suppressed_until == 0);
	assert_null(loop_table_find(t, 8));
	for (uint64_t i = 0; i < 8; i++)
		if (i != 1)
			assert_non_null(loop_table_find(t, i * 8));
	assert_non_null(loop_table_find(t, set1));
	assert_null(loop_table_find(t, 1));
	assert_int_equal(loop_table_find(t, 16)->repeats, 3);
	assert_int_equal(loop_table_bytes(t), bytes);
	loop_table_free(t);
	loop_table_free(NULL);
}

/* A full set evicts its least recently seen slot wherever it is, and of
 * equally old slots the first: each slot in turn made the oldest, alone
 * or tied with a later slot (the earlier goes) or with every slot. Keys
 * from UINT64_MAX down: the last set, the top of the multiply-shift. */
static void
test_loop_table_lru(void **state)
{
	(void)state;
	for (int old = 0; old < 8; old++) {
		for (int tie = -1; tie < 9; tie++) {
			struct loop_table *t = loop_table_new(64);
			int first = tie >= 0 && tie < old ? tie : old;

			assert_non_null(t);
			for (int w = 0; w < 8; w++) {
				uint64_t seen = w == old || w == tie ? 5 : 9;

				if (tie == 8) /* every slot equally old */
					seen = 5;
				loop_table_get(t, UINT64_MAX - (uint64_t)w,
				               seen);
			}
			if (tie == 8)
				first = 0;
			loop_table_get(t, UINT64_MAX - 8, 20);
			for (int w = 0; w < 8; w++) {
				struct loop_entry *e = loop_table_find(
				    t, UINT64_MAX - (uint64_t)w);

				if (w == first)
					assert_null(e);
				else
					assert_non_null(e);
			}
			assert_non_null(loop_table_find(t, UINT64_MAX - 8));
			loop_table_free(t);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bucket_starts_full),
	    cmocka_unit_test(test_bucket_drains_then_refuses),
	    cmocka_unit_test(test_bucket_take_many),
	    cmocka_unit_test(test_bucket_refill_exact),
	    cmocka_unit_test(test_bucket_slow_rate),
	    cmocka_unit_test(test_bucket_polled_often),
	    cmocka_unit_test(test_bucket_clock_backwards),
	    cmocka_unit_test(test_bucket_huge_jump),
	    cmocka_unit_test(test_bucket_never_above_burst),
	    cmocka_unit_test(test_bucket_unlimited),
	    cmocka_unit_test(test_bucket_take_above_burst),
	    cmocka_unit_test(test_bucket_defaults),
	    cmocka_unit_test(test_table_get_then_find),
	    cmocka_unit_test(test_table_evicts_least_recent),
	    cmocka_unit_test(test_table_new_entry_zeroed),
	    cmocka_unit_test(test_table_pinned),
	    cmocka_unit_test(test_table_rounding),
	    cmocka_unit_test(test_table_memory_constant),
	    cmocka_unit_test(test_table_random_keys),
	    cmocka_unit_test(test_table_family_distinct),
	    cmocka_unit_test(test_loop_table_sets),
	    cmocka_unit_test(test_loop_table_lru),
	    cmocka_unit_test(test_table_secret_matters),
	};

	return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
