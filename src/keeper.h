/*
 * keeper: the metrics keeper. The bootstrap forks it after the
 * supervisor's Landlock and before the supervisor's seccomp filter; it
 * alone holds the bound metrics socket, forks the metrics process
 * (scrape.h) and restarts it within worker-restart-limit, as the
 * supervisor does a worker. So the supervisor holds no metrics socket
 * and forks no HTTP server: its filter has nothing only the HTTP server
 * needs.
 *
 * The keeper's own filter is policy/seccomp-keeper.list plus the metrics
 * list (its child stacks that). It reads nothing from the network and no
 * byte the supervisor sends: only wait statuses, SIGCHLD and SIGTERM, and
 * each metrics process's counters on a pipe of that process's own (a new
 * one per process, gather.h), which latches that process's ready bit.
 *
 * Three channels, all made before any filter:
 *   - the snapshot pipe, supervisor to metrics process (scrape_feed
 *     records; packet mode, so a read takes one record or nothing): the
 *     keeper holds its read end only to hand it to each new process;
 *   - each metrics process's counters pipe to the keeper;
 *   - the keeper's report pipe to the supervisor (keeper_report records,
 *     packet mode), which no metrics process holds.
 * What the supervisor takes from the keeper: the counters to display, one
 * latched bit "a metrics process was ready", and the keeper's wait status
 * (a refusal status, 64, 71 or 78, stops the service: a metrics process
 * refused to start; any other end closes the endpoint, echo goes on).
 * Map: process layer; calls addr, counters, exitcodes, gather, log, loop,
 * metrics, policy, restart, scrape.
 */
#ifndef ECHOD_KEEPER_H
#define ECHOD_KEEPER_H

#include "counters.h"
#include "metrics.h"
#include "policy.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define KEEPER_NAME  "echod-keeper" /* their comm, for ps and the tests */
#define METRICS_NAME "echod-metrics"

/* What the keeper reports: the counters of every metrics process that
 * ended, with its own (settled), those of the one running (live), and
 * whether one was ever ready. */
struct keeper_report {
	uint32_t ready;
	uint32_t pad;
	struct counters settled;
	struct counters live;
};

/* The supervisor's end of things: the keeper's pid, its report pipe (read
 * end) and the snapshot pipe (write end), both non-blocking. */
struct keeper_link {
	pid_t pid;
	int report_fd;
	int feed_fd;
};

struct keeper_hooks {
	void (*leave_bootstrap)(void); /* close what the keeper must not hold */
	void (*harden)(void);          /* the keeper's own sandbox */
	void (*harden_metrics)(void);  /* each metrics process's */
};

/*
 * Fork the keeper over the bound socket m->fd, logged as listening, and
 * close it (m->fd -1): the keeper holds the only copy. log_shares: the
 * service's log budget divides into that many shares (the keeper and each
 * metrics process take one each). 0, or -1 with errno (the step in *step).
 */
int keeper_start(const struct policy *p, struct metrics_setup *m,
                 unsigned log_shares, const struct keeper_hooks *hooks,
                 struct keeper_link *out, const char **step);

/* The supervisor: read the keeper's reports, keep the last whole one in
 * *latest, its ready bit latched. Returns 1 at end of file (the keeper is
 * gone), else 0. */
int keeper_receive(int fd, struct keeper_report *latest);

#endif
