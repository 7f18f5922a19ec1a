/* Unit tests for src/siphash.c: reference vectors of SipHash-2-4 and
 * SipHash-1-3. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "siphash.h"

#include <string.h>

/*
 * The reference setup (paper, appendix A, and vectors.h of the reference
 * implementation): key 00 01 .. 0f, message 00 01 .. (len - 1).
 */
static void
ref_key(uint8_t key[SIPHASH_KEY_LEN])
{
	for (size_t i = 0; i < SIPHASH_KEY_LEN; i++)
		key[i] = (uint8_t)i;
}

static uint64_t
ref_hash(size_t len)
{
	uint8_t key[SIPHASH_KEY_LEN], msg[64];

	assert_true(len <= sizeof(msg));
	ref_key(key);
	for (size_t i = 0; i < len; i++)
		msg[i] = (uint8_t)i;
	return siphash24(key, msg, len);
}

/* The worked example of the paper: a 15-byte message. */
static void
test_paper_vector(void **state)
{
	(void)state;
	assert_true(ref_hash(15) == UINT64_C(0xa129ca6149be45e5));
}

static void
test_empty_message(void **state)
{
	uint8_t key[SIPHASH_KEY_LEN];

	(void)state;
	assert_true(ref_hash(0) == UINT64_C(0x726fdb47dd0e0e31));
	/* No bytes are read from an empty message, so NULL is fine. */
	ref_key(key);
	assert_true(siphash24(key, NULL, 0) == UINT64_C(0x726fdb47dd0e0e31));
}

/* Entries of vectors_sip64[]: around the 8-byte word boundaries, and the
 * longest one (63 bytes: seven words and a 7-byte tail). */
static void
test_reference_table(void **state)
{
	(void)state;
	assert_true(ref_hash(1) == UINT64_C(0x74f839c593dc67fd));
	assert_true(ref_hash(7) == UINT64_C(0xab0200f58b01d137));
	assert_true(ref_hash(8) == UINT64_C(0x93f5f5799a932462));
	assert_true(ref_hash(16) == UINT64_C(0x3f2acc7f57c29bdb));
	assert_true(ref_hash(63) == UINT64_C(0x958a324ceb064572));
}

/* Loads are byte-wise: a message at an odd address hashes the same. */
static void
test_unaligned(void **state)
{
	uint8_t key[SIPHASH_KEY_LEN], buf[1 + 63];

	(void)state;
	ref_key(key);
	for (size_t i = 0; i < 63; i++)
		buf[1 + i] = (uint8_t)i;
	assert_true(siphash24(key, buf + 1, 15) ==
	            UINT64_C(0xa129ca6149be45e5));
	assert_true(siphash24(key, buf + 1, 63) ==
	            UINT64_C(0x958a324ceb064572));
}

/* The key matters: flipping one key bit changes the hash. */
static void
test_key_dependence(void **state)
{
	uint8_t key[SIPHASH_KEY_LEN], msg[15];

	(void)state;
	ref_key(key);
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	for (size_t bit = 0; bit < 8 * SIPHASH_KEY_LEN; bit++) {
		key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_true(siphash24(key, msg, sizeof(msg)) !=
		            UINT64_C(0xa129ca6149be45e5));
		key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
}

/* A state with a head of whole words absorbed, finished with data, hashes
 * exactly as siphash24 of the two end to end, at every tail length (odd
 * ones too): the loop guard absorbs (source, port) once per GRO buffer. */
static void
test_state_continue(void **state)
{
	uint8_t key[SIPHASH_KEY_LEN], msg[100];
	struct siphash_state s, before;

	(void)state;
	ref_key(key);
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7 + 3);
	for (size_t head = 0; head <= 32; head += 8) {
		siphash24_state(&s, key, msg, head);
		before = s;
		for (size_t len = 0; head + len <= sizeof(msg); len++)
			assert_true(siphash24_continue(&s, msg + head, len) ==
			            siphash24(key, msg, head + len));
		/* Finishing leaves the state as it was, for the next tail. */
		assert_memory_equal(&s, &before, sizeof(s));
	}
	/* The paper's vector, split after its first word. */
	for (size_t i = 0; i < 15; i++)
		msg[i] = (uint8_t)i;
	siphash24_state(&s, key, msg, 8);
	assert_true(siphash24_continue(&s, msg + 8, 7) ==
	            UINT64_C(0xa129ca6149be45e5));
	/* And it is not the hash of the tail alone. */
	assert_true(siphash24_continue(&s, msg + 8, 7) !=
	            siphash24(key, msg + 8, 7));
}

/*
 * SipHash-1-3 under the zero key of 00 01 .. (len - 1), as CPython 3.11
 * hashes bytes (sys.hash_info.algorithm 'siphash13'; PYTHONHASHSEED=0
 * makes its key zero; hash(b'') is special-cased to 0, so no empty one):
 *   PYTHONHASHSEED=0 /usr/bin/python3 -c \
 *     'print(hex(hash(bytes(range(15))) & (2**64 - 1)))'
 * Each is checked whole and split after every whole word: the loop guard
 * absorbs (source, port) once and finishes with each payload.
 */
