/*
 * fuzz_ratelimit: the per-source table and the token buckets of
 * src/ratelimit.c, driven by a sequence of operations.
 *
 * Input: two bytes give the table size (8 + n % 4089 slots), then ops; each
 * op byte is (op % 10) with its operands after it:
 *   0 get KEY       rate_table_get                     (key: see take_key)
 *   1 find KEY      rate_table_find
 *   2 pin KEY       rate_entry_pin (shadow count kept)
 *   3 unpin KEY     rate_entry_unpin (never below zero)
 *   4 take B N      bucket_take(bucket B % 4, n: one byte, or 8 if 0xff)
 *   5 level B       bucket_level
 *   6 fwd S         clock forward (S ms, S*997 ms, or 2^k ms)
 *   7 back S        clock backward (never below zero)
 *   8 cfg B R P U   reconfigure bucket B and restart it full (bucket_init)
 *   9 get-many K    get K other keys (pressure on pinned entries)
 *
 * The owner's state in each entry is 1 + slots % 120 bytes: a new entry's
 * is zero, and the owner fills it.
 *
 * Invariants: rate_table_bytes and rate_table_slots never change; an entry
 * from get has the requested key, is the same entry find returns, and is
 * found again by find; get returns NULL only when at least a set's worth
 * (8) of entries is pinned; a pinned entry is never evicted (find still
 * returns it, with its pin count, after any number of other gets); a
 * bucket's level never exceeds its burst (rate > 0); a take succeeds iff
 * n <= level just before (and then lowers the level by exactly n); over a
 * bucket's life, tokens taken <= burst + rate * (forward clock time seen by
 * this bucket) / period, the clock may go backwards.
 */
#include "addr.h"
#include "ratelimit.h"

#include "fuzz.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

#define NBUCKETS  4
#define MAX_PINS  64
#define MAX_OPS   4096
#define RATE_WAYS 8 /* ratelimit.c's set size */

struct pin {
	struct ipaddr key;
	uint32_t count;
	void *entry;
};

struct model_bucket {
	struct bucket b;
	struct bucket_cfg cfg;
	uint64_t last_now; /* now at the last call on this bucket */
	u128 forward;      /* forward clock ms this bucket has seen */
	u128 taken;        /* tokens taken since bucket_init */
};

static struct pin pins[MAX_PINS];
static size_t npins;
static struct model_bucket buckets[NBUCKETS];

static const uint8_t secret[SIPHASH_KEY_LEN] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};

static bool
take_byte(const uint8_t **p, size_t *left, uint8_t *out)
{
	if (*left < 1)
		return false;
	*out = **p;
	(*p)++;
	(*left)--;
	return true;
}

static bool
take_u64(const uint8_t **p, size_t *left, uint64_t *out)
{
	if (*left < 8)
		return false;
	memcpy(out, *p, 8);
	*p += 8;
	*left -= 8;
	return true;
}

/*
 * A key: one byte k. k < 0x80: 10.0.0.(k & 0x3f) or 2001:db8::(k & 0x3f)
 * by bit 6, a small set of keys that collide in sets; k == 0x80: raw 4
 * bytes follow; k == 0x81: raw 16; else a v4 or v6 key derived from k.
 */
static bool
take_key(const uint8_t **p, size_t *left, struct ipaddr *key)
{
	uint8_t k;

	if (!take_byte(p, left, &k))
		return false;
	memset(key, 0, sizeof(*key));
	if (k == 0x80 || k == 0x81) {
		size_t n = k == 0x80 ? 4 : 16;
		if (*left < n)
			return false;
		key->family = n == 4 ? AF_INET : AF_INET6;
		memcpy(key->bytes, *p, n);
		*p += n;
		*left -= n;
		return true;
	}
	if (k & 0x40) {
		key->family = AF_INET6;
		key->bytes[0] = 0x20;
		key->bytes[1] = 0x01;
		key->bytes[2] = 0x0d;
		key->bytes[3] = 0xb8;
		key->bytes[15] = k & 0x3f;
		key->bytes[14] = k & 0x80;
	} else {
		key->family = AF_INET;
		key->bytes[0] = 10;
		key->bytes[2] = k & 0x80;
		key->bytes[3] = k & 0x3f;
	}
	return true;
}

