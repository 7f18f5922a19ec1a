/* gro: the segment arithmetic of GRO buffers and GSO sends. */
#include "gro.h"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#ifndef UDP_GRO
#define UDP_GRO 104 /* linux/udp.h, Linux 5.0 */
#endif

size_t
gro_segments(size_t len, size_t segsize)
{
	if (segsize == 0 || segsize >= len)
		return 1;
	return len / segsize + (len % segsize != 0);
}

size_t
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

int
gro_enable(int fd)
{
	int one = 1;

	return setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one));
}
