/*
 * siphash: SipHash-2-4 (Aumasson, Bernstein), a keyed hash, so that no one
 * who lacks the key can aim many sources at one slot of a table.
 * Map: base layer; calls nothing of echod.
 */
#ifndef ECHOD_SIPHASH_H
#define ECHOD_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN 16

/* SipHash-2-4 of data[0..len) under a 16-byte key, 64-bit result. */
uint64_t siphash24(const uint8_t key[SIPHASH_KEY_LEN], const void *data,
                   size_t len);

/* The same as siphash24 of head[0..head_len) followed by data[0..len), in
 * one pass without copying either; head_len must be a multiple of 8. */
uint64_t siphash24_words_then(const uint8_t key[SIPHASH_KEY_LEN],
                              const void *head, size_t head_len,
                              const void *data, size_t len);

#endif
