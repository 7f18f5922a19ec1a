/* reader: reads one file on request; the only process that still can. */
#include "reader.h"
#include "errmsg.h"
#include "exitcodes.h"
#include "landlock.h"
#include "log.h"
#include "policy.h"
#include "privdrop.h"
#include "reload.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int dir_fd = -1;
static char file_name[POLICY_PATH_MAX];

int
reader_open(const char *path, char *err, size_t errlen)
{
	char dir[POLICY_PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (strlen(path) >= sizeof(dir))
		return errmsg(err, errlen, "policy path longer than %zu bytes",
		              sizeof(dir) - 1);
	if (slash == NULL) {
		snprintf(dir, sizeof(dir), ".");
		snprintf(file_name, sizeof(file_name), "%s", path);
	} else {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
		if (dir[0] == '\0')
			snprintf(dir, sizeof(dir), "/");
		snprintf(file_name, sizeof(file_name), "%s", slash + 1);
	}
	dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return errmsg(err, errlen,
		              "cannot open the policy's directory "
		              "%s: %s",
		              dir, strerror(errno));
	return 0;
}

/* All of buf, on a blocking socket; 0, or -1 (the peer is gone). */
static int
send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
reply(int fd, int32_t status, const void *data, size_t len)
{
	struct reload_reply head = {status, (uint32_t)len};

	if (send_all(fd, &head, sizeof(head)) != 0)
		return -1;
	return send_all(fd, data, len);
}

/* Close every descriptor but stdio, the socket and the directory. */
static void
keep_only(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;

	if (lo > 3)
		close_range(3, (unsigned)lo - 1, 0);
	if (hi > lo + 1)
		close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
	close_range((unsigned)hi + 1, ~0U, 0);
}

/* The reader's own hardening: NULL, or the step that failed (named as
 * the bootstrap names its own: docs/design.md) with the reason in err. A
 * kernel without Landlock is the bootstrap's to refuse or accept. */
static const char *
harden(bool log_only, char *err, size_t errlen)
{
	if (forbid_new_processes(err, errlen) != 0)
		return "rlimits";
	if (landlock_restrict_reading(dir_fd, err, errlen) < 0)
		return "landlock";
	if (sandbox_enter(SANDBOX_READER, log_only, err, errlen) != 0)
		return "seccomp";
	return NULL;
}

static _Noreturn void
serve(int sock, bool log_only)
{
	static char buf[POLICY_MAX_FILE];
	struct policy_error perr;
	char err[256], why[320], c;
	const char *step;
	size_t len;
	ssize_t n;

	/* A hangup of the terminal's process group is the supervisor's to
	 * act on, not a reason for the reader to die. */
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	keep_only(sock, dir_fd);
	if ((step = harden(log_only, err, sizeof(err))) != NULL) {
		/* "STEP reason": await_ready names the step. */
		snprintf(why, sizeof(why), "%s %s", step, err);
		reply(sock, -1, why, strlen(why));
		_exit(EXIT_OSERR);
	}
	/* Ready; and whether the file is readable by this user, so that the
	 * start-up says it rather than the first reload. */
	if (policy_read_at(dir_fd, file_name, buf, sizeof(buf), &len, &perr) !=
	    0)
		n = reply(sock, 1, perr.msg, strlen(perr.msg));
	else
		n = reply(sock, 0, NULL, 0);
	if (n != 0)
		_exit(0);
	for (;;) {
		n = read(sock, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0); /* the supervisor is gone */
		if (policy_read_at(dir_fd, file_name, buf, sizeof(buf), &len,
		                   &perr) != 0)
			n = reply(sock, -1, perr.msg, strlen(perr.msg));
		else
			n = reply(sock, 0, buf, len);
		if (n != 0)
			_exit(0);
	}
}

/* The child's first reply: ready (perhaps unable to read the file yet:
 * said in a warning), or the step it could not apply and why. */
static int
await_ready(int fd, const char **step, char *err, size_t errlen)
{
	static char failed[32];
	struct reload_reply head;
	char why[320];
	ssize_t n = read(fd, &head, sizeof(head));
	size_t w;

	*step = "policy_reader";
	if (n != (ssize_t)sizeof(head))
		return errmsg(err, errlen, "the policy reader ended at start");
	if (head.status == 0)
		return 0;
	n = read(fd, why, head.len < sizeof(why) ? head.len : sizeof(why) - 1);
	why[n > 0 ? n : 0] = '\0';
	if (head.status > 0) {
		log_always(LOG_WARN, "policy_unreadable",
		           "file=%s error=\"%s\" msg=\"the service user cannot "
		           "read the policy file: SIGHUP will refuse to reload "
		           "it until it can (mode 0644, directory 0755)\"",
		           file_name, why);
		return 0;
	}
	w = strcspn(why, " ");
	snprintf(failed, sizeof(failed), "%.*s", (int)w, why);
	*step = failed;
	return errmsg(err, errlen, "policy reader: %s",
	              why[w] != '\0' ? why + w + 1 : why);
}

int
reader_start(const struct policy *p, const char **step, char *err,
             size_t errlen)
{
	int sv[2];
	pid_t parent = getpid(), pid;

	*step = "policy_reader";
	if (dir_fd < 0)
		return errmsg(err, errlen, "no policy file to read");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return errmsg(err, errlen, "socketpair: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return errmsg(err, errlen, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		/* It must not outlive the supervisor; named for ps and tests.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
		    getppid() != parent)
			_exit(0);
		prctl(PR_SET_NAME, "echod-reader");
		log_init(p->log_level, "reader", -1);
		serve(sv[1], p->sandbox_log);
	}
	close(sv[1]);
	close(dir_fd); /* the supervisor keeps no way into the directory */
	dir_fd = -1;
	if (await_ready(sv[0], step, err, errlen) != 0 ||
	    fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0) {
		close(sv[0]);
		return -1;
	}
	log_always(LOG_INFO, "policy_reader", "pid=%d file=%s", pid, file_name);
	return sv[0];
}
