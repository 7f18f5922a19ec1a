/*
 * listener: the listening sockets as the rest of echod sees them, made by
 * listen (bind) or sockact (systemd) and served by the workers.
 * Map: base layer; calls addr, counters, log.
 */
#ifndef ECHOD_LISTENER_H
#define ECHOD_LISTENER_H

#include "addr.h"

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

/* In worker `worker`: close the sockets that belong to other workers. */
void listen_keep_only(struct listen_set *s, unsigned worker);

/* Close everything. */
void listen_close(struct listen_set *s);

/* Say once that listener fd failed for good (shut down or broken: its
 * error would repeat on every poll) and count it; the caller has already
 * removed it from its loop, so it is never polled again. */
void listener_failed(int fd, const char *proto, const char *why);

#endif
