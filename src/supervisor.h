/*
 * supervisor: forks the workers, restarts the ones that die, stops them
 * and the metrics keeper, and gathers their counters. It parses nothing a
 * peer sends: its only inputs are signals, wait statuses, the workers'
 * counters pipes (gather.h) and the keeper's reports (keeper.h).
 * Map: process layer; calls counters, exitcodes, facts, gather, keeper,
 * listener, log, loop, policy, reload, restart, scrape, worker, xdp.
 */
#ifndef ECHOD_SUPERVISOR_H
#define ECHOD_SUPERVISOR_H

#include "facts.h"
#include "listener.h"
#include "keeper.h"
#include "policy.h"
#include "reload.h"
#include "worker.h"

/*
 * Run nworkers workers over the sockets in s until SIGTERM or SIGINT, then
 * stop them and return 0. SIGUSR1 logs the sum of every counter; SIGHUP
 * reloads the policy through reload (reload.h), p being its live one. A worker
 * that exits with a refusal status (exitcodes.h: 64, 71, 78) before it said
 * it was ready ends the service with that status; any other death is
 * logged and restarted. With keeper non-NULL (metrics on) the supervisor
 * also stops the metrics keeper (keeper.h) with the service, shows its
 * counters and sends the metrics process its snapshots; a keeper that
 * ends with a refusal status stops the service with it.
 */
int supervisor_run(const struct policy *p, const struct facts *f,
                   struct listen_set *s, unsigned nworkers,
                   worker_harden_fn harden, const struct keeper_link *keeper,
                   struct reload *reload);

/* How many shares the service's log budget divides into (log.h). */
unsigned supervisor_log_shares(unsigned nworkers, bool metrics);

#endif
