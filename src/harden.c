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
	bool worker = role == SANDBOX_WORKER;

	xdp_forget_links();
	if (worker && memory > 0) {
		*step = "worker_memory";
		if (limit_memory(memory, err, errlen) != 0)
			return -1;
	}
	if (!worker) {
		*step = "metrics_landlock";
		if (landlock_restrict(err, errlen) < 0)
			return -1;
	}
	*step = worker ? "worker_nproc" : "metrics_nproc";
	if (forbid_new_processes(err, errlen) != 0)
		return -1;
	*step = worker ? "worker_seccomp" : "metrics_seccomp";
	if (GUARDS_ON && sandbox_enter(role, log_only, err, errlen) != 0)
		return -1;
	return 0;
}
