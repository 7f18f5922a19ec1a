/*
 * listener: the listening sockets as the rest of echod sees them, made by
 * listen (bind) or sockact (systemd) and served by the workers.
 * Map: base layer; calls addr, counters, log, loop.
 */
#ifndef ECHOD_LISTENER_H
#define ECHOD_LISTENER_H

#include "addr.h"
#include "loop.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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
void listener_keep_only(struct listen_set *s, unsigned worker);

/* Close everything. */
void listener_close_all(struct listen_set *s);

/* Say once that listener fd failed for good (shut down or broken: its
 * error would repeat on every poll) and count it; the caller has already
 * removed it from its loop, so it is never polled again. */
void listener_failed(int fd, const char *proto, const char *why);

/*
 * Accepting, for the TCP echo and the metrics server alike. Each accept
 * loop takes its own course on a failure (tcp.c and scrape.c say which);
 * listener_accept() sorts the failure, listener_pause() and
 * listener_resume() do the pausing.
 */
enum listener_error {
	LISTENER_EMPTY,     /* EAGAIN, EINTR: nothing more for now */
	LISTENER_EXHAUSTED, /* EMFILE, ENFILE, ENOBUFS, ENOMEM: out of room */
	LISTENER_TRANSIENT, /* one queued connection's trouble (accept(2):
	                     * "treat them like EAGAIN by retrying") */
	LISTENER_BROKEN,    /* anything else: the listener's own */
};

/* accept4(), non-blocking and close-on-exec: the connection and its
 * peer, or -1 with the kind of failure in *e (errno kept). */
int listener_accept(int fd, struct sockaddr_storage *peer,
                    enum listener_error *e);

#define LISTENER_MAX_PAUSED 64

/* Listeners paused while out of room, until the next tick. */
struct listener_pauses {
	struct {
		int fd;
		uint32_t events;
	} l[LISTENER_MAX_PAUSED];
	size_t n;
};

/* Stop watching listener fd, or level-triggered epoll would wake us for
 * it again at once. Removed, and added back by listener_resume() with the
 * same events, since EPOLLEXCLUSIVE watches cannot be modified. */
void listener_pause(struct listener_pauses *p, struct loop *l, int fd);

/* On a tick: watch every paused listener again with fn; one the loop has
 * no room for yet (epoll_ctl's ENOMEM, ENOSPC) stays paused for the next
 * tick rather than being lost: nothing else would ever watch it again. */
void listener_resume(struct listener_pauses *p, struct loop *l, loop_fn fn,
                     void *arg);

#endif
