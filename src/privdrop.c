/* privdrop: give up user, filesystem, capabilities; check each step took. */
#include "privdrop.h"
#include "errmsg.h"
#include "policy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* What the lookup child hands back: one write, well under PIPE_BUF. */
struct user_answer {
	int status; /* 0, or -1 with why in err */
	uid_t uid;
	gid_t gid;
	char name[POLICY_NAME_MAX];
	char err[512];
};

/* In the lookup child: getpwnam, with today's answers and messages. */
static void
look_up_user(const char *name, struct user_answer *a)
{
	struct passwd *pw = NULL;

	if (name[0] == '\0') {
		/* A dedicated user owns nothing else; nobody is the fallback.
		 */
		pw = getpwnam("echod");
		if (pw == NULL)
			pw = getpwnam("nobody");
		if (pw == NULL) {
			a->status =
			    errmsg(a->err, sizeof(a->err),
			           "neither user echod nor nobody exists: "
			           "create one (useradd -r -s /usr/sbin/"
			           "nologin echod) or set 'user'");
			return;
		}
	} else if ((pw = getpwnam(name)) == NULL) {
		a->status =
		    errmsg(a->err, sizeof(a->err),
		           "user '%s' does not exist: create it (useradd "
		           "-r -s /usr/sbin/nologin %s) or change "
		           "'user'/-u",
		           name, name);
		return;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		a->status = errmsg(a->err, sizeof(a->err),
		                   "user '%s' has uid or gid 0: choose an "
		                   "unprivileged user",
		                   pw->pw_name);
		return;
	}
	snprintf(a->name, sizeof(a->name), "%s", pw->pw_name);
	a->uid = pw->pw_uid;
	a->gid = pw->pw_gid;
}

/*
 * getpwnam runs in a child that exits at once: the NSS modules it loads
 * (libnss_systemd, and libm with it; sssd's or LDAP's with their sockets)
 * are never mapped into echod, so no sandboxed process holds their code,
 * and none of them costs its memory.
 */
int
resolve_user(const char *name, char *resolved, size_t resolvedlen, uid_t *uid,
             gid_t *gid, char *err, size_t errlen)
{
	struct user_answer a = {0};
	int fds[2], status = 0;
	ssize_t n = -1;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return errmsg(err, errlen, "user lookup: pipe: %s",
		              strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return errmsg(err, errlen, "user lookup: fork: %s",
		              strerror(errno));
	}
	if (pid == 0) {
		close(fds[0]);
		look_up_user(name, &a);
		n = write(fds[1], &a, sizeof(a));
		_exit(n == (ssize_t)sizeof(a) ? 0 : 1);
	}
	close(fds[1]);
	do
		n = read(fds[0], &a, sizeof(a));
	while (n < 0 && errno == EINTR);
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(a))
		return errmsg(err, errlen,
		              "user lookup: the lookup process gave no answer "
		              "(wait status %d)",
		              status);
	if (a.status != 0)
		return errmsg(err, errlen, "%s", a.err);
	snprintf(resolved, resolvedlen, "%s", a.name);
	*uid = a.uid;
	*gid = a.gid;
	return 0;
}

static int
mkdir_parents(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return errmsg(err, errlen, "chroot path too long");
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			return errmsg(err, errlen, "cannot create %s: %s", path,
			              strerror(errno));
		*p = '/';
	}
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		return errmsg(err, errlen, "cannot create %s: %s", path,
		              strerror(errno));
	return 0;
}

/*
 * Every directory above the chroot must be root's and closed to others (or
 * sticky, like /tmp, where no one can rename root's entries): otherwise a
 * local user could swap the directory between this check and chroot(), as
 * OpenSSH's ChrootDirectory rules also say.
 */
static int
check_parents(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return errmsg(err, errlen, "chroot path too long");
	for (char *slash = strrchr(path, '/'); slash != NULL;
	     slash = strrchr(path, '/')) {
		*slash = '\0';
		const char *parent = path[0] ? path : "/";
		if (lstat(parent, &st) != 0)
			return errmsg(err, errlen, "chroot parent %s: %s",
			              parent, strerror(errno));
		if (!S_ISDIR(st.st_mode) || st.st_uid != 0 ||
		    ((st.st_mode & (S_IWGRP | S_IWOTH)) &&
		     !(st.st_mode & S_ISVTX)))
			return errmsg(
			    err, errlen,
			    "chroot parent %s must be a directory owned "
			    "by root and not writable by others (or "
			    "sticky)",
			    parent);
		if (path[0] == '\0')
			break;
	}
	return 0;
}

