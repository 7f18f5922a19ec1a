/*
 * echod: parse, bind, give everything up, serve. The order below is the
 * security argument (SECURITY.md lists each step and why):
 *   1. policy and flags; resolve the user and the empty chroot directory
 *      (load_policy, check_user_and_chroot, ..., close_inherited_fds)
 *   2. the listening sockets: bound here, or passed by systemd
 *      (get_sockets)
 *   3. what the workers will need from the system, while it is visible;
 *      the XDP prefilter, if the policy asks for it, loaded and attached
 *      (gather_facts, start_prefilter)
 *   4. drop the bounding set, chroot, change user, prove root is gone
 *      (drop_privileges)
 *   5. drop every capability, no_new_privs, not dumpable, rlimits
 *      (seal_process)
 *   6. the policy reader forked with its own Landlock rule and seccomp
 *      list (start_policy_reader, reader.c); Landlock, seccomp
 *      (supervisor list), fork workers; each limits its memory and stacks
 *      the worker list; with metrics, fork the metrics process, which
 *      enters its own Landlock domain and stacks its list (enter_sandbox,
 *      supervisor_run; harden_worker in each worker, harden_metrics in
 *      the metrics process)
 * Nothing reads a byte from the network before step 6 completes. main(),
 * at the end of this file, is that list; every way out is fail().
 */
#include "cli.h"
#include "errmsg.h"
#include "exitcodes.h"
#include "facts.h"
#include "gro.h"
#include "landlock.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "privdrop.h"
#include "reader.h"
#include "reload.h"
#include "sandbox.h"
#include "sockact.h"
#include "supervisor.h"
#include "tcp.h"
#include "variant.h"
#include "worker.h"
#include "xdp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef ECHOD_VERSION
#define ECHOD_VERSION "0.1.0"
#endif

#define FD_RESERVE 64 /* listeners, epoll, signalfd, stdio */
#define ECHO_PORT  7  /* RFC 862 */

static struct policy policy;
static const struct options *command_line; /* the flags, for a reload */
static struct facts facts;
static struct metrics_setup metrics;
static unsigned long long worker_memory; /* each worker's RLIMIT_DATA */

/* ASan maps terabytes of shadow memory that RLIMIT_DATA would count: the
 * sanitizer build runs its workers without the memory limit. */
#if defined(__SANITIZE_ADDRESS__)
#define MEMORY_LIMIT 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEMORY_LIMIT 0
#endif
#endif
#ifndef MEMORY_LIMIT
#define MEMORY_LIMIT 1
#endif

/* What the steps of main() learn and hand on to later ones. */
struct boot {
	struct options opts;
	unsigned nworkers;
	bool as_root;
	uid_t uid;
	gid_t gid;
	char user[POLICY_NAME_MAX];
	rlim_t nofile;        /* the fd limit the policy needs */
	bool keep_fsize;      /* allow-downgrade fsize-limit was used */
	bool bounding;        /* the bounding set was emptied */
	char skipped[128];    /* hardening steps not applied, comma-separated */
	const char *landlock; /* the Landlock level reached ("abi7", "none") */
	struct listen_set sockets;
};

/*
 * The one way echod gives up: say what failed, then exit with its status
 * (exitcodes.h). With an event, as one log line (and a step that could
 * not be hardened names itself: SECURITY.md); without, as plain text for
 * whoever typed the command: a bad flag (then the usage) or a policy file
 * error as FILE:LINE: message, before logging starts.
 */
static _Noreturn void __attribute__((format(printf, 4, 5)))
fail(int status, const char *event, const char *step, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (event == NULL)
		fprintf(stderr, "%s\n%s", msg,
		        status == EXIT_USAGE ? cli_usage : "");
	else if (step != NULL)
		log_always(LOG_ERROR, event,
		           "step=%s msg=\"%s\" action=\"refusing to serve\"",
		           step, msg);
	else
		log_always(LOG_ERROR, event, "msg=\"%s\"", msg);
	exit(status);
}

/* A hardening step that could not be applied: refuse to serve. */
static _Noreturn void
refuse(const char *step, const char *why)
{
	fail(EXIT_OSERR, "hardening_failed", step, "%s", why);
}

/* A step echod may skip (not root, or allow-downgrade): all of them are
 * named in one hardening_skipped line before the sandbox. */
