/*
 * guard: may this datagram be answered, may this connection open? Every
 * check of the abuse controls, as a pure decision over the request, the
 * policy and the guard's state.
 * Map: packet-path layer; calls addr, facts, gro, policy, ratelimit,
 * siphash.
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
	X(aggregate_rate)                                                      \
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
	int ifindex;            /* the interface it arrived on (pktinfo) */
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
/* The policy the guard reads changed in place (a reload): work out again
 * what the guard derived from it; the tables and buckets are kept. */
void udp_guard_policy_changed(struct udp_guard *g);

/* The first check that rejects d, or GUARD_ok. Updates the per-source
 * state (rates, loop history) as a reply would. It is the two halves
 * below, one after the other. */
enum guard_reason udp_guard_check(struct udp_guard *g, const struct datagram *d,
                                  uint64_t now);

/*
 * The datagrams of one GRO buffer share their source, port, destination
 * and interface, so the checks that read only those run once per buffer:
 * udp_guard_source_check (ports, bad source and destination, deny, the
 * source's table entry, and the loop key's hash of the source address and
 * port, finished per datagram with its payload). If it passes,
 * udp_guard_payload_check (loop guard, rates, global rate) decides each
 * datagram, the first right after it, the others in turn with nothing in
 * between on this guard: the same verdicts and state as udp_guard_check on each
 * datagram. A source check like the last one (same source, port,
 * destination and interface, same time) gives the last one's answer
 * without checking again: nothing in between can have changed it.
 */
enum guard_reason udp_guard_source_check(struct udp_guard *g,
                                         const struct datagram *d,
                                         uint64_t now);
enum guard_reason udp_guard_payload_check(struct udp_guard *g,
                                          const struct datagram *d,
                                          uint64_t now);

/* A whole GRO buffer after udp_guard_source_check passed on its first
 * datagram: buf[0..len) holds nsegs datagrams of segsize bytes, the last
 * perhaps shorter (gro.h), and verdict[i] is what udp_guard_payload_check
 * on datagram i would say, called on each in turn (same verdicts, same
 * state after). Faster: a run of datagrams has its loop keys hashed
 * before any is looked up, each key's set fetched into the cache ahead
 * of its lookup. */
void udp_guard_payload_checks(struct udp_guard *g, const uint8_t *buf,
                              size_t len, size_t segsize, size_t nsegs,
                              uint64_t now, enum guard_reason *verdict);

/* The source prefix's entry of the last check, NULL if that check ended
 * before the table (so the caller can limit log lines per source). */
struct rate_entry *udp_guard_source(struct udp_guard *g);

/* How many sources the full table has evicted so far (table pressure). */
uint64_t udp_guard_evictions(const struct udp_guard *g);

/* How many datagrams passed as rate-exempt so far (no rate checked). */
uint64_t udp_guard_exempted(const struct udp_guard *g);

/*
 * How the guards see a source: src itself, or, for an IPv6 form that
 * carries an IPv4 address (addr.h), that address (in *out either way).
 * false: such a form under embedded-ipv4 drop, a bad source.
 */
bool guard_judged_source(const struct policy *p, const struct ipaddr *src,
                         struct ipaddr *out);

/* Is src in the policy's rate-exempt prefixes? Such a source skips the
 * rate limits (UDP's per-source and global rates, TCP's connect and byte
 * rates) and every other check still applies to it. */
bool guard_rate_exempt(const struct policy *p, const struct ipaddr *src);

/* The rate table, for tests and the fuzzer's memory bound. */
const struct rate_table *udp_guard_table(const struct udp_guard *g);

/* The aggregates' table (udp-aggregate-prefix-v4, -v6), for the fuzzer. */
const struct rate_table *udp_guard_aggregate_table(const struct udp_guard *g);

/* Entries of the loop-hold table: rate-table-size / 8, at least 64. */
size_t loop_table_size(const struct policy *p);

/* The loop-hold table (fixed size too), keyed by udp_guard_loop_key. */
const struct loop_table *udp_guard_loop_table(const struct udp_guard *g);

/* d's key in the loop-hold table: a keyed hash of its source address,
 * source port and payload, in the first 8 bytes of an address of family
 * AF_UNSPEC (never a real one). */
