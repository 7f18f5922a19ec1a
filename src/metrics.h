/*
 * metrics: the Prometheus endpoint (policy "metrics ADDR:PORT"), plain
 * HTTP/1.x GET /metrics in the text exposition format 0.0.4.
 *
 * The socket is bound by the bootstrap; the supervisor serves it inside its
 * sandbox from the counters it gathers from the workers (gather.h), so no
 * worker is involved and no memory is shared. Every scrape costs bounded
 * memory and time: at most METRICS_MAX_CONNS connections, each with fixed
 * buffers, answered or closed within METRICS_TIMEOUT_MS, one request each;
 * while all are busy, further scrapers wait in the kernel's backlog.
 * Map: process layer; calls acl, counters, errmsg, http, log, loop, policy.
 */
#ifndef ECHOD_METRICS_H
#define ECHOD_METRICS_H

#include "counters.h"
#include "loop.h"
#include "policy.h"

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_CONNS    4
#define METRICS_TIMEOUT_MS   2000
#define METRICS_MAX_RESPONSE 32768

/* The facts the info metric and the gauges report besides the counters. */
struct metrics_facts {
	const char *version;
	const char *seccomp;    /* "kill" or "log" */
	const char *landlock;   /* the Landlock level applied, or "none" */
	const char *chroot;     /* directory, or "none" */
	const char *user;       /* name, or "-" (not run as root) */
	unsigned workers;       /* configured */
	unsigned workers_alive; /* running now */
	uint64_t table_slots;   /* rate-table-size: per worker and protocol */
};

/*
 * The exposition text for the counters in *sum and the facts in *f, into
 * buf[0..len). Pure. Returns its length, or 0 if it does not fit.
 */
size_t metrics_render(const struct counters *sum, const struct metrics_facts *f,
                      char *buf, size_t len);

/* True if every counter has its place in the exposition (for the tests). */
int metrics_covers_every_counter(void);

/*
 * Bootstrap: bind and listen on p->metrics (non-blocking, close-on-exec).
 * The listening fd, or -1 with a message in err.
 */
int metrics_bind(const struct policy *p, char *err, size_t errlen);

/* What the bootstrap hands the supervisor: the bound socket and the facts
 * it knows (the supervisor adds the worker counts). */
struct metrics_setup {
	int fd;
	struct metrics_facts facts;
};

struct metrics_server;

/* Fill *sum and *f at the moment of a scrape. */
typedef void (*metrics_snapshot_fn)(void *arg, struct counters *sum,
                                    struct metrics_facts *f);

/* Serve fd in loop l; sources outside loopback and metrics-allow are
 * closed at once. NULL on allocation failure. */
struct metrics_server *metrics_server_new(struct loop *l, int fd,
                                          const struct policy *p,
                                          metrics_snapshot_fn snap, void *arg);
/* Close connections past their deadline (a 408 if no request came). */
void metrics_server_tick(struct metrics_server *m, uint64_t now);
/* In a new worker: close the listener and every connection, unwatched. */
void metrics_server_close_fds(struct metrics_server *m);
void metrics_server_free(struct metrics_server *m);

#endif
