/* exempt.h: the rate-exempt prefixes fuzz_guard and fuzz_tcp_admit add to
 * their policies, and the harnesses' own reading of them (not acl.c's, so
 * that a wrong match in the code under test shows). */
#ifndef ECHOD_FUZZ_EXEMPT_H
#define ECHOD_FUZZ_EXEMPT_H

#include "addr.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define FUZZ_RATE_EXEMPT                                                       \
	"rate-exempt 198.51.100.7 10.1.0.0/16 2001:db8:1::/48\n"

/* True if s is in FUZZ_RATE_EXEMPT. */
static inline bool
fuzz_exempt_source(const struct ipaddr *s)
{
	static const uint8_t host4[4] = {198, 51, 100, 7};
	static const uint8_t net6[6] = {0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01};

	if (s->family == AF_INET)
		return memcmp(s->bytes, host4, sizeof(host4)) == 0 ||
		       (s->bytes[0] == 10 && s->bytes[1] == 1);
	return s->family == AF_INET6 &&
	       memcmp(s->bytes, net6, sizeof(net6)) == 0;
}

#endif
