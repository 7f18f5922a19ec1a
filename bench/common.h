/*
 * bench/common: what every mode of echo-bench shares: the exit statuses,
 * the way out, the clock, and the pattern every echoed byte is checked
 * against (a stream's bytes and a datagram's body both come from it).
 */
#ifndef ECHO_BENCH_COMMON_H
#define ECHO_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXIT_MISMATCH 1
#define EXIT_NETWORK  2
#define EXIT_USAGE    64

#define PAT_LEN    65521 /* prime: a misplaced chunk never lines up */
#define MAX_CHUNK  (256 * 1024)
#define UDP_HEADER 8  /* a datagram's sequence number */
#define UDP_BATCH  64 /* datagrams per sendmmsg/recvmmsg */

/* pat[PAT_LEN..] repeats its start, so any MAX_CHUNK slice is contiguous. */
extern unsigned char pat[PAT_LEN + MAX_CHUNK];

/* "echo-bench: " and the message on stderr, then exit(status); with
 * EXIT_NETWORK, errno's text too. */
void die(int status, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));

/* CLOCK_MONOTONIC in seconds. */
double now_s(void);

/* Fill pat; once, before any mode runs. */
void fill_pattern(void);

/* Where stream id's byte at offset `off` comes from in pat. */
size_t stream_pos(unsigned id, uint64_t off);

/* Check n received bytes that sit at stream offset off; false if any is
 * not the byte sent there. */
bool stream_verify(unsigned id, uint64_t off, const unsigned char *buf,
                   size_t n);

/* The body of datagram seq (after its UDP_HEADER sequence number). */
const unsigned char *dgram_body(uint64_t seq);

#endif
