/* restart: backoff and bound of a child's restarts. */
#include "restart.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

void
restart_init(struct restart *r, const struct bucket_cfg *limit, uint64_t now)
{
	memset(r, 0, sizeof(*r));
	bucket_init(&r->bound, limit, now);
}

void
restart_started(struct restart *r, uint64_t now)
{
	r->started = now;
	r->restart_at = 0;
}

bool
restart_plan(struct restart *r, const struct bucket_cfg *limit, uint64_t now)
{
	if (!bucket_take(&r->bound, limit, now, 1)) {
		r->restart_at = 0;
		return false;
	}
	if (now - r->started >= RESTART_STABLE_MS)
		r->backoff_ms = RESTART_FIRST_MS;
	else if (r->backoff_ms < RESTART_MAX_MS)
		r->backoff_ms =
		    r->backoff_ms ? r->backoff_ms * 2 : RESTART_FIRST_MS;
	r->restart_at = now + r->backoff_ms;
	return true;
}

bool
restart_due(const struct restart *r, uint64_t now)
{
	return r->restart_at != 0 && now >= r->restart_at;
}

void
restart_describe(int status, char *why, size_t len)
{
	if (WIFEXITED(status)) {
		snprintf(why, len, "exit_status=%d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
		snprintf(why, len,
		         "signal=SIGSYS cause=\"sandbox violation: a system "
		         "call outside the seccomp allowlist; the process's "
		         "event=sandbox_violation line names it\"");
	} else if (WIFSIGNALED(status)) {
		snprintf(why, len, "signal=%s",
		         sigabbrev_np(WTERMSIG(status))
		             ? sigabbrev_np(WTERMSIG(status))
		             : "unknown");
	} else {
		snprintf(why, len, "status=%d", status);
	}
}
