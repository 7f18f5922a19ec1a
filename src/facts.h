/*
 * facts: what the guards need from the system, gathered before the sandbox
 * hides it (interfaces, their own and broadcast addresses, a secret).
 * Map: base layer; calls addr, errmsg, siphash.
 */
#ifndef ECHOD_FACTS_H
#define ECHOD_FACTS_H

#include "addr.h"
#include "siphash.h"

#include <stddef.h>
#include <stdint.h>

#define FACTS_MAX_ADDRS    256
#define FACTS_MAX_LOOPBACK 8

struct facts {
	struct ipaddr broadcast[FACTS_MAX_ADDRS]; /* directed broadcasts */
	size_t nbroadcast;
	struct ipaddr local[FACTS_MAX_ADDRS]; /* the host's own addresses */
	size_t nlocal;
	int loopback_ifindex[FACTS_MAX_LOOPBACK]; /* IFF_LOOPBACK interfaces */
	size_t nloopback;
	uint8_t secret[SIPHASH_KEY_LEN]; /* keys the rate tables' hash */
};

/* Read the interfaces' own and broadcast addresses, the loopback
 * interfaces and a random secret. 0, or -1
 * with a reason in err. */
int facts_gather(struct facts *f, char *err, size_t errlen);

#endif
