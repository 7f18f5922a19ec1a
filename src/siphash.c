/*
 * siphash: SipHash-2-4 and SipHash-1-3 (Aumasson, Bernstein), 64-bit output.
 *
 * Keys and message words are read as little-endian through memcpy, so the
 * result is the same on every host and no unaligned or type-punned access
 * happens whatever the caller's buffer. The state lives in four locals and
 * a round is a macro: this runs on every datagram (the loop guard and the
 * rate table), and a call per round cost more than the round itself.
 */
#include "siphash.h"

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

/* One round on the state (x0, x1, x2, x3); SIPROUND on the locals v0..v3. */
#define SIPROUND_ON(x0, x1, x2, x3)                                            \
	do {                                                                   \
		x0 += x1;                                                      \
		x1 = ROTL(x1, 13);                                             \
		x1 ^= x0;                                                      \
		x0 = ROTL(x0, 32);                                             \
		x2 += x3;                                                      \
		x3 = ROTL(x3, 16);                                             \
		x3 ^= x2;                                                      \
		x0 += x3;                                                      \
		x3 = ROTL(x3, 21);                                             \
		x3 ^= x0;                                                      \
		x2 += x1;                                                      \
		x1 = ROTL(x1, 17);                                             \
		x1 ^= x2;                                                      \
		x2 = ROTL(x2, 32);                                             \
	} while (0)
#define SIPROUND SIPROUND_ON(v0, v1, v2, v3)

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

/* One message word, c compression rounds ("2" of 2-4). */
#define ABSORB(word, c)                                                        \
	do {                                                                   \
		uint64_t m_ = (word);                                          \
		v3 ^= m_;                                                      \
		for (int r_ = 0; r_ < (c); r_++)                               \
			SIPROUND;                                              \
		v0 ^= m_;                                                      \
	} while (0)

/* The key and head[0..head_len) (whole words) into *s, c rounds a word. */
static inline void
sip_start(struct siphash_state *s, const uint8_t key[SIPHASH_KEY_LEN],
          const uint8_t *head, size_t head_len, int c)
{
	uint64_t k0 = load64(key), k1 = load64(key + 8);
	/* "somepseudorandomlygeneratedbytes", as in the paper. */
	uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575);
	uint64_t v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
	uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261);
	uint64_t v3 = k1 ^ UINT64_C(0x7465646279746573);

	head_len &= ~(size_t)7;
	for (size_t i = 0; i < head_len; i += 8)
		ABSORB(load64(head + i), c);
	s->v0 = v0;
	s->v1 = v1;
	s->v2 = v2;
	s->v3 = v3;
	s->len = head_len;
}

