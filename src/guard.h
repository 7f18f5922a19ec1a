/*
 * guard: may this datagram be answered? Every check of the UDP abuse
 * controls, as a pure decision over the datagram, the policy and state.
 * Map: packet-path layer; calls addr, facts, policy, ratelimit.
 */
#ifndef ECHOD_GUARD_H
#define ECHOD_GUARD_H

#include "addr.h"
#include "facts.h"
#include "policy.h"
#include "ratelimit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a datagram gets no echo, in the order the checks run. */
#define GUARD_DROP_REASONS(X)                                                  \
	X(port)                                                                \
	X(bad_source)                                                          \
	X(bad_dest)                                                            \
	X(deny)                                                                \
	X(table)                                                               \
	X(loop)                                                                \
	X(rate)                                                                \
	X(global_rate)
#define GUARD_REASONS(X) X(ok) GUARD_DROP_REASONS(X)

enum guard_reason {
#define GUARD_ENUM(name) GUARD_##name,
	GUARD_REASONS(GUARD_ENUM)
#undef GUARD_ENUM
	    GUARD_NREASONS
};

struct datagram {
	struct ipaddr src, dst; /* dst: where the peer sent it (pktinfo) */
	uint16_t sport;
	const uint8_t *payload;
	size_t len;
};

struct udp_guard;

/* Allocates the guard and its rate table once. share: this worker's part
 * of the global rate (1 / workers). NULL on failure. */
struct udp_guard *udp_guard_new(const struct policy *p, const struct facts *f,
                                unsigned share);
void udp_guard_free(struct udp_guard *g);

/* The first check that rejects d, or GUARD_ok. Updates the per-source
 * state (rates, loop history) as a reply would. */
enum guard_reason udp_guard_check(struct udp_guard *g, const struct datagram *d,
                                  uint64_t now);

/* The source prefix's entry of the last check, NULL if that check ended
 * before the table (so the caller can limit log lines per source). */
struct rate_entry *udp_guard_source(struct udp_guard *g);

/* How many sources the full table has evicted so far (table pressure). */
uint64_t udp_guard_evictions(const struct udp_guard *g);

/* The rate table, for tests and the fuzzer's memory bound. */
const struct rate_table *udp_guard_table(const struct udp_guard *g);

/* Stateless source and destination checks, shared with TCP. */
bool guard_bad_source(const struct ipaddr *src, const struct ipaddr *dst,
                      const struct facts *f);
bool guard_bad_dest(const struct ipaddr *dst, const struct facts *f);
bool guard_is_loopback(const struct ipaddr *a);

const char *guard_reason_name(enum guard_reason r);

#endif
