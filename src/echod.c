/*
 * echod: parse, bind, give everything up, serve. The order is the security
 * argument: docs/design.md, "The bootstrap", gives each step
 * its why. Nothing reads a byte from the network before the sandbox is
 * entered. main(), at the end of this file, is that list, one named step
 * a line; each step here only maps its module's error to fail() or
 * refuse(), the one way out.
 */
#include "cli.h"
#include "config.h"
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
static struct facts facts;
static struct metrics_setup metrics;
static unsigned long long worker_memory; /* each worker's RLIMIT_DATA */

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

/* What a failing step says, and its name (SECURITY.md's), for refuse(). */
static char why[512];
static const char *step;

/*
 * The one way echod gives up: say what failed, then exit with its status
 * (exitcodes.h). With an event, as one log line (and a step that could
 * not be hardened names itself: SECURITY.md); without, as plain text for
 * whoever typed the command: a bad flag (then the usage) or a policy file
 * error as FILE:LINE: message, before logging starts.
 */
static _Noreturn void __attribute__((format(printf, 4, 5)))
fail(int status, const char *event, const char *name, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (event == NULL)
		fprintf(stderr, "%s\n%s", msg,
		        status == EXIT_USAGE ? cli_usage : "");
	else if (name != NULL)
		log_always(LOG_ERROR, event,
		           "step=%s msg=\"%s\" action=\"refusing to serve\"",
		           name, msg);
	else
		log_always(LOG_ERROR, event, "msg=\"%s\"", msg);
	exit(status);
}

/* A hardening step that could not be applied: refuse to serve. */
static _Noreturn void
refuse(const char *name, const char *reason)
{
	fail(EXIT_OSERR, "hardening_failed", name, "%s", reason);
}

/* A step echod may skip (not root, or allow-downgrade): all of them are
 * named in one hardening_skipped line before the sandbox. */
static void
skip_step(struct boot *b, const char *name)
{
	size_t n = strlen(b->skipped);

	snprintf(b->skipped + n, sizeof(b->skipped) - n, "%s%s",
	         n > 0 ? "," : "", name);
}

/* The hard limit must allow `need`; raise the soft one to it unless only
 * checking (-t). */
static void
raise_nofile(rlim_t need, bool check_only)
{
	unsigned long long hard;

	if (raise_fd_limit(need, check_only, &hard, why, sizeof(why)) == 0)
		return;
	if (hard != 0)
		snprintf(why, sizeof(why),
		         "tcp-max-connections %u needs %llu open files but the "
		         "hard limit is %llu: lower it or raise LimitNOFILE",
		         policy.tcp_max_connections, (unsigned long long)need,
		         hard);
	fail(EXIT_OSERR, "fd_limit", NULL, "%s", why);
}

/* The policy from the file and the flags (config.h). */
static void
load_policy(const struct options *o, struct policy *p)
{
	int status = config_load(o, p, why, sizeof(why));

	if (status != 0)
		fail(status, NULL, NULL, "%s", why);
}

/* -T: the policy in force, in the file's syntax, and its digest. */
static void
print_policy(void)
{
	if (config_print(&policy, why, sizeof(why)) != 0)
		fail(EXIT_SOFTWARE, NULL, NULL, "%s", why);
}

/* Step 2: sockets from systemd if it passed any, else bind them here. */
static void
get_sockets(struct listen_set *s, unsigned nworkers)
{
	int r = sockact_take(s, why, sizeof(why));

	if (r < 0)
		fail(EXIT_OSERR, "socket_activation", NULL, "%s", why);
	if (r > 0)
		log_always(LOG_INFO, "socket_activation", "sockets=%zu", s->n);
	else if (listen_bind_steered(&policy, nworkers, s, why, sizeof(why)) !=
	         0)
		fail(EXIT_OSERR, "bind_failed", NULL, "%s", why);
}

/* Step 2, UDP: a GRO buffer per receive where the kernel has it, and the
 * receive buffers udp-receive-buffer asks for. */
static void
tune_udp_sockets(const struct listen_set *s)
{
	listen_enable_gro(s);
	if (listen_size_udp_buffers(s, policy.udp_receive_buffer, why,
	                            sizeof(why)) != 0)
		fail(EXIT_OSERR, "udp_receive_buffer_failed", NULL, "%s", why);
}

/* Inherited fds do not follow us into the sandbox (privdrop.h). */
static void
close_inherited(void)
{
	if (close_inherited_fds(SOCKACT_FIRST_FD + (int)sockact_passed(), &step,
	                        why, sizeof(why)) != 0)
		refuse(step, why);
}

