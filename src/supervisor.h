/*
 * supervisor: forks the workers, restarts the ones that die, stops them.
 * Map: process layer; calls counters, exitcodes, facts, gather, listener, log,
 * loop, metrics, policy, ratelimit, worker, xdp.
 */
#ifndef ECHOD_SUPERVISOR_H
#define ECHOD_SUPERVISOR_H

#include "facts.h"
#include "listener.h"
#include "metrics.h"
#include "policy.h"
#include "worker.h"

/*
 * Run nworkers workers over the sockets in s until SIGTERM or SIGINT, then
 * stop them and return 0. SIGUSR1 logs the sum of every counter. A worker
 * that exits with a refusal status (exitcodes.h: 64, 71, 78) ends the
 * service with that status; any other death is logged and restarted.
 * With metrics non-NULL the supervisor also serves the metrics endpoint on
 * metrics->fd, from the counters it gathers.
 */
int supervisor_run(const struct policy *p, const struct facts *f,
                   struct listen_set *s, unsigned nworkers,
                   worker_harden_fn harden,
                   const struct metrics_setup *metrics);

#endif
