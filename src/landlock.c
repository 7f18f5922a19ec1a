/* landlock: no files (but the policy reader's one directory), no TCP
 * bind/connect, no signals out of the domain. */
#include "landlock.h"
#include "errmsg.h"
#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * The uapi values, spelled out: Debian 12's <linux/landlock.h> (Linux 6.1)
 * stops at ABI 2, while the kernel that runs echod may offer more.
 */
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_FS_ABI1                ((1ULL << 13) - 1) /* execute .. make_sym */
#define LL_FS_READ_FILE           (1ULL << 2)
#define LL_FS_REFER               (1ULL << 13) /* ABI 2 */
#define LL_FS_TRUNCATE            (1ULL << 14) /* ABI 3 */
#define LL_FS_IOCTL_DEV           (1ULL << 15) /* ABI 5 */
#define LL_NET_BIND_TCP           (1ULL << 0)  /* ABI 4 */
#define LL_NET_CONNECT_TCP        (1ULL << 1)  /* ABI 4 */
#define LL_SCOPE_ABSTRACT_UNIX    (1ULL << 0)  /* ABI 6 */
#define LL_SCOPE_SIGNAL           (1ULL << 1)  /* ABI 6 */

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule       445
#define SYS_landlock_restrict_self  446
#endif
#define LL_RULE_PATH_BENEATH 1

/* The uapi's struct landlock_path_beneath_attr: packed, 12 bytes. */
struct path_beneath_attr {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

struct ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;             /* ABI 6 */
};

int
landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0,
	                 LL_CREATE_RULESET_VERSION);

	return v < 0 ? 0 : (int)v;
}

/*
 * Handle every right the ABI knows and grant none but, when read_dir >= 0,
 * reading files beneath that directory: nothing is allowed that a rule
 * would have to name.
 */
static int
restrict_self(int read_dir, char *err, size_t errlen)
{
	int abi = landlock_abi();
	struct ruleset_attr attr = {.handled_access_fs = LL_FS_ABI1};
	size_t size = sizeof(attr.handled_access_fs);
	int fd;

	if (abi <= 0)
		return 0;
	if (abi >= 2)
		attr.handled_access_fs |= LL_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LL_FS_TRUNCATE;
	if (abi >= 5)
		attr.handled_access_fs |= LL_FS_IOCTL_DEV;
	if (abi >= 4) {
		attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		size = offsetof(struct ruleset_attr, scoped);
	}
	if (abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	fd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (fd < 0)
		return errmsg(err, errlen,
		              "landlock_create_ruleset (ABI %d): %s", abi,
		              strerror(errno));
	if (read_dir >= 0) {
		struct path_beneath_attr rule = {
		    .allowed_access = LL_FS_READ_FILE, .parent_fd = read_dir};
		if (syscall(SYS_landlock_add_rule, fd, LL_RULE_PATH_BENEATH,
		            &rule, 0) != 0) {
			int e = errno;
			close(fd);
			return errmsg(err, errlen, "landlock_add_rule: %s",
			              strerror(e));
		}
	}
	if (syscall(SYS_landlock_restrict_self, fd, 0) != 0) {
		int e = errno;
		close(fd);
		return errmsg(err, errlen, "landlock_restrict_self: %s",
		              strerror(e));
	}
	close(fd);
	return abi;
}

int
landlock_restrict(char *err, size_t errlen)
{
	return restrict_self(-1, err, errlen);
}

int
landlock_restrict_reading(int dir_fd, char *err, size_t errlen)
{
	return restrict_self(dir_fd, err, errlen);
}

int
landlock_enter(bool required, char *level, size_t levellen, char *err,
               size_t errlen)
{
	int abi = landlock_restrict(err, errlen);

	if (abi < 0)
		return -1;
	if (abi == 0 && required)
		return errmsg(err, errlen,
		              "the kernel offers no Landlock (not built in "
		              "or not enabled at boot: lsm=...,landlock) "
		              "and the policy says 'landlock required'");
	if (abi == 0) {
		log_always(LOG_WARN, "landlock_unavailable",
		           "msg=\"the kernel offers no Landlock: seccomp, the "
		           "chroot and the user change stand alone\"");
		snprintf(level, levellen, "none");
	} else {
		snprintf(level, levellen, "abi%d", abi);
	}
	return 0;
}