/* Without root, file capabilities bind the echo port only (privdrop.h). */
static void
check_capability_use(bool as_root)
{
	if (!as_root && have_capability(CAP_NET_BIND_SERVICE) &&
	    sockact_passed() == 0 &&
	    check_capability_ports(&policy, ECHO_PORT, why, sizeof(why)) != 0)
		refuse("privileged_port", why);
}

/* -t: the prefilter's interfaces exist (loading it is left to the start). */
static void
check_prefilter_interfaces(void)
{
	if (!policy.allow_no_xdp &&
	    xdp_check_interfaces(&policy, why, sizeof(why)) != 0)
		refuse("xdp_attach", why);
}

/* Step 3b: the XDP prefilter (xdp.h), while the capabilities to load it
 * are held. If it cannot be applied, echod refuses to serve, unless the
 * policy says 'allow-downgrade xdp-prefilter'. */
static void
start_prefilter(struct boot *b)
{
	if (policy.nxdp == 0 || xdp_start(&policy, &facts, &b->sockets, &step,
	                                  why, sizeof(why)) == 0)
		return;
	if (!policy.allow_no_xdp)
		refuse(step, why);
	/* Why, here; that it was skipped, in report_downgrades(). */
	log_always(LOG_WARN, "xdp_unavailable", "step=%s msg=\"%s\"", step,
	           why);
	skip_step(b, "xdp_prefilter");
}

/* log syslog: the socket is connected now, while the path is visible; the
 * workers inherit it and only write to it. */
static void
open_syslog(void)
{
	if (policy.log_syslog &&
	    log_open_syslog(policy.syslog_path, why, sizeof(why)) != 0)
		refuse("syslog", why);
}

/* Step 4, for a reload: while the filesystem is visible, the policy
 * file's directory, for the reader (reader.h) forked before step 6. */
static void
open_policy_directory(const struct boot *b)
{
	if (b->opts.config != NULL &&
	    reader_open(b->opts.config, why, sizeof(why)) != 0)
		refuse("policy_reader", why);
}

/* Step 6, first: every filter echod will load, compiled before the
 * forks: each child loads its own with one system call, and none runs
 * libseccomp (sandbox.h). The reader's is its own in any build. */
static void
compile_filters(const struct boot *b)
{
	static const enum sandbox_role guarded[] = {
	    SANDBOX_SUPERVISOR, SANDBOX_WORKER, SANDBOX_KEEPER,
	    SANDBOX_METRICS};
	bool log_only = policy.sandbox_log;

	if (b->opts.config != NULL &&
	    sandbox_prepare(SANDBOX_READER, log_only, why, sizeof(why)) != 0)
		refuse("seccomp", why);
	for (size_t i = 0; GUARDS_ON && i < sizeof(guarded) / sizeof(*guarded);
	     i++) {
		if ((guarded[i] == SANDBOX_KEEPER ||
		     guarded[i] == SANDBOX_METRICS) &&
		    !policy.metrics_on)
			continue;
		if (sandbox_prepare(guarded[i], log_only, why, sizeof(why)) !=
		    0)
			refuse("seccomp", why);
	}
}

/* Step 6, next: the policy reader, before the supervisor's own sandbox
 * (which it must not inherit: it alone may open a file). -1 without -c. */
static int
start_policy_reader(const struct boot *b)
{
	int fd;

	if (b->opts.config == NULL)
		return -1;
	fd = reader_start(&policy, &step, why, sizeof(why));
	if (fd < 0)
		refuse(step, why);
	return fd;
}

/* What SIGHUP needs in the supervisor. */
static struct reload *
prepare_reload(const struct boot *b, int reader_fd)
{
	bool prefilter =
	    policy.nxdp > 0 && strstr(b->skipped, "xdp_prefilter") == NULL;
	struct reload *r = reload_new(&policy, b->nworkers, b->opts.config,
	                              reader_fd, config_build, prefilter);

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
	if (!GUARDS_ON && unguarded_check_exposure(p, why, sizeof(why)) != 0)
		refuse("unguarded_build", why);
}

/* Each child's own steps before it serves (harden.h). */
static void
harden(enum sandbox_role role, unsigned long long memory)
{
	if (harden_child(role, memory, policy.sandbox_log, &step, why,
	                 sizeof(why)) != 0)
		refuse(step, why);
}

static void
harden_worker(void)
{
	harden(SANDBOX_WORKER, HARDEN_MEMORY_LIMIT ? worker_memory : 0);
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
	if (cli_parse(argc, argv, o, why, sizeof(why)) != 0)
		fail(EXIT_USAGE, NULL, NULL, "echod: %s", why);
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
	if (worker_check_share(&policy, b->nworkers, why, sizeof(why)) != 0)
		fail(EXIT_CONFIG, NULL, NULL, "echod: %s", why);
}

