/* listen: the listening sockets, made once by the privileged bootstrap. */
#ifndef ECHOD_LISTEN_H
#define ECHOD_LISTEN_H

#include "policy.h"

#include <stddef.h>

#define LISTENER_SHARED (~0u) /* served by every worker */

struct listener {
	int fd;
	int type;        /* SOCK_STREAM or SOCK_DGRAM */
	int family;      /* AF_INET or AF_INET6 */
	unsigned worker; /* the worker that serves it, or LISTENER_SHARED */
	char name[ADDR_STRLEN + 8]; /* "tcp 0.0.0.0:7", for logs */
};

struct listen_set {
	struct listener *l;
	size_t n;
};

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

/* In worker `worker`: close the sockets that belong to other workers. */
void listen_keep_only(struct listen_set *s, unsigned worker);

/* Say once that listener fd failed for good (shut down or broken: its
 * error would repeat on every poll) and count it; the caller has already
 * removed it from its loop, so it is never polled again. */
void listener_failed(int fd, const char *proto, const char *why);

/* Close everything. */
void listen_close(struct listen_set *s);

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