int
prepare_chroot(const char *dir, bool create, char *err, size_t errlen)
{
	struct stat st;
	struct dirent *de;
	DIR *d;

	if (dir[0] != '/')
		return errmsg(err, errlen,
		              "chroot '%s' is not an absolute path", dir);
	if (lstat(dir, &st) != 0) {
		if (errno != ENOENT)
			return errmsg(err, errlen, "chroot %s: %s", dir,
			              strerror(errno));
		if (!create)
			return 0;
		if (mkdir_parents(dir, err, errlen) != 0)
			return -1;
		if (lstat(dir, &st) != 0)
			return errmsg(err, errlen, "chroot %s: %s", dir,
			              strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return errmsg(err, errlen, "chroot %s is not a directory", dir);
	if (check_parents(dir, err, errlen) != 0)
		return -1;
	if (st.st_uid != 0)
		return errmsg(err, errlen,
		              "chroot %s is not owned by root: chown root %s",
		              dir, dir);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return errmsg(err, errlen,
		              "chroot %s is writable by group or others: chmod "
		              "755 %s",
		              dir, dir);
	d = opendir(dir);
	if (d == NULL)
		return errmsg(err, errlen, "chroot %s: %s", dir,
		              strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0) {
			closedir(d);
			return errmsg(
			    err, errlen,
			    "chroot %s is not empty (holds '%s'): use "
			    "an empty directory",
			    dir, de->d_name);
		}
	}
	closedir(d);
	return 0;
}

int
enter_chroot(const char *dir, char *err, size_t errlen)
{
	if (chroot(dir) != 0)
		return errmsg(err, errlen, "chroot(%s): %s", dir,
		              strerror(errno));
	if (chdir("/") != 0)
		return errmsg(err, errlen, "chdir(/) in the chroot: %s",
		              strerror(errno));
	return 0;
}

int
drop_bounding_set(char *err, size_t errlen)
{
	for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++) {
		if (CAP_IS_SUPPORTED(c) && cap_drop_bound(c) != 0)
			return errmsg(err, errlen,
			              "cannot drop capability %d from the "
			              "bounding set: %s",
			              c, strerror(errno));
	}
	return 0;
}

int
change_user(uid_t uid, gid_t gid, char *err, size_t errlen)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (setgroups(0, NULL) != 0)
		return errmsg(err, errlen, "setgroups(0): %s", strerror(errno));
	if (setresgid(gid, gid, gid) != 0)
		return errmsg(err, errlen, "setresgid(%u): %s", (unsigned)gid,
		              strerror(errno));
	if (setresuid(uid, uid, uid) != 0)
		return errmsg(err, errlen, "setresuid(%u): %s", (unsigned)uid,
		              strerror(errno));
	/* Prove it: every id changed, and root cannot be asked back. */
	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 ||
	    ru != uid || eu != uid || su != uid || rg != gid || eg != gid ||
	    sg != gid)
		return errmsg(err, errlen, "user ids did not all change");
	if (getgroups(0, NULL) != 0)
		return errmsg(err, errlen, "supplementary groups remain");
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0)
		return errmsg(err, errlen,
		              "root could be regained after "
		              "setresuid");
	return 0;
}

bool
have_capability(int cap)
{
	cap_t caps = cap_get_proc();
	cap_flag_value_t v = CAP_CLEAR;

	if (caps != NULL) {
		cap_get_flag(caps, (cap_value_t)cap, CAP_EFFECTIVE, &v);
		cap_free(caps);
	}
	return v == CAP_SET;
}