static struct pin *
pin_of(const struct ipaddr *key)
{
	for (size_t i = 0; i < npins; i++)
		if (ipaddr_equal(&pins[i].key, key))
			return &pins[i];
	return NULL;
}

static size_t
pinned_entries(void)
{
	size_t n = 0;

	for (size_t i = 0; i < npins; i++)
		n += pins[i].count > 0;
	return n;
}

/* Every pinned key is still in the table, in the same slot. */
static void
check_pins(struct rate_table *t)
{
	for (size_t i = 0; i < npins; i++) {
		void *e;
		if (pins[i].count == 0)
			continue;
		e = rate_table_find(t, &pins[i].key);
		CHECK(e != NULL);
		CHECK(e == pins[i].entry);
		CHECK(rate_entry_pins(e) == pins[i].count);
		CHECK(ipaddr_equal(rate_entry_key(e), &pins[i].key));
	}
}

static uint64_t
cap_tokens(const struct bucket_cfg *c)
{
	uint64_t burst = c->burst ? c->burst : c->rate;

	return burst > UINT64_MAX / 1000 ? UINT64_MAX / 1000 : burst;
}

/* Account the clock for one call on bucket mb, as the bucket sees it. */
static void
note_call(struct model_bucket *mb, uint64_t now)
{
	if (now > mb->last_now)
		mb->forward += now - mb->last_now;
	mb->last_now = now;
}

static void
check_bucket_budget(const struct model_bucket *mb)
{
	const struct bucket_cfg *c = &mb->cfg;
	uint64_t period = c->period_ms ? c->period_ms : 1;
	u128 lhs, rhs;

	if (c->rate == 0)
		return;
	/* taken * period <= cap * period + rate * forward, saturated. */
	lhs = mb->taken * period;
	rhs = (u128)cap_tokens(c) * period;
	if (mb->forward > 0 &&
	    (u128)c->rate > ((u128)0 - 1 - rhs) / mb->forward)
		return; /* bound beyond 2^128: nothing to check */
	rhs += (u128)c->rate * mb->forward;
	if (mb->taken >= ((u128)1 << 64))
		CHECK(0 && "taken overflowed 64 bits");
	CHECK(lhs / period == mb->taken); /* no wrap in lhs */
	CHECK(lhs <= rhs);
}

