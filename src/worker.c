/* worker: owns its sockets, its connections and nothing else. */
#include "worker.h"
#include "counters.h"
#include "exitcodes.h"
#include "log.h"
#include "loop.h"
#include "reload.h"
#include "tcp.h"
#include "udp.h"

#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define TICK_MS 100

struct worker {
	struct loop *loop;
	struct tcp_server *tcp;
	struct udp_server *udp;
	int sigfd;
	int report;     /* write end of this worker's counters pipe */
	bool idle_said; /* "nothing to serve" logged */
	struct reload *reload;
	unsigned index;
	const struct policy *policy; /* reload changes it in place */
};

static void
signal_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct worker *w = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGUSR1)
			counters_send(w->report, COUNTERS_REPLY);
		else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			loop_stop(l);
	}
}

/* A reloaded policy arrived whole: it is this worker's policy from the
 * next event on. Connections, rate and loop tables stay as they are. */
static void
policy_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct worker *w = arg;
	int r = reload_receive(w->reload, fd);

	(void)events;
	if (r < 0) {
		loop_del(l, fd); /* the supervisor is gone: SIGTERM follows */
		return;
	}
	if (r == 0)
		return;
	if (w->udp != NULL)
		udp_server_policy_changed(w->udp);
	log_init(w->policy->log_level, "worker", (int)w->index);
	log_set_json(w->policy->log_json);
}

/* Every listener failed: say so once, and stay (quietly, at no CPU) to
 * finish the open connections. Exiting would only get us restarted onto
 * the same broken sockets, again and again. */
static void
say_if_idle(struct worker *w)
{
	size_t n = 0;

	if (w->idle_said)
		return;
	if (w->tcp != NULL)
		n += tcp_server_listeners(w->tcp);
	if (w->udp != NULL)
		n += udp_server_listeners(w->udp);
	if (n > 0)
		return;
	w->idle_said = true;
	log_always(LOG_ERROR, "worker_idle",
	           "reason=\"every listener failed\" action=\"serving open "
	           "connections only; restart echod to rebind\"");
}

static void
tick(struct loop *l, uint64_t now, void *arg)
{
	struct worker *w = arg;

	(void)l;
	if (w->tcp != NULL)
		tcp_server_tick(w->tcp, now);
	if (w->udp != NULL)
		udp_server_tick(w->udp, now);
	say_if_idle(w);
	if (counters_changed())
		counters_send(w->report, COUNTERS_UPDATE);
}

/* No worker counts another's connections: tcp-max-connections is split,
 * the remainder to the first workers (echod refuses fewer than one each). */
static unsigned
tcp_share(const struct policy *p, unsigned nworkers, unsigned index)
{
	return p->tcp_max_connections / nworkers +
	       (index < p->tcp_max_connections % nworkers);
}

#define FD_RESERVE 64 /* listeners, epoll, signalfd, stdio */

unsigned
worker_count(const struct policy *p)
{
	long cpus;

	if (p->workers > 0)
		return p->workers;
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	return cpus < 1 ? 1 : cpus > 256 ? 256 : (unsigned)cpus;
}

int
worker_check_share(const struct policy *p, unsigned nworkers, char *err,
                   size_t errlen)
{
	if (!p->tcp || p->tcp_max_connections >= nworkers)
		return 0;
	snprintf(err, errlen,
	         "tcp-max-connections %u is split among %u workers: it must "
	         "be at least the worker count",
	         p->tcp_max_connections, nworkers);
	return -1;
}

unsigned long long
worker_fd_limit(const struct policy *p, unsigned nworkers)
{
	return (unsigned long long)p->tcp_max_connections + FD_RESERVE +
	       (unsigned long long)p->nlisten * 2 * nworkers +
	       2ULL * tcp_splice_pipes(p, p->tcp_max_connections);
}

#define MEMORY_MARGIN (32ULL << 20) /* libc, libraries, arenas, stack */

unsigned long long
worker_memory_bound(const struct policy *p, unsigned nworkers,
                    unsigned long nofile)
{
	unsigned share = tcp_share(p, nworkers, 0); /* the largest */

	return MEMORY_MARGIN + tcp_memory_bound(p, share) +
	       udp_memory_bound(p) +
	       (unsigned long long)nofile * loop_fd_bytes();
}

int
worker_run(const struct policy *p, const struct facts *f, unsigned nworkers,
           struct listen_set *s, unsigned index, int report,
           worker_harden_fn harden, struct reload *reload, int policy_in)
{
	struct worker w = {
	    .report = report, .reload = reload, .index = index, .policy = p};
	static const int signals[] = {SIGTERM, SIGINT, SIGUSR1};
	struct rlimit rl;
	int status = 0;

	w.sigfd = loop_signalfd(signals, sizeof(signals) / sizeof(signals[0]));
	if (w.sigfd < 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_always(LOG_ERROR, "worker_failed", "step=signalfd");
		return EXIT_OSERR;
	}
	w.loop = loop_new((int)rl.rlim_cur);
	if (w.loop == NULL ||
	    loop_add(w.loop, w.sigfd, EPOLLIN, signal_event, &w) != 0 ||
	    loop_add(w.loop, policy_in, EPOLLIN, policy_event, &w) != 0) {
		log_always(LOG_ERROR, "worker_failed", "step=epoll");
		return EXIT_OSERR;
	}
	if (p->tcp &&
	    (w.tcp = tcp_server_new(w.loop, p, s, f,
	                            tcp_share(p, nworkers, index))) == NULL) {
		log_always(LOG_ERROR, "worker_failed", "step=tcp");
		return EXIT_OSERR;
	}
	if (p->udp &&
	    (w.udp = udp_server_new(w.loop, p, s, f, nworkers)) == NULL) {
		log_always(LOG_ERROR, "worker_failed", "step=udp");
		return EXIT_OSERR;
	}
	loop_set_tick(w.loop, TICK_MS, tick, &w);
	if (harden != NULL)
		harden();
	/* Hardened and about to serve: the supervisor may now say "ready". */
	COUNT(workers_ready, 1);
	counters_send(w.report, COUNTERS_UPDATE);
	log_event(LOG_DEBUG, "worker_ready", "index=%u pid=%d sockets=%zu",
	          index, getpid(), s->n);
	if (loop_run(w.loop) != 0) {
		/* A runtime failure: the supervisor restarts the worker. */
		log_always(LOG_ERROR, "worker_failed", "step=epoll_wait");
		status = 1;
	}
	if (w.tcp != NULL)
		tcp_server_free(w.tcp);
	if (w.udp != NULL)
		udp_server_free(w.udp);
	loop_free(w.loop);
	close(w.sigfd);
	close(policy_in);
	listener_close_all(s);
	/* The last figures, so the supervisor's final count is whole. */
	counters_send(w.report, COUNTERS_UPDATE);
	close(w.report);
	return status;
}
