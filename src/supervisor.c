/* supervisor: forks, reaps and signals; it never touches a peer's bytes,
 * holds no metrics socket, and reads nothing from the network. */
#include "supervisor.h"
#include "counters.h"
#include "exitcodes.h"
#include "gather.h"
#include "keeper.h"
#include "log.h"
#include "reload.h"
#include "loop.h"
#include "restart.h"
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

#define TICK_MS        50
#define STOP_GRACE_MS  800 /* then SIGKILL: SIGTERM must end us in 1 s */
#define REPORT_WAIT_MS 500 /* SIGUSR1: how long to wait for replies */

struct child {
	pid_t pid;              /* 0: not running */
	struct restart restart; /* backoff, worker-restart-limit */
};

/*
 * children[0..n) are the workers, each reporting up a gather pipe of the
 * same index; with metrics on, children[n] is the metrics keeper, forked
 * by the bootstrap and never restarted (it reports up its own pipe,
 * keeper.h).
 */
struct supervisor {
	const struct policy *policy;
	const struct facts *facts;
	struct listen_set *sockets;
	worker_harden_fn harden;
	struct child *children;
	unsigned n;         /* workers */
	unsigned nchildren; /* workers and the keeper */
	unsigned log_shares;
	bool stopping;
	bool announced; /* event=ready logged */
	uint64_t stop_deadline;
	int exit_status;
	struct loop *loop;
	int sigfd;
	struct gather *gather;
	uint64_t report_deadline;  /* 0: no SIGUSR1 report pending */
	struct keeper_link keeper; /* pid 0: metrics off, or the keeper ended */
	struct keeper_report metrics; /* the keeper's last report */
	struct scrape_feed sent;      /* the last snapshot written to feed */
	bool sent_any;
	struct reload *reload; /* SIGHUP */
};

static bool
is_keeper(const struct supervisor *sv, unsigned i)
{
	return i == sv->n;
}

/* Every counter: the supervisor's own, the workers' (gather.h) and the
 * metrics processes' as the keeper reported them; without the running
 * metrics process's own for what is sent to it (it adds them itself). */
static void
total(const struct supervisor *sv, bool with_live_metrics, struct counters *out)
{
	gather_total(sv->gather, counters, out);
	counters_add(out, &sv->metrics.settled);
	if (with_live_metrics)
		counters_add(out, &sv->metrics.live);
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
	total(sv, true, &sum);
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
	for (unsigned i = 0; i < sv->n; i++) {
		if (gather_fd(sv->gather, i) != fd)
			continue;
		if (gather_receive(sv->gather, i) != 0)
			loop_del(l,
			         fd); /* the worker is gone; reap retires it */
		break;
	}
	report_if_answered(sv, now_ms());
}

/* In a new worker: drop what only the supervisor holds; count from
 * zero. */
static void
leave_supervisor(struct supervisor *sv)
{
	loop_free(sv->loop);
	close(sv->sigfd);
	gather_close_readers(sv->gather);
	if (sv->keeper.feed_fd >= 0)
		close(sv->keeper.feed_fd);
	if (sv->keeper.report_fd >= 0)
		close(sv->keeper.report_fd);
	reload_close_for_worker(sv->reload);
	memset(counters, 0, sizeof(*counters));
	log_share_budget(sv->log_shares);
}

static void
start_failed(struct supervisor *sv, unsigned i, const char *step)
{
	log_always(LOG_ERROR, "worker_fork_failed",
	           "worker=%u step=%s error=\"%s\"", i, step, strerror(errno));
	if (gather_fd(sv->gather, i) >= 0)
		loop_del(sv->loop, gather_fd(sv->gather, i));
	gather_retire(sv->gather, i);
	sv->children[i].restart.restart_at = now_ms() + RESTART_MAX_MS;
}

