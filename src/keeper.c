/* keeper: holds the metrics socket; forks and restarts the metrics
 * process. It parses nothing but its child's counters. */
#include "keeper.h"
#include "addr.h"
#include "exitcodes.h"
#include "gather.h"
#include "log.h"
#include "loop.h"
#include "restart.h"
#include "scrape.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define TICK_MS 50

/* Packet mode: one write(2) is one record to the reader, whatever its
 * size; a record fits in one packet. */
_Static_assert(sizeof(struct keeper_report) <= 4096, "one packet");
_Static_assert(sizeof(struct scrape_feed) <= 4096, "one packet");

struct keeper {
	const struct policy *policy;
	struct metrics_facts facts;
	const struct keeper_hooks *hooks;
	int listen_fd, feed_fd, up_fd, sigfd;
	unsigned log_shares;
	struct loop *loop;
	struct gather *gather; /* one source: the running metrics process */
	pid_t pid;             /* 0: none running */
	struct restart restart;
	bool served; /* a metrics process said it was ready */
	bool stopping;
	int exit_status;
	struct keeper_report sent;
	bool sent_any;
};

/* The supervisor's view, written when it changed (non-blocking: a full
 * pipe only delays it to the next tick). */
static void
send_report(struct keeper *k)
{
	struct keeper_report r;

	memset(&r, 0, sizeof(r));
	r.ready = k->served;
	gather_total_except(k->gather, counters, 0, &r.settled);
	r.live = *gather_worker(k->gather, 0);
	if (k->sent_any && memcmp(&r, &k->sent, sizeof(r)) == 0)
		return;
	if (write(k->up_fd, &r, sizeof(r)) == (ssize_t)sizeof(r)) {
		k->sent = r;
		k->sent_any = true;
	}
}

static void
report_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct keeper *k = arg;

	(void)events;
	if (gather_receive(k->gather, 0) != 0)
		loop_del(l, fd); /* the process is gone; reap retires it */
	if (!k->served && gather_ready(k->gather, 0)) {
		k->served = true;
		send_report(k);
	}
}

static void
start_failed(struct keeper *k, const char *step)
{
	log_always(LOG_ERROR, "metrics_fork_failed", "step=%s error=\"%s\"",
	           step, strerror(errno));
	if (gather_fd(k->gather, 0) >= 0)
		loop_del(k->loop, gather_fd(k->gather, 0));
	gather_retire(k->gather, 0);
	k->restart.restart_at = now_ms() + RESTART_MAX_MS;
}

static void
start_metrics(struct keeper *k)
{
	pid_t parent = getpid(), pid;
	int report = -1;

	if (gather_attach(k->gather, 0, &report) != 0 ||
	    loop_add(k->loop, gather_fd(k->gather, 0), EPOLLIN, report_event,
	             k) != 0) {
		if (report >= 0)
			close(report);
		start_failed(k, "counters_pipe");
		return;
	}
	pid = fork();
	if (pid < 0) {
		close(report);
		start_failed(k, "fork");
		return;
	}
	if (pid == 0) {
		/* It dies with the keeper; it keeps the listener, the
		 * snapshot pipe, its counters pipe and stderr. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
		    getppid() != parent)
			_exit(0);
		loop_free(k->loop);
		close(k->sigfd);
		close(k->up_fd);
		gather_close_readers(k->gather);
		memset(counters, 0, sizeof(*counters));
		log_share_budget(k->log_shares);
		(void)prctl(PR_SET_NAME, METRICS_NAME, 0, 0, 0);
		log_init(k->policy->log_level, "metrics", -1);
		_exit(scrape_run(k->policy, &k->facts, k->listen_fd, k->feed_fd,
		                 report, k->hooks->harden_metrics));
	}
	close(report);
	k->pid = pid;
	restart_started(&k->restart, now_ms());
	log_always(LOG_INFO, "metrics_started", "pid=%d", pid);
}

/*
 * The metrics process ended. Before its ready report (latched from its
 * own pipe), a refusal status (64, 71, 78) is a refusal to start: the
 * keeper ends with it and the supervisor stops the service. After, any
 * end is a crash: restarted within worker-restart-limit; past it the
 * endpoint closes (the keeper ends, 0) and echo goes on.
 */
static void
metrics_gone(struct keeper *k, pid_t pid, int status, bool was_ready)
{
	const struct bucket_cfg *limit = &k->policy->worker_restarts;
	char why[160];

	restart_describe(status, why, sizeof(why));
	if (!was_ready && WIFEXITED(status) &&
	    exit_is_refusal(WEXITSTATUS(status))) {
		log_always(LOG_ERROR, "metrics_failed", "pid=%d %s action=stop",
		           pid, why);
		k->exit_status = WEXITSTATUS(status);
		loop_stop(k->loop);
		return;
	}
	if (!restart_plan(&k->restart, limit, now_ms())) {
		log_always(LOG_ERROR, "metrics_failed",
		           "pid=%d %s action=close_endpoint reason=\"more than "
		           "%llu restarts (worker-restart-limit)\"",
		           pid, why,
		           (unsigned long long)(limit->burst ? limit->burst
		                                             : limit->rate));
		close(k->listen_fd);
		k->listen_fd = -1;
		loop_stop(k->loop);
		return;
	}
	COUNT(metrics_restarts, 1);
	log_always(LOG_WARN, "metrics_died",
	           "pid=%d %s ready=%s restart_in_ms=%u", pid, why,
	           was_ready ? "yes" : "no", k->restart.backoff_ms);
}

static void
reap(struct keeper *k)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		bool was_ready;

		if (pid != k->pid)
			continue;
		k->pid = 0;
		/* What it said before dying: was it ever ready? */
		gather_receive(k->gather, 0);
		was_ready = gather_ready(k->gather, 0);
		if (gather_fd(k->gather, 0) >= 0)
			loop_del(k->loop, gather_fd(k->gather, 0));
		gather_retire(k->gather, 0);
		if (k->stopping)
			loop_stop(k->loop);
		else
			metrics_gone(k, pid, status, was_ready);
	}
}

