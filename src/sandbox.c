/* sandbox: after this, a worker can echo and do nothing else. */
#include "sandbox.h"
#include "errmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

/* Generated from policy/seccomp-worker.list and seccomp-supervisor.list. */
static const struct sandbox_rule worker_rules[] = {
#include "seccomp_worker.inc"
};

static const struct sandbox_rule supervisor_rules[] = {
#include "seccomp_supervisor.inc"
};

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

size_t
sandbox_rules(enum sandbox_role role, const struct sandbox_rule **out)
{
	if (role == SANDBOX_SUPERVISOR) {
		*out = supervisor_rules;
		return LEN(supervisor_rules);
	}
	*out = worker_rules;
	return LEN(worker_rules);
}

static int
add_rules(scmp_filter_ctx ctx, enum sandbox_role role, char *err, size_t errlen)
{
	const struct sandbox_rule *r;
	size_t n = sandbox_rules(role, &r);

	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(r[i].syscall), rc;
		if (nr == __NR_SCMP_ERROR)
			return errmsg(err, errlen,
			              "unknown syscall '%s' in the allowlist",
			              r[i].syscall);
		rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, r[i].ncmp,
		                            r[i].cmp);
		if (rc != 0)
			return errmsg(err, errlen, "cannot add rule for %s: %s",
			              r[i].syscall, strerror(-rc));
	}
	return 0;
}

scmp_filter_ctx
sandbox_build(enum sandbox_role role, bool log_only, char *err, size_t errlen)
{
	uint32_t deny = log_only ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
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
	/* The supervisor's children inherit its filter: it holds theirs too. */
	if (add_rules(ctx, SANDBOX_WORKER, err, errlen) != 0 ||
	    (role == SANDBOX_SUPERVISOR &&
	     add_rules(ctx, SANDBOX_SUPERVISOR, err, errlen) != 0)) {
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

int
sandbox_enter(enum sandbox_role role, bool log_only, char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	int rc;

	err[0] = '\0';
	ctx = sandbox_build(role, log_only, err, errlen);
	if (ctx == NULL)
		return -1;
	rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc != 0)
		return errmsg(err, errlen, "seccomp_load: %s", strerror(-rc));
	return 0;
}
