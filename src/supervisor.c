/* supervisor: forks, reaps and signals; it never touches a peer's bytes,
 * and reads nothing from the network. */
#include "supervisor.h"
#include "counters.h"
#include "exitcodes.h"
#include "gather.h"
#include "log.h"
#include "ratelimit.h"
#include "reload.h"
#include "loop.h"
#include "metrics.h"
#include "scrape.h"
#include "worker.h"
#include "xdp.h"

#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define TICK_MS          50
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   5000
#define STABLE_MS        10000 /* a worker this old resets the backoff */
#define STOP_GRACE_MS    800   /* then SIGKILL: SIGTERM must end us in 1 s */
#define REPORT_WAIT_MS   500   /* SIGUSR1: how long to wait for replies */
#define METRICS_NAME     "echod-metrics" /* its comm, for ps */

struct child {
	pid_t pid; /* 0: not running */
	uint64_t started, restart_at;
	unsigned backoff_ms;
	struct bucket restarts; /* worker-restart-limit */
};

/*
 * children[0..n) are the workers; with metrics on, children[n] is the
 * metrics process, restarted the same way within its own bound. Each
 * child reports up a gather pipe of the same index.
 */
struct supervisor {
	const struct policy *policy;
	const struct facts *facts;
	struct listen_set *sockets;
	worker_harden_fn harden, harden_metrics;
	struct child *children;
	unsigned n;         /* workers */
	unsigned nchildren; /* workers and the metrics process */
	unsigned log_shares;
	bool stopping;
	bool announced; /* event=ready logged */
	uint64_t stop_deadline;
	int exit_status;
	struct loop *loop;
	int sigfd;
	struct gather *gather;
	uint64_t report_deadline; /* 0: no SIGUSR1 report pending */
	const struct metrics_setup *metrics_setup; /* NULL: metrics off */
	int feed;                /* write end of the metrics snapshot pipe */
	struct scrape_feed sent; /* the last snapshot written to it */
	bool sent_any;
	struct reload *reload; /* SIGHUP */
};

static bool
is_metrics(const struct supervisor *sv, unsigned i)
{
	return i == sv->n;
}

/* How many workers are alive and said they were ready: the supervisor's
 * own count (gather.h: a worker's ready bit is a latch, never summed). */
static void
count_ready_workers(const struct supervisor *sv)
{
	uint64_t ready = 0;

	for (unsigned i = 0; i < sv->n; i++)
		ready += sv->children[i].pid > 0 && gather_ready(sv->gather, i);
	counters->workers_ready = ready;
}

static void
log_counters(const struct supervisor *sv, const char *event)
{
	struct counters sum;
	char line[1536];

	/* The prefilter's drops are the supervisor's to report. */
	xdp_fold_counters(counters);
	count_ready_workers(sv);
	gather_total(sv->gather, counters, &sum);
	counters_format(&sum, line, sizeof(line));
	log_always(LOG_INFO, event, "%s", line);
}

/* SIGUSR1 was answered by every worker, or they took too long. */
static void
report_if_answered(struct supervisor *sv, uint64_t now)
{
	if (sv->report_deadline == 0)
		return;
	if (!gather_answered(sv->gather) && now < sv->report_deadline)
		return;
	sv->report_deadline = 0;
	log_counters(sv, "counters");
}

static void
counters_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct supervisor *sv = arg;

	(void)events;
	for (unsigned i = 0; i < sv->nchildren; i++) {
		if (gather_fd(sv->gather, i) != fd)
			continue;
		if (gather_receive(sv->gather, i) != 0)
			loop_del(l,
			         fd); /* the worker is gone; reap retires it */
		break;
	}
	report_if_answered(sv, now_ms());
}

/* In a new child: drop what only the supervisor holds; count from zero. */
static void
leave_supervisor(struct supervisor *sv, unsigned i)
{
	loop_free(sv->loop);
	close(sv->sigfd);
	gather_close_readers(sv->gather);
	if (sv->feed >= 0)
		close(sv->feed);
	if (sv->metrics_setup != NULL && !is_metrics(sv, i))
		close(sv->metrics_setup->fd);
	reload_close_for_worker(sv->reload);
	memset(counters, 0, sizeof(*counters));
	log_share_budget(sv->log_shares);
}

/* The metrics process: its listener, its two pipes and stderr; no echo
 * socket. It dies by SIGKILL with the supervisor (its signals stay
 * blocked: it stops when the snapshot pipe closes). */
static _Noreturn void
run_metrics(struct supervisor *sv, int feed, int report)
{
	struct metrics_facts f = sv->metrics_setup->facts;

	listener_close_all(sv->sockets);
	(void)prctl(PR_SET_NAME, METRICS_NAME, 0, 0, 0);
	log_init(sv->policy->log_level, "metrics", -1);
	f.workers = sv->n;
	_exit(scrape_run(sv->policy, &f, sv->metrics_setup->fd, feed, report,
	                 sv->harden_metrics));
}

