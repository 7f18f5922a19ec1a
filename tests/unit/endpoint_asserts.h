/* endpoint_asserts.h: cmocka assertions on a parsed listen address, shared
 * by the cli and policy tests. Include after <cmocka.h>. */
#ifndef ECHOD_ENDPOINT_ASSERTS_H
#define ECHOD_ENDPOINT_ASSERTS_H

#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>

static inline void
assert_ep4(const struct endpoint *ep, const char *addr, uint16_t port,
           bool has_port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ep->ss;
	struct in_addr want;

	assert_int_equal(inet_pton(AF_INET, addr, &want), 1);
	assert_int_equal(ep->ss.ss_family, AF_INET);
	assert_int_equal(ep->len, sizeof(struct sockaddr_in));
	assert_memory_equal(&sin->sin_addr, &want, 4);
	assert_int_equal(ntohs(sin->sin_port), port);
	assert_int_equal(ep->has_port, has_port);
}

static inline void
assert_ep6(const struct endpoint *ep, const char *addr, uint16_t port,
           bool has_port)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ep->ss;
	struct in6_addr want;

	assert_int_equal(inet_pton(AF_INET6, addr, &want), 1);
	assert_int_equal(ep->ss.ss_family, AF_INET6);
	assert_int_equal(ep->len, sizeof(struct sockaddr_in6));
	assert_memory_equal(&sin6->sin6_addr, &want, 16);
	assert_int_equal(ntohs(sin6->sin6_port), port);
	assert_int_equal(ep->has_port, has_port);
}

#endif
