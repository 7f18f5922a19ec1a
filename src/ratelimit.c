/*
 * ratelimit: token buckets and the fixed-size per-source table.
 *
 * Buckets count millitokens. A configuration mints R = rate * 1000
 * millitokens every P = period_ms milliseconds. The reference time last_ms
 * only moves forward by whole refill steps, and the part of the elapsed time
 * that has not made a whole step yet is kept for the next call: a source
 * that knocks every millisecond on a 1-per-hour bucket still gets its token
 * after an hour, instead of losing the fraction on every call.
 *
 * The step is the exact quantum P / g ms, which mints exactly R / g
 * millitokens (g = gcd(R, P)), unless that spans more than one token, as it
 * does for odd rates like 3 per 7 ms; then it is ceil(P / rate) ms, which
 * mints at least one token and drops less than one millitoken per step (an
 * error under 0.1%). For counts per s, min, h or d of at most 1000 the step
 * is always the exact quantum. Products that may pass 64 bits are computed
 * in 128 bits, and elapsed time is compared against the time needed to fill
 * the bucket before anything is multiplied, so no elapsed time overflows.
 *
 * Conventions not spelled out in the header:
 *  - burst == 0 with rate > 0 means burst = rate (one period's worth);
 *  - period_ms == 0 is taken as 1 ms, so that nothing divides by zero;
 *  - burst is saturated at UINT64_MAX / 1000 tokens so that burst * 1000
 *    millitokens fits in 64 bits;
 *  - with rate == 0 (unlimited) every take succeeds and the level reads as
 *    UINT64_MAX; the bucket itself is not touched.
 *
 * The table is set-associative: SipHash of the key under a per-process
 * secret picks a set of RATE_WAYS slots, so a sender who does not know the
 * secret cannot aim many sources at one set to evict a victim; the loop
 * table's keys are already such a hash and pick their set themselves. All
 * slots are allocated once, at creation; nothing allocates afterwards.
 */
#include "ratelimit.h"

#include "addr.h"
#include "siphash.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MILLI     1000
#define RATE_WAYS 8

typedef unsigned __int128 u128;

/* A slot of the per-source table: the key and the table's bookkeeping,
 * then the owner's state (ratelimit.h), state_size bytes rounded up to
 * whole words. */
struct rate_entry {
	struct ipaddr key; /* the source prefix */
	bool used;
	uint32_t pinned;    /* never evict while > 0 */
	uint64_t hash;      /* the table's hash of key */
	uint64_t last_seen; /* ms; the least recent in a set is evicted */
	_Alignas(8) unsigned char state[];
};

struct rate_table {
	uint8_t secret[SIPHASH_KEY_LEN];
	size_t nsets;
	size_t used;   /* slots taken without an eviction */
	size_t stride; /* bytes of a slot: rate_table_slot_bytes */
	_Alignas(8) unsigned char slots[]; /* nsets * RATE_WAYS slots, in the
	                                    * same calloc */
};

/* Capacity in millitokens; see the conventions above. */
static uint64_t
bucket_cap(const struct bucket_cfg *cfg)
{
	uint64_t burst = cfg->burst != 0 ? cfg->burst : cfg->rate;

	if (burst > UINT64_MAX / MILLI)
		burst = UINT64_MAX / MILLI;
	return burst * MILLI;
}