static uint64_t
pick_value(uint8_t sel, const uint8_t **p, size_t *left)
{
	static const uint64_t special[] = {0,
	                                   1,
	                                   2,
	                                   3,
	                                   7,
	                                   10,
	                                   100,
	                                   999,
	                                   1000,
	                                   1001,
	                                   60000,
	                                   3600000,
	                                   86400000,
	                                   UINT32_MAX,
	                                   (UINT64_C(1) << 48),
	                                   UINT64_MAX / 1000,
	                                   UINT64_MAX / 1000 + 1,
	                                   UINT64_MAX - 1,
	                                   UINT64_MAX};
	uint64_t v;

	if (sel < 0xf0)
		return special[sel % (sizeof(special) / sizeof(*special))];
	if (sel < 0xf8 || !take_u64(p, left, &v))
		return (uint64_t)(sel & 7) * 13 + 5;
	return v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rate_table *t;
	size_t slots, table_bytes, table_slots, left, state_size;
	const uint8_t *in;
	uint64_t now = 1000000;
	unsigned ops = 0;
	static bool primed;

	if (!primed) {
		/* Edge sizes, once: 0 slots is one set, absurd sizes fail. */
		primed = true;
		CHECK(rate_table_new(SIZE_MAX, 8, secret) == NULL);
		CHECK(rate_table_new(8, SIZE_MAX, secret) == NULL);
		t = rate_table_new(0, 0, secret);
		CHECK(t != NULL && rate_table_slots(t) == RATE_WAYS);
		rate_table_free(t);
		rate_table_free(NULL);
	}
	if (size < 2)
		return 0;
	slots = 8 + (size_t)((data[0] << 8 | data[1]) % 4089);
	in = data + 2;
	left = size - 2;
	state_size = 1 + slots % 120;
	t = rate_table_new(slots, state_size, secret);
	CHECK(t != NULL);
	table_bytes = rate_table_bytes(t);
	CHECK(table_bytes == rate_table_bytes_for(slots, state_size));
	table_slots = rate_table_slots(t);
	CHECK(table_slots >= slots && table_slots % RATE_WAYS == 0 &&
	      table_slots < slots + RATE_WAYS);
	CHECK(table_bytes >= table_slots * rate_table_slot_bytes(state_size));
	CHECK(rate_table_slot_bytes(state_size) >= state_size);

	npins = 0;
	for (int i = 0; i < NBUCKETS; i++) {
		struct model_bucket *mb = &buckets[i];
		memset(mb, 0, sizeof(*mb));
		mb->cfg = (struct bucket_cfg){
		    (uint64_t)(i + 1) * 3, i == 3 ? 7 : 1000,
		    i == 2 ? 0 : (uint64_t)(i + 1) * 5};
		bucket_init(&mb->b, &mb->cfg, now);
		mb->last_now = now;
	}

	while (left > 0 && ops++ < MAX_OPS) {
		uint8_t op, a = 0, b = 0;
		struct ipaddr key;
		unsigned char *e, *f;
		struct model_bucket *mb;
		struct pin *pn;
		bool created, evicted;

		take_byte(&in, &left, &op);
		switch (op % 10) {
		case 0: /* get */
		case 9: /* get many */
			if (op % 10 == 9 && !take_byte(&in, &left, &a))
				goto out;
			for (unsigned i = 0; i <= (op % 10 == 9 ? a : 0U);
			     i++) {
				if (op % 10 == 9) {
					memset(&key, 0, sizeof(key));
					key.family = AF_INET;
					key.bytes[0] = 172;
					key.bytes[1] = 16;
					key.bytes[2] = (uint8_t)(ops >> 4);
					key.bytes[3] = (uint8_t)i;
				} else if (!take_key(&in, &left, &key)) {
					goto out;
				}
				f = rate_table_find(t, &key);
				e = rate_table_get(t, &key, now, &created,
				                   &evicted);
				if (e == NULL) {
					CHECK(f == NULL);
					CHECK(pinned_entries() >= RATE_WAYS);
					continue;
				}
				CHECK(ipaddr_equal(rate_entry_key(e), &key));
				CHECK(rate_entry_last_seen(e) == now);
				CHECK(created == (f == NULL));
				/* A new entry's state starts zero; the owner
				 * then fills all of it. */
				for (size_t j = 0; created && j < state_size;
				     j++)
					CHECK(e[j] == 0);
				memset(e, 0xa5, state_size);
				if (f != NULL)
					CHECK(e == f && !evicted);
				if (evicted)
					CHECK(created);
				CHECK(rate_table_find(t, &key) == e);
				check_pins(t);
			}
			break;
		case 1: /* find */
			if (!take_key(&in, &left, &key))
				goto out;
			e = rate_table_find(t, &key);
			pn = pin_of(&key);
			if (pn != NULL && pn->count > 0)
				CHECK(e == pn->entry &&
				      rate_entry_pins(e) == pn->count);
			if (e != NULL)
				CHECK(ipaddr_equal(rate_entry_key(e), &key) &&
				      e[state_size - 1] == 0xa5);
			break;
		case 2: /* pin */
			if (!take_key(&in, &left, &key))
				goto out;
			e = rate_table_find(t, &key);
			if (e == NULL)
				break;
			pn = pin_of(&key);
			if (pn == NULL) {
				if (npins == MAX_PINS)
					break;
				pn = &pins[npins++];
				pn->key = key;
				pn->count = 0;
			}
			CHECK(rate_entry_pins(e) == pn->count);
			rate_entry_pin(e);
			pn->count++;
			pn->entry = e;
			break;
		case 3: /* unpin */
			if (!take_key(&in, &left, &key))
				goto out;
			pn = pin_of(&key);
			if (pn == NULL || pn->count == 0)
				break;
			e = rate_table_find(t, &key);
			CHECK(e != NULL && e == pn->entry);
			CHECK(rate_entry_pins(e) == pn->count);
			rate_entry_unpin(e);
			pn->count--;
			break;
		case 4: /* take */ {
			uint64_t n, before, after;
			bool ok;
			if (!take_byte(&in, &left, &a) ||
			    !take_byte(&in, &left, &b))
				goto out;
			mb = &buckets[a % NBUCKETS];
			if (b == 0xff) {
				if (!take_u64(&in, &left, &n))
					goto out;
			} else {
				n = b;
			}
			note_call(mb, now);
			before = bucket_level(&mb->b, &mb->cfg, now);
			ok = bucket_take(&mb->b, &mb->cfg, now, n);
			after = bucket_level(&mb->b, &mb->cfg, now);
			if (mb->cfg.rate == 0) {
				CHECK(ok && before == UINT64_MAX &&
				      after == UINT64_MAX);
				break;
			}
			CHECK(before <= cap_tokens(&mb->cfg));
			CHECK(ok == (n <= before));
			CHECK(after == (ok ? before - n : before));
			if (ok)
				mb->taken += n;
			check_bucket_budget(mb);
			break;
		}
		case 5: /* level */ {
			uint64_t lvl;
			if (!take_byte(&in, &left, &a))
				goto out;
			mb = &buckets[a % NBUCKETS];
			note_call(mb, now);
			lvl = bucket_level(&mb->b, &mb->cfg, now);
			if (mb->cfg.rate == 0)
				CHECK(lvl == UINT64_MAX);
			else
				CHECK(lvl <= cap_tokens(&mb->cfg));
			break;
		}
		case 6: /* clock forward */
			if (!take_byte(&in, &left, &a))
				goto out;
			if (a < 0x80)
				now += a;
			else if (a < 0xc0)
				now += (uint64_t)(a & 0x3f) * 997;
			else
				now += UINT64_C(1) << (a & 0x3f) % 44;
			break;
		case 7: /* clock backward */
			if (!take_byte(&in, &left, &a))
				goto out;
			{
				uint64_t back =
				    a < 0x80 ? a : (uint64_t)(a & 0x7f) * 1000;
				now = now > back ? now - back : 0;
			}
			break;
		case 8: /* reconfigure and restart a bucket */ {
			uint8_t r, pr, u;
			if (!take_byte(&in, &left, &a) ||
			    !take_byte(&in, &left, &r) ||
			    !take_byte(&in, &left, &pr) ||
			    !take_byte(&in, &left, &u))
				goto out;
			mb = &buckets[a % NBUCKETS];
			mb->cfg.rate = pick_value(r, &in, &left);
			mb->cfg.period_ms = pick_value(pr, &in, &left);
			mb->cfg.burst = pick_value(u, &in, &left);
			bucket_init(&mb->b, &mb->cfg, now);
			mb->last_now = now;
			mb->forward = 0;
			mb->taken = 0;
			if (mb->cfg.rate != 0)
				CHECK(bucket_level(&mb->b, &mb->cfg, now) ==
				      cap_tokens(&mb->cfg));
			break;
		}
		}
		CHECK(rate_table_bytes(t) == table_bytes);
		CHECK(rate_table_slots(t) == table_slots);
	}
out:
	check_pins(t);
	CHECK(rate_table_bytes(t) == table_bytes);
	rate_table_free(t);
	return 0;
}