static void
start_failed(struct supervisor *sv, unsigned i, const char *step)
{
	log_always(LOG_ERROR,
	           is_metrics(sv, i) ? "metrics_fork_failed"
	                             : "worker_fork_failed",
	           "worker=%u step=%s error=\"%s\"", i, step, strerror(errno));
	if (gather_fd(sv->gather, i) >= 0)
		loop_del(sv->loop, gather_fd(sv->gather, i));
	gather_retire(sv->gather, i);
	sv->children[i].restart_at = now_ms() + BACKOFF_MAX_MS;
}

static void
start_child(struct supervisor *sv, unsigned i)
{
	struct child *c = &sv->children[i];
	pid_t parent = getpid();
	pid_t pid;
	int report = -1, feed[2] = {-1, -1}, policy_in = -1;

	if ((!is_metrics(sv, i) &&
	     reload_attach(sv->reload, i, &policy_in) != 0) ||
	    gather_attach(sv->gather, i, &report) != 0 ||
	    loop_add(sv->loop, gather_fd(sv->gather, i), EPOLLIN,
	             counters_event, sv) != 0) {
		if (report >= 0)
			close(report);
		if (policy_in >= 0)
			close(policy_in);
		start_failed(sv, i, "counters_pipe");
		return;
	}
	if (is_metrics(sv, i) && pipe2(feed, O_CLOEXEC | O_NONBLOCK) != 0) {
		close(report);
		start_failed(sv, i, "snapshot_pipe");
		return;
	}
	pid = fork();
	if (pid < 0) {
		close(report);
		if (policy_in >= 0)
			close(policy_in);
		if (feed[0] >= 0) {
			close(feed[0]);
			close(feed[1]);
		}
		start_failed(sv, i, "fork");
		return;
	}
	if (pid == 0) {
		/* A child must not outlive its supervisor. */
		if (prctl(PR_SET_PDEATHSIG,
		          is_metrics(sv, i) ? SIGKILL : SIGTERM) != 0 ||
		    getppid() != parent)
			_exit(0);
		leave_supervisor(sv, i);
		if (is_metrics(sv, i)) {
			close(feed[1]);
			run_metrics(sv, feed[0], report);
		}
		/* The worker keeps its sockets, stderr and its own counters
		 * pipe, nothing else. */
		log_init(sv->policy->log_level, "worker", (int)i);
		listener_keep_only(sv->sockets, i);
		_exit(worker_run(sv->policy, sv->facts, sv->n, sv->sockets, i,
		                 report, sv->harden, sv->reload, policy_in));
	}
	close(report);
	if (policy_in >= 0)
		close(policy_in);
	if (is_metrics(sv, i)) {
		close(feed[0]);
		sv->feed = feed[1];
		sv->sent_any = false;
	}
	c->pid = pid;
	c->started = now_ms();
	c->restart_at = 0;
	if (is_metrics(sv, i))
		log_always(LOG_INFO, "metrics_started", "pid=%d", pid);
	else
		log_always(LOG_INFO, "worker_started", "worker=%u pid=%d", i,
		           pid);
}

