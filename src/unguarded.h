/*
 * unguarded: what keeps the bench-only comparison build (variant.h) to
 * the benchmark: it serves loopback and 198.18.0.0/15 only.
 * Map: bootstrap layer; calls addr, errmsg, log, policy, variant.
 */
#ifndef ECHOD_UNGUARDED_H
#define ECHOD_UNGUARDED_H

#include "policy.h"

#include <stddef.h>

/* In the unguarded build: -1 with why in err if the policy listens on any
 * address but 127.0.0.0/8, ::1 and 198.18.0.0/15 (a wildcard among them),
 * else 0 after a loud warning. In the ordinary build: 0, silently. */
int unguarded_check_exposure(const struct policy *p, char *err, size_t errlen);

#endif
