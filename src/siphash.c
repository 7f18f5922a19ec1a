/*
 * siphash: SipHash-2-4 (Aumasson, Bernstein), 64-bit output.
 *
 * Keys and message words are read as little-endian through memcpy, so the
 * result is the same on every host and no unaligned or type-punned access
 * happens whatever the caller's buffer. The state lives in four locals and
 * a round is a macro: this runs on every datagram (the loop guard and the
 * rate table), and a call per round cost more than the round itself.
 */
#include "siphash.h"

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                               \
	do {                                                                   \
		v0 += v1;                                                      \
		v1 = ROTL(v1, 13);                                             \
		v1 ^= v0;                                                      \
		v0 = ROTL(v0, 32);                                             \
		v2 += v3;                                                      \
		v3 = ROTL(v3, 16);                                             \
		v3 ^= v2;                                                      \
		v0 += v3;                                                      \
		v3 = ROTL(v3, 21);                                             \
		v3 ^= v0;                                                      \
		v2 += v1;                                                      \
		v1 = ROTL(v1, 17);                                             \
		v1 ^= v2;                                                      \
		v2 = ROTL(v2, 32);                                             \
	} while (0)

/* Little-endian load of 8 bytes. */
static uint64_t
load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* Little-endian load of n (at most 7) bytes; missing high bytes are zero. */
static uint64_t
load_tail(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* SipHash-2-4 of head[0..head_len) followed by data[0..len); head_len is
 * a multiple of 8, so the head is whole message words and no bytes need
 * carrying from one buffer into the other. */
static inline uint64_t
siphash_core(const uint8_t key[SIPHASH_KEY_LEN], const uint8_t *head,
             size_t head_len, const uint8_t *p, size_t len)
{
	uint64_t k0 = load64(key), k1 = load64(key + 8), m;
	size_t left = len;
	/* "somepseudorandomlygeneratedbytes", as in the paper. */
	uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575);
	uint64_t v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
	uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261);
	uint64_t v3 = k1 ^ UINT64_C(0x7465646279746573);

	/* Each message word takes two compression rounds ("2" of 2-4). */
	for (size_t i = 0; i + 8 <= head_len; i += 8) {
		m = load64(head + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (; left >= 8; left -= 8, p += 8) {
		m = load64(p);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	/* The last word carries the tail and the length modulo 256 on top. */
	m = load_tail(p, left) | ((uint64_t)((head_len + len) & 0xff) << 56);
	v3 ^= m;
	SIPROUND;
	SIPROUND;
	v0 ^= m;

	/* Four finalisation rounds ("4" of 2-4). */
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t
siphash24(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len)
{
	return siphash_core(key, NULL, 0, data, len);
}

uint64_t
siphash24_words_then(const uint8_t key[SIPHASH_KEY_LEN], const void *head,
                     size_t head_len, const void *data, size_t len)
{
	return siphash_core(key, head, head_len & ~(size_t)7, data, len);
}
