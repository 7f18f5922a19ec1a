/*
 * worker: one process, one epoll loop, the TCP and UDP echo.
 * Map: process layer; calls counters, facts, listener, log, loop, policy, tcp,
 * udp.
 */
#ifndef ECHOD_WORKER_H
#define ECHOD_WORKER_H

#include "facts.h"
#include "listener.h"
#include "policy.h"

/* Serve this worker's sockets until SIGTERM/SIGINT; returns an exit code.
 * Its counters go down `report` (see gather.h): on change, and on SIGUSR1.
 * harden(index), if not NULL, runs after setup and before the first read. */
int worker_run(const struct policy *p, const struct facts *f, unsigned nworkers,
               struct listen_set *s, unsigned index, int report,
               void (*harden)(unsigned index));

#endif