static void
skip_step(struct boot *b, const char *step)
{
	size_t n = strlen(b->skipped);

	snprintf(b->skipped + n, sizeof(b->skipped) - n, "%s%s",
	         n > 0 ? "," : "", step);
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
	       (rlim_t)p->nlisten * 2 * nworkers +
	       2 * (rlim_t)tcp_splice_pipes(p, p->tcp_max_connections);
}

/* The hard limit must allow `need`; raise the soft one to it unless only
 * checking (-t). */
static void
raise_fd_limit(rlim_t need, bool check_only)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		fail(EXIT_OSERR, "fd_limit", NULL, "%s", strerror(errno));
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		fail(EXIT_OSERR, "fd_limit", NULL,
		     "tcp-max-connections %u needs %llu open files but the "
		     "hard limit is %llu: lower it or raise LimitNOFILE",
		     policy.tcp_max_connections, (unsigned long long)need,
		     (unsigned long long)rl.rlim_max);
	}
	if (!check_only && rl.rlim_cur < need) {
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			fail(EXIT_OSERR, "fd_limit", NULL, "%s",
			     strerror(errno));
	}
}

/*
 * A policy from a file's text (or the built-in one without -c) and the
 * flags: what the start-up checks and a reload checks again, alike. 0, or
 * the exit status of the mistake (exitcodes.h) with its message in err:
 * FILE:LINE: message for the file.
 */
static int
build_policy(const char *text, size_t len, struct policy *p, char *err,
             size_t errlen)
{
	struct policy_error e;
	char msg[256];

	if (policy_defaults(p, &e) != 0) {
		errmsg(err, errlen, "echod: built-in policy:%u: %s", e.line,
		       e.msg);
		return EXIT_SOFTWARE;
	}
	if (command_line->config != NULL &&
	    policy_parse(text, len, p, &e) != 0) {
		if (e.line > 0)
			errmsg(err, errlen, "%s:%u: %s", command_line->config,
			       e.line, e.msg);
		else
			errmsg(err, errlen, "%s: %s", command_line->config,
			       e.msg);
		return EXIT_CONFIG;
	}
	cli_apply(command_line, p);
	if (cli_check_listen(p, msg, sizeof(msg)) != 0) {
		errmsg(err, errlen, "echod: %s", msg);
		return EXIT_USAGE;
	}
	return 0;
}

static void
load_policy(const struct options *o, struct policy *p)
{
	static char text[POLICY_MAX_FILE];
	struct policy_error err;
	char msg[512];
	size_t len = 0;
	int status;

	command_line = o;
	if (o->config != NULL && policy_read_at(AT_FDCWD, o->config, text,
	                                        sizeof(text), &len, &err) != 0)
		fail(EXIT_CONFIG, NULL, NULL, "%s: %s", o->config, err.msg);
	status = build_policy(text, len, p, msg, sizeof(msg));
	if (status != 0)
		fail(status, NULL, NULL, "%s", msg);
}

/* -T: the policy in force, in the file's syntax, and its digest. */
static void
print_policy(void)
{
	static char text[POLICY_PRINT_MAX];
	char digest[RELOAD_DIGEST_LEN];

	if (policy_print(&policy, text, sizeof(text)) < 0)
		fail(EXIT_SOFTWARE, NULL, NULL,
		     "echod: the policy does not "
		     "fit in -T's buffer");
	reload_digest_of(&policy, digest);
	fputs(text, stdout);
	printf("# digest %s\n", digest);
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
	struct steering st;
	char err[256];
	int r = sockact_take(s, err, sizeof(err));

	if (r < 0)
		fail(EXIT_OSERR, "socket_activation", NULL, "%s", err);
	if (r > 0) {
		log_always(LOG_INFO, "socket_activation", "sockets=%zu", s->n);
		return;
	}
	/* Steer TCP by its aggregate (the coarsest level) and UDP by the
	 * shorter of its rate and aggregate prefixes, so that every key
	 * either protocol counts lives in exactly one worker; under a key
	 * drawn afresh at each start. */
	st.tcp_v4 = policy.tcp_prefix_v4[policy.tcp_levels_v4 - 1];
	st.tcp_v6 = policy.tcp_prefix_v6[policy.tcp_levels_v6 - 1];
	st.udp_v4 = MIN(policy.rate_prefix_v4, policy.udp_aggregate_prefix_v4);
	st.udp_v6 = MIN(policy.rate_prefix_v6, policy.udp_aggregate_prefix_v6);
	if (getrandom(st.key, sizeof(st.key), 0) != (ssize_t)sizeof(st.key))
		fail(EXIT_OSERR, "bind_failed", NULL,
		     "getrandom for the steering key: %s", strerror(errno));
	r = listen_bind(&policy, nworkers, &st, s, err, sizeof(err));
	/* The kernel holds the programs now; no copy of the key stays. */
	explicit_bzero(st.key, sizeof(st.key));
	if (r != 0)
		fail(EXIT_OSERR, "bind_failed", NULL, "%s", err);
}