int
drop_capabilities(bool require_empty_bounding, char *err, size_t errlen)
{
	cap_t none = cap_init(), now;
	int same;

	if (none == NULL)
		return errmsg(err, errlen, "cap_init: %s", strerror(errno));
	if (cap_set_proc(none) != 0) {
		cap_free(none);
		return errmsg(err, errlen, "cap_set_proc: %s", strerror(errno));
	}
	if (CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() != 0) {
		cap_free(none);
		return errmsg(err, errlen,
		              "cannot clear ambient capabilities: "
		              "%s",
		              strerror(errno));
	}
	now = cap_get_proc();
	same = now != NULL && cap_compare(now, none) == 0;
	cap_free(now);
	cap_free(none);
	if (!same)
		return errmsg(err, errlen,
		              "capabilities still present after "
		              "dropping them");
	for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++) {
		if (CAP_AMBIENT_SUPPORTED() && cap_get_ambient(c) > 0)
			return errmsg(err, errlen,
			              "ambient capability %d still present", c);
		if (require_empty_bounding && CAP_IS_SUPPORTED(c) &&
		    cap_get_bound(c) > 0)
			return errmsg(err, errlen,
			              "capability %d still in the bounding set",
			              c);
	}
	return 0;
}

int
set_no_new_privs(char *err, size_t errlen)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return errmsg(err, errlen, "PR_SET_NO_NEW_PRIVS: %s",
		              strerror(errno));
	return 0;
}

int
set_not_dumpable(char *err, size_t errlen)
{
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return errmsg(err, errlen, "PR_SET_DUMPABLE: %s",
		              strerror(errno));
	return 0;
}

static int
set_limit(int resource, rlim_t value, const char *name, char *err,
          size_t errlen)
{
	struct rlimit rl = {value, value};

	if (setrlimit(resource, &rl) != 0)
		return errmsg(err, errlen, "setrlimit(%s, %llu): %s", name,
		              (unsigned long long)value, strerror(errno));
	return 0;
}

int
limit_resources(unsigned long nofile, bool keep_fsize, char *err, size_t errlen)
{
	if (set_limit(RLIMIT_NOFILE, nofile, "RLIMIT_NOFILE", err, errlen) ||
	    set_limit(RLIMIT_CORE, 0, "RLIMIT_CORE", err, errlen))
		return -1;
	if (!keep_fsize &&
	    set_limit(RLIMIT_FSIZE, 0, "RLIMIT_FSIZE", err, errlen) != 0)
		return -1;
	return 0;
}

int
limit_memory(unsigned long long bytes, char *err, size_t errlen)
{
	return set_limit(RLIMIT_DATA, (rlim_t)bytes, "RLIMIT_DATA", err,
	                 errlen);
}

int
forbid_new_processes(char *err, size_t errlen)
{
	return set_limit(RLIMIT_NPROC, 0, "RLIMIT_NPROC", err, errlen);
}

int
raise_fd_limit(unsigned long long need, bool check_only,
               unsigned long long *hard, char *err, size_t errlen)
{
	struct rlimit rl;

	*hard = 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return errmsg(err, errlen, "%s", strerror(errno));
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		*hard = (unsigned long long)rl.rlim_max;
		return -1;
	}
	if (!check_only && rl.rlim_cur < need) {
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			return errmsg(err, errlen, "%s", strerror(errno));
	}
	return 0;
}

const char *
privdrop_skip_reason(const struct privdrop *pd)
{
	return pd->as_root ? "allowed by allow-downgrade"
	                   : "not running as root: no chroot, no user change, "
	                     "bounding set kept without CAP_SETPCAP";
}

