/*
 * privdrop: each step that gives something up, one function each. All
 * return 0, or -1 with what failed and how to fix it in err.
 * Map: bootstrap layer; calls errmsg, policy.
 */
#ifndef ECHOD_PRIVDROP_H
#define ECHOD_PRIVDROP_H

#include "policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Who echod becomes and what it keeps, from the start-up's checks to the
 * seal: the steps below in their order, each named as SECURITY.md does. */
struct privdrop {
	bool as_root;
	uid_t uid;
	gid_t gid;
	char user[POLICY_NAME_MAX];
	bool bounding;             /* the bounding set was emptied */
	bool keep_fsize;           /* allow-downgrade fsize-limit was used */
	unsigned long long nofile; /* the fd limit the policy needs */
};

/* Checked before anything is bound, so a mistake costs nothing: as root,
 * the policy's user resolved and its chroot checked (made, if `create`);
 * without root neither can be used (as_root false, uid our own). -1 with
 * the step ("user", "chroot") and why. */
int privdrop_check(struct privdrop *pd, const struct policy *p, bool create,
                   const char **step, char *err, size_t errlen);

/* Out of the filesystem, out of root. The bounding set goes first
 * (root, or CAP_SETPCAP: pd->bounding says whether): emptying it needs
 * CAP_SETPCAP, which the user change drops. Then chroot and the user
 * change, as root. -1 with the step and why. */
int privdrop_drop(struct privdrop *pd, const char *chroot_dir,
                  const char **step, char *err, size_t errlen);

/* Nothing left to lose: no capability, no way to regain one, no core or
 * ptrace, no more resources than the policy needs (pd->nofile, and
 * RLIMIT_FSIZE 0 unless pd->keep_fsize). -1 with the step and why. */
int privdrop_seal(const struct privdrop *pd, const char **step, char *err,
                  size_t errlen);

/* Why the steps privdrop_check and privdrop_drop skipped were skipped:
 * without root, or by allow-downgrade. */
const char *privdrop_skip_reason(const struct privdrop *pd);

/* The user to become: `name`, or if empty "echod" if it exists, else
 * "nobody". Refuses root (uid or gid 0). Looked up in a short-lived
 * child, so no NSS module is ever loaded into echod itself. */
int resolve_user(const char *name, char *resolved, size_t resolvedlen,
                 uid_t *uid, gid_t *gid, char *err, size_t errlen);

/* Make sure `dir` is an empty directory owned by root that nobody else can
 * write, creating it (and missing parents, mode 0755) if absent and
 * `create`; without `create` (echod -t) a missing one passes. */
int prepare_chroot(const char *dir, bool create, char *err, size_t errlen);

/* chroot(dir) and chdir("/"): no file is reachable afterwards. */
int enter_chroot(const char *dir, char *err, size_t errlen);

/* Empty the capability bounding set (needs CAP_SETPCAP). */
int drop_bounding_set(char *err, size_t errlen);

/* setgroups(0), setresgid, setresuid, then prove root cannot come back. */
int change_user(uid_t uid, gid_t gid, char *err, size_t errlen);

/* Clear effective, permitted, inheritable and ambient capabilities, and
 * check that the bounding set is empty when require_empty_bounding. */
int drop_capabilities(bool require_empty_bounding, char *err, size_t errlen);

/* PR_SET_NO_NEW_PRIVS: no execve can ever grant privilege again. */
int set_no_new_privs(char *err, size_t errlen);

/* PR_SET_DUMPABLE 0: no core, no ptrace attach by the same user. */
int set_not_dumpable(char *err, size_t errlen);

/* RLIMIT_NOFILE = nofile (soft and hard), RLIMIT_CORE 0, and RLIMIT_FSIZE
 * 0 unless keep_fsize (stderr is a file the log must grow). */
int limit_resources(unsigned long nofile, bool keep_fsize, char *err,
                    size_t errlen);

/* RLIMIT_DATA = bytes (soft and hard): heap and private mappings, so a
 * compromised worker fails its allocations instead of taking the host's
 * memory. */
int limit_memory(unsigned long long bytes, char *err, size_t errlen);

/* RLIMIT_NPROC 0: a worker cannot fork even if seccomp let it. */
int forbid_new_processes(char *err, size_t errlen);

/* True if the process holds cap in its effective set. */
bool have_capability(int cap);

/* The fd limit must allow `need` open files: the soft limit is raised to
 * it unless check_only. A hard limit below it: -1 with *hard set (err
 * untouched); any other failure: -1 with *hard 0 and why in err. */
int raise_fd_limit(unsigned long long need, bool check_only,
                   unsigned long long *hard, char *err, size_t errlen);

/* RLIMIT_FSIZE 0 would stop a log written to a regular file: with stderr
 * a file, -1 and why, unless p allows that one downgrade (then 1, and
 * pd->keep_fsize set); 0 when stderr is no regular file. */
int privdrop_check_stderr(struct privdrop *pd, const struct policy *p,
                          char *err, size_t errlen);

/* Descriptors inherited from whoever started us (but systemd's sockets and
 * stderr, the log) must not follow us into the sandbox, where read and
 * write are allowed: stdin and stdout become /dev/null, stderr write-only,
 * every fd from first_closed on closes. Run it after every lookup (user,
 * NSS), so a socket an NSS module keeps open closes too. On failure the
 * step ("stdio" or "stderr") and why. */
int close_inherited_fds(int first_closed, const char **step, char *err,
                        size_t errlen);

/*
 * File capabilities (make setcap) give whoever may run the binary the
 * right to bind low ports: without root, echod binds no port below 1024
 * but `allowed` (the echo port), so the binary is no general port binder.
 * -1 with the port it refuses in err.
 */
int check_capability_ports(const struct policy *p, uint16_t allowed, char *err,
                           size_t errlen);

#endif