/* s's hash finished with p[0..len): c rounds a word, d to finalise. */
static inline uint64_t
sip_finish(const struct siphash_state *s, const uint8_t *p, size_t len, int c,
           int d)
{
	uint64_t v0 = s->v0, v1 = s->v1, v2 = s->v2, v3 = s->v3;
	size_t left = len;

	for (; left >= 8; left -= 8, p += 8)
		ABSORB(load64(p), c);
	/* The last word carries the tail and the length modulo 256 on top. */
	ABSORB(load_tail(p, left) | ((uint64_t)((s->len + len) & 0xff) << 56),
	       c);
	v2 ^= 0xff;
	for (int r = 0; r < d; r++)
		SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

void
siphash24_state(struct siphash_state *s, const uint8_t key[SIPHASH_KEY_LEN],
                const void *head, size_t head_len)
{
	sip_start(s, key, head, head_len, 2);
}

uint64_t
siphash24_continue(const struct siphash_state *s, const void *data, size_t len)
{
	return sip_finish(s, data, len, 2, 4);
}

void
siphash13_state(struct siphash_state *s, const uint8_t key[SIPHASH_KEY_LEN],
                const void *head, size_t head_len)
{
	sip_start(s, key, head, head_len, 1);
}

uint64_t
siphash13_continue(const struct siphash_state *s, const void *data, size_t len)
{
	return sip_finish(s, data, len, 1, 3);
}

/* Two messages at once, one round per word on each (SipHash-1-3): the
 * two states' rounds are independent, side by side in one loop, so the
 * CPU runs one's while the other's wait on their own results. The words
 * past the shorter message, the last word and the finalisation of
 * messages of unequal length go one message at a time. */
/* One word into each of the two states a0..a3 and b0..b3, one round. */
#define ABSORB_TWO(word_a, word_b)                                             \
	do {                                                                   \
		uint64_t ma_ = (word_a), mb_ = (word_b);                       \
		a3 ^= ma_;                                                     \
		b3 ^= mb_;                                                     \
		SIPROUND_ON(a0, a1, a2, a3);                                   \
		SIPROUND_ON(b0, b1, b2, b3);                                   \
		a0 ^= ma_;                                                     \
		b0 ^= mb_;                                                     \
	} while (0)

void
siphash13_continue2(const struct siphash_state *s, const void *a, size_t alen,
                    const void *b, size_t blen, uint64_t out[2])
{
	const uint8_t *pa = a, *pb = b;
	size_t both = (alen < blen ? alen : blen) & ~(size_t)7;
	uint64_t a0 = s->v0, a1 = s->v1, a2 = s->v2, a3 = s->v3;
	uint64_t b0 = s->v0, b1 = s->v1, b2 = s->v2, b3 = s->v3;
	struct siphash_state sa, sb;

	for (size_t i = 0; i < both; i += 8)
		ABSORB_TWO(load64(pa + i), load64(pb + i));
	if (alen == blen) {
		/* Equal lengths, as a GRO buffer's datagrams are: the last word
		 * (tail and length) and the finalisation side by side too. */
		uint64_t len_byte = (uint64_t)((s->len + alen) & 0xff) << 56;

		ABSORB_TWO(load_tail(pa + both, alen - both) | len_byte,
		           load_tail(pb + both, blen - both) | len_byte);
		a2 ^= 0xff;
		b2 ^= 0xff;
		for (int r = 0; r < 3; r++) {
			SIPROUND_ON(a0, a1, a2, a3);
			SIPROUND_ON(b0, b1, b2, b3);
		}
		out[0] = a0 ^ a1 ^ a2 ^ a3;
		out[1] = b0 ^ b1 ^ b2 ^ b3;
		return;
	}
	sa = (struct siphash_state){a0, a1, a2, a3, s->len + both};
	sb = (struct siphash_state){b0, b1, b2, b3, s->len + both};
	out[0] = sip_finish(&sa, pa + both, alen - both, 1, 3);
	out[1] = sip_finish(&sb, pb + both, blen - both, 1, 3);
}

#if defined(__x86_64__)
/* A 64-bit rotation of each of the four lanes of x (AVX2 has none). */
#define ROTL_X4(x, b)                                                          \
	_mm256_or_si256(_mm256_slli_epi64(x, b), _mm256_srli_epi64(x, 64 - (b)))
/* By 32: the two halves of each lane swapped. */
#define SWAP_X4(x) _mm256_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1))

/* SIPROUND on four states at once, lane i of x0..x3 the state of message i. */
#define SIPROUND_X4(x0, x1, x2, x3)                                            \
	do {                                                                   \
		x0 = _mm256_add_epi64(x0, x1);                                 \
		x1 = _mm256_xor_si256(ROTL_X4(x1, 13), x0);                    \
		x0 = SWAP_X4(x0);                                              \
		x2 = _mm256_add_epi64(x2, x3);                                 \
		x3 = _mm256_xor_si256(ROTL_X4(x3, 16), x2);                    \
		x0 = _mm256_add_epi64(x0, x3);                                 \
		x3 = _mm256_xor_si256(ROTL_X4(x3, 21), x0);                    \
		x2 = _mm256_add_epi64(x2, x1);                                 \
		x1 = _mm256_xor_si256(ROTL_X4(x1, 17), x2);                    \
		x2 = SWAP_X4(x2);                                              \
	} while (0)

/* Word m (lane i for message i) into the four states, one round. */
#define ABSORB_X4(m)                                                           \
	do {                                                                   \
		__m256i m_ = (m);                                              \
		x3 = _mm256_xor_si256(x3, m_);                                 \
		SIPROUND_X4(x0, x1, x2, x3);                                   \
		x0 = _mm256_xor_si256(x0, m_);                                 \
	} while (0)

/* siphash13_continue4 on a CPU with AVX2: the four states in the four
 * 64-bit lanes of four vectors, so a round is 20 vector instructions for
 * the four messages instead of 14 scalar ones for each. */
__attribute__((target("avx2"))) static void
continue4_avx2(const struct siphash_state *s, const uint8_t *const p[4],
               size_t len, uint64_t out[4])
{
	size_t whole = len & ~(size_t)7;
	uint64_t len_byte = (uint64_t)((s->len + len) & 0xff) << 56;
	__m256i x0 = _mm256_set1_epi64x((long long)s->v0);
	__m256i x1 = _mm256_set1_epi64x((long long)s->v1);
	__m256i x2 = _mm256_set1_epi64x((long long)s->v2);
	__m256i x3 = _mm256_set1_epi64x((long long)s->v3);

	for (size_t i = 0; i < whole; i += 8)
		ABSORB_X4(_mm256_set_epi64x(
		    (long long)load64(p[3] + i), (long long)load64(p[2] + i),
		    (long long)load64(p[1] + i), (long long)load64(p[0] + i)));
	ABSORB_X4(_mm256_set_epi64x(
	    (long long)(load_tail(p[3] + whole, len - whole) | len_byte),
	    (long long)(load_tail(p[2] + whole, len - whole) | len_byte),
	    (long long)(load_tail(p[1] + whole, len - whole) | len_byte),
	    (long long)(load_tail(p[0] + whole, len - whole) | len_byte)));
	x2 = _mm256_xor_si256(x2, _mm256_set1_epi64x(0xff));
	for (int r = 0; r < 3; r++)
		SIPROUND_X4(x0, x1, x2, x3);
	_mm256_storeu_si256((__m256i *)out,
	                    _mm256_xor_si256(_mm256_xor_si256(x0, x1),
	                                     _mm256_xor_si256(x2, x3)));
}
#endif

bool
siphash13_continue4(const struct siphash_state *s, const void *const msg[4],
                    size_t len, uint64_t out[4])
{
#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx2")) {
		const uint8_t *const p[4] = {msg[0], msg[1], msg[2], msg[3]};

		continue4_avx2(s, p, len, out);
		return true;
	}
#endif
	(void)s;
	(void)msg;
	(void)len;
	(void)out;
	return false;
}

uint64_t
siphash24(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len)
{
	struct siphash_state s;

	siphash24_state(&s, key, NULL, 0);
	return siphash24_continue(&s, data, len);
}
