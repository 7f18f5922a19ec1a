/* supervisor: forks, reaps and signals; it never touches a peer's bytes. */
#include "supervisor.h"
#include "counters.h"
#include "exitcodes.h"
#include "gather.h"
#include "log.h"
#include "ratelimit.h"
#include "loop.h"
#include "metrics.h"
#include "worker.h"
#include "xdp.h"

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

struct child {
	pid_t pid; /* 0: not running */
	uint64_t started, restart_at;
	unsigned backoff_ms;
	struct bucket restarts; /* worker-restart-limit */
};

struct supervisor {
	const struct policy *policy;
	const struct facts *facts;
	struct listen_set *sockets;
	worker_harden_fn harden;
	struct child *children;
	unsigned n;
	bool stopping;
	bool announced; /* event=ready logged */
	uint64_t stop_deadline;
	int exit_status;
	struct loop *loop;
	int sigfd;
	struct gather *gather;
	uint64_t report_deadline; /* 0: no SIGUSR1 report pending */
	const struct metrics_setup *metrics_setup; /* NULL: metrics off */
	struct metrics_server *metrics;
};

static void
log_counters(const struct supervisor *sv, const char *event)
{
	struct counters sum;
	char line[1536];

	/* The prefilter's drops are the supervisor's to report. */
	xdp_fold_counters(counters);
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

static void
start_worker(struct supervisor *sv, unsigned i)
{
	struct child *c = &sv->children[i];
	pid_t parent = getpid();
	pid_t pid;
	int report = -1;

	if (gather_attach(sv->gather, i, &report) != 0 ||
	    loop_add(sv->loop, gather_fd(sv->gather, i), EPOLLIN,
	             counters_event, sv) != 0) {
		log_always(LOG_ERROR, "worker_fork_failed",
		           "worker=%u step=counters_pipe error=\"%s\"", i,
		           strerror(errno));
		if (report >= 0)
			close(report);
		gather_retire(sv->gather, i);
		c->restart_at = now_ms() + BACKOFF_MAX_MS;
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_always(LOG_ERROR, "worker_fork_failed",
		           "worker=%u error=\"%s\"", i, strerror(errno));
		close(report);
		loop_del(sv->loop, gather_fd(sv->gather, i));
		gather_retire(sv->gather, i);
		c->restart_at = now_ms() + BACKOFF_MAX_MS;
		return;
	}
	if (pid == 0) {
		/* A worker must not outlive its supervisor. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 ||
		    getppid() != parent)
			_exit(0);
		/* The worker keeps its sockets, stderr and its own counters
		 * pipe, nothing else; it counts from zero. */
		if (sv->metrics != NULL)
			metrics_server_close_fds(sv->metrics);
		loop_free(sv->loop);
		close(sv->sigfd);
		gather_close_readers(sv->gather);
		memset(counters, 0, sizeof(*counters));
		log_init(sv->policy->log_level, "worker", (int)i);
		listen_keep_only(sv->sockets, i);
		_exit(worker_run(sv->policy, sv->facts, sv->n, sv->sockets, i,
		                 report, sv->harden));
	}
	close(report);
	c->pid = pid;
	c->started = now_ms();
	c->restart_at = 0;
	log_always(LOG_INFO, "worker_started", "worker=%u pid=%d", i, pid);
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

/* Every running worker gets sig: the one loop over them that kills. */
static void
signal_workers(const struct supervisor *sv, int sig)
{
	for (unsigned i = 0; i < sv->n; i++)
		if (sv->children[i].pid > 0)
			kill(sv->children[i].pid, sig);
}

/* Stop the service: every worker gets SIGTERM, then SIGKILL. */
static void
stop_all(struct supervisor *sv, int status)
{
	sv->exit_status = status;
	sv->stopping = true;
	sv->stop_deadline = now_ms() + STOP_GRACE_MS;
	signal_workers(sv, SIGTERM);
}

/*
 * One worker is gone. Before it said it was ready, an exit status that
 * exit_is_refusal() names (64, 71, 78) is its refusal to start (bad
 * configuration or a hardening step that failed): restarting would only
 * fail again. After that, any end is a
 * crash: restart with backoff, within worker-restart-limit.
 */
static void
worker_gone(struct supervisor *sv, unsigned i, pid_t pid, int status,
            bool was_ready)
{
	struct child *c = &sv->children[i];
	const struct bucket_cfg *limit = &sv->policy->worker_restarts;
	uint64_t now = now_ms();
	char why[160];

	describe_death(status, why, sizeof(why));
	if (!was_ready && WIFEXITED(status) &&
	    exit_is_refusal(WEXITSTATUS(status))) {
		log_always(LOG_ERROR, "worker_failed",
		           "worker=%u pid=%d %s action=stop", i, pid, why);
		stop_all(sv, WEXITSTATUS(status));
		return;
	}
	if (!bucket_take(&c->restarts, limit, now, 1)) {
		log_always(LOG_ERROR, "worker_failed",
		           "worker=%u pid=%d %s action=stop reason=\"more than "
		           "%llu restarts (worker-restart-limit)\"",
		           i, pid, why,
		           (unsigned long long)(limit->burst ? limit->burst
		                                             : limit->rate));
		stop_all(sv, EXIT_SOFTWARE);
		return;
	}
	if (now - c->started >= STABLE_MS)
		c->backoff_ms = BACKOFF_FIRST_MS;
	else if (c->backoff_ms < BACKOFF_MAX_MS)
		c->backoff_ms =
		    c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_FIRST_MS;
	c->restart_at = now + c->backoff_ms;
	COUNT(worker_restarts, 1);
	log_always(LOG_WARN, "worker_died",
	           "worker=%u pid=%d %s ready=%s restart_in_ms=%u", i, pid, why,
	           was_ready ? "yes" : "no", c->backoff_ms);
}

static void
reap(struct supervisor *sv)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned i = 0; i < sv->n; i++) {
			bool was_ready;

			if (sv->children[i].pid != pid)
				continue;
			sv->children[i].pid = 0;
			/* What it said before dying: was it ever ready? */
			gather_receive(sv->gather, i);
			was_ready = gather_ready(sv->gather, i);
			loop_del(sv->loop, gather_fd(sv->gather, i));
			gather_retire(sv->gather, i);
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

	for (unsigned i = 0; i < sv->n; i++)
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
			/* Fresh figures: each worker replies at once. */
			gather_request(sv->gather);
			signal_workers(sv, SIGUSR1);
			sv->report_deadline = now_ms() + REPORT_WAIT_MS;
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

/* "ready" means every worker is sandboxed and serving, said once. */
static void
announce_ready(struct supervisor *sv)
{
	if (sv->announced)
		return;
	for (unsigned i = 0; i < sv->n; i++)
		if (sv->children[i].pid == 0 || !gather_ready(sv->gather, i))
			return;
	sv->announced = true;
	log_always(LOG_INFO, "ready", "workers=%u pid=%d", sv->n, getpid());
}

/* A scrape: the gathered totals and the facts, as of now. */
static void
metrics_snapshot(void *arg, struct counters *sum, struct metrics_facts *f)
{
	struct supervisor *sv = arg;

	xdp_fold_counters(counters);
	gather_total(sv->gather, counters, sum);
	*f = sv->metrics_setup->facts;
	f->workers = sv->n;
	f->workers_alive = running(sv);
}

static void
tick(struct loop *l, uint64_t now, void *arg)
{
	struct supervisor *sv = arg;

	if (sv->metrics != NULL)
		metrics_server_tick(sv->metrics, now);
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
		if (c->pid == 0 && c->restart_at != 0 && now >= c->restart_at)
			start_worker(sv, i);
	}
	announce_ready(sv);
}

int
supervisor_run(const struct policy *p, const struct facts *f,
               struct listen_set *s, unsigned nworkers, worker_harden_fn harden,
               const struct metrics_setup *metrics)
{
	struct supervisor sv = {.policy = p,
	                        .facts = f,
	                        .sockets = s,
	                        .harden = harden,
	                        .n = nworkers,
	                        .metrics_setup = metrics};
	static const int signals[] = {SIGTERM, SIGINT, SIGUSR1, SIGCHLD};
	struct rlimit rl;

	/* Blocked before the first fork: workers inherit the mask. */
	sv.sigfd = loop_signalfd(signals, sizeof(signals) / sizeof(signals[0]));
	if (sv.sigfd < 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_always(LOG_ERROR, "supervisor_failed", "step=signalfd");
		return EXIT_OSERR;
	}
	sv.children = calloc(nworkers, sizeof(*sv.children));
	sv.gather = gather_new(nworkers);
	for (unsigned i = 0; sv.children != NULL && i < nworkers; i++)
		bucket_init(&sv.children[i].restarts, &p->worker_restarts,
		            now_ms());
	sv.loop = loop_new((int)rl.rlim_cur);
	if (sv.children == NULL || sv.gather == NULL || sv.loop == NULL ||
	    loop_add(sv.loop, sv.sigfd, EPOLLIN, signal_event, &sv) != 0) {
		log_always(LOG_ERROR, "supervisor_failed", "step=epoll");
		return EXIT_OSERR;
	}
	if (metrics != NULL &&
	    (sv.metrics = metrics_server_new(sv.loop, metrics->fd, p,
	                                     metrics_snapshot, &sv)) == NULL) {
		log_always(LOG_ERROR, "supervisor_failed", "step=metrics");
		return EXIT_OSERR;
	}
	for (unsigned i = 0; i < nworkers && !sv.stopping; i++)
		start_worker(&sv, i);
	loop_set_tick(sv.loop, TICK_MS, tick, &sv);
	loop_run(sv.loop);
	reap(&sv);
	listen_close(s);
	if (sv.metrics != NULL) {
		metrics_server_free(sv.metrics);
		close(metrics->fd);
	}
	log_counters(&sv, "final_counters");
	log_always(LOG_INFO, "stopped", "exit_status=%d", sv.exit_status);
	loop_free(sv.loop);
	close(sv.sigfd);
	gather_free(sv.gather);
	free(sv.children);
	return sv.exit_status;
}
