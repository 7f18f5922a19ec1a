/*
 * privdrop: each step that gives something up, one function each. All
 * return 0, or -1 with what failed and how to fix it in err.
 * Map: bootstrap layer; calls errmsg.
 */
#ifndef ECHOD_PRIVDROP_H
#define ECHOD_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The user to become: `name`, or if empty "echod" if it exists, else
 * "nobody". Refuses root (uid or gid 0). */
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

#endif
