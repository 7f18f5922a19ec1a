/*
 * facts: what the guards need from the system, gathered before the sandbox
 * hides it (interfaces and their broadcast addresses, a secret).
 * Map: base layer; calls addr, errmsg, siphash.
 */
#ifndef ECHOD_FACTS_H
#define ECHOD_FACTS_H

#include "addr.h"
#include "siphash.h"

#include <stddef.h>
#include <stdint.h>

#define FACTS_MAX_ADDRS 256

struct facts {
	struct ipaddr broadcast[FACTS_MAX_ADDRS]; /* directed broadcasts */
	size_t nbroadcast;
	uint8_t secret[SIPHASH_KEY_LEN]; /* keys the rate tables' hash */
};

/* Read the interfaces' broadcast addresses and a random secret. 0, or -1
 * with a reason in err. */
int facts_gather(struct facts *f, char *err, size_t errlen);

#endif
