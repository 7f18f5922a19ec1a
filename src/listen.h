/*
 * listen: the listening sockets, made once by the privileged bootstrap.
 * Map: bootstrap layer; calls errmsg, listener, policy.
 */
#ifndef ECHOD_LISTEN_H
#define ECHOD_LISTEN_H

#include "listener.h"
#include "policy.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Bind every listen address for every protocol in the policy. With more
 * than one worker each worker gets its own SO_REUSEPORT socket and a
 * classic BPF program steers each source prefix (/v4_prefix, /v6_prefix)
 * to one worker, so per-source state lives in exactly one process.
 * 0, or -1 with a message that says what to do in err.
 */
int listen_bind(const struct policy *p, unsigned nworkers, unsigned v4_prefix,
                unsigned v6_prefix, struct listen_set *out, char *err,
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

#define STEERING_MAX_INSNS 64

struct sock_filter;

/*
 * A reuseport program: hash the source address's first `bits` bits (the
 * rate-limit prefix) and return hash % nworkers, the index of the socket
 * in the group. Written to prog (room for STEERING_MAX_INSNS); returns
 * its length. Pure, for the unit tests.
 */
size_t build_steering(struct sock_filter *prog, int family, unsigned bits,
                      unsigned nworkers);

#endif
