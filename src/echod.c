/*
 * echod: parse, bind, give everything up, serve. The order below is the
 * security argument (SECURITY.md lists each step and why):
 *   1. policy and flags; resolve the user and the empty chroot directory
 *      (load_policy, check_user_and_chroot, ..., close_inherited)
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
 *      list (start_policy_reader, reader.c); Landlock; with metrics, the
 *      metrics keeper forked with the metrics socket, its own Landlock
 *      domain and seccomp list, which forks the metrics process
 *      (start_metrics_keeper, keeper.c; harden_keeper, harden_metrics);
 *      seccomp (supervisor list), fork workers; each limits its memory
 *      and stacks the worker list (enter_sandbox, supervisor_run;
 *      harden_worker in each worker)
 * Nothing reads a byte from the network before step 6 completes. main(),
 * at the end of this file, is that list; every way out is fail().
 */
#include "cli.h"
#include "errmsg.h"
#include "exitcodes.h"
#include "facts.h"
#include "harden.h"
#include "keeper.h"
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
#include "unguarded.h"
#include "variant.h"
#include "worker.h"
#include "xdp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef ECHOD_VERSION
#define ECHOD_VERSION "0.1.0"
#endif

#define ECHO_PORT 7 /* RFC 862 */

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
	struct privdrop priv; /* who echod becomes, what it keeps */
	char skipped[128];    /* hardening steps not applied, comma-separated */
	char landlock[16];    /* the Landlock level reached ("abi7", "none") */
	struct listen_set sockets;
	int reader_fd;             /* the policy reader's socket, or -1 */
	struct keeper_link keeper; /* with metrics: the keeper */
};

static struct boot *booted; /* main()'s, for the keeper's fork */

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

/* The hard limit must allow `need`; raise the soft one to it unless only
 * checking (-t). */
