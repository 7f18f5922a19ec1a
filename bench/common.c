/* bench/common: the way out, the clock, the pattern. */
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS 1000000000.0

unsigned char pat[PAT_LEN + MAX_CHUNK];

void
die(int status, const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	fputs("echo-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (status == EXIT_NETWORK && e != 0)
		fprintf(stderr, ": %s", strerror(e));
	fputc('\n', stderr);
	exit(status);
}

double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / NS;
}

void
fill_pattern(void)
{
	uint32_t x = 2463534242u;

	for (size_t i = 0; i < PAT_LEN; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		pat[i] = (unsigned char)x;
	}
	for (size_t i = PAT_LEN; i < sizeof(pat); i++)
		pat[i] = pat[i - PAT_LEN];
}

size_t
stream_pos(unsigned id, uint64_t off)
{
	return (size_t)((off + (uint64_t)id * 4099) % PAT_LEN);
}

bool
stream_verify(unsigned id, uint64_t off, const unsigned char *buf, size_t n)
{
	while (n > 0) {
		size_t piece = n < MAX_CHUNK ? n : MAX_CHUNK;
		if (memcmp(buf, pat + stream_pos(id, off), piece) != 0)
			return false;
		buf += piece;
		off += piece;
		n -= piece;
	}
	return true;
}

const unsigned char *
dgram_body(uint64_t seq)
{
	return pat + (seq * 131) % PAT_LEN;
}
