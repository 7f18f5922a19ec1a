/* sandbox: after this, a worker can echo and do nothing else. */
#include "sandbox.h"
#include "errmsg.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Generated from policy/seccomp-worker.list, seccomp-supervisor.list,
 * seccomp-metrics.list and seccomp-keeper.list. */
static const struct sandbox_rule worker_rules[] = {
#include "seccomp_worker.inc"
};

static const struct sandbox_rule supervisor_rules[] = {
#include "seccomp_supervisor.inc"
};

static const struct sandbox_rule metrics_rules[] = {
#include "seccomp_metrics.inc"
};

static const struct sandbox_rule keeper_rules[] = {
#include "seccomp_keeper.inc"
};

/* Generated from policy/seccomp-reader.list: the policy reader's alone. */
static const struct sandbox_rule reader_rules[] = {
#include "seccomp_reader.inc"
};

/* Generated from policy/seccomp-enosys.list: answered ENOSYS, not killed. */
static const struct sandbox_rule enosys_rules[] = {
#include "seccomp_enosys.inc"
};

/*
 * A filter death names its syscall. The default action is SECCOMP_RET_TRAP:
 * the call does not run, and the kernel sends SIGSYS. on_sigsys, installed
 * before the first filter (which then forbids rt_sigaction, so nothing can
 * replace it; a blocked or ignored SIGSYS is reset to the default, death,
 * by the kernel), writes one line from a table filled before the filter and
 * makes DIE_SYSCALL, which every filter answers with
 * SECCOMP_RET_KILL_PROCESS: the process still dies by SIGSYS, at the
 * kernel's hand, and the supervisor replaces it as before.
 */
#define NAMES_MAX 512
#ifndef SYS_SECCOMP /* si_code of a seccomp SIGSYS (asm-generic/siginfo.h) */
#define SYS_SECCOMP 1
#endif
#define DIE_SYSCALL "tkill" /* obsolete; nothing in echod or glibc uses it */

static char violation_fields[NAMES_MAX][48]; /* "syscall=NAME nr=N" */
static bool trap_installed;

static void
on_sigsys(int sig, siginfo_t *si, void *ctx)
{
	int nr = si->si_syscall;

	(void)sig;
	(void)ctx;
	/* A SIGSYS sent by kill(2) is no violation: just die of it. */
	if (si->si_code == SYS_SECCOMP)
		log_signal_safe(LOG_ERROR, "sandbox_violation",
		                nr >= 0 && nr < NAMES_MAX
		                    ? violation_fields[nr]
		                    : "syscall=unknown nr=out_of_range");
	syscall(SYS_tkill, 0, SIGSYS);
	_exit(159); /* not reached: the filter kills on DIE_SYSCALL */
}

/* Name every syscall number while libseccomp's tables can still be read,
 * then install the handler; once per process tree (workers inherit it). */
static int
install_trap(char *err, size_t errlen)
{
	struct sigaction sa = {.sa_sigaction = on_sigsys,
	                       .sa_flags = SA_SIGINFO};

	if (trap_installed)
		return 0;
	for (int nr = 0; nr < NAMES_MAX; nr++) {
		char *name =
		    seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		snprintf(violation_fields[nr], sizeof(violation_fields[nr]),
		         "syscall=%s nr=%d", name ? name : "unknown", nr);
		free(name);
	}
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) != 0)
		return errmsg(err, errlen, "sigaction(SIGSYS): %s",
		              strerror(errno));
	trap_installed = true;
	return 0;
}

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

size_t
sandbox_rules(enum sandbox_role role, const struct sandbox_rule **out)
{
	if (role == SANDBOX_SUPERVISOR) {
		*out = supervisor_rules;
		return LEN(supervisor_rules);
	}
	if (role == SANDBOX_METRICS) {
		*out = metrics_rules;
		return LEN(metrics_rules);
	}
	if (role == SANDBOX_READER) {
		*out = reader_rules;
		return LEN(reader_rules);
	}
	if (role == SANDBOX_KEEPER) {
		*out = keeper_rules;
		return LEN(keeper_rules);
	}
	*out = worker_rules;
	return LEN(worker_rules);
}

size_t
sandbox_enosys_rules(const struct sandbox_rule **out)
{
	*out = enosys_rules;
	return LEN(enosys_rules);
}

/* Add rules with one action. A name this libseccomp does not know is an
 * error in an allowlist, and skipped in the ENOSYS list (the call then
 * traps like any other). */
static int
add_array(scmp_filter_ctx ctx, const struct sandbox_rule *r, size_t n,
          uint32_t action, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(r[i].syscall), rc;
		if (nr == __NR_SCMP_ERROR && action != SCMP_ACT_ALLOW)
			continue;
		if (nr == __NR_SCMP_ERROR)
			return errmsg(err, errlen,
			              "unknown syscall '%s' in the allowlist",
			              r[i].syscall);
		rc = seccomp_rule_add_array(ctx, action, nr, r[i].ncmp,
		                            r[i].cmp);
		if (rc != 0)
			return errmsg(err, errlen, "cannot add rule for %s: %s",
			              r[i].syscall, strerror(-rc));
	}
	return 0;
}

static int
add_rules(scmp_filter_ctx ctx, enum sandbox_role role, char *err, size_t errlen)
{
	const struct sandbox_rule *r;
	size_t n = sandbox_rules(role, &r);

	return add_array(ctx, r, n, SCMP_ACT_ALLOW, err, errlen);
}