void udp_guard_loop_key(const struct udp_guard *g, const struct datagram *d,
                        struct ipaddr *key);

/* Stateless checks: no honest peer sends from d's source as it arrived. */
bool guard_bad_source(const struct datagram *d, const struct facts *f);
bool guard_bad_dest(const struct ipaddr *dst, const struct facts *f);
bool guard_is_loopback(const struct ipaddr *a);
/* One of the host's own addresses (learned at start). */
bool guard_is_local(const struct ipaddr *a, const struct facts *f);

const char *guard_reason_name(enum guard_reason r);

/* Why a TCP connection is refused, in the order the checks run; each has
 * its counter tcp_refused_NAME. bad_source (an embedded IPv4 form, or the
 * address it carries), deny, per_source, per_aggregate, rate and
 * aggregate_rate are abuse checks (log-only lets them through); table and
 * max are resources. */
#define TCP_REFUSE_REASONS(X)                                                  \
	X(bad_source)                                                          \
	X(deny)                                                                \
	X(table)                                                               \
	X(per_source)                                                          \
	X(per_aggregate)                                                       \
	X(rate)                                                                \
	X(aggregate_rate)                                                      \
	X(max)
#define TCP_REASONS(X) X(ok) TCP_REFUSE_REASONS(X)

enum tcp_reason {
#define TCP_ENUM(name) TCP_##name,
	TCP_REASONS(TCP_ENUM)
#undef TCP_ENUM
	    TCP_NREASONS
};

struct tcp_admission {
	bool admit;                /* open it (perhaps after the eviction) */
	enum tcp_reason verdict;   /* TCP_ok, or the first check that failed
	                            * (with admit: log-only's would-refuse) */
	struct rate_entry *source; /* the source's entry; NULL if not reached */
	bool rate_exempt;          /* rate-exempt: no connect or byte rate */
	struct rate_entry *evict;  /* at the cap: close one connection of this
	                            * source first (the largest holder) */
};

struct tcp_guard;

/* The per-source table and the connection counts of one worker, which
 * holds at most cap connections (its share of tcp-max-connections). */
struct tcp_guard *tcp_guard_new(const struct policy *p, const struct facts *f,
                                unsigned cap);
void tcp_guard_free(struct tcp_guard *g);

/*
 * May a connection from src open now? Takes the connect tokens (source
 * and aggregate) as an accepted connection would; changes nothing else.
 * Connections are counted at every prefix level (tcp-prefix-v4, -v6). At
 * the cap, fairness is decided level by level from the coarsest: a
 * newcomer whose prefix holds fewer than the largest at that level (among
 * the prefixes of its parent) is let in at the cost of one connection of
 * that largest, taken from its largest child, and so on down to a source
 * (out->evict); one that holds as many as the largest is judged inside
 * its own prefix at the next level; at the source level, refused (max).
 * The caller reports the outcome with tcp_guard_opened and
 * tcp_guard_closed.
 */
void tcp_guard_admit(struct tcp_guard *g, const struct ipaddr *src,
                     uint64_t now, struct tcp_admission *out);

/* A connection of source e opened, or closed (e may be NULL: no entry);
 * every level above it counts it too. */
void tcp_guard_opened(struct tcp_guard *g, struct rate_entry *e);
void tcp_guard_closed(struct tcp_guard *g, struct rate_entry *e);

/* Open connections, the cap, the source an eviction would take from (the
 * largest aggregate's largest child's ... largest source; NULL when none
 * is open), table evictions so far (all levels), the sources' table. */
unsigned tcp_guard_active(const struct tcp_guard *g);
unsigned tcp_guard_cap(const struct tcp_guard *g);
struct rate_entry *tcp_guard_largest(const struct tcp_guard *g);
uint64_t tcp_guard_evictions(const struct tcp_guard *g);
const struct rate_table *tcp_guard_table(const struct tcp_guard *g);

/* The aggregate (coarsest prefix) entry of source e; e itself with one
 * level. */
struct rate_entry *tcp_guard_aggregate(struct rate_entry *e);

/* Bytes of bookkeeping per table slot and per count group (SECURITY.md). */
size_t tcp_guard_entry_bytes(void);
size_t tcp_guard_group_bytes(void);

const char *tcp_reason_name(enum tcp_reason r);

#endif
