/*
 * echod: parse, bind, give everything up, serve. The order below is the
 * security argument (SECURITY.md lists each step and why):
 *   1. policy and flags; resolve the user and the empty chroot directory
 *   2. the listening sockets: bound here, or passed by systemd
 *   3. what the workers will need from the system, while it is visible;
 *      the XDP prefilter, if the policy asks for it, loaded and attached
 *   4. chroot, drop the bounding set, change user, prove root is gone
 *   5. drop every capability, no_new_privs, not dumpable, rlimits
 *   6. seccomp (supervisor list), fork workers, each stacks the worker list
 * Nothing reads a byte from the network before step 6 completes.
 */
#include "cli.h"
#include "facts.h"
#include "listen.h"
#include "log.h"
#include "policy.h"
#include "privdrop.h"
#include "sandbox.h"
#include "sockact.h"
#include "supervisor.h"
#include "xdp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef ECHOD_VERSION
#define ECHOD_VERSION "0.1.0"
#endif

#define EXIT_USAGE  64
#define EXIT_OSERR  71
#define EXIT_CONFIG 78

#define FD_RESERVE 64 /* listeners, epoll, signalfd, stdio */
#define ECHO_PORT  7  /* RFC 862 */

static struct policy policy;
static struct facts facts;

/* fatal(): say what failed, in one log line, and exit with its status. */
static void
die(int status, const char *event, const char *msg)
{
	log_always(LOG_ERROR, event, "msg=\"%s\"", msg);
	exit(status);
}

/* A hardening step that could not be applied: refuse to serve. */
static void
refuse(const char *step, const char *why)
{
	log_always(LOG_ERROR, "hardening_failed",
	           "step=%s msg=\"%s\" action=\"refusing to serve\"", step,
	           why);
	exit(EXIT_OSERR);
}

static unsigned
worker_count(const struct policy *p)
{
	long cpus;

	if (p->workers > 0)
		return p->workers;
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	return cpus < 1 ? 1 : cpus > 256 ? 256 : (unsigned)cpus;
}

/* Every worker may hold every connection: each needs that many fds. */
static rlim_t
fd_limit_needed(const struct policy *p, unsigned nworkers)
{
	return (rlim_t)p->tcp_max_connections + FD_RESERVE +
	       (rlim_t)p->nlisten * 2 * nworkers;
}

/* The hard limit must allow `need`; raise the soft one to it unless only
 * checking (-t). */
static void
raise_fd_limit(rlim_t need, bool check_only)
{
	struct rlimit rl;
	char msg[200];

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		die(EXIT_OSERR, "fd_limit", strerror(errno));
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		snprintf(msg, sizeof(msg),
		         "tcp-max-connections %u needs %llu open files but the "
		         "hard limit is %llu: lower it or raise LimitNOFILE",
		         policy.tcp_max_connections, (unsigned long long)need,
		         (unsigned long long)rl.rlim_max);
		die(EXIT_OSERR, "fd_limit", msg);
	}
	if (!check_only && rl.rlim_cur < need) {
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			die(EXIT_OSERR, "fd_limit", strerror(errno));
	}
}

static void
load_policy(const struct options *o, struct policy *p)
{
	struct policy_error err;
	char msg[256];

	policy_defaults(p);
	if (o->config != NULL && policy_load_file(o->config, p, &err) != 0) {
		if (err.line > 0)
			fprintf(stderr, "%s:%u: %s\n", o->config, err.line,
			        err.msg);
		else
			fprintf(stderr, "%s: %s\n", o->config, err.msg);
		exit(EXIT_CONFIG);
	}
	cli_apply(o, p);
	if (cli_check_listen(p, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "echod: %s\n%s", msg, cli_usage);
		exit(EXIT_USAGE);
	}
}

/* RLIMIT_FSIZE 0 would stop a log that goes to a regular file. */
static bool
stderr_is_file(void)
{
	struct stat st;

	return fstat(STDERR_FILENO, &st) == 0 && S_ISREG(st.st_mode);
}

/* Step 2: sockets from systemd if it passed any, else bind them here. */
static void
get_sockets(struct listen_set *s, unsigned nworkers)
{
	char err[256];
	int r = sockact_take(s, err, sizeof(err));

	if (r < 0)
		die(EXIT_OSERR, "socket_activation", err);
	if (r > 0) {
		log_always(LOG_INFO, "socket_activation", "sockets=%zu", s->n);
		return;
	}
	if (listen_bind(&policy, nworkers, policy.rate_prefix_v4,
	                policy.rate_prefix_v6, s, err, sizeof(err)) != 0)
		die(EXIT_OSERR, "bind_failed", err);
}

