/*
 * guard_test: the guard's insides, for the unit tests and the fuzz
 * harnesses only (echod's modules use guard.h): the checks one at a time,
 * the tables, and what a source holds.
 * Map: packet-path layer; calls addr, facts, guard, ratelimit.
 */
#ifndef ECHOD_GUARD_TEST_H
#define ECHOD_GUARD_TEST_H

#include "addr.h"
#include "facts.h"
#include "guard.h"
#include "ratelimit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The first check that rejects d, or GUARD_ok, updating the state as a
 * reply would: udp_guard_source_check, then udp_guard_payload_check. */
enum guard_reason udp_guard_check(struct udp_guard *g, const struct datagram *d,
                                  uint64_t now);

/* One datagram after a source check passed (udp_guard_payload_checks on a
 * buffer of one). */
enum guard_reason udp_guard_payload_check(struct udp_guard *g,
                                          const struct datagram *d,
                                          uint64_t now);

/* The source prefix's state of the last source check (a handle into the
 * rate table: rate_entry_key, rate_entry_last_seen), NULL if that check
 * ended before the table. */
const void *udp_guard_source(const struct udp_guard *g);

/* The rate table, the aggregates' table (udp-aggregate-prefix-v4, -v6)
 * and the loop-hold table (keyed by udp_guard_loop_key). */
const struct rate_table *udp_guard_table(const struct udp_guard *g);
const struct rate_table *udp_guard_aggregate_table(const struct udp_guard *g);
const struct loop_table *udp_guard_loop_table(const struct udp_guard *g);

/* Entries of the loop-hold table: rate-table-size / 8, at least 64. */
size_t loop_table_size(const struct policy *p);

/* d's key in the loop-hold table: a keyed hash of its source address,
 * source port and payload, in the first 8 bytes of an address of family
 * AF_UNSPEC (never a real one). */
void udp_guard_loop_key(const struct udp_guard *g, const struct datagram *d,
                        struct ipaddr *key);

/* Stateless checks: no honest peer sends from d's source as it arrived;
 * no reply goes to dst; a loopback address. */
bool guard_bad_source(const struct datagram *d, const struct facts *f);
bool guard_bad_dest(const struct ipaddr *dst, const struct facts *f);
bool guard_is_loopback(const struct ipaddr *a);

/* The source an eviction would take from (the largest aggregate's
 * largest child's ... largest source; NULL when none is open), and the
 * finest level's table. */
struct tcp_source *tcp_guard_largest(const struct tcp_guard *g);
const struct rate_table *tcp_guard_table(const struct tcp_guard *g);

/* A source's next coarser prefix (NULL for an aggregate), its aggregate
 * (itself with one level), the connections it holds and a copy of its
 * connect bucket. Its key: rate_entry_key(s). */
struct tcp_source *tcp_guard_parent(const struct tcp_source *s);
struct tcp_source *tcp_guard_aggregate(struct tcp_source *s);
uint32_t tcp_guard_held(const struct tcp_source *s);
struct bucket tcp_guard_connects(const struct tcp_source *s);

/* Bytes of bookkeeping per table slot and per count group (docs/design.md). */
size_t tcp_guard_entry_bytes(void);
size_t tcp_guard_group_bytes(void);

#endif