static void
start_child(struct supervisor *sv, unsigned i)
{
	struct child *c = &sv->children[i];
	pid_t parent = getpid();
	pid_t pid;
	int report = -1, policy_in = -1;

	if (reload_attach(sv->reload, i, &policy_in) != 0 ||
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
	pid = fork();
	if (pid < 0) {
		close(report);
		if (policy_in >= 0)
			close(policy_in);
		start_failed(sv, i, "fork");
		return;
	}
	if (pid == 0) {
		/* A worker must not outlive its supervisor. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 ||
		    getppid() != parent)
			_exit(0);
		leave_supervisor(sv);
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
	c->pid = pid;
	restart_started(&c->restart, now_ms());
	log_always(LOG_INFO, "worker_started", "worker=%u pid=%d", i, pid);
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
	if (sv->keeper.feed_fd >= 0)
		close(sv->keeper.feed_fd);
	sv->keeper.feed_fd = -1;
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

/*
 * One worker is gone. Before it said it was ready (the supervisor's
 * latch, gather.h), an exit status that exit_is_refusal() names (64, 71,
 * 78) is its refusal to start (bad configuration or a hardening step that
 * failed): restarting would only fail again. After that, any end is a
 * crash: restart with backoff, within worker-restart-limit (a bucket per
 * worker); past it the service stops.
 */
static void
worker_gone(struct supervisor *sv, unsigned i, pid_t pid, int status,
            bool was_ready)
{
	struct child *c = &sv->children[i];
	const struct bucket_cfg *limit = &sv->policy->worker_restarts;
	char why[160];

	restart_describe(status, why, sizeof(why));
	if (!was_ready && WIFEXITED(status) &&
	    exit_is_refusal(WEXITSTATUS(status))) {
		log_always(LOG_ERROR, "worker_failed",
		           "worker=%u pid=%d %s action=stop", i, pid, why);
		stop_all(sv, WEXITSTATUS(status));
		return;
	}
	if (!restart_plan(&c->restart, limit, now_ms())) {
		log_always(LOG_ERROR, "worker_failed",
		           "worker=%u pid=%d %s action=stop reason=\"more than "
		           "%llu restarts (worker-restart-limit)\"",
		           i, pid, why,
		           (unsigned long long)(limit->burst ? limit->burst
		                                             : limit->rate));
		stop_all(sv, EXIT_SOFTWARE);
		return;
	}
	COUNT(worker_restarts, 1);
	log_always(LOG_WARN, "worker_died",
	           "worker=%u pid=%d %s ready=%s restart_in_ms=%u", i, pid, why,
	           was_ready ? "yes" : "no", c->restart.backoff_ms);
}

static void
keeper_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct supervisor *sv = arg;

	(void)events;
	if (keeper_receive(fd, &sv->metrics) != 0)
		loop_del(l, fd); /* the keeper is gone; reap says why */
}

/*
 * The keeper ended; it is not restarted (a keeper forked now would hold
 * the supervisor's filter, and the socket is gone with it). A refusal
 * status is a metrics process's (or the keeper's own) refusal to start:
 * the service stops with it, as for a worker. Any other end closes the
 * endpoint, and echo goes on: no scraper can stop the service.
 */
static void
keeper_gone(struct supervisor *sv, pid_t pid, int status)
{
	char why[160];

	keeper_receive(sv->keeper.report_fd, &sv->metrics);
	loop_del(sv->loop, sv->keeper.report_fd);
	close(sv->keeper.report_fd);
	sv->keeper.report_fd = -1;
	close_feed(sv);
	/* Its figures stay; none of them runs any more. */
	counters_add(&sv->metrics.settled, &sv->metrics.live);
	memset(&sv->metrics.live, 0, sizeof(sv->metrics.live));
	if (sv->stopping)
		return;
	restart_describe(status, why, sizeof(why));
	if (WIFEXITED(status) && exit_is_refusal(WEXITSTATUS(status))) {
		log_always(LOG_ERROR, "metrics_keeper_gone",
		           "pid=%d %s action=stop", pid, why);
		stop_all(sv, WEXITSTATUS(status));
		return;
	}
	log_always(LOG_ERROR, "metrics_keeper_gone",
	           "pid=%d %s action=close_endpoint", pid, why);
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
			if (is_keeper(sv, i)) {
				keeper_gone(sv, pid, status);
				break;
			}
			/* What it said before dying: was it ever ready? */
			gather_receive(sv->gather, i);
			was_ready = gather_ready(sv->gather, i);
			loop_del(sv->loop, gather_fd(sv->gather, i));
			gather_retire(sv->gather, i);
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
			 * keeper reports every change anyway). */
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

/* "ready" means every worker (and a metrics process) is sandboxed and
 * serving, said once. */
static void
announce_ready(struct supervisor *sv)
{
	if (sv->announced)
		return;
	for (unsigned i = 0; i < sv->n; i++)
		if (sv->children[i].pid == 0 || !gather_ready(sv->gather, i))
			return;
	if (sv->nchildren > sv->n &&
	    (sv->children[sv->n].pid == 0 || !sv->metrics.ready))
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

	if (sv->keeper.feed_fd < 0)
		return;
	memset(&f, 0, sizeof(f));
	xdp_fold_counters(counters);
	count_ready_workers(sv);
	total(sv, false, &f.sum);
	for (unsigned i = 0; i < sv->n; i++)
		alive += sv->children[i].pid > 0;
	f.workers_alive = alive;
	snprintf(f.policy_digest, sizeof(f.policy_digest), "%s",
	         reload_digest(sv->reload));
	if (sv->sent_any && memcmp(&f, &sv->sent, sizeof(f)) == 0)
		return;
	if (write(sv->keeper.feed_fd, &f, sizeof(f)) == (ssize_t)sizeof(f)) {
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
	for (unsigned i = 0; i < sv->n; i++) {
		struct child *c = &sv->children[i];
		if (c->pid == 0 && restart_due(&c->restart, now))
			start_child(sv, i);
	}
	feed_metrics(sv);
	announce_ready(sv);
}

unsigned
supervisor_log_shares(unsigned nworkers, bool metrics)
{
	/* A share for each worker, one for the supervisor, one each for the
	 * keeper and the metrics process. */
	return nworkers + 1 + (metrics ? 2 : 0);
}

int
supervisor_run(const struct policy *p, const struct facts *f,
               struct listen_set *s, unsigned nworkers, worker_harden_fn harden,
               const struct keeper_link *keeper, struct reload *reload)
{
	struct supervisor sv = {.policy = p,
	                        .facts = f,
	                        .sockets = s,
	                        .harden = harden,
	                        .n = nworkers,
	                        .nchildren = nworkers + (keeper != NULL),
	                        .keeper = {.report_fd = -1, .feed_fd = -1},
	                        .reload = reload};
	static const int signals[] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP,
	                              SIGCHLD};
	struct rlimit rl;

	/* One log budget for the service. */
	sv.log_shares = supervisor_log_shares(nworkers, keeper != NULL);
	log_share_budget(sv.log_shares);
	/* Blocked before the first fork: children inherit the mask. */
	sv.sigfd = loop_signalfd(signals, sizeof(signals) / sizeof(signals[0]));
	if (sv.sigfd < 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_always(LOG_ERROR, "supervisor_failed", "step=signalfd");
		return EXIT_OSERR;
	}
	sv.children = calloc(sv.nchildren, sizeof(*sv.children));
	sv.gather = gather_new(sv.n);
	for (unsigned i = 0; sv.children != NULL && i < sv.nchildren; i++)
		restart_init(&sv.children[i].restart, &p->worker_restarts,
		             now_ms());
	sv.loop = loop_new((int)rl.rlim_cur);
	if (keeper != NULL && sv.children != NULL) {
		sv.keeper = *keeper;
		sv.children[sv.n].pid = keeper->pid;
	}
	if (sv.children == NULL || sv.gather == NULL || sv.loop == NULL ||
	    loop_add(sv.loop, sv.sigfd, EPOLLIN, signal_event, &sv) != 0 ||
	    (keeper != NULL && loop_add(sv.loop, keeper->report_fd, EPOLLIN,
	                                keeper_event, &sv) != 0) ||
	    reload_watch(reload, sv.loop) != 0) {
		log_always(LOG_ERROR, "supervisor_failed", "step=epoll");
		return EXIT_OSERR;
	}
	/* A keeper that ended before SIGCHLD was blocked sent no signal. */
	reap(&sv);
	for (unsigned i = 0; i < sv.n && !sv.stopping; i++)
		start_child(&sv, i);
	loop_set_tick(sv.loop, TICK_MS, tick, &sv);
	loop_run(sv.loop);
	reap(&sv);
	listener_close_all(s);
	close_feed(&sv);
	log_counters(&sv, "final_counters");
	log_always(LOG_INFO, "stopped", "exit_status=%d", sv.exit_status);
	loop_free(sv.loop);
	close(sv.sigfd);
	gather_free(sv.gather);
	free(sv.children);
	return sv.exit_status;
}
