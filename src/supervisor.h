/*
 * supervisor: forks the workers, restarts the ones that die, stops them.
 * Map: process layer; calls counters, facts, gather, listener, log, loop,
 * policy, ratelimit, worker, xdp.
 */
#ifndef ECHOD_SUPERVISOR_H
#define ECHOD_SUPERVISOR_H

#include "facts.h"
#include "listener.h"
#include "policy.h"

/* Called in each new worker after its setup, before it serves; it exits
 * with status 71 if the worker cannot be hardened. */
typedef void (*worker_setup_fn)(unsigned index);

/*
 * Run nworkers workers over the sockets in s until SIGTERM or SIGINT, then
 * stop them and return 0. SIGUSR1 logs the sum of every counter. A worker
 * that exits with a configuration or hardening status (64, 71, 78) ends the
 * service with that status; any other death is logged and restarted.
 */
int supervisor_run(const struct policy *p, const struct facts *f,
                   struct listen_set *s, unsigned nworkers,
                   worker_setup_fn setup);

#endif