scmp_filter_ctx
sandbox_build(enum sandbox_role role, bool log_only, char *err, size_t errlen)
{
	uint32_t deny = log_only ? SCMP_ACT_LOG : SCMP_ACT_TRAP;
	scmp_filter_ctx ctx;
	int rc;

	/* KILL_PROCESS needs API level 3: refuse rather than kill a thread. */
	if (seccomp_api_get() < 3) {
		errmsg(
		    err, errlen,
		    "the kernel or libseccomp lacks SECCOMP_RET_KILL_PROCESS "
		    "(API level %u < 3)",
		    seccomp_api_get());
		return NULL;
	}
	ctx = seccomp_init(deny);
	if (ctx == NULL) {
		errmsg(err, errlen, "seccomp_init failed");
		return NULL;
	}
	/* Another architecture's syscall numbers mean something else. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	                      SCMP_ACT_KILL_PROCESS);
	/* no_new_privs is set by the bootstrap itself, as a step of its own. */
	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	/* A binary search over the syscall numbers instead of a linear
	 * chain: every system call a worker makes runs the filter. */
	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (rc != 0) {
		errmsg(err, errlen, "seccomp_attr_set: %s", strerror(-rc));
		seccomp_release(ctx);
		return NULL;
	}
	/* A child inherits its parent's filter: the supervisor's holds the
	 * workers' list, the keeper's the metrics process's (a syscall named
	 * twice is one rule set; libseccomp merges them). The reader and the
	 * keeper, forked before the supervisor's filter, hold their own. */
	if ((role == SANDBOX_READER &&
	     add_rules(ctx, SANDBOX_READER, err, errlen) != 0) ||
	    ((role == SANDBOX_SUPERVISOR || role == SANDBOX_WORKER) &&
	     add_rules(ctx, SANDBOX_WORKER, err, errlen) != 0) ||
	    ((role == SANDBOX_KEEPER || role == SANDBOX_METRICS) &&
	     add_rules(ctx, SANDBOX_METRICS, err, errlen) != 0) ||
	    (role == SANDBOX_SUPERVISOR &&
	     add_rules(ctx, SANDBOX_SUPERVISOR, err, errlen) != 0) ||
	    (role == SANDBOX_KEEPER &&
	     add_rules(ctx, SANDBOX_KEEPER, err, errlen) != 0) ||
	    add_array(ctx, enosys_rules, LEN(enosys_rules),
	              SCMP_ACT_ERRNO(ENOSYS), err, errlen) != 0) {
		seccomp_release(ctx);
		return NULL;
	}
	/* The SIGSYS handler's way out (see on_sigsys). */
	rc = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS,
	                      seccomp_syscall_resolve_name(DIE_SYSCALL), 0);
	if (rc != 0) {
		errmsg(err, errlen, "cannot add the %s rule: %s", DIE_SYSCALL,
		       strerror(-rc));
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

/* Filters compiled by sandbox_prepare, by role: inherited by the fork. */
static struct {
	struct sock_filter *insns; /* NULL: not prepared */
	unsigned short len;
	bool log_only;
} prepared[SANDBOX_KEEPER + 1];

/* The whole of what the pipe holds, up to max bytes; -1 past max. */
static ssize_t
read_to_end(int fd, void *buf, size_t max)
{
	size_t got = 0;

	while (got < max) {
		ssize_t n = read(fd, (char *)buf + got, max - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return (ssize_t)got;
		got += (size_t)n;
	}
	return -1;
}

int
sandbox_prepare(enum sandbox_role role, bool log_only, char *err, size_t errlen)
{
	const size_t max = BPF_MAXINSNS * sizeof(struct sock_filter);
	struct sock_filter *insns;
	scmp_filter_ctx ctx;
	int fds[2], rc;
	ssize_t n = -1;

	err[0] = '\0';
	if (install_trap(err, errlen) != 0)
		return -1;
	ctx = sandbox_build(role, log_only, err, errlen);
	if (ctx == NULL)
		return -1;
	/* A pipe holds the largest program (32 KiB): the export never
	 * waits for this reader. */
	if (pipe2(fds, O_CLOEXEC) != 0) {
		seccomp_release(ctx);
		return errmsg(err, errlen, "pipe2: %s", strerror(errno));
	}
	rc = seccomp_export_bpf(ctx, fds[1]);
	close(fds[1]);
	seccomp_release(ctx);
	insns = malloc(max);
	if (rc == 0 && insns != NULL)
		n = read_to_end(fds[0], insns, max);
	close(fds[0]);
	if (rc != 0 || n <= 0 || n % (ssize_t)sizeof(*insns) != 0) {
		free(insns);
		return errmsg(err, errlen, "seccomp_export_bpf: %s",
		              rc != 0 ? strerror(-rc) : "no whole program");
	}
	free(prepared[role].insns);
	prepared[role].insns = realloc(insns, (size_t)n);
	if (prepared[role].insns == NULL)
		prepared[role].insns = insns;
	prepared[role].len = (unsigned short)(n / (ssize_t)sizeof(*insns));
	prepared[role].log_only = log_only;
	return 0;
}

/* The filter sandbox_prepare compiled: one system call, as seccomp_load
 * makes it (no flag: no TSYNC, no LOG, no listener). */
static int
load_prepared(enum sandbox_role role, char *err, size_t errlen)
{
	struct sock_fprog prog = {.len = prepared[role].len,
	                          .filter = prepared[role].insns};

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
		return errmsg(err, errlen, "seccomp(SET_MODE_FILTER): %s",
		              strerror(errno));
	return 0;
}

int
sandbox_enter(enum sandbox_role role, bool log_only, char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	int rc;

	err[0] = '\0';
	if (install_trap(err, errlen) != 0)
		return -1;
	if (prepared[role].insns != NULL && prepared[role].log_only == log_only)
		return load_prepared(role, err, errlen);
	ctx = sandbox_build(role, log_only, err, errlen);
	if (ctx == NULL)
		return -1;
	rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc != 0)
		return errmsg(err, errlen, "seccomp_load: %s", strerror(-rc));
	return 0;
}
