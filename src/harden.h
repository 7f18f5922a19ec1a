/*
 * harden: each child's own steps on top of the supervisor's sandbox,
 * taken just before it serves: a worker limits its memory, forbids new
 * processes and stacks the worker allowlist; the metrics keeper and the
 * metrics process each enter a Landlock domain of their own (they can
 * signal no other echod process outside it), the metrics process forbids
 * new processes, and each stacks its allowlist. All first
 * close their copies of the XDP links: the supervisor's keep the
 * prefilter attached, and a child's would keep it after the supervisor is
 * gone.
 * Map: bootstrap layer; calls landlock, privdrop, sandbox, variant, xdp.
 */
#ifndef ECHOD_HARDEN_H
#define ECHOD_HARDEN_H

#include "sandbox.h"

#include <stdbool.h>
#include <stddef.h>

/* ASan maps terabytes of shadow memory that RLIMIT_DATA would count: the
 * sanitizer build runs its workers without the memory limit. */
#if defined(__SANITIZE_ADDRESS__)
#define HARDEN_MEMORY_LIMIT 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HARDEN_MEMORY_LIMIT 0
#endif
#endif
#ifndef HARDEN_MEMORY_LIMIT
#define HARDEN_MEMORY_LIMIT 1
#endif

/* role: SANDBOX_WORKER, SANDBOX_KEEPER or SANDBOX_METRICS. memory: the worker's
 * RLIMIT_DATA, 0 for none. log_only: the policy's sandbox-violation log.
 * 0, or -1 with the step that failed ("worker_memory", "worker_nproc",
 * "worker_seccomp", "metrics_landlock", "keeper_seccomp", ...) and
 * why. */
int harden_child(enum sandbox_role role, unsigned long long memory,
                 bool log_only, const char **step, char *err, size_t errlen);

#endif
