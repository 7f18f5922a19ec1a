/*
 * scrape: the metrics process. The metrics keeper (keeper.h) forks it and
 * restarts it like a worker; it serves the bound metrics socket (plain
 * HTTP/1.x GET /metrics) from the snapshots the supervisor writes down a
 * pipe, and reports its own counters to the keeper up another, as a
 * worker does to the supervisor. No scraper reaches the supervisor: a
 * scrape is parsed, answered and timed out here.
 *
 * Every scrape costs bounded memory and time: at most METRICS_MAX_CONNS
 * connections with fixed buffers, one per source address (a new one from
 * the same address replaces the old); when all are taken, the one that has
 * held its slot longest without a whole request is closed to admit the
 * newcomer (or, if every one has its request, the oldest). Each connection
 * is answered or closed within METRICS_TIMEOUT_MS, and one wake-up reads
 * at most SCRAPE_READS_PER_WAKEUP times from it, the deadline checked
 * before each read.
 * Map: process layer; calls acl, addr, counters, http, listener, log, loop,
 * metrics, policy.
 */
#ifndef ECHOD_SCRAPE_H
#define ECHOD_SCRAPE_H

#include "counters.h"
#include "metrics.h"
#include "policy.h"

#include <stdint.h>

#define SCRAPE_READS_PER_WAKEUP 8
#define SCRAPE_SINK             4096 /* bytes per read after the answer */

/* What the supervisor sends: every counter but the metrics process's own
 * live ones (it adds those itself), and how many workers run. One record
 * per write(2) on a pipe in packet mode (keeper.h), read one at a time. */
struct scrape_feed {
	struct counters sum;
	uint32_t workers_alive;
	uint32_t pad;
	char policy_digest[24]; /* reload_digest(): hex, NUL-terminated */
};

/*
 * The metrics process's life, in the child after the fork: set up, call
 * harden (Landlock, RLIMIT_NPROC 0, the metrics seccomp list), report
 * ready up report_fd (to the keeper), serve listen_fd until feed_fd
 * reaches end of file (the supervisor stops, or is gone). Returns the exit
 * status.
 */
int scrape_run(const struct policy *p, const struct metrics_facts *facts,
               int listen_fd, int feed_fd, int report_fd, void (*harden)(void));

#endif
