/*
 * listen: the listening sockets, made once by the privileged bootstrap.
 * Map: bootstrap layer; calls errmsg, gro, listener, log, policy.
 */
#ifndef ECHOD_LISTEN_H
#define ECHOD_LISTEN_H

#include "listener.h"
#include "policy.h"

#include <stddef.h>
#include <stdint.h>

#define STEERING_KEY_WORDS 6

/* How sources are steered to workers: TCP and UDP each by their own
 * prefix length (the coarsest key either keeps state for, so that each
 * such key lives in exactly one worker), and a secret chosen at each
 * start, so that nobody can compute which prefixes share a worker. */
struct steering {
	unsigned tcp_v4, tcp_v6, udp_v4, udp_v6;
	uint32_t key[STEERING_KEY_WORDS];
};

/*
 * Bind every listen address for every protocol in the policy. With more
 * than one worker each worker gets its own SO_REUSEPORT socket and a
 * classic BPF program steers each source prefix to one worker (st).
 * 0, or -1 with a message that says what to do in err.
 */
int listen_bind(const struct policy *p, unsigned nworkers,
                const struct steering *st, struct listen_set *out, char *err,
                size_t errlen);

/*
 * Every UDP socket's receive buffer to at least `bytes`
 * (udp-receive-buffer): the queue a flood's bursts wait in while the
 * worker is busy. Past net.core.rmem_max only with CAP_NET_ADMIN; a
 * larger one (systemd's ReceiveBuffer=) is kept. The smallest buffer the
 * kernel granted, as SO_RCVBUF reads (twice the bytes asked when all was
 * granted), in *granted; 0 if there is no UDP socket. 0, or -1 with err.
 */
int listen_set_rcvbuf(const struct listen_set *s, uint64_t bytes,
                      uint64_t *granted, char *err, size_t errlen);

/* listen_bind() with the steering the policy's prefixes ask for, under
 * a key drawn now and wiped once the kernel holds the programs. */
int listen_bind_steered(const struct policy *p, unsigned nworkers,
                        struct listen_set *out, char *err, size_t errlen);

/* Ask the kernel for GRO buffers, many datagrams of one flow per receive,
 * on every UDP socket, bound here or by systemd. A speed-up, not a
 * hardening step: without it (Linux before 5.0) echod serves one datagram
 * per receive, and says so once (udp_gro_unavailable). */
void listen_enable_gro(const struct listen_set *s);

/* Every UDP socket's receive buffer to `bytes` (udp-receive-buffer), while
 * CAP_NET_ADMIN may still lift net.core.rmem_max: a flood's bursts queue
 * there while the worker is busy, and a short queue loses the legitimate
 * datagrams with the flood's. What was granted is logged, with a warning
 * if less than asked. -1 with why in err if a socket refused. */
int listen_size_udp_buffers(const struct listen_set *s, uint64_t bytes,
                            char *err, size_t errlen);

/* One "listening" line per address and protocol (worker 0's copy). */
void listen_announce(const struct listen_set *s);

#define STEERING_MAX_INSNS 64

struct sock_filter;

/*
 * A reuseport program: a keyed mix of the source address's first `bits`
 * bits, modulo nworkers: the index of the socket in the group. The mix
 * (multiplies, shifts and the key's words added in) is no cryptographic
 * function, as classic BPF has none, but without the key the mapping
 * cannot be computed (docs/design.md). Written to prog (room for
 * STEERING_MAX_INSNS); returns its length. Pure, for the unit tests.
 */
size_t listen_build_steering(struct sock_filter *prog, int family,
                             unsigned bits, unsigned nworkers,
                             const uint32_t key[STEERING_KEY_WORDS]);

#endif
