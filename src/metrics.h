/*
 * metrics: the Prometheus endpoint's content (policy "metrics ADDR:PORT"):
 * the text exposition format 0.0.4 of a counter snapshot, and the bound
 * socket. The metrics process (scrape.h) serves it; the renderer is a pure
 * function of the snapshot and the facts.
 * Map: process layer; calls counters, errmsg, policy.
 */
#ifndef ECHOD_METRICS_H
#define ECHOD_METRICS_H

#include "counters.h"
#include "policy.h"

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_CONNS    4
#define METRICS_TIMEOUT_MS   2000
#define METRICS_MAX_RESPONSE 32768
/* Above what one source's connections can hold queued: the metrics
 * process takes one connection per source and drains the queue at once. */
#define METRICS_BACKLOG 128

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
	const char *policy_digest; /* of the policy in force; NULL: none */
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
 * it knows (the supervisor adds the worker count; the metrics process
 * fills workers_alive from each snapshot). */
struct metrics_setup {
	int fd;
	struct metrics_facts facts;
};

#endif