/* Step 2, UDP: ask the kernel for GRO buffers, many datagrams of one flow
 * per receive, whether echod bound the socket or systemd did. A speed-up,
 * not a hardening step: without it (Linux before 5.0) echod serves one
 * datagram per receive, and says so once. */
static void
enable_udp_gro(const struct listen_set *s)
{
	unsigned failed = 0;
	int err = 0;

	for (size_t i = 0; i < s->n; i++)
		if (s->l[i].type == SOCK_DGRAM && gro_enable(s->l[i].fd) != 0) {
			failed++;
			err = errno;
		}
	if (failed > 0)
		log_always(LOG_WARN, "udp_gro_unavailable",
		           "listeners=%u error=\"%s\" msg=\"UDP_GRO cannot "
		           "be set: one datagram per receive\"",
		           failed, strerror(err));
}

/*
 * Step 2: every UDP socket's receive buffer to udp-receive-buffer, while
 * CAP_NET_ADMIN may still lift net.core.rmem_max. A flood's bursts queue
 * there while the worker is busy; a short queue loses the legitimate
 * datagrams with the flood's. Less than asked is served, with a warning.
 */
static void
size_udp_buffers(const struct listen_set *s)
{
	char err[256];
	uint64_t granted;

	if (listen_set_rcvbuf(s, policy.udp_receive_buffer, &granted, err,
	                      sizeof(err)) != 0)
		fail(EXIT_OSERR, "udp_receive_buffer_failed", NULL, "%s", err);
	if (granted == 0)
		return;
	if (granted / 2 < policy.udp_receive_buffer)
		log_always(LOG_WARN, "udp_receive_buffer",
		           "bytes=%llu asked=%llu msg=\"net.core.rmem_max caps "
		           "it without CAP_NET_ADMIN: raise the sysctl\"",
		           (unsigned long long)granted / 2,
		           (unsigned long long)policy.udp_receive_buffer);
	else
		log_always(LOG_INFO, "udp_receive_buffer", "bytes=%llu",
		           (unsigned long long)granted / 2);
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
start_prefilter(struct boot *b)
{
	const struct listen_set *s = &b->sockets;
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
	/* Why, here; that it was skipped, in report_downgrades(). */
	log_always(LOG_WARN, "xdp_unavailable", "step=%s msg=\"%s\"", step,
	           err);
	skip_step(b, "xdp_prefilter");
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

/* Step 4, for a reload: while the filesystem is visible, the policy
 * file's directory, for the reader (reader.h) forked before step 6. */
static void
open_policy_directory(void)
{
	char err[256];

	if (command_line->config != NULL &&
	    reader_open(command_line->config, err, sizeof(err)) != 0)
		refuse("policy_reader", err);
}

/* Step 6, first: the policy reader, before the supervisor's own sandbox
 * (which it must not inherit: it alone may open a file). -1 without -c. */
static int
start_policy_reader(void)
{
	const char *step;
	char err[256];
	int fd;

	if (command_line->config == NULL)
		return -1;
	fd = reader_start(&policy, &step, err, sizeof(err));
	if (fd < 0)
		refuse(step, err);
	return fd;
}

/* What SIGHUP needs in the supervisor. */
static struct reload *
prepare_reload(const struct boot *b, int reader_fd)
{
	bool prefilter =
	    policy.nxdp > 0 && strstr(b->skipped, "xdp_prefilter") == NULL;
	struct reload *r =
	    reload_new(&policy, b->nworkers, command_line->config, reader_fd,
	               build_policy, prefilter);

	if (r == NULL)
		fail(EXIT_OSERR, "supervisor_failed", NULL, "reload: %s",
		     strerror(ENOMEM));
	return r;
}

/* The bench-only unguarded build (variant.h) serves the benchmark and
 * nothing else: loopback and 198.18.0.0/15, never a wildcard address. */
static void
refuse_unguarded_exposure(const struct policy *p)
{
	for (size_t i = 0; i < p->nlisten && !GUARDS_ON; i++) {
		struct ipaddr a;
		ipaddr_from_sockaddr((const struct sockaddr *)&p->listen[i].ss,
		                     &a, NULL);
		bool loop6 = a.family == AF_INET6 && a.bytes[15] == 1 &&
		             memcmp(a.bytes, (uint8_t[15]){0}, 15) == 0;
		bool v4 = a.family == AF_INET &&
		          (a.bytes[0] == 127 ||
		           (a.bytes[0] == 198 && (a.bytes[1] & 0xfe) == 18));
		if (!loop6 && !v4)
			refuse("unguarded_build",
			       "this bench-only build has no abuse checks and "
			       "no sandbox: it listens on 127.0.0.0/8, ::1 and "
			       "198.18.0.0/15 only");
	}
	if (!GUARDS_ON)
		log_always(LOG_WARN, "unguarded_build",
		           "msg=\"WARNING: bench-only build: abuse checks and "
		           "seccomp are compiled out\"");
}

/* Called in each worker just before it serves: its own, stricter limits. */
static void
harden_worker(void)
{
	char err[256];

	/* The supervisor's links keep the prefilter attached; a worker's
	 * copies would keep it after the supervisor is gone. */
	xdp_forget_links();
	if (MEMORY_LIMIT && limit_memory(worker_memory, err, sizeof(err)) != 0)
		refuse("worker_memory", err);
	if (forbid_new_processes(err, sizeof(err)) != 0)
		refuse("worker_nproc", err);
	if (GUARDS_ON && sandbox_enter(SANDBOX_WORKER, policy.sandbox_log, err,
	                               sizeof(err)) != 0)
		refuse("worker_seccomp", err);
}

/* Called in the metrics process before it accepts: a Landlock domain of
 * its own (it can signal no other echod process), no new processes, and
 * the metrics allowlist on top of the supervisor's. */
static void
harden_metrics(void)
{
	char err[256];

	xdp_forget_links();
	if (landlock_restrict(err, sizeof(err)) < 0)
		refuse("metrics_landlock", err);
	if (forbid_new_processes(err, sizeof(err)) != 0)
		refuse("metrics_nproc", err);
	if (GUARDS_ON && sandbox_enter(SANDBOX_METRICS, policy.sandbox_log, err,
	                               sizeof(err)) != 0)
		refuse("metrics_seccomp", err);
}

/* Flags first: -h, -V and a bad flag end here, before anything else. */
static void
parse_flags(int argc, char **argv, struct options *o)
{
	char err[256];

	if (cli_parse(argc, argv, o, err, sizeof(err)) != 0)
		fail(EXIT_USAGE, NULL, NULL, "echod: %s", err);
	if (o->help) {
		fputs(cli_usage, stdout);
		exit(0);
	}
	if (o->version) {
		puts("echod " ECHOD_VERSION);
		exit(0);
	}
}

/* Each worker serves its share of tcp-max-connections: at least one. */
static void
check_workers(struct boot *b)
{
	b->nworkers = worker_count(&policy);
	if (policy.tcp && policy.tcp_max_connections < b->nworkers)
		fail(EXIT_CONFIG, NULL, NULL,
		     "echod: tcp-max-connections %u is split among %u "
		     "workers: it must be at least the worker count",
		     policy.tcp_max_connections, b->nworkers);
}

/* The user and the chroot are checked before anything is bound, so a
 * mistake costs nothing; without root neither can be used. */
static void
check_user_and_chroot(struct boot *b)
{
	char err[256];

	b->as_root = geteuid() == 0;
	if (!b->as_root) {
		b->uid = getuid();
		skip_step(b, "chroot");
		skip_step(b, "user");
		return;
	}
	if (resolve_user(policy.user, b->user, sizeof(b->user), &b->uid,
	                 &b->gid, err, sizeof(err)) != 0)
		refuse("user", err);
	if (prepare_chroot(policy.chroot_dir, !b->opts.check_only, err,
	                   sizeof(err)) != 0)
		refuse("chroot", err);
}

/* RLIMIT_FSIZE 0 would stop a log written to a regular file: refused,
 * unless the policy allows that one downgrade. */
static void
check_stderr(struct boot *b)
{
	if (!stderr_is_file())
		return;
	if (!policy.allow_big_stderr)
		refuse("rlimit_fsize",
		       "stderr is a regular file and RLIMIT_FSIZE 0 "
		       "would stop the log: log to a pipe or the "
		       "journal, or set 'allow-downgrade fsize-limit'");
	b->keep_fsize = true;
	skip_step(b, "fsize_limit");
}

/* Step 3: the guards need facts the sandbox will hide. */
static void
gather_facts(void)
{
	char err[256];

	if (facts_gather(&facts, err, sizeof(err)) != 0)
		fail(EXIT_OSERR, "facts", NULL, "%s", err);
}

/* Step 4: out of the filesystem, out of root. The bounding set goes
 * first: emptying it needs CAP_SETPCAP, which the user change drops. */
static void
drop_privileges(struct boot *b)
{
	char err[256];

	b->bounding = b->as_root || have_capability(CAP_SETPCAP);
	if (!b->bounding)
		skip_step(b, "bounding_set");
	else if (drop_bounding_set(err, sizeof(err)) != 0)
		refuse("bounding_set", err);
	if (!b->as_root)
		return;
	if (enter_chroot(policy.chroot_dir, err, sizeof(err)) != 0)
		refuse("chroot", err);
	if (change_user(b->uid, b->gid, err, sizeof(err)) != 0)
		refuse("user", err);
}

/* Step 5: nothing left to lose: no capability, no way to regain one, no
 * core or ptrace, no more resources than the policy needs. */
static void
seal_process(struct boot *b)
{
	char err[256];

	if (drop_capabilities(b->bounding, err, sizeof(err)) != 0)
		refuse("capabilities", err);
	if (set_no_new_privs(err, sizeof(err)) != 0)
		refuse("no_new_privs", err);
	if (set_not_dumpable(err, sizeof(err)) != 0)
		refuse("dumpable", err);
	if (limit_resources((unsigned long)b->nofile, b->keep_fsize, err,
	                    sizeof(err)) != 0)
		refuse("rlimits", err);
}

/* A skipped step or a log-only sandbox is said once, loudly. */
static void
report_downgrades(const struct boot *b)
{
	if (b->skipped[0] != '\0')
		log_always(LOG_WARN, "hardening_skipped",
		           "steps=%s reason=\"%s\"", b->skipped,
		           b->as_root ? "allowed by allow-downgrade"
		                      : "not running as root: no chroot, no "
		                        "user change, bounding set kept "
		                        "without CAP_SETPCAP");
	if (policy.sandbox_log)
		log_always(LOG_WARN, "sandbox_log_only",
		           "msg=\"WARNING: sandbox-violation log: syscalls "
		           "outside the allowlist are only logged, not "
		           "stopped. For debugging only; never in "
		           "production.\"");
}

/* A second fence behind seccomp, inherited by the workers: the ABI level
 * reached ("abi7"), or "none" where the kernel has no Landlock and the
 * policy allows that (said in one line). */
static const char *
enter_landlock(void)
{
	static char level[16];
	char err[256];
	int abi = landlock_restrict(err, sizeof(err));

	if (abi < 0)
		refuse("landlock", err);
	if (abi == 0 && policy.landlock_required)
		refuse("landlock",
		       "the kernel offers no Landlock (not built in "
		       "or not enabled at boot: lsm=...,landlock) "
		       "and the policy says 'landlock required'");
	if (abi == 0) {
		log_always(LOG_WARN, "landlock_unavailable",
		           "msg=\"the kernel offers no Landlock: seccomp, the "
		           "chroot and the user change stand alone\"");
		return "none";
	}
	snprintf(level, sizeof(level), "abi%d", abi);
	return level;
}

/* Step 6: Landlock and the supervisor's own allowlist; workers limit
 * their memory and stack their allowlist. */
static void
enter_sandbox(struct boot *b)
{
	const char *landlock = b->landlock = enter_landlock();
	char err[256], memory[32] = "unlimited(asan)";

	if (GUARDS_ON && sandbox_enter(SANDBOX_SUPERVISOR, policy.sandbox_log,
	                               err, sizeof(err)) != 0)
		refuse("seccomp", err);
	if (MEMORY_LIMIT)
		snprintf(memory, sizeof(memory), "%llu", worker_memory);
	log_always(LOG_INFO, "sandboxed",
	           "user=%s uid=%u chroot=%s seccomp=%s landlock=%s "
	           "worker_memory=%s",
	           b->as_root ? b->user : "-", (unsigned)b->uid,
	           b->as_root ? policy.chroot_dir : "-",
	           policy.sandbox_log ? "log" : "kill", landlock, memory);
}

static void
announce_listeners(const struct listen_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->l[i].worker == 0 || s->l[i].worker == LISTENER_SHARED)
			log_always(LOG_INFO, "listening", "proto=%.3s addr=%s",
			           s->l[i].name, s->l[i].name + 4);
}

/* Step 2, for "metrics ADDR:PORT": its socket is bound with the others;
 * the metrics process the supervisor forks serves it inside the sandbox. */
static void
bind_metrics(void)
{
	char err[256];

	if (policy.metrics_on &&
	    (metrics.fd = metrics_bind(&policy, err, sizeof(err))) < 0)
		fail(EXIT_OSERR, "bind_failed", NULL, "%s", err);
}

/* What the metrics' info line says, known once the sandbox is entered. */
static const struct metrics_setup *
metrics_for(const struct boot *b)
{
	char where[ADDR_STRLEN];

	if (!policy.metrics_on)
		return NULL;
	format_sockaddr((const struct sockaddr *)&policy.metrics.ss, where,
	                sizeof(where));
	log_always(LOG_INFO, "listening", "proto=metrics addr=%s", where);
	metrics.facts = (struct metrics_facts){
	    .version = ECHOD_VERSION,
	    .seccomp = policy.sandbox_log ? "log" : "kill",
	    .landlock = b->landlock,
	    .chroot = b->as_root ? policy.chroot_dir : "none",
	    .user = b->as_root ? b->user : "-",
	    .table_slots = policy.rate_table_size,
	};
	return &metrics;
}

/* The steps of SECURITY.md, "The bootstrap, step by step", in order. */
int
main(int argc, char **argv)
{
	static struct boot b;
	int reader_fd;

	parse_flags(argc, argv, &b.opts);
	/* Step 1: everything checked before anything is touched; -t stops
	 * after the checks, before anything is bound or changed. */
	load_policy(&b.opts, &policy);
	/* A closed stderr must not kill us; sockets use MSG_NOSIGNAL. */
	signal(SIGPIPE, SIG_IGN);
	log_init(policy.log_level, "main", -1);
	refuse_unguarded_exposure(&policy);
	log_set_json(policy.log_json);
	check_workers(&b);
	check_user_and_chroot(&b);
	check_capability_ports(b.as_root);
	b.nofile = fd_limit_needed(&policy, b.nworkers);
	raise_fd_limit(b.nofile, b.opts.check_only);
	worker_memory =
	    worker_memory_bound(&policy, b.nworkers, (unsigned long)b.nofile);
	reload_warn_lost_defaults(&policy);
	if (b.opts.check_only) {
		open_syslog();
		check_prefilter_interfaces();
		if (b.opts.print_policy)
			print_policy();
		else
			puts("ok");
		return 0;
	}
	close_inherited_fds();
	open_syslog();
	check_stderr(&b);
	/* Step 2: the only step that needs privilege. */
	get_sockets(&b.sockets, b.nworkers);
	enable_udp_gro(&b.sockets);
	size_udp_buffers(&b.sockets);
	bind_metrics();
	gather_facts();
	start_prefilter(&b);
	open_policy_directory();
	drop_privileges(&b);
	seal_process(&b);
	report_downgrades(&b);
	reader_fd = start_policy_reader();
	enter_sandbox(&b);
	announce_listeners(&b.sockets);
	return supervisor_run(&policy, &facts, &b.sockets, b.nworkers,
	                      harden_worker, metrics_for(&b), harden_metrics,
	                      prepare_reload(&b, reader_fd));
}