static void
describe_death(int status, char *why, size_t len)
{
	if (WIFEXITED(status)) {
		snprintf(why, len, "exit_status=%d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
		snprintf(why, len,
		         "signal=SIGSYS cause=\"sandbox violation: a system "
		         "call outside the seccomp allowlist; the worker's "
		         "event=sandbox_violation line names it\"");
	} else if (WIFSIGNALED(status)) {
		snprintf(why, len, "signal=%s",
		         sigabbrev_np(WTERMSIG(status))
		             ? sigabbrev_np(WTERMSIG(status))
		             : "unknown");
	} else {
		snprintf(why, len, "status=%d", status);
	}
}

/* Every running child gets sig: the one loop over them that kills. */
static void
signal_workers(const struct supervisor *sv, int sig)
{
	for (unsigned i = 0; i < sv->nchildren; i++)
		if (sv->children[i].pid > 0)
			kill(sv->children[i].pid, sig);
}

static void
close_feed(struct supervisor *sv)
{
	if (sv->feed >= 0)
		close(sv->feed);
	sv->feed = -1;
}

/* Stop the service: every worker gets SIGTERM, then SIGKILL; the metrics
 * process sees its snapshot pipe close. */
static void
stop_all(struct supervisor *sv, int status)
{
	sv->exit_status = status;
	sv->stopping = true;
	sv->stop_deadline = now_ms() + STOP_GRACE_MS;
	close_feed(sv);
	signal_workers(sv, SIGTERM);
}

/* The metrics process kept dying: echo goes on, the endpoint closes (a
 * scraper that can crash it must not stop the service). */
static void
give_up_metrics(struct supervisor *sv)
{
	sv->children[sv->n].restart_at = 0;
	close(sv->metrics_setup->fd);
	sv->metrics_setup = NULL;
}

/*
 * One child is gone. Before it said it was ready (the supervisor's latch,
 * gather.h), an exit status that exit_is_refusal() names (64, 71, 78) is
 * its refusal to start (bad configuration or a hardening step that
 * failed): restarting would only fail again. After that, any end is a
 * crash: restart with backoff, within worker-restart-limit (a bucket per
 * child); past it a worker stops the service, the metrics process only
 * its endpoint.
 */
static void
worker_gone(struct supervisor *sv, unsigned i, pid_t pid, int status,
            bool was_ready)
{
	struct child *c = &sv->children[i];
	const struct bucket_cfg *limit = &sv->policy->worker_restarts;
	const char *failed =
	    is_metrics(sv, i) ? "metrics_failed" : "worker_failed";
	uint64_t now = now_ms();
	char why[160];

	describe_death(status, why, sizeof(why));
	if (!was_ready && WIFEXITED(status) &&
	    exit_is_refusal(WEXITSTATUS(status))) {
		log_always(LOG_ERROR, failed, "worker=%u pid=%d %s action=stop",
		           i, pid, why);
		stop_all(sv, WEXITSTATUS(status));
		return;
	}
	if (!bucket_take(&c->restarts, limit, now, 1)) {
		log_always(LOG_ERROR, failed,
		           "worker=%u pid=%d %s action=%s reason=\"more than "
		           "%llu restarts (worker-restart-limit)\"",
		           i, pid, why,
		           is_metrics(sv, i) ? "close_endpoint" : "stop",
		           (unsigned long long)(limit->burst ? limit->burst
		                                             : limit->rate));
		if (is_metrics(sv, i))
			give_up_metrics(sv);
		else
			stop_all(sv, EXIT_SOFTWARE);
		return;
	}
	if (now - c->started >= STABLE_MS)
		c->backoff_ms = BACKOFF_FIRST_MS;
	else if (c->backoff_ms < BACKOFF_MAX_MS)
		c->backoff_ms =
		    c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_FIRST_MS;
	c->restart_at = now + c->backoff_ms;
	if (is_metrics(sv, i))
		COUNT(metrics_restarts, 1);
	else
		COUNT(worker_restarts, 1);
	log_always(LOG_WARN, is_metrics(sv, i) ? "metrics_died" : "worker_died",
	           "worker=%u pid=%d %s ready=%s restart_in_ms=%u", i, pid, why,
	           was_ready ? "yes" : "no", c->backoff_ms);
}

static void
reap(struct supervisor *sv)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned i = 0; i < sv->nchildren; i++) {
			bool was_ready;

			if (sv->children[i].pid != pid)
				continue;
			sv->children[i].pid = 0;
			/* What it said before dying: was it ever ready? */
			gather_receive(sv->gather, i);
			was_ready = gather_ready(sv->gather, i);
			loop_del(sv->loop, gather_fd(sv->gather, i));
			gather_retire(sv->gather, i);
			if (is_metrics(sv, i))
				close_feed(sv);
			else
				reload_detach(sv->reload, i);
			if (!sv->stopping)
				worker_gone(sv, i, pid, status, was_ready);
			break;
		}
	}
}

static void
begin_stop(struct supervisor *sv)
{
	if (!sv->stopping)
		stop_all(sv, sv->exit_status);
}

static unsigned
running(const struct supervisor *sv)
{
	unsigned r = 0;

	for (unsigned i = 0; i < sv->nchildren; i++)
		r += sv->children[i].pid > 0;
	return r;
}

static void
signal_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct supervisor *sv = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			log_always(LOG_INFO, "stopping", "signal=%s",
			           si.ssi_signo == SIGTERM ? "TERM" : "INT");
			begin_stop(sv);
			break;
		case SIGUSR1:
			/* Fresh figures: each worker replies at once (the
			 * metrics process reports every change anyway). */
			gather_request(sv->gather, sv->n);
			signal_workers(sv, SIGUSR1);
			sv->report_deadline = now_ms() + REPORT_WAIT_MS;
			break;
		case SIGHUP:
			if (!sv->stopping)
				reload_begin(sv->reload);
			break;
		case SIGCHLD:
			reap(sv);
			break;
		}
	}
	report_if_answered(sv, now_ms());
	if (sv->stopping && running(sv) == 0)
		loop_stop(l);
}

/* "ready" means every worker (and the metrics process) is sandboxed and
 * serving, said once. */
