/*
 * restart: when a child that died comes back. A crash is restarted after
 * a backoff that doubles from BACKOFF_FIRST_MS to BACKOFF_MAX_MS (reset by
 * a child that lived STABLE_MS), within a token bucket of restarts per
 * child (worker-restart-limit); and how it died, as a log field. Used by
 * the supervisor for its workers and by the keeper for the metrics
 * process.
 * Map: process layer; calls ratelimit, units.
 */
#ifndef ECHOD_RESTART_H
#define ECHOD_RESTART_H

#include "ratelimit.h"
#include "units.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RESTART_FIRST_MS  100
#define RESTART_MAX_MS    5000
#define RESTART_STABLE_MS 10000 /* a child this old resets the backoff */

struct restart {
	uint64_t started;    /* when the running child was forked */
	uint64_t restart_at; /* 0: no restart pending */
	unsigned backoff_ms;
	struct bucket bound;
};

void restart_init(struct restart *r, const struct bucket_cfg *limit,
                  uint64_t now);
/* The child was forked at now. */
void restart_started(struct restart *r, uint64_t now);
/* It crashed at now: false past the bound (no restart); else true, with
 * restart_at and backoff_ms set. */
bool restart_plan(struct restart *r, const struct bucket_cfg *limit,
                  uint64_t now);
/* True if a restart is due at now. */
bool restart_due(const struct restart *r, uint64_t now);

/* "exit_status=N", "signal=SEGV", ... for a wait(2) status. */
void restart_describe(int status, char *why, size_t len);

#endif