/* The user and the chroot are checked before anything is bound, so a
 * mistake costs nothing; without root neither can be used. */
static void
check_user_and_chroot(struct boot *b)
{
	if (privdrop_check(&b->priv, &policy, !b->opts.check_only, &step, why,
	                   sizeof(why)) != 0)
		refuse(step, why);
	if (!b->priv.as_root) {
		skip_step(b, "chroot");
		skip_step(b, "user");
	}
}

/* RLIMIT_FSIZE 0 would stop a log written to a file (privdrop.h). */
static void
check_stderr(struct boot *b)
{
	int r = privdrop_check_stderr(&b->priv, &policy, why, sizeof(why));

	if (r < 0)
		refuse("rlimit_fsize", why);
	if (r > 0)
		skip_step(b, "fsize_limit");
}

/* Step 3: the guards need facts the sandbox will hide. */
static void
gather_facts(void)
{
	if (facts_gather(&facts, why, sizeof(why)) != 0)
		fail(EXIT_OSERR, "facts", NULL, "%s", why);
}

/* Step 4: out of the filesystem, out of root (privdrop.h). */
static void
drop_privileges(struct boot *b)
{
	if (privdrop_drop(&b->priv, policy.chroot_dir, &step, why,
	                  sizeof(why)) != 0)
		refuse(step, why);
	if (!b->priv.bounding)
		skip_step(b, "bounding_set");
}

/* Step 5: nothing left to lose (privdrop.h). */
static void
seal_process(struct boot *b)
{
	if (privdrop_seal(&b->priv, &step, why, sizeof(why)) != 0)
		refuse(step, why);
}

/* A skipped step or a log-only sandbox is said once, loudly. */
static void
report_downgrades(const struct boot *b)
{
	if (b->skipped[0] != '\0')
		log_always(LOG_WARN, "hardening_skipped",
		           "steps=%s reason=\"%s\"", b->skipped,
		           privdrop_skip_reason(&b->priv));
	if (policy.sandbox_log)
		log_always(LOG_WARN, "sandbox_log_only", "msg=\"%s\"",
		           SANDBOX_LOG_WARNING);
}

/* Step 2, for "metrics ADDR:PORT": its socket is bound with the others;
 * the metrics keeper holds it, and the metrics process it forks serves
 * it inside the sandbox. */
static void
bind_metrics(void)
{
	if (policy.metrics_on &&
	    (metrics.fd = metrics_bind(&policy, why, sizeof(why))) < 0)
		fail(EXIT_OSERR, "bind_failed", NULL, "%s", why);
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
	if (!policy.metrics_on)
		return;
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
}

/* Step 6: Landlock, the metrics keeper, and the supervisor's own
 * allowlist; workers limit their memory and stack their allowlist. */
static void
enter_sandbox(struct boot *b)
{
	char memory[32] = "unlimited(asan)";

	if (landlock_enter(policy.landlock_required, b->landlock,
	                   sizeof(b->landlock), why, sizeof(why)) != 0)
		refuse("landlock", why);
	/* After the Landlock domain, which the keeper shares (the supervisor
	 * can stop it), before the filter, which it must not. */
	start_metrics_keeper(b);
	if (GUARDS_ON && sandbox_enter(SANDBOX_SUPERVISOR, policy.sandbox_log,
	                               why, sizeof(why)) != 0)
		refuse("seccomp", why);
	if (HARDEN_MEMORY_LIMIT)
		snprintf(memory, sizeof(memory), "%llu", worker_memory);
	log_always(LOG_INFO, "sandboxed",
	           "user=%s uid=%u chroot=%s seccomp=%s landlock=%s "
	           "worker_memory=%s",
	           b->priv.as_root ? b->priv.user : "-", (unsigned)b->priv.uid,
	           b->priv.as_root ? policy.chroot_dir : "-",
	           policy.sandbox_log ? "log" : "kill", b->landlock, memory);
}

/* The steps of docs/design.md, "The bootstrap", in order. */
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
	open_policy_directory(&b);
	drop_privileges(&b);
	seal_process(&b);
	report_downgrades(&b);
	compile_filters(&b);
	b.reader_fd = start_policy_reader(&b);
	booted = &b;
	enter_sandbox(&b);
	listen_announce(&b.sockets);
	return supervisor_run(&policy, &facts, &b.sockets, b.nworkers,
	                      harden_worker,
	                      policy.metrics_on ? &b.keeper : NULL,
	                      prepare_reload(&b, b.reader_fd));
}
