/*
 * gather: the supervisor's copy of every worker's counters.
 *
 * Each worker counts in its own memory and sends whole snapshots down a
 * pipe of its own (see counters_send): when they changed, at most once a
 * tick, and at once when the supervisor asks with SIGUSR1. The supervisor
 * keeps the latest snapshot of each worker, and folds a dead worker's
 * totals into a sum of retired workers so restarts lose no count. A worker
 * can only write its own pipe: whatever it sends changes its own figures in
 * the reports, never another worker's, and echod takes no decision on them
 * (readiness is one flag per worker).
 *
 * This is the interface for anything that reports counters (SIGUSR1, the
 * metrics endpoint): gather_worker() and gather_total().
 * Map: process layer; calls counters.
 */
#ifndef ECHOD_GATHER_H
#define ECHOD_GATHER_H

#include "counters.h"

#include <stdbool.h>

struct gather;

/* State for nworkers workers, none attached. NULL on allocation failure. */
struct gather *gather_new(unsigned nworkers);
void gather_free(struct gather *g);

/* Before forking worker i: a fresh pipe. The supervisor keeps the read end
 * (gather_fd); *writer is the worker's end, which the supervisor closes
 * after the fork. 0, or -1 with errno. */
int gather_attach(struct gather *g, unsigned i, int *writer);
/* In a new worker: close every read end (no worker reads another's). */
void gather_close_readers(struct gather *g);
/* The read end of worker i's pipe; -1 if none is attached. */
int gather_fd(const struct gather *g, unsigned i);

/* Read what worker i sent; keep the last whole snapshot. Returns 1 if the
 * pipe reached end of file (the worker is gone), else 0. */
int gather_receive(struct gather *g, unsigned i);
/* Worker i died: read what is left, add its totals to the retired sum,
 * forget its gauges (tcp_active, workers_ready) and close its pipe. */
void gather_retire(struct gather *g, unsigned i);

/* Ask for a fresh snapshot from every attached worker (the caller sends
 * them SIGUSR1); gather_answered() is true once each replied or died. */
void gather_request(struct gather *g);
bool gather_answered(const struct gather *g);

/* The latest snapshot of worker i (zeros before its first). */
const struct counters *gather_worker(const struct gather *g, unsigned i);
/* True once worker i said it is hardened and serving. */
bool gather_ready(const struct gather *g, unsigned i);
/* own (the supervisor's counters) + retired workers + every live worker. */
void gather_total(const struct gather *g, const struct counters *own,
                  struct counters *out);

#endif
