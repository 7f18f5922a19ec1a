/*
 * tcp: stream echo with backpressure; the unsent echo stays in the kernel
 * (its receive queue, or a pipe of the worker's pool for one transfer).
 * Map: packet-path layer; calls counters, facts, guard, listener, log, loop,
 * pipepool, policy, slab, variant.
 */
#ifndef ECHOD_TCP_H
#define ECHOD_TCP_H

#include "facts.h"
#include "listener.h"
#include "loop.h"
#include "policy.h"

struct tcp_server;

/* Serve every SOCK_STREAM listener of s on loop l, with the policy's
 * per-source limits (their table keyed with f's secret) and at most
 * max_connections open at once (this worker's share of
 * tcp-max-connections). NULL on failure. */
struct tcp_server *tcp_server_new(struct loop *l, const struct policy *p,
                                  const struct listen_set *s,
                                  const struct facts *f,
                                  unsigned max_connections);

/* The splice path's pipes a worker holding max_connections keeps (each
 * lent for one transfer at a time), and the most echo bytes they hold. */
unsigned tcp_splice_pipes(const struct policy *p, unsigned max_connections);
/* The most a worker's TCP server allocates for max_connections: each
 * connection's state and a tcp-buffer of data, the read scratch, the
 * splice pipes' contents (kernel memory, stated so the bound covers every
 * echo byte a worker holds) and the TCP guard's tables. */
unsigned long long tcp_memory_bound(const struct policy *p,
                                    unsigned max_connections);
unsigned long long tcp_splice_memory(const struct policy *p,
                                     unsigned max_connections);

/* Periodic work: close idle and expired connections, resume throttled
 * connections and paused accepts. */
void tcp_server_tick(struct tcp_server *srv, uint64_t now);

/* Listeners still served (a failed one is removed for good). */
size_t tcp_server_listeners(const struct tcp_server *srv);

/* Close every connection and free the server (listeners stay open). */
void tcp_server_free(struct tcp_server *srv);

#endif
