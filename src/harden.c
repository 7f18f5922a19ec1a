/* harden: a child's own steps before it serves. */
#include "harden.h"
#include "landlock.h"
#include "privdrop.h"
#include "variant.h"
#include "xdp.h"

int
harden_child(enum sandbox_role role, unsigned long long memory, bool log_only,
             const char **step, char *err, size_t errlen)
{
	bool worker = role == SANDBOX_WORKER, keeper = role == SANDBOX_KEEPER;
#define STEP(s) (worker ? "worker_" s : keeper ? "keeper_" s : "metrics_" s)

	xdp_forget_links();
	if (worker && memory > 0) {
		*step = STEP("memory");
		if (limit_memory(memory, err, errlen) != 0)
			return -1;
	}
	if (!worker) {
		*step = STEP("landlock");
		if (landlock_restrict(err, errlen) < 0)
			return -1;
	}
	/* The keeper forks the metrics process: it keeps RLIMIT_NPROC. */
	*step = STEP("nproc");
	if (!keeper && forbid_new_processes(err, errlen) != 0)
		return -1;
	*step = STEP("seccomp");
#undef STEP
	if (GUARDS_ON && sandbox_enter(role, log_only, err, errlen) != 0)
		return -1;
	return 0;
}
