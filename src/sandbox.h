/*
 * sandbox: the seccomp allowlists of policy/seccomp-*.list, compiled in.
 * Map: bootstrap layer; calls errmsg, log.
 */
#ifndef ECHOD_SANDBOX_H
#define ECHOD_SANDBOX_H

#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>

/* What sandbox-violation log means, said once at start. */
#define SANDBOX_LOG_WARNING                                                    \
	"WARNING: sandbox-violation log: syscalls outside the allowlist are "  \
	"only logged, not stopped. For debugging only; never in production."

enum sandbox_role {
	SANDBOX_SUPERVISOR,
	SANDBOX_WORKER,
	SANDBOX_METRICS,
	SANDBOX_READER,
	SANDBOX_KEEPER
};

/* One line of an allowlist: a syscall and the argument tests it must pass. */
struct sandbox_rule {
	const char *syscall;
	unsigned ncmp;
	struct scmp_arg_cmp cmp[3];
};

/* The rules a role's list file adds (the supervisor's filter also holds
 * the worker's, the keeper's the metrics process's: their children stack
 * theirs on it; the reader's holds its own alone). Returns how many;
 * *rules points at static storage. */
size_t sandbox_rules(enum sandbox_role role, const struct sandbox_rule **rules);

/* The syscalls both filters answer with ENOSYS (policy/seccomp-enosys.list):
 * glibc falls back when they are missing. */
size_t sandbox_enosys_rules(const struct sandbox_rule **rules);

/*
 * Build the filter for a role: native architecture only, the role's
 * allowlist, ENOSYS for the optional calls, and for anything else
 * SECCOMP_RET_TRAP (see sandbox_enter), or SECCOMP_RET_LOG when log_only
 * (the `sandbox-violation log` debugging setting). NULL with a reason.
 */
scmp_filter_ctx sandbox_build(enum sandbox_role role, bool log_only, char *err,
                              size_t errlen);

/* Build and load the filter for a role; 0, or -1 with a reason in err.
 * The first call installs the SIGSYS handler: a forbidden call does not
 * run, the process logs event=sandbox_violation syscall=NAME nr=N and dies
 * by SIGSYS (SECCOMP_RET_KILL_PROCESS on the handler's way out). A filter
 * sandbox_prepare compiled for this role and log_only is loaded as it is. */
int sandbox_enter(enum sandbox_role role, bool log_only, char *err,
                  size_t errlen);

/*
 * Compile a role's filter to BPF now, and install the SIGSYS handler, for
 * the children forked afterwards: their sandbox_enter loads it with one
 * system call, and so none of them runs libseccomp (nor binds its symbols
 * through the dynamic linker), which would map pages of both in every
 * child. 0, or -1 with a reason in err.
 */
int sandbox_prepare(enum sandbox_role role, bool log_only, char *err,
                    size_t errlen);

#endif
