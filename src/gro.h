/*
 * gro: one buffer, many datagrams. With UDP_GRO the kernel hands a
 * listener up to 64 same-sized datagrams of one flow in one buffer (the
 * last may be shorter), and with UDP_SEGMENT one send carries many; this
 * is their arithmetic, pure, and the socket option that turns GRO on.
 * Map: base layer; calls nothing of echod.
 */
#ifndef ECHOD_GRO_H
#define ECHOD_GRO_H

#include <stddef.h>

/* Segments a GSO send may carry on every kernel (UDP_MAX_SEGMENTS was 64
 * before Linux 6.11). */
#define GSO_MAX_SEGMENTS 64

/* How many datagrams a buffer of len bytes holds when each is segsize
 * long but the last: 1 when segsize is 0 (no GRO) or at least len (a
 * plain datagram, even an empty one); else len / segsize rounded up.
 * Inline, as the next: they run for every datagram. */
static inline size_t
gro_segments(size_t len, size_t segsize)
{
	if (segsize == 0 || segsize >= len)
		return 1;
	return len / segsize + (len % segsize != 0);
}

/* The length of datagram i (0-based, below gro_segments) of that buffer;
 * it starts at i * segsize. 0 past the last one. */
static inline size_t
gro_segment_len(size_t len, size_t segsize, size_t i)
{
	size_t start;

	if (segsize == 0 || segsize >= len)
		return i == 0 ? len : 0;
	start = i * segsize;
	if (start >= len)
		return 0;
	return len - start < segsize ? len - start : segsize;
}

/* Ask the kernel for GRO buffers on UDP socket fd: 0, or -1 with errno
 * (a kernel before 5.0 has no UDP_GRO). */
int gro_enable(int fd);

#endif
