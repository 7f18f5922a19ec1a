/* Unit tests for src/listen.c's listen_build_steering: the reuseport program
 * that sends every source prefix to one worker. It is run here by a small
 * interpreter of the classic BPF it uses, and loaded into the kernel. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "listen.h"

#include <linux/filter.h>
#include <netinet/in.h>
#include <string.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#define NET_HDR 40 /* an IPv6 header; an IPv4 one is the first 20 bytes */

/* Run prog on a packet whose network header is hdr: the value returned
 * (the socket index). Fails on any instruction the builder should not
 * emit, and on a read outside the header. */
static uint32_t
run(const struct sock_filter *prog, size_t len, const uint8_t hdr[NET_HDR])
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};

	for (size_t pc = 0; pc < len; pc++) {
		const struct sock_filter *in = &prog[pc];
		uint32_t off;

		switch (in->code) {
		case BPF_LD | BPF_IMM:
			a = in->k;
			break;
		case BPF_ST:
			assert_true(in->k < BPF_MEMWORDS);
			mem[in->k] = a;
			break;
		case BPF_LD | BPF_MEM:
			assert_true(in->k < BPF_MEMWORDS);
			a = mem[in->k];
			break;
		case BPF_LD | BPF_W | BPF_ABS:
			off = in->k - (uint32_t)SKF_NET_OFF;
			assert_true(off + 4 <= NET_HDR);
			a = (uint32_t)hdr[off] << 24 |
			    (uint32_t)hdr[off + 1] << 16 |
			    (uint32_t)hdr[off + 2] << 8 | hdr[off + 3];
			break;
		case BPF_ALU | BPF_AND | BPF_K:
			a &= in->k;
			break;
		case BPF_ALU | BPF_MUL | BPF_K:
			a *= in->k;
			break;
		case BPF_ALU | BPF_ADD | BPF_K:
			a += in->k;
			break;
		case BPF_ALU | BPF_XOR | BPF_X:
			a ^= x;
			break;
		case BPF_ALU | BPF_RSH | BPF_K:
			a >>= in->k;
			break;
		case BPF_ALU | BPF_MOD | BPF_K:
			assert_true(in->k != 0);
			a %= in->k;
			break;
		case BPF_MISC | BPF_TAX:
			x = a;
			break;
		case BPF_RET | BPF_A:
			return a;
		default:
			fail_msg("unexpected instruction 0x%x at %zu", in->code,
			         pc);
		}
	}
	fail_msg("program fell off its end");
	return 0;
}

static uint64_t rng = 0x243f6a8885a308d3u;

static uint8_t
rand8(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (uint8_t)(rng >> 24);
}

/* A steering key, as echod draws one at each start. */
static uint32_t key[STEERING_KEY_WORDS];

static void
new_key(uint32_t k[STEERING_KEY_WORDS])
{
	for (size_t i = 0; i < STEERING_KEY_WORDS; i++)
		k[i] = (uint32_t)rand8() << 24 | (uint32_t)rand8() << 16 |
		       (uint32_t)rand8() << 8 | rand8();
}

/* A header of random bytes; the source address at its family's offset. */
static void
random_header(uint8_t hdr[NET_HDR])
{
	for (size_t i = 0; i < NET_HDR; i++)
		hdr[i] = rand8();
}

static size_t
src_off(int family)
{
	return family == AF_INET ? 12 : 8;
}

static size_t
addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

/* Randomise every bit of the header but the first `bits` of the source. */
static void
rerandomise_outside_prefix(uint8_t hdr[NET_HDR], int family, unsigned bits)
{
	uint8_t keep[16];
	size_t off = src_off(family), n = addr_len(family);

	memcpy(keep, hdr + off, n);
	random_header(hdr);
	for (size_t i = 0; i < n; i++) {
		unsigned have = bits > i * 8 ? bits - (unsigned)i * 8 : 0;
		uint8_t mask = have >= 8 ? 0xff : (uint8_t)(0xff00 >> have);

		hdr[off + i] =
		    (uint8_t)((keep[i] & mask) | (hdr[off + i] & ~mask));
	}
}

/* Same prefix, same worker, whatever else the packet holds; every answer
 * is a valid socket index. */
static void
check_prefix_decides(int family, unsigned bits, unsigned nworkers)
{
	struct sock_filter prog[STEERING_MAX_INSNS];
	size_t len = listen_build_steering(prog, family, bits, nworkers, key);
	uint8_t hdr[NET_HDR];

	assert_true(len > 0 && len <= STEERING_MAX_INSNS);
	for (int i = 0; i < 200; i++) {
		uint32_t w;

		random_header(hdr);
		w = run(prog, len, hdr);
		assert_true(w < nworkers);
		for (int j = 0; j < 5; j++) {
			rerandomise_outside_prefix(hdr, family, bits);
			assert_int_equal(run(prog, len, hdr), w);
		}
	}
}

static void
test_same_prefix_same_worker(void **state)
{
	static const unsigned v4[] = {0, 1, 8, 16, 24, 31, 32};
	static const unsigned v6[] = {0, 1, 32, 48, 56, 64, 96, 127, 128};
	static const unsigned workers[] = {1, 2, 3, 4, 7, 16};

	(void)state;
	for (size_t w = 0; w < sizeof(workers) / sizeof(workers[0]); w++) {
		for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++)
			check_prefix_decides(AF_INET, v4[i], workers[w]);
		for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++)
			check_prefix_decides(AF_INET6, v6[i], workers[w]);
	}
}