static uint64_t
gcd64(uint64_t a, uint64_t b)
{
	while (b != 0) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* The refill step in ms; see the top of the file. Needs rate > 0. */
static uint64_t
bucket_step(uint64_t period, u128 mint)
{
	/* gcd(mint, period) == gcd(period, mint % period): stays 64-bit. */
	uint64_t g = gcd64(period, (uint64_t)(mint % period));
	/* ceil(P / rate): the time one whole token takes. */
	u128 token_ms = ((u128)period * MILLI + mint - 1) / mint;

	if (period / g <= token_ms)
		return period / g;
	/* token_ms < period / g here, so it fits in 64 bits. */
	return (uint64_t)token_ms;
}

/*
 * Add what the time since last_ms has minted, in whole steps, never above
 * the capacity. Only called with rate > 0.
 */
static void
bucket_refill(struct bucket *b, const struct bucket_cfg *cfg, uint64_t now)
{
	uint64_t cap = bucket_cap(cfg);
	uint64_t period = cfg->period_ms != 0 ? cfg->period_ms : 1;
	u128 mint = (u128)cfg->rate * MILLI, fill_ms;
	uint64_t step, span, need;

	if (now < b->last_ms) {
		/* Clock went backwards: refill nothing, restart from here. */
		b->last_ms = now;
		return;
	}
	if (b->millitokens >= cap) {
		/* Full already: idle time must not be banked. */
		b->millitokens = cap;
		b->last_ms = now;
		return;
	}

	step = bucket_step(period, mint);
	span = (now - b->last_ms) / step * step;
	need = cap - b->millitokens;

	/* floor(span * mint / period) >= need iff span >= fill_ms. */
	fill_ms = (u128)need * period / mint;
	if ((u128)need * period % mint != 0)
		fill_ms++;
	if ((u128)span >= fill_ms) {
		b->millitokens = cap;
		b->last_ms = now;
		return;
	}
	/* span < fill_ms, so span * mint < need * period < 2^128. */
	b->millitokens += (uint64_t)((u128)span * mint / period);
	b->last_ms += span;
}

void
bucket_init(struct bucket *b, const struct bucket_cfg *cfg, uint64_t now)
{
	b->millitokens = bucket_cap(cfg);
	b->last_ms = now;
}

bool
bucket_take(struct bucket *b, const struct bucket_cfg *cfg, uint64_t now,
            uint64_t n)
{
	if (cfg->rate == 0)
		return true;
	bucket_refill(b, cfg, now);
	/* Compare in tokens so that n * 1000 cannot overflow. */
	if (n > b->millitokens / MILLI)
		return false;
	b->millitokens -= n * MILLI;
	return true;
}

uint64_t
bucket_level(struct bucket *b, const struct bucket_cfg *cfg, uint64_t now)
{
	if (cfg->rate == 0)
		return UINT64_MAX;
	bucket_refill(b, cfg, now);
	return b->millitokens / MILLI;
}

size_t
rate_table_slot_bytes(size_t state_size)
{
	size_t word = _Alignof(struct rate_entry);

	return sizeof(struct rate_entry) +
	       (state_size + word - 1) / word * word;
}

/* Sets for `entries` slots: rounded up, at least one. */
static size_t
sets_for(size_t entries)
{
	size_t nsets = entries / RATE_WAYS + (entries % RATE_WAYS != 0);

	return nsets > 0 ? nsets : 1;
}

size_t
rate_table_bytes_for(size_t entries, size_t state_size)
{
	return sizeof(struct rate_table) +
	       sets_for(entries) * RATE_WAYS *
	           rate_table_slot_bytes(state_size);
}

struct rate_table *
rate_table_new(size_t entries, size_t state_size,
               const uint8_t secret[SIPHASH_KEY_LEN])
{
	struct rate_table *t;
	size_t nsets = sets_for(entries), stride;

	if (state_size > SIZE_MAX / 2)
		return NULL;
	stride = rate_table_slot_bytes(state_size);
	if (nsets > (SIZE_MAX - sizeof(*t)) / RATE_WAYS / stride)
		return NULL;
	t = calloc(1, sizeof(*t) + nsets * RATE_WAYS * stride);
	if (t == NULL)
		return NULL;
	t->nsets = nsets;
	t->stride = stride;
	memcpy(t->secret, secret, sizeof(t->secret));
	return t;
}

void
rate_table_free(struct rate_table *t)
{
	if (t == NULL)
		return;
	/* The secret and source addresses should not outlive the table. */
	explicit_bzero(t, rate_table_bytes(t));
	free(t);
}

/* key's hash under the table's secret. It picks the set, and the entries
 * keep it so that a probe compares one word per slot before a whole key. */
static uint64_t
rate_hash(const struct rate_table *t, const struct ipaddr *key)
{
	uint8_t buf[1 + sizeof(key->bytes)];

	/* The family is hashed too: v4 and v6 keys of equal bytes differ. */
	buf[0] = key->family;
	memcpy(buf + 1, key->bytes, sizeof(key->bytes));
	return siphash24(t->secret, buf, sizeof(buf));
}

/* Slot i of the table. */
static struct rate_entry *
rate_slot(struct rate_table *t, size_t i)
{
	return (struct rate_entry *)(void *)(t->slots + i * t->stride);
}

/* The entry whose owner's state this is. */
static struct rate_entry *
entry_of(const void *state)
{
	return (
	    struct rate_entry *)(void *)((unsigned char *)(uintptr_t)state -
	                                 offsetof(struct rate_entry, state));
}

/*
 * key's entry in its set, or NULL and in *victim a slot for it: the first
 * free one, else the least recently seen one that no open connection pins
 * (the first of equals; NULL if all are pinned). One pass over the set:
 * it runs for every datagram (the loop-hold table), and a new payload,
 * the common case, is a miss. Nothing frees a slot, so the used ones come
 * first and a free slot ends the search: the key is not further on.
 */
static struct rate_entry *
set_probe(struct rate_table *t, const struct ipaddr *key, uint64_t h,
          struct rate_entry **victim)
{
	size_t first = (size_t)(h % t->nsets) * RATE_WAYS;
	struct rate_entry *lru = NULL;

	for (size_t i = 0; i < RATE_WAYS; i++) {
		struct rate_entry *e = rate_slot(t, first + i);

		if (!e->used) {
			*victim = e;
			return NULL;
		}
		if (e->hash == h && ipaddr_equal(&e->key, key))
			return e;
		if (e->pinned == 0 &&
		    (lru == NULL || e->last_seen < lru->last_seen))
			lru = e;
	}
	*victim = lru;
	return NULL;
}

void *
rate_table_get(struct rate_table *t, const struct ipaddr *key, uint64_t now,
               bool *created, bool *evicted)
{
	uint64_t h = rate_hash(t, key);
	struct rate_entry *victim, *e;
	bool cr = false, ev = false;

	e = set_probe(t, key, h, &victim);
	if (e == NULL && victim != NULL) {
		ev = victim->used;
		if (!ev)
			t->used++;
		e = victim;
		memset(e, 0, t->stride);
		e->key = *key;
		e->hash = h;
		e->used = true;
		cr = true;
	}
	if (created != NULL)
		*created = cr;
	if (evicted != NULL)
		*evicted = ev;
	if (e == NULL)
		return NULL;
	e->last_seen = now;
	return e->state;
}

void *
rate_table_find(struct rate_table *t, const struct ipaddr *key)
{
	uint64_t h = rate_hash(t, key);
	struct rate_entry *victim, *e = set_probe(t, key, h, &victim);

	return e != NULL ? e->state : NULL;
}

const struct ipaddr *
rate_entry_key(const void *state)
{
	return &entry_of(state)->key;
}

uint64_t
rate_entry_last_seen(const void *state)
{
	return entry_of(state)->last_seen;
}

void
rate_entry_pin(void *state)
{
	entry_of(state)->pinned++;
}

void
rate_entry_unpin(void *state)
{
	entry_of(state)->pinned--;
}

uint32_t
rate_entry_pins(const void *state)
{
	return entry_of(state)->pinned;
}

size_t
rate_table_used(const struct rate_table *t)
{
	return t->used;
}

size_t
rate_table_slots(const struct rate_table *t)
{
	return t->nsets * RATE_WAYS;
}

size_t
rate_table_bytes(const struct rate_table *t)
{
	return sizeof(*t) + t->nsets * RATE_WAYS * t->stride;
}

/* ---------------------------------------------------------- loop table */

/* One set: its keys in one cache line, their times in the next, their
 * entries in the two after. */
struct loop_set {
	_Alignas(64) uint64_t key[RATE_WAYS];
	uint64_t last_seen[RATE_WAYS];
	struct loop_entry e[RATE_WAYS];
};
_Static_assert(sizeof(struct loop_entry) == 16,
               "four entries to a cache line, none across two");

struct loop_table {
	size_t nsets;
	struct loop_set *sets; /* nsets, 64-byte aligned */
	uint8_t fill[];        /* per set: slots taken, from the first */
};

struct loop_table *
loop_table_new(size_t entries)
{
	size_t nsets = sets_for(entries);
	struct loop_table *t;

	if (nsets > (SIZE_MAX - sizeof(*t)) / sizeof(struct loop_set))
		return NULL;
	t = calloc(1, sizeof(*t) + nsets);
	if (t == NULL)
		return NULL;
	t->nsets = nsets;
	t->sets = aligned_alloc(_Alignof(struct loop_set),
	                        nsets * sizeof(struct loop_set));
	if (t->sets == NULL) {
		free(t);
		return NULL;
	}
	memset(t->sets, 0, nsets * sizeof(struct loop_set));
	return t;
}

void
loop_table_free(struct loop_table *t)
{
	if (t == NULL)
		return;
	/* Keys and times of sources should not outlive the table. */
	explicit_bzero(t->sets, t->nsets * sizeof(struct loop_set));
	free(t->sets);
	explicit_bzero(t, sizeof(*t) + t->nsets);
	free(t);
}

/* The set of key: its top bits, scaled to the sets (key * nsets / 2^64,
 * a multiply instead of a division). The key is a keyed hash, so every
 * bit of it is as unpredictable to a sender as any other. */
static size_t
loop_set_of(const struct loop_table *t, uint64_t key)
{
	return (size_t)(((u128)key * t->nsets) >> 64);
}

/* key's slot in set number i, or -1. Slots fill from the first and none
 * is ever freed, so only the first fill[i] hold keys, and a key is in a
 * set at most once: the slots that match, as a bit mask, cut to those. */
static inline __attribute__((always_inline)) int
loop_slot(const struct loop_table *t, size_t i, uint64_t key)
{
	const uint64_t *k = t->sets[i].key;
	unsigned match;

	_Static_assert(RATE_WAYS == 8, "a set's eight keys, compared");
	match = (unsigned)(k[0] == key) | (unsigned)(k[1] == key) << 1 |
	        (unsigned)(k[2] == key) << 2 | (unsigned)(k[3] == key) << 3 |
	        (unsigned)(k[4] == key) << 4 | (unsigned)(k[5] == key) << 5 |
	        (unsigned)(k[6] == key) << 6 | (unsigned)(k[7] == key) << 7;
	match &= (1u << t->fill[i]) - 1;
	return match != 0 ? __builtin_ctz(match) : -1;
}

/* Of two candidates (a time and its slot) the older into *ta, *wa, the
 * first one (a) of equals: chosen by a mask, not a branch. */
static inline void
older_of(uint64_t *ta, unsigned *wa, uint64_t tb, unsigned wb)
{
	uint64_t b_older = -(uint64_t)(tb < *ta);

	/* Opaque to the compiler, which would make the select a branch. */
	__asm__("" : "+r"(b_older));
	*ta ^= (*ta ^ tb) & b_older;
	*wa ^= (*wa ^ wb) & (unsigned)b_older;
}

/* The least recently seen slot of a full set, the first of equals: a
 * tournament of pairs in which the later slot wins only if strictly
 * older, so ties go to the lower slot. Three rounds of selects instead of
 * a branch per slot on times no predictor knows. */
static int
loop_lru(const struct loop_set *s)
{
	const uint64_t *t = s->last_seen;
	uint64_t t0 = t[0], t2 = t[2], t4 = t[4], t6 = t[6];
	unsigned w0 = 0, w2 = 2, w4 = 4, w6 = 6;

	_Static_assert(RATE_WAYS == 8, "the tournament has three rounds");
	older_of(&t0, &w0, t[1], 1);
	older_of(&t2, &w2, t[3], 3);
	older_of(&t4, &w4, t[5], 5);
	older_of(&t6, &w6, t[7], 7);
	older_of(&t0, &w0, t2, w2);
	older_of(&t4, &w4, t6, w6);
	older_of(&t0, &w0, t4, w4);
	return (int)w0;
}

struct loop_entry *
loop_table_get(struct loop_table *t, uint64_t key, uint64_t now)
{
	size_t i = loop_set_of(t, key);
	struct loop_set *s = &t->sets[i];
	int w = loop_slot(t, i, key);

	if (w < 0) {
		w = t->fill[i] < RATE_WAYS ? t->fill[i]++ : loop_lru(s);
		s->key[w] = key;
		s->e[w] = (struct loop_entry){0};
	}
	s->last_seen[w] = now;
	return &s->e[w];
}

struct loop_entry *
loop_table_find(struct loop_table *t, uint64_t key)
{
	size_t i = loop_set_of(t, key);
	int w = loop_slot(t, i, key);

	return w < 0 ? NULL : &t->sets[i].e[w];
}

void
loop_table_prefetch(const struct loop_table *t, uint64_t key)
{
	const struct loop_set *s = &t->sets[loop_set_of(t, key)];

	__builtin_prefetch(s->key);
	__builtin_prefetch(s->last_seen);
	__builtin_prefetch(&s->e[0]);
	__builtin_prefetch(&s->e[RATE_WAYS / 2]);
}

size_t
loop_table_slots(const struct loop_table *t)
{
	return t->nsets * RATE_WAYS;
}

size_t
loop_table_bytes(const struct loop_table *t)
{
	return sizeof(*t) + t->nsets * (1 + sizeof(struct loop_set));
}

size_t
loop_table_bytes_for(size_t entries)
{
	return sizeof(struct loop_table) +
	       sets_for(entries) * (1 + sizeof(struct loop_set));
}