/* How many sockets systemd passed (0 if none, or if LISTEN_* is wrong:
 * sockact_take then refuses it, with the reason). */
static unsigned
passed_sockets(void)
{
	char err[256];
	unsigned passed;

	if (sockact_parse(getenv("LISTEN_PID"), getenv("LISTEN_FDS"), getpid(),
	                  &passed, err, sizeof(err)) != 0)
		return 0;
	return passed;
}

/* Put /dev/null on fd, opened with only the access it needs. */
static void
null_on(int fd, int access)
{
	int null = open("/dev/null", access | O_CLOEXEC | O_NOCTTY);

	if (null < 0 || (null != fd && dup2(null, fd) < 0))
		refuse("stdio", "cannot put /dev/null on stdin and stdout");
	if (null != fd)
		close(null);
}

/*
 * stderr, the log, is the one inherited fd that stays: reopened write-only,
 * so a worker cannot read from it what an operator types in the terminal
 * (or anything a pipe's other end holds). A socket (the journal's) cannot
 * be reopened: its reading half is shut down instead.
 */
static void
reopen_stderr_write_only(void)
{
	int flags = fcntl(STDERR_FILENO, F_GETFL), fd;
	struct stat st;
	off_t at;

	if (flags < 0) { /* closed: a write-only /dev/null */
		null_on(STDERR_FILENO, O_WRONLY);
		return;
	}
	if ((flags & O_ACCMODE) == O_WRONLY)
		return;
	if (fstat(STDERR_FILENO, &st) != 0)
		refuse("stderr", strerror(errno));
	if (S_ISSOCK(st.st_mode)) {
		if (shutdown(STDERR_FILENO, SHUT_RD) != 0 && errno != ENOTCONN)
			refuse("stderr", "cannot shut down reading on the "
			                 "stderr socket");
		return;
	}
	/* O_NONBLOCK: a FIFO whose reader is gone must not block us. */
	fd = open("/proc/self/fd/2", O_WRONLY | O_NOCTTY | O_CLOEXEC |
	                                 O_NONBLOCK | (flags & O_APPEND));
	if (fd < 0)
		refuse("stderr", "cannot reopen stderr write-only through "
		                 "/proc/self/fd/2 (is /proc mounted?)");
	at = lseek(STDERR_FILENO, 0, SEEK_CUR);
	if (at > 0 && S_ISREG(st.st_mode))
		lseek(fd, at, SEEK_SET);
	if (fcntl(fd, F_SETFL, flags & O_APPEND) != 0 ||
	    dup2(fd, STDERR_FILENO) < 0)
		refuse("stderr", strerror(errno));
	close(fd);
}

/* Descriptors inherited from whoever started us (but systemd's sockets and
 * stderr, the log) must not follow us into the sandbox, where read and
 * write are allowed: stdin and stdout become /dev/null, stderr write-only,
 * the rest close. Runs after every lookup (user, NSS), so a socket an NSS
 * module keeps open closes too. */
static void
close_inherited_fds(void)
{
	null_on(STDIN_FILENO, O_RDONLY);
	null_on(STDOUT_FILENO, O_WRONLY);
	reopen_stderr_write_only();
	closefrom(SOCKACT_FIRST_FD + (int)passed_sockets());
}

/*
 * File capabilities (make setcap) give whoever may run the binary the
 * right to bind low ports: without root, echod binds no port below 1024
 * but the echo port, so the binary is no general port binder.
 */
static void
check_capability_ports(bool as_root)
{
	char msg[200];

	if (as_root || !have_capability(CAP_NET_BIND_SERVICE) ||
	    passed_sockets() > 0)
		return;
	for (size_t i = 0; i < policy.nlisten; i++) {
		uint16_t port = endpoint_port(&policy.listen[i]);
		if (port < 1024 && port != ECHO_PORT) {
			snprintf(msg, sizeof(msg),
			         "port %u: with file capabilities and without "
			         "root, echod binds no port below 1024 but %u",
			         port, ECHO_PORT);
			refuse("privileged_port", msg);
		}
	}
}

