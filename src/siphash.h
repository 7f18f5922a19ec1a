/*
 * siphash: SipHash-2-4 and SipHash-1-3 (Aumasson, Bernstein), keyed hashes,
 * so that no one who lacks the key can aim many sources at one slot of a
 * table. 1-3 (one round a word, three to finish) is the variant CPython
 * and Rust's standard HashMap key their tables with against hash flooding;
 * the loop guard hashes every payload with it (docs/design.md).
 * Map: base layer; calls nothing of echod.
 */
#ifndef ECHOD_SIPHASH_H
#define ECHOD_SIPHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN 16

/* SipHash-2-4 of data[0..len) under a 16-byte key, 64-bit result. */
uint64_t siphash24(const uint8_t key[SIPHASH_KEY_LEN], const void *data,
                   size_t len);

/* SipHash-2-4 with the first words of the message absorbed: many messages
 * that share a head (the loop guard's source and port, once per GRO buffer)
 * pay for it once. len: bytes absorbed, a multiple of 8. */
struct siphash_state {
	uint64_t v0, v1, v2, v3;
	size_t len;
};

/* Start *s under key and absorb head[0..head_len); head_len must be a
 * multiple of 8 (whole message words: no bytes carried over). */
void siphash24_state(struct siphash_state *s,
                     const uint8_t key[SIPHASH_KEY_LEN], const void *head,
                     size_t head_len);

/* The hash of s's head followed by data[0..len): exactly siphash24 of the
 * two end to end. s is not changed, so it finishes any number of tails. */
uint64_t siphash24_continue(const struct siphash_state *s, const void *data,
                            size_t len);

/* The same with SipHash-1-3: a state from siphash13_state is finished by
 * siphash13_continue only. */
void siphash13_state(struct siphash_state *s,
                     const uint8_t key[SIPHASH_KEY_LEN], const void *head,
                     size_t head_len);
uint64_t siphash13_continue(const struct siphash_state *s, const void *data,
                            size_t len);

/* out[0] = siphash13_continue(s, a, alen), out[1] = the same of b, the
 * two computed side by side (faster than one after the other). */
void siphash13_continue2(const struct siphash_state *s, const void *a,
                         size_t alen, const void *b, size_t blen,
                         uint64_t out[2]);

/* out[i] = siphash13_continue(s, msg[i], len) for four messages of one
 * length, side by side in the lanes of AVX2 vectors: true, or false with
 * nothing done on a CPU without AVX2 (checked at run time; the build
 * assumes only the x86-64 baseline). */
bool siphash13_continue4(const struct siphash_state *s,
                         const void *const msg[4], size_t len, uint64_t out[4]);

#endif