static void
announce_ready(struct supervisor *sv)
{
	if (sv->announced)
		return;
	for (unsigned i = 0; i < sv->nchildren; i++)
		if ((sv->children[i].pid == 0 ||
		     !gather_ready(sv->gather, i)) &&
		    !(is_metrics(sv, i) && sv->metrics_setup == NULL))
			return;
	sv->announced = true;
	log_always(LOG_INFO, "ready", "workers=%u pid=%d", sv->n, getpid());
}

/* The metrics process's view, written when it changed (at most once a
 * tick, non-blocking: a process that does not read only misses updates). */
static void
feed_metrics(struct supervisor *sv)
{
	struct scrape_feed f;
	unsigned alive = 0;

	if (sv->feed < 0)
		return;
	memset(&f, 0, sizeof(f));
	xdp_fold_counters(counters);
	count_ready_workers(sv);
	gather_total_except(sv->gather, counters, sv->n, &f.sum);
	for (unsigned i = 0; i < sv->n; i++)
		alive += sv->children[i].pid > 0;
	f.workers_alive = alive;
	snprintf(f.policy_digest, sizeof(f.policy_digest), "%s",
	         reload_digest(sv->reload));
	if (sv->sent_any && memcmp(&f, &sv->sent, sizeof(f)) == 0)
		return;
	if (write(sv->feed, &f, sizeof(f)) == (ssize_t)sizeof(f)) {
		sv->sent = f;
		sv->sent_any = true;
	}
}

static void
tick(struct loop *l, uint64_t now, void *arg)
{
	struct supervisor *sv = arg;

	reload_tick(sv->reload);
	report_if_answered(sv, now);
	if (sv->stopping) {
		if (running(sv) == 0) {
			loop_stop(l);
			return;
		}
		if (now >= sv->stop_deadline)
			signal_workers(sv, SIGKILL);
		return;
	}
	for (unsigned i = 0; i < sv->nchildren; i++) {
		struct child *c = &sv->children[i];
		if (c->pid == 0 && c->restart_at != 0 && now >= c->restart_at)
			start_child(sv, i);
	}
	feed_metrics(sv);
	announce_ready(sv);
}

int
supervisor_run(const struct policy *p, const struct facts *f,
               struct listen_set *s, unsigned nworkers, worker_harden_fn harden,
               const struct metrics_setup *metrics,
               worker_harden_fn harden_metrics, struct reload *reload)
{
	struct supervisor sv = {.policy = p,
	                        .facts = f,
	                        .sockets = s,
	                        .harden = harden,
	                        .harden_metrics = harden_metrics,
	                        .n = nworkers,
	                        .nchildren = nworkers + (metrics != NULL),
	                        .metrics_setup = metrics,
	                        .feed = -1,
	                        .reload = reload};
	static const int signals[] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP,
	                              SIGCHLD};
	struct rlimit rl;

	/* One log budget for the service: a share for each worker, one for
	 * the supervisor, one for the metrics process. */
	sv.log_shares = sv.nchildren + 1;
	log_share_budget(sv.log_shares);
	/* Blocked before the first fork: children inherit the mask. */
	sv.sigfd = loop_signalfd(signals, sizeof(signals) / sizeof(signals[0]));
	if (sv.sigfd < 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_always(LOG_ERROR, "supervisor_failed", "step=signalfd");
		return EXIT_OSERR;
	}
	sv.children = calloc(sv.nchildren, sizeof(*sv.children));
	sv.gather = gather_new(sv.nchildren);
	for (unsigned i = 0; sv.children != NULL && i < sv.nchildren; i++)
		bucket_init(&sv.children[i].restarts, &p->worker_restarts,
		            now_ms());
	sv.loop = loop_new((int)rl.rlim_cur);
	if (sv.children == NULL || sv.gather == NULL || sv.loop == NULL ||
	    loop_add(sv.loop, sv.sigfd, EPOLLIN, signal_event, &sv) != 0 ||
	    reload_watch(reload, sv.loop) != 0) {
		log_always(LOG_ERROR, "supervisor_failed", "step=epoll");
		return EXIT_OSERR;
	}
	for (unsigned i = 0; i < sv.nchildren && !sv.stopping; i++)
		start_child(&sv, i);
	loop_set_tick(sv.loop, TICK_MS, tick, &sv);
	loop_run(sv.loop);
	reap(&sv);
	listener_close_all(s);
	close_feed(&sv);
	if (sv.metrics_setup != NULL)
		close(sv.metrics_setup->fd);
	log_counters(&sv, "final_counters");
	log_always(LOG_INFO, "stopped", "exit_status=%d", sv.exit_status);
	loop_free(sv.loop);
	close(sv.sigfd);
	gather_free(sv.gather);
	free(sv.children);
	return sv.exit_status;
}