/* SIGTERM: the supervisor stops; the metrics process ends when the
 * snapshot pipe closes. Other signals (a terminal's SIGINT or SIGHUP,
 * the supervisor's SIGUSR1) are the supervisor's to act on. */
static void
signal_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct keeper *k = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGTERM) {
			k->stopping = true;
			if (k->pid == 0)
				loop_stop(l);
		} else if (si.ssi_signo == SIGCHLD) {
			reap(k);
		}
	}
}

static void
tick(struct loop *l, uint64_t now, void *arg)
{
	struct keeper *k = arg;

	(void)l;
	if (!k->stopping && k->pid == 0 && restart_due(&k->restart, now))
		start_metrics(k);
	send_report(k);
}

static int
keeper_run(struct keeper *k)
{
	static const int signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1,
	                              SIGCHLD};
	struct rlimit rl;

	k->sigfd = loop_signalfd(signals, sizeof(signals) / sizeof(*signals));
	k->gather = gather_new(1);
	if (k->sigfd < 0 || k->gather == NULL ||
	    getrlimit(RLIMIT_NOFILE, &rl) != 0 ||
	    (k->loop = loop_new((int)rl.rlim_cur)) == NULL ||
	    loop_add(k->loop, k->sigfd, EPOLLIN, signal_event, k) != 0) {
		log_always(LOG_ERROR, "keeper_failed",
		           "step=setup error=\"%s\"", strerror(errno));
		return EXIT_OSERR;
	}
	log_share_budget(k->log_shares);
	restart_init(&k->restart, &k->policy->worker_restarts, now_ms());
	k->hooks->harden();
	start_metrics(k);
	loop_set_tick(k->loop, TICK_MS, tick, k);
	if (loop_run(k->loop) != 0) {
		log_always(LOG_ERROR, "keeper_failed", "step=epoll_wait");
		return EXIT_OSERR;
	}
	reap(k);
	send_report(k); /* the last figures, for final_counters */
	return k->exit_status;
}

int
keeper_start(const struct policy *p, struct metrics_setup *m,
             unsigned log_shares, const struct keeper_hooks *hooks,
             struct keeper_link *out, const char **step)
{
	static struct keeper k;
	char where[ADDR_STRLEN];
	int feed[2], up[2];
	pid_t parent = getpid(), pid;

	format_sockaddr((const struct sockaddr *)&p->metrics.ss, where,
	                sizeof(where));
	log_always(LOG_INFO, "listening", "proto=metrics addr=%s", where);
	*step = "metrics_keeper";
	if (pipe2(feed, O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0)
		return -1;
	if (pipe2(up, O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0) {
		close(feed[0]);
		close(feed[1]);
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		close(feed[0]);
		close(feed[1]);
		close(up[0]);
		close(up[1]);
		return -1;
	}
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
		    getppid() != parent)
			_exit(0);
		(void)prctl(PR_SET_NAME, KEEPER_NAME, 0, 0, 0);
		log_init(p->log_level, "keeper", -1);
		close(feed[1]);
		close(up[0]);
		hooks->leave_bootstrap();
		k = (struct keeper){.policy = p,
		                    .facts = m->facts,
		                    .hooks = hooks,
		                    .listen_fd = m->fd,
		                    .feed_fd = feed[0],
		                    .up_fd = up[1],
		                    .log_shares = log_shares};
		_exit(keeper_run(&k));
	}
	close(feed[0]);
	close(up[1]);
	close(m->fd);
	m->fd = -1;
	*out = (struct keeper_link){
	    .pid = pid, .report_fd = up[0], .feed_fd = feed[1]};
	log_always(LOG_INFO, "metrics_keeper", "pid=%d", pid);
	return 0;
}

int
keeper_receive(int fd, struct keeper_report *latest)
{
	union {
		struct keeper_report r;
		unsigned char bytes[sizeof(struct keeper_report) + 1];
	} in;

	for (;;) {
		ssize_t n = read(fd, &in, sizeof(in));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 0; /* EAGAIN: all read */
		if (n == 0)
			return 1;
		if (n != (ssize_t)sizeof(in.r))
			continue; /* not a record: the keeper is broken */
		in.r.ready = in.r.ready != 0 || latest->ready != 0; /* latch */
		*latest = in.r;
	}
}
