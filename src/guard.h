/*
 * guard: may this datagram be answered, may this connection open? Every
 * check of the abuse controls, as a pure decision over the request, the
 * policy and the guard's state.
 * Map: packet-path layer; calls addr, facts, gro, guard_test, log, policy,
 * ratelimit, siphash.
 */
#ifndef ECHOD_GUARD_H
#define ECHOD_GUARD_H

#include "addr.h"
#include "facts.h"
#include "log.h"
#include "policy.h"

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

/*
 * The datagrams of one GRO buffer share their source, port, destination
 * and interface, so the checks that read only those run once per buffer:
 * udp_guard_source_check (ports, bad source and destination, deny, the
 * source's table entry, and the loop key's hash of the source address and
 * port, finished per datagram with its payload). If it passes,
 * udp_guard_payload_checks (loop guard, rates, global rate) decides each
 * datagram of the buffer in turn. A source check like the last one (same
 * source, port, destination and interface, same time) gives the last
 * one's answer without checking again: nothing in between can have
 * changed it.
 */
enum guard_reason udp_guard_source_check(struct udp_guard *g,
                                         const struct datagram *d,
                                         uint64_t now);

/* A whole GRO buffer after udp_guard_source_check passed on its first
 * datagram: buf[0..len) holds nsegs datagrams of segsize bytes, the last
 * perhaps shorter (gro.h), and verdict[i] is the first check that
 * rejects datagram i, or GUARD_ok; the state changes as a reply to each
 * would change it, in turn. A run of datagrams has its loop keys hashed
 * before any is looked up, each key's set fetched into the cache ahead
 * of its lookup. */
void udp_guard_payload_checks(struct udp_guard *g, const uint8_t *buf,
                              size_t len, size_t segsize, size_t nsegs,
                              uint64_t now, enum guard_reason *verdict);

/* What a guard has seen: for the counters and gauges. */
struct guard_stats {
	size_t entries;     /* sources in the table now (a gauge) */
	uint64_t evictions; /* sources a full table forgot, so far */
	uint64_t exempted;  /* UDP: datagrams passed rate-exempt, so far */
};

void udp_guard_stats(const struct udp_guard *g, struct guard_stats *out);

/* May a line about the last source check's datagram (its reason r) be
 * written now? The limiter's budget per reason, and a few lines per
 * source while the source is in the table (log.h); false: counted for
 * the summary. */
bool udp_guard_may_log(struct udp_guard *g, struct log_limit *l, unsigned r);

/* Bytes the guard allocates for policy p: its tables, fixed at creation
 * (the worker's memory bound). */
size_t udp_guard_bytes(const struct policy *p);

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

/* A source prefix as the TCP guard keeps it (its counts, rates and
 * place among its siblings): a handle the caller holds while its
 * connection is open, and compares, nothing more. */
struct tcp_source;

struct tcp_admission {
	bool admit;                /* open it (perhaps after the eviction) */
	enum tcp_reason verdict;   /* TCP_ok, or the first check that failed
	                            * (with admit: log-only's would-refuse) */
	struct tcp_source *source; /* the source; NULL if not reached */
	bool rate_exempt;          /* rate-exempt: no connect or byte rate */
	struct tcp_source *evict;  /* at the cap: close one connection of
	                            * this source first (the largest holder) */
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

/* A connection of source s opened, or closed (s may be NULL: no entry);
 * every level above it counts it too. */
void tcp_guard_opened(struct tcp_guard *g, struct tcp_source *s);
void tcp_guard_closed(struct tcp_guard *g, struct tcp_source *s);

/*
 * The source's byte rate (tcp-byte-rate), for a connection of source s
 * (rate_exempt as admitted): how many bytes it may take off its socket
 * now (UINT64_MAX: no limit; log-only lets every byte through), and the
 * bytes it took, charged to its source whichever way they went.
 */
uint64_t tcp_guard_allowance(struct tcp_guard *g, struct tcp_source *s,
                             bool rate_exempt, uint64_t now);
void tcp_guard_charge(struct tcp_guard *g, struct tcp_source *s,
                      bool rate_exempt, uint64_t now, uint64_t n);

/* May a line about source s (NULL: not reached), for reason r, be
 * written now? As udp_guard_may_log. */
bool tcp_guard_may_log(struct tcp_guard *g, struct log_limit *l, unsigned r,
                       struct tcp_source *s);

/* The aggregate (the coarsest prefix) source s counts in: its prefix in
 * *prefix, its length returned. */
unsigned tcp_guard_aggregate_prefix(const struct tcp_guard *g,
                                    const struct tcp_source *s,
                                    struct ipaddr *prefix);

/* Open connections, and the cap. */
unsigned tcp_guard_active(const struct tcp_guard *g);
unsigned tcp_guard_cap(const struct tcp_guard *g);

/* Sources in the finest table, and table evictions so far (all levels);
 * exempted stays 0. */
void tcp_guard_stats(const struct tcp_guard *g, struct guard_stats *out);

/* Bytes the guard allocates for policy p and a cap of cap connections:
 * its tables and count groups, fixed at creation. */
size_t tcp_guard_bytes(const struct policy *p, unsigned cap);

const char *tcp_reason_name(enum tcp_reason r);

#endif