static void
test_siphash13_vectors(void **state)
{
	static const struct {
		size_t len;
		uint64_t hash;
	} vectors[] = {
	    {1, UINT64_C(0x68a914128e01e473)},
	    {7, UINT64_C(0x2f098ab0c751325a)},
	    {8, UINT64_C(0xead411e67ebe2eea)},
	    {15, UINT64_C(0xf30eb725bb91c9ea)},
	    {16, UINT64_C(0x8972188433a5c5b7)},
	    {24, UINT64_C(0x31185a47af932f3a)},
	    {63, UINT64_C(0x385d3e39e5f37359)},
	    {64, UINT64_C(0x75e05fd5bbc870c6)},
	    {100, UINT64_C(0x1c6a66e1506e7908)},
	};
	uint8_t key[SIPHASH_KEY_LEN] = {0}, msg[100];
	struct siphash_state s;

	(void)state;
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	for (size_t v = 0; v < sizeof(vectors) / sizeof(*vectors); v++) {
		size_t len = vectors[v].len;

		for (size_t head = 0; head <= len; head += 8) {
			siphash13_state(&s, key, msg, head);
			assert_true(
			    siphash13_continue(&s, msg + head, len - head) ==
			    vectors[v].hash);
		}
		/* Not SipHash-2-4 under another name. */
		assert_true(siphash24(key, msg, len) != vectors[v].hash);
	}
	/* The key matters. */
	key[15] = 0x80;
	siphash13_state(&s, key, NULL, 0);
	assert_true(siphash13_continue(&s, msg, 15) !=
	            UINT64_C(0xf30eb725bb91c9ea));
}

/* Two messages at once equal each one alone: every pair of lengths from 0
 * to 40 bytes (so equal and unequal ones, every tail, one message ending
 * where the other goes on), after heads of 0, 1 and 3 words, and under a
 * key other than the reference one. */
static void
test_siphash13_two_at_once(void **state)
{
	uint8_t key[SIPHASH_KEY_LEN], head[24], a[48], b[48];

	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(0xa5 ^ (i * 7));
	for (size_t i = 0; i < sizeof(head); i++)
		head[i] = (uint8_t)(i * 13 + 1);
	/* a and b differ in every byte, so a lane that read the other's
	 * message would be caught. */
	for (size_t i = 0; i < sizeof(a); i++) {
		a[i] = (uint8_t)(i * 31 + 3);
		b[i] = (uint8_t)(i * 57 + 200);
	}
	for (size_t h = 0; h <= 24; h += h == 0 ? 8 : 16) {
		struct siphash_state s;

		siphash13_state(&s, key, head, h);
		for (size_t alen = 0; alen <= 40; alen++)
			for (size_t blen = 0; blen <= 40; blen++) {
				uint64_t out[2] = {0, 0};

				siphash13_continue2(&s, a + 1, alen, b + 3,
				                    blen, out);
				assert_true(out[0] == siphash13_continue(
				                          &s, a + 1, alen));
				assert_true(out[1] == siphash13_continue(
				                          &s, b + 3, blen));
			}
	}
}

/* Four messages of one length at once equal each one alone, at every
 * length from 0 to 72 bytes, after heads of 0, 1 and 3 words; where the
 * CPU has AVX2 (this one must, on x86-64: the test says so rather than
 * pass without running it). */
static void
test_siphash13_four_at_once(void **state)
{
	uint8_t key[SIPHASH_KEY_LEN], head[24], m[4][80];

	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(0x3c ^ (i * 11));
	for (size_t i = 0; i < sizeof(head); i++)
		head[i] = (uint8_t)(i * 5 + 9);
	for (size_t j = 0; j < 4; j++)
		for (size_t i = 0; i < sizeof(m[j]); i++)
			m[j][i] = (uint8_t)(i * (2 * j + 3) + 17 * j);
	for (size_t h = 0; h <= 24; h += h == 0 ? 8 : 16) {
		struct siphash_state s;

		siphash13_state(&s, key, head, h);
		for (size_t len = 0; len <= 72; len++) {
			const void *msg[4] = {m[0] + 1, m[1] + 2, m[2] + 5,
			                      m[3] + 7};
			uint64_t out[4] = {0, 0, 0, 0};

			if (!siphash13_continue4(&s, msg, len, out)) {
#if defined(__x86_64__)
				assert_false(__builtin_cpu_supports("avx2"));
#endif
				return;
			}
			for (size_t j = 0; j < 4; j++)
				assert_true(out[j] == siphash13_continue(
				                          &s, msg[j], len));
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_paper_vector),
	    cmocka_unit_test(test_empty_message),
	    cmocka_unit_test(test_reference_table),
	    cmocka_unit_test(test_unaligned),
	    cmocka_unit_test(test_key_dependence),
	    cmocka_unit_test(test_state_continue),
	    cmocka_unit_test(test_siphash13_vectors),
	    cmocka_unit_test(test_siphash13_two_at_once),
	    cmocka_unit_test(test_siphash13_four_at_once),
	};

	return cmocka_run_group_tests_name("siphash", tests, NULL, NULL);
}
