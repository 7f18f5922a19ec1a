/*
 * supervisor: forks the workers and the metrics process, restarts the ones
 * that die, stops them, and gathers their counters. It parses nothing a
 * peer sends: its only inputs are signals, wait statuses and the
 * children's counters pipes (gather.h).
 * Map: process layer; calls counters, exitcodes, facts, gather, listener, log,
 * loop, metrics, policy, ratelimit, reload, scrape, worker, xdp.
 */
#ifndef ECHOD_SUPERVISOR_H
#define ECHOD_SUPERVISOR_H

#include "facts.h"
#include "listener.h"
#include "metrics.h"
#include "policy.h"
#include "reload.h"
#include "worker.h"

/*
 * Run nworkers workers over the sockets in s until SIGTERM or SIGINT, then
 * stop them and return 0. SIGUSR1 logs the sum of every counter; SIGHUP
 * reloads the policy through reload (reload.h), p being its live one. A worker
 * that exits with a refusal status (exitcodes.h: 64, 71, 78) before it said
 * it was ready ends the service with that status; any other death is
 * logged and restarted. With metrics non-NULL the supervisor also forks the
 * metrics process (scrape.h), which serves metrics->fd from the snapshots
 * the supervisor sends it and hardens itself with harden_metrics.
 */
int supervisor_run(const struct policy *p, const struct facts *f,
                   struct listen_set *s, unsigned nworkers,
                   worker_harden_fn harden, const struct metrics_setup *metrics,
                   worker_harden_fn harden_metrics, struct reload *reload);

#endif