int
privdrop_check_stderr(struct privdrop *pd, const struct policy *p, char *err,
                      size_t errlen)
{
	struct stat st;

	if (fstat(STDERR_FILENO, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	if (!p->allow_big_stderr)
		return errmsg(err, errlen,
		              "stderr is a regular file and RLIMIT_FSIZE 0 "
		              "would stop the log: log to a pipe or the "
		              "journal, or set 'allow-downgrade fsize-limit'");
	pd->keep_fsize = true;
	return 1;
}

/* Put /dev/null on fd, opened with only the access it needs. */
static int
null_on(int fd, int access, char *err, size_t errlen)
{
	int null = open("/dev/null", access | O_CLOEXEC | O_NOCTTY);

	if (null < 0 || (null != fd && dup2(null, fd) < 0))
		return errmsg(err, errlen,
		              "cannot put /dev/null on stdin and stdout");
	if (null != fd)
		close(null);
	return 0;
}

/*
 * stderr, the log, is the one inherited fd that stays: reopened write-only,
 * so a worker cannot read from it what an operator types in the terminal
 * (or anything a pipe's other end holds). A socket (the journal's) cannot
 * be reopened: its reading half is shut down instead.
 */
static int
reopen_stderr_write_only(char *err, size_t errlen)
{
	int flags = fcntl(STDERR_FILENO, F_GETFL), fd;
	struct stat st;
	off_t at;

	if (flags < 0) /* closed: a write-only /dev/null */
		return null_on(STDERR_FILENO, O_WRONLY, err, errlen);
	if ((flags & O_ACCMODE) == O_WRONLY)
		return 0;
	if (fstat(STDERR_FILENO, &st) != 0)
		return errmsg(err, errlen, "%s", strerror(errno));
	if (S_ISSOCK(st.st_mode)) {
		if (shutdown(STDERR_FILENO, SHUT_RD) != 0 && errno != ENOTCONN)
			return errmsg(err, errlen,
			              "cannot shut down reading on the "
			              "stderr socket");
		return 0;
	}
	/* O_NONBLOCK: a FIFO whose reader is gone must not block us. */
	fd = open("/proc/self/fd/2", O_WRONLY | O_NOCTTY | O_CLOEXEC |
	                                 O_NONBLOCK | (flags & O_APPEND));
	if (fd < 0)
		return errmsg(err, errlen,
		              "cannot reopen stderr write-only through "
		              "/proc/self/fd/2 (is /proc mounted?)");
	at = lseek(STDERR_FILENO, 0, SEEK_CUR);
	if (at > 0 && S_ISREG(st.st_mode))
		lseek(fd, at, SEEK_SET);
	if (fcntl(fd, F_SETFL, flags & O_APPEND) != 0 ||
	    dup2(fd, STDERR_FILENO) < 0) {
		errmsg(err, errlen, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
close_inherited_fds(int first_closed, const char **step, char *err,
                    size_t errlen)
{
	*step = "stdio";
	if (null_on(STDIN_FILENO, O_RDONLY, err, errlen) != 0 ||
	    null_on(STDOUT_FILENO, O_WRONLY, err, errlen) != 0)
		return -1;
	*step = "stderr";
	if (reopen_stderr_write_only(err, errlen) != 0)
		return -1;
	closefrom(first_closed);
	return 0;
}

int
check_capability_ports(const struct policy *p, uint16_t allowed, char *err,
                       size_t errlen)
{
	for (size_t i = 0; i < p->nlisten; i++) {
		uint16_t port = endpoint_port(&p->listen[i]);
		if (port < 1024 && port != allowed)
			return errmsg(err, errlen,
			              "port %u: with file capabilities and "
			              "without root, echod binds no port below "
			              "1024 but %u",
			              port, allowed);
	}
	return 0;
}

int
privdrop_check(struct privdrop *pd, const struct policy *p, bool create,
               const char **step, char *err, size_t errlen)
{
	pd->as_root = geteuid() == 0;
	if (!pd->as_root) {
		pd->uid = getuid();
		return 0;
	}
	*step = "user";
	if (resolve_user(p->user, pd->user, sizeof(pd->user), &pd->uid,
	                 &pd->gid, err, errlen) != 0)
		return -1;
	*step = "chroot";
	return prepare_chroot(p->chroot_dir, create, err, errlen);
}

int
privdrop_drop(struct privdrop *pd, const char *chroot_dir, const char **step,
              char *err, size_t errlen)
{
	pd->bounding = pd->as_root || have_capability(CAP_SETPCAP);
	*step = "bounding_set";
	if (pd->bounding && drop_bounding_set(err, errlen) != 0)
		return -1;
	if (!pd->as_root)
		return 0;
	*step = "chroot";
	if (enter_chroot(chroot_dir, err, errlen) != 0)
		return -1;
	*step = "user";
	return change_user(pd->uid, pd->gid, err, errlen);
}

int
privdrop_seal(const struct privdrop *pd, const char **step, char *err,
              size_t errlen)
{
	*step = "capabilities";
	if (drop_capabilities(pd->bounding, err, errlen) != 0)
		return -1;
	*step = "no_new_privs";
	if (set_no_new_privs(err, errlen) != 0)
		return -1;
	*step = "dumpable";
	if (set_not_dumpable(err, errlen) != 0)
		return -1;
	*step = "rlimits";
	return limit_resources((unsigned long)pd->nofile, pd->keep_fsize, err,
	                       errlen);
}
