/*
 * siphash: SipHash-2-4 (Aumasson, Bernstein), 64-bit output.
 *
 * Keys and message words are loaded byte by byte as little-endian, so the
 * result is the same on every host and no unaligned or type-punned access
 * happens whatever the caller's buffer.
 */
#include "siphash.h"

#include <stddef.h>
#include <stdint.h>

struct sipstate {
	uint64_t v0, v1, v2, v3;
};

static uint64_t
rotl64(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

/* Little-endian load of n (at most 8) bytes; missing high bytes are zero. */
static uint64_t
load_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void
sipround(struct sipstate *s)
{
	s->v0 += s->v1;
	s->v1 = rotl64(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = rotl64(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = rotl64(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = rotl64(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = rotl64(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = rotl64(s->v2, 32);
}

/* Absorb one message word: two compression rounds ("2" of 2-4). */
static void
compress(struct sipstate *s, uint64_t m)
{
	s->v3 ^= m;
	sipround(s);
	sipround(s);
	s->v0 ^= m;
}

uint64_t
siphash24(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t k0 = load_le(key, 8), k1 = load_le(key + 8, 8);
	struct sipstate s;
	size_t left = len;

	/* "somepseudorandomlygeneratedbytes", as in the paper. */
	s.v0 = k0 ^ UINT64_C(0x736f6d6570736575);
	s.v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
	s.v2 = k0 ^ UINT64_C(0x6c7967656e657261);
	s.v3 = k1 ^ UINT64_C(0x7465646279746573);

	for (; left >= 8; left -= 8, p += 8)
		compress(&s, load_le(p, 8));

	/* The last word carries the tail and the length modulo 256 on top. */
	compress(&s, load_le(p, left) | ((uint64_t)(len & 0xff) << 56));

	/* Four finalisation rounds ("4" of 2-4). */
	s.v2 ^= 0xff;
	sipround(&s);
	sipround(&s);
	sipround(&s);
	sipround(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}