static void
raise_nofile(rlim_t need, bool check_only)
{
	unsigned long long hard;
	char err[256];

	if (raise_fd_limit(need, check_only, &hard, err, sizeof(err)) == 0)
		return;
	if (hard == 0)
		fail(EXIT_OSERR, "fd_limit", NULL, "%s", err);
	fail(EXIT_OSERR, "fd_limit", NULL,
	     "tcp-max-connections %u needs %llu open files but the hard "
	     "limit is %llu: lower it or raise LimitNOFILE",
	     policy.tcp_max_connections, (unsigned long long)need, hard);
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

/* Step 2: sockets from systemd if it passed any, else bind them here. */
static void
get_sockets(struct listen_set *s, unsigned nworkers)
{
	char err[256];
	int r = sockact_take(s, err, sizeof(err));

	if (r < 0)
		fail(EXIT_OSERR, "socket_activation", NULL, "%s", err);
	if (r > 0)
		log_always(LOG_INFO, "socket_activation", "sockets=%zu", s->n);
	else if (listen_bind_steered(&policy, nworkers, s, err, sizeof(err)) !=
	         0)
		fail(EXIT_OSERR, "bind_failed", NULL, "%s", err);
}

/* Step 2, UDP: a GRO buffer per receive where the kernel has it, and the
 * receive buffers udp-receive-buffer asks for. */
static void
tune_udp_sockets(const struct listen_set *s)
{
	char err[256];

	listen_enable_gro(s);
	if (listen_size_udp_buffers(s, policy.udp_receive_buffer, err,
	                            sizeof(err)) != 0)
		fail(EXIT_OSERR, "udp_receive_buffer_failed", NULL, "%s", err);
}

/* Inherited fds do not follow us into the sandbox (privdrop.h). */
static void
close_inherited(void)
{
	const char *step;
	char err[256];

	if (close_inherited_fds(SOCKACT_FIRST_FD + (int)sockact_passed(), &step,
	                        err, sizeof(err)) != 0)
		refuse(step, err);
}

/* Without root, file capabilities bind the echo port only (privdrop.h). */
static void
check_capability_use(bool as_root)
{
	char err[200];

	if (!as_root && have_capability(CAP_NET_BIND_SERVICE) &&
	    sockact_passed() == 0 &&
	    check_capability_ports(&policy, ECHO_PORT, err, sizeof(err)) != 0)
		refuse("privileged_port", err);
}

/* -t: the prefilter's interfaces exist (loading it is left to the start). */
static void
check_prefilter_interfaces(void)
{
	char err[128];

	if (!policy.allow_no_xdp &&
	    xdp_check_interfaces(&policy, err, sizeof(err)) != 0)
		refuse("xdp_attach", err);
}

/* Step 3b: the XDP prefilter (xdp.h), while the capabilities to load it
 * are held. If it cannot be applied, echod refuses to serve, unless the
 * policy says 'allow-downgrade xdp-prefilter'. */
static void
start_prefilter(struct boot *b)
{
	const char *step;
	char err[512];

	if (policy.nxdp == 0 || xdp_start(&policy, &facts, &b->sockets, &step,
	                                  err, sizeof(err)) == 0)
		return;
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
 * nothing else; the ordinary build compiles this out, step name and all. */
static void
refuse_unguarded_exposure(const struct policy *p)
{
	char err[160];

	if (!GUARDS_ON && unguarded_check_exposure(p, err, sizeof(err)) != 0)
		refuse("unguarded_build", err);
}

/* Each child's own steps before it serves (harden.h). */
static void
harden(enum sandbox_role role, unsigned long long memory)
{
	const char *step;
	char err[256];

	if (harden_child(role, memory, policy.sandbox_log, &step, err,
	                 sizeof(err)) != 0)
		refuse(step, err);
}

static void
harden_worker(void)
{
	harden(SANDBOX_WORKER, MEMORY_LIMIT ? worker_memory : 0);
}

static void
harden_metrics(void)
{
	harden(SANDBOX_METRICS, 0);
}

static void
harden_keeper(void)
{
	harden(SANDBOX_KEEPER, 0);
}

/* In the keeper: nothing of the bootstrap's but the metrics socket. */
static void
leave_bootstrap(void)
{
	listener_close_all(&booted->sockets);
	if (booted->reader_fd >= 0)
		close(booted->reader_fd);
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
	const char *step;
	char err[256];

	if (privdrop_check(&b->priv, &policy, !b->opts.check_only, &step, err,
	                   sizeof(err)) != 0)
		refuse(step, err);
	if (!b->priv.as_root) {
		skip_step(b, "chroot");
		skip_step(b, "user");
	}
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
	b->priv.keep_fsize = true;
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

/* Step 4: out of the filesystem, out of root (privdrop.h). */
static void
drop_privileges(struct boot *b)
{
	const char *step;
	char err[256];

	if (privdrop_drop(&b->priv, policy.chroot_dir, &step, err,
	                  sizeof(err)) != 0)
		refuse(step, err);
	if (!b->priv.bounding)
		skip_step(b, "bounding_set");
}

/* Step 5: nothing left to lose (privdrop.h). */
static void
seal_process(struct boot *b)
{
	const char *step;
	char err[256];

	if (privdrop_seal(&b->priv, &step, err, sizeof(err)) != 0)
		refuse(step, err);
}

/* A skipped step or a log-only sandbox is said once, loudly. */
static void
report_downgrades(const struct boot *b)
{
	if (b->skipped[0] != '\0')
		log_always(LOG_WARN, "hardening_skipped",
		           "steps=%s reason=\"%s\"", b->skipped,
		           b->priv.as_root
		               ? "allowed by allow-downgrade"
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

static void start_metrics_keeper(struct boot *b);

/* Step 6: Landlock, the metrics keeper, and the supervisor's own
 * allowlist; workers limit their memory and stack their allowlist. */
static void
enter_sandbox(struct boot *b)
{
	char err[256], memory[32] = "unlimited(asan)";

	if (landlock_enter(policy.landlock_required, b->landlock,
	                   sizeof(b->landlock), err, sizeof(err)) != 0)
		refuse("landlock", err);
	/* After the Landlock domain, which the keeper shares (the supervisor
	 * can stop it), before the filter, which it must not. */
	start_metrics_keeper(b);
	if (GUARDS_ON && sandbox_enter(SANDBOX_SUPERVISOR, policy.sandbox_log,
	                               err, sizeof(err)) != 0)
		refuse("seccomp", err);
	if (MEMORY_LIMIT)
		snprintf(memory, sizeof(memory), "%llu", worker_memory);
	log_always(LOG_INFO, "sandboxed",
	           "user=%s uid=%u chroot=%s seccomp=%s landlock=%s "
	           "worker_memory=%s",
	           b->priv.as_root ? b->priv.user : "-", (unsigned)b->priv.uid,
	           b->priv.as_root ? policy.chroot_dir : "-",
	           policy.sandbox_log ? "log" : "kill", b->landlock, memory);
}

/* Step 2, for "metrics ADDR:PORT": its socket is bound with the others;
 * the metrics keeper holds it, and the metrics process it forks serves
 * it inside the sandbox. */
static void
bind_metrics(void)
{
	char err[256];

	if (policy.metrics_on &&
	    (metrics.fd = metrics_bind(&policy, err, sizeof(err))) < 0)
		fail(EXIT_OSERR, "bind_failed", NULL, "%s", err);
}

/* Step 6, with metrics: the keeper (keeper.h), which takes the only
 * copy of the metrics socket. */
static void
start_metrics_keeper(struct boot *b)
{
	static const struct keeper_hooks hooks = {
	    .leave_bootstrap = leave_bootstrap,
	    .harden = harden_keeper,
	    .harden_metrics = harden_metrics,
	};
	char where[ADDR_STRLEN];
	const char *step;

	if (!policy.metrics_on)
		return;
	format_sockaddr((const struct sockaddr *)&policy.metrics.ss, where,
	                sizeof(where));
	log_always(LOG_INFO, "listening", "proto=metrics addr=%s", where);
	metrics.facts = (struct metrics_facts){
	    .version = ECHOD_VERSION,
	    .seccomp = policy.sandbox_log ? "log" : "kill",
	    .landlock = b->landlock,
	    .chroot = b->priv.as_root ? policy.chroot_dir : "none",
	    .user = b->priv.as_root ? b->priv.user : "-",
	    .workers = b->nworkers,
	    .table_slots = policy.rate_table_size,
	};
	if (keeper_start(&policy, &metrics,
	                 supervisor_log_shares(b->nworkers, true), &hooks,
	                 &b->keeper, &step) != 0)
		refuse(step, strerror(errno));
	close(metrics.fd);
	metrics.fd = -1;
}

/* The steps of SECURITY.md, "The bootstrap, step by step", in order. */
int
main(int argc, char **argv)
{
	static struct boot b = {.reader_fd = -1};

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
	check_capability_use(b.priv.as_root);
	b.priv.nofile = worker_fd_limit(&policy, b.nworkers);
	raise_nofile(b.priv.nofile, b.opts.check_only);
	worker_memory = worker_memory_bound(&policy, b.nworkers,
	                                    (unsigned long)b.priv.nofile);
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
	close_inherited();
	open_syslog();
	check_stderr(&b);
	/* Step 2: the only step that needs privilege. */
	get_sockets(&b.sockets, b.nworkers);
	tune_udp_sockets(&b.sockets);
	bind_metrics();
	gather_facts();
	start_prefilter(&b);
	open_policy_directory();
	drop_privileges(&b);
	seal_process(&b);
	report_downgrades(&b);
	b.reader_fd = start_policy_reader();
	booted = &b;
	enter_sandbox(&b);
	listen_announce(&b.sockets);
	return supervisor_run(&policy, &facts, &b.sockets, b.nworkers,
	                      harden_worker,
	                      policy.metrics_on ? &b.keeper : NULL,
	                      prepare_reload(&b, b.reader_fd));
}
