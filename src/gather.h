/*
 * gather: the supervisor's copy of every worker's counters.
 *
 * Each worker counts in its own memory and sends whole snapshots down a
 * pipe of its own (see counters_send): when they changed, at most once a
 * tick, and at once when the supervisor asks with SIGUSR1. The supervisor
 * keeps the latest snapshot of each worker, and folds a dead worker's
 * totals into a sum of retired workers so restarts lose no count. A worker
 * can only write its own pipe: whatever it sends changes its own figures in
 * the reports, never another worker's, and echod takes no decision on them.
 * The one datum that is not a figure, readiness, is the workers_ready field
 * of a snapshot: its first non-zero value latches a ready bit for that pipe
 * (one pipe per process, so per pid), and no later snapshot can clear it.
 * The field itself is consumed there, never summed: the supervisor counts
 * ready workers from its own latches.
 *
 * A source is any child that reports this way: the workers, and the
 * metrics process.
 * This is the interface for anything that reports counters (SIGUSR1, the
 * metrics endpoint): gather_worker() and gather_total().
 * Map: process layer; calls counters.
 */
#ifndef ECHOD_GATHER_H
#define ECHOD_GATHER_H

#include "counters.h"

#include <stdbool.h>

struct gather;

/* State for n sources, none attached. NULL on allocation failure. */
struct gather *gather_new(unsigned n);
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

/* Ask for a fresh snapshot from every attached source below count (the
 * caller sends them SIGUSR1); gather_answered() is true once each replied
 * or died. */
void gather_request(struct gather *g, unsigned count);
bool gather_answered(const struct gather *g);

/* The latest snapshot of worker i (zeros before its first). */
const struct counters *gather_worker(const struct gather *g, unsigned i);
/* True once the process on pipe i said it is hardened and serving (the
 * latch: see above). */
bool gather_ready(const struct gather *g, unsigned i);
/* own (the supervisor's counters) + retired sources + every live source. */
void gather_total(const struct gather *g, const struct counters *own,
                  struct counters *out);
/* The same without live source skip's latest snapshot (the metrics
 * process adds its own live counters to what it is sent). */
void gather_total_except(const struct gather *g, const struct counters *own,
                         unsigned skip, struct counters *out);

#endif
