/*
 * worker: one process, one epoll loop, the TCP and UDP echo.
 * Map: process layer; calls counters, exitcodes, facts, listener, log, loop,
 * policy, reload, tcp, udp.
 */
#ifndef ECHOD_WORKER_H
#define ECHOD_WORKER_H

#include "facts.h"
#include "listener.h"
#include "policy.h"
#include "reload.h"

/* The worker's own hardening, run after its setup and before its first
 * read; it exits EXIT_OSERR (exitcodes.h) if a step cannot be applied. */
typedef void (*worker_harden_fn)(void);

/* The policy's worker count, or one per online CPU (at most 256). */
unsigned worker_count(const struct policy *p);

/* Each worker serves its share of tcp-max-connections: at least one. 0,
 * or -1 with why in err. */
int worker_check_share(const struct policy *p, unsigned nworkers, char *err,
                       size_t errlen);

/* The fd limit every process needs: every worker may hold every
 * connection (and its splice pipe), besides the listeners and a reserve
 * for epoll, signalfd and stdio. */
unsigned long long worker_fd_limit(const struct policy *p, unsigned nworkers);

/* What a worker may allocate, from the policy, as the modules that
 * allocate it say: the TCP server for the largest share of
 * tcp-max-connections among nworkers (tcp_memory_bound), the UDP server
 * (udp_memory_bound), the loop's bytes per fd (nofile of them), and a
 * margin for libc and the loaded libraries. */
unsigned long long worker_memory_bound(const struct policy *p,
                                       unsigned nworkers, unsigned long nofile);

/* Serve this worker's sockets until SIGTERM/SIGINT; returns an exit code.
 * Its counters go down `report` (see gather.h): on change, and on SIGUSR1.
 * harden, if not NULL, runs before the first read. A reloaded policy
 * arrives on policy_in (reload.h) and replaces *p between two events. */
int worker_run(const struct policy *p, const struct facts *f, unsigned nworkers,
               struct listen_set *s, unsigned index, int report,
               worker_harden_fn harden, struct reload *reload, int policy_in);

#endif