/* -t: the prefilter's interfaces exist (loading it is left to the start). */
static void
check_prefilter_interfaces(void)
{
	char msg[128];

	for (size_t i = 0; i < policy.nxdp && !policy.allow_no_xdp; i++)
		if (if_nametoindex(policy.xdp_ifaces[i]) == 0) {
			snprintf(msg, sizeof(msg),
			         "no interface '%s' in echod's network "
			         "namespace",
			         policy.xdp_ifaces[i]);
			refuse("xdp_attach", msg);
		}
}

/*
 * Step 3b: the XDP prefilter, while the capabilities to load it are still
 * held. Afterwards only its links and a read-only view of its counters are
 * left: no process ever needs bpf() again. If it cannot be applied, echod
 * refuses to serve, unless the policy says 'allow-downgrade xdp-prefilter'.
 */
static void
start_prefilter(const struct listen_set *s)
{
	struct xdp_listener l[XDP_MAX_LISTEN];
	struct xdp_prefilter *x;
	enum xdp_mode got[POLICY_MAX_XDP];
	const char *step = "xdp_load";
	char err[512];
	size_t nl, i;

	if (policy.nxdp == 0)
		return;
	nl = xdp_listeners_of(s, l, XDP_MAX_LISTEN);
	x = xdp_load(&policy, &facts, l, nl, err, sizeof(err));
	for (i = 0; x != NULL && i < policy.nxdp; i++)
		if (xdp_attach(x, policy.xdp_ifaces[i], policy.xdp_mode,
		               &got[i], err, sizeof(err)) != 0)
			break;
	if (x != NULL && i == policy.nxdp) {
		step = "xdp_seal";
		if (xdp_seal(x, err, sizeof(err)) == 0) {
			for (i = 0; i < policy.nxdp; i++)
				log_always(LOG_INFO, "xdp_attached",
				           "iface=%s mode=%s",
				           policy.xdp_ifaces[i],
				           xdp_mode_name(got[i]));
			return;
		}
	} else if (x != NULL) {
		step = "xdp_attach";
		xdp_unload(x);
	}
	if (!policy.allow_no_xdp)
		refuse(step, err);
	log_always(LOG_WARN, "hardening_skipped",
	           "steps=xdp_prefilter step=%s msg=\"%s\" "
	           "reason=\"allowed by allow-downgrade xdp-prefilter\"",
	           step, err);
}

/* log syslog: the socket is connected now, while the path is visible; the
 * workers inherit it and only write to it. */
static void
open_syslog(void)
{
	char err[256];

	if (policy.log_syslog &&
	    log_open_syslog(policy.syslog_path, err, sizeof(err)) != 0)
		refuse("syslog", err);
}

/* Called in each worker just before it serves: its own, stricter limits. */
static void
harden_worker(unsigned index)
{
	char err[256];

	(void)index;
	/* The supervisor's links keep the prefilter attached; a worker's
	 * copies would keep it after the supervisor is gone. */
	xdp_forget_links();
	if (forbid_new_processes(err, sizeof(err)) != 0)
		refuse("worker_nproc", err);
	if (sandbox_enter(SANDBOX_WORKER, policy.sandbox_log, err,
	                  sizeof(err)) != 0)
		refuse("worker_seccomp", err);
}