/* Different prefixes spread over the workers: 4096 random /24 (or /56)
 * prefixes over 4 workers, each worker between 20% and 30%. */
static void
check_spread(int family, unsigned bits)
{
	struct sock_filter prog[STEERING_MAX_INSNS];
	size_t len = listen_build_steering(prog, family, bits, 4, key);
	unsigned count[4] = {0};
	uint8_t hdr[NET_HDR];

	for (int i = 0; i < 4096; i++) {
		random_header(hdr);
		count[run(prog, len, hdr)]++;
	}
	for (int w = 0; w < 4; w++) {
		assert_true(count[w] > 4096 * 20 / 100);
		assert_true(count[w] < 4096 * 30 / 100);
	}
}

static void
test_prefixes_spread(void **state)
{
	(void)state;
	check_spread(AF_INET, 24);
	check_spread(AF_INET6, 56);
	check_spread(AF_INET, 32);
	check_spread(AF_INET6, 128);
}

/* Sequential prefixes (a /16 of /24s, as one network would send) spread
 * too: the hash is not just the low bits. */
static void
test_sequential_prefixes_spread(void **state)
{
	struct sock_filter prog[STEERING_MAX_INSNS];
	size_t len = listen_build_steering(prog, AF_INET, 24, 4, key);
	unsigned count[4] = {0};
	uint8_t hdr[NET_HDR] = {0};

	(void)state;
	for (unsigned i = 0; i < 256; i++) {
		hdr[12] = 198, hdr[13] = 18, hdr[14] = (uint8_t)i;
		count[run(prog, len, hdr)]++;
	}
	for (int w = 0; w < 4; w++)
		assert_true(count[w] >= 40);
}

/* Which of 4 workers each of 64 prefixes (198.18.N.0/24, or
 * 2001:db8:N::/48) goes to under key k. */
static void
mapping(int family, const uint32_t k[STEERING_KEY_WORDS], unsigned out[64])
{
	struct sock_filter prog[STEERING_MAX_INSNS];
	unsigned bits = family == AF_INET ? 24 : 48;
	size_t len = listen_build_steering(prog, family, bits, 4, k);
	uint8_t hdr[NET_HDR] = {0};

	for (unsigned i = 0; i < 64; i++) {
		if (family == AF_INET) {
			hdr[12] = 198, hdr[13] = 18, hdr[14] = (uint8_t)i;
		} else {
			hdr[8] = 0x20, hdr[9] = 0x01, hdr[10] = 0x0d;
			hdr[11] = 0xb8, hdr[13] = (uint8_t)i;
		}
		out[i] = run(prog, len, hdr);
	}
}

/* Two prefixes share a worker under one key: the partition, whatever the
 * workers' order. */
static bool
same_partition(const unsigned a[64], const unsigned b[64])
{
	for (unsigned i = 0; i < 64; i++)
		for (unsigned j = i + 1; j < 64; j++)
			if ((a[i] == a[j]) != (b[i] == b[j]))
				return false;
	return true;
}

/* The mapping is the key's, not the address's: the same 64 prefixes
 * are grouped differently under each of 20 keys (a spoofer who does not
 * know the key cannot tell which prefixes share a victim's worker), and
 * the same under one key every time. */
static void
test_key_decides_the_mapping(void **state)
{
	int families[] = {AF_INET, AF_INET6};

	(void)state;
	for (int f = 0; f < 2; f++) {
		unsigned first[64], again[64], other[64];
		uint32_t k1[STEERING_KEY_WORDS], k2[STEERING_KEY_WORDS];

		new_key(k1);
		mapping(families[f], k1, first);
		mapping(families[f], k1, again);
		assert_memory_equal(first, again, sizeof(first));
		for (int n = 0; n < 20; n++) {
			new_key(k2);
			mapping(families[f], k2, other);
			assert_false(same_partition(first, other));
		}
	}
}

/* The kernel's checker takes every program the builder makes. */
static void
test_kernel_accepts(void **state)
{
	int families[] = {AF_INET, AF_INET6};

	(void)state;
	for (int f = 0; f < 2; f++) {
		int fd = socket(families[f], SOCK_DGRAM, 0), one = 1;

		if (fd < 0 && families[f] == AF_INET6)
			continue; /* no IPv6 on this host */
		assert_true(fd >= 0);
		assert_int_equal(
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)),
		    0);
		for (unsigned bits = 0; bits <= addr_len(families[f]) * 8;
		     bits += 8) {
			struct sock_filter prog[STEERING_MAX_INSNS];
			struct sock_fprog fp;

			fp.len = (unsigned short)listen_build_steering(
			    prog, families[f], bits, 3, key);
			fp.filter = prog;
			assert_int_equal(setsockopt(fd, SOL_SOCKET,
			                            SO_ATTACH_REUSEPORT_CBPF,
			                            &fp, sizeof(fp)),
			                 0);
		}
		close(fd);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_prefix_same_worker),
	    cmocka_unit_test(test_prefixes_spread),
	    cmocka_unit_test(test_sequential_prefixes_spread),
	    cmocka_unit_test(test_key_decides_the_mapping),
	    cmocka_unit_test(test_kernel_accepts),
	};

	new_key(key);
	return cmocka_run_group_tests_name("listen", tests, NULL, NULL);
}
