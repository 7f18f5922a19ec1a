/*
 * udp: datagram echo in batches, replying from the address it was sent to.
 * Map: packet-path layer; calls counters, facts, gro, guard, listener, log,
 * loop, policy, variant.
 */
#ifndef ECHOD_UDP_H
#define ECHOD_UDP_H

#include "facts.h"
#include "listener.h"
#include "loop.h"
#include "policy.h"

#define UDP_BATCH 32 /* buffers per recvmmsg, messages per sendmmsg */
/* A receive slot: the largest UDP payload, or a GRO buffer of many. */
#define UDP_SLOT_SIZE 65535

struct udp_server;

/* Serve every SOCK_DGRAM listener of s on loop l, guarded by the policy's
 * abuse controls (this worker's share of the global rate: 1/nworkers).
 * NULL on failure. */
/* The most a worker's UDP server allocates: the receive batch's payload,
 * as much again for its message arrays and echo copies, and the UDP
 * guard's tables. */
unsigned long long udp_memory_bound(const struct policy *p);

struct udp_server *udp_server_new(struct loop *l, const struct policy *p,
                                  const struct listen_set *s,
                                  const struct facts *f, unsigned nworkers);

/* Periodic work: summarise the drops whose log lines were suppressed. */
void udp_server_tick(struct udp_server *srv, uint64_t now);
/* The policy changed in place (a reload): the guard takes it up. */
void udp_server_policy_changed(struct udp_server *srv);
/* Listeners still served (a failed one is removed for good). */
size_t udp_server_listeners(const struct udp_server *srv);
void udp_server_free(struct udp_server *srv);

#endif