int
main(int argc, char **argv)
{
	struct options opts;
	struct listen_set sockets;
	char err[256], user[POLICY_NAME_MAX] = "";
	char skipped[128] = "";
	unsigned nworkers;
	uid_t uid = 0;
	gid_t gid = 0;
	bool as_root, keep_fsize = false, bounding = true;
	rlim_t nofile;

	if (cli_parse(argc, argv, &opts, err, sizeof(err)) != 0) {
		fprintf(stderr, "echod: %s\n%s", err, cli_usage);
		return EXIT_USAGE;
	}
	if (opts.help) {
		fputs(cli_usage, stdout);
		return 0;
	}
	if (opts.version) {
		puts("echod " ECHOD_VERSION);
		return 0;
	}
	/* Step 1: the policy, the user and the chroot, all checked; -t stops
	 * after the checks, before anything is bound or changed. */
	load_policy(&opts, &policy);
	/* A closed stderr must not kill us; sockets use MSG_NOSIGNAL. */
	signal(SIGPIPE, SIG_IGN);
	log_init(policy.log_level, "main", -1);
	log_set_json(policy.log_json);
	nworkers = worker_count(&policy);
	if (policy.tcp && policy.tcp_max_connections < nworkers) {
		fprintf(stderr,
		        "echod: tcp-max-connections %u is split among %u "
		        "workers: it must be at least the worker count\n",
		        policy.tcp_max_connections, nworkers);
		exit(EXIT_CONFIG);
	}
	as_root = geteuid() == 0;
	if (as_root) {
		if (resolve_user(policy.user, user, sizeof(user), &uid, &gid,
		                 err, sizeof(err)) != 0)
			refuse("user", err);
		if (prepare_chroot(policy.chroot_dir, !opts.check_only, err,
		                   sizeof(err)) != 0)
			refuse("chroot", err);
	} else {
		uid = getuid();
		snprintf(skipped, sizeof(skipped), "chroot,user");
	}
	check_capability_ports(as_root);
	nofile = fd_limit_needed(&policy, nworkers);
	raise_fd_limit(nofile, opts.check_only);
	if (opts.check_only) {
		open_syslog();
		check_prefilter_interfaces();
		puts("ok");
		return 0;
	}
	close_inherited_fds();
	open_syslog();
	if (stderr_is_file()) {
		if (!policy.allow_big_stderr)
			refuse("rlimit_fsize",
			       "stderr is a regular file and RLIMIT_FSIZE 0 "
			       "would stop the log: log to a pipe or the "
			       "journal, or set 'allow-downgrade fsize-limit'");
		keep_fsize = true;
		snprintf(skipped + strlen(skipped),
		         sizeof(skipped) - strlen(skipped), "%sfsize_limit",
		         skipped[0] ? "," : "");
	}

	/* Step 2: the only step that needs privilege. */
	get_sockets(&sockets, nworkers);

	/* Step 3: what the guards need. */
	if (facts_gather(&facts, err, sizeof(err)) != 0)
		die(EXIT_OSERR, "facts", err);
	start_prefilter(&sockets);

	/* Step 4: out of the filesystem, out of root. */
	if (as_root || have_capability(CAP_SETPCAP)) {
		if (drop_bounding_set(err, sizeof(err)) != 0)
			refuse("bounding_set", err);
	} else {
		bounding = false;
		snprintf(skipped + strlen(skipped),
		         sizeof(skipped) - strlen(skipped), "%sbounding_set",
		         skipped[0] ? "," : "");
	}
	if (as_root) {
		if (enter_chroot(policy.chroot_dir, err, sizeof(err)) != 0)
			refuse("chroot", err);
		if (change_user(uid, gid, err, sizeof(err)) != 0)
			refuse("user", err);
	}

	/* Step 5: nothing left to lose. */
	if (drop_capabilities(bounding, err, sizeof(err)) != 0)
		refuse("capabilities", err);
	if (set_no_new_privs(err, sizeof(err)) != 0)
		refuse("no_new_privs", err);
	if (set_not_dumpable(err, sizeof(err)) != 0)
		refuse("dumpable", err);
	if (limit_resources((unsigned long)nofile, keep_fsize, err,
	                    sizeof(err)) != 0)
		refuse("rlimits", err);
	if (skipped[0] != '\0')
		log_always(LOG_WARN, "hardening_skipped",
		           "steps=%s reason=\"%s\"", skipped,
		           as_root ? "allowed by allow-downgrade"
		                   : "not running as root: no chroot, no user "
		                     "change, bounding set kept without "
		                     "CAP_SETPCAP");
	if (policy.sandbox_log)
		log_always(LOG_WARN, "sandbox_log_only",
		           "msg=\"WARNING: sandbox-violation log: syscalls "
		           "outside the allowlist are only logged, not "
		           "stopped. For debugging only; never in "
		           "production.\"");

	/* Step 6: the supervisor's filter, then the workers. */
	if (sandbox_enter(SANDBOX_SUPERVISOR, policy.sandbox_log, err,
	                  sizeof(err)) != 0)
		refuse("seccomp", err);
	log_always(LOG_INFO, "sandboxed", "user=%s uid=%u chroot=%s seccomp=%s",
	           as_root ? user : "-", (unsigned)uid,
	           as_root ? policy.chroot_dir : "-",
	           policy.sandbox_log ? "log" : "kill");
	for (size_t i = 0; i < sockets.n; i++)
		if (sockets.l[i].worker == 0 ||
		    sockets.l[i].worker == LISTENER_SHARED)
			log_always(LOG_INFO, "listening", "proto=%.3s addr=%s",
			           sockets.l[i].name, sockets.l[i].name + 4);
	return supervisor_run(&policy, &facts, &sockets, nworkers,
	                      harden_worker);
}
