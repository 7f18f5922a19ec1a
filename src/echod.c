/* echod: parse, bind, harden, serve. The order is the security argument. */
#include "cli.h"
#include "counters.h"
#include "listen.h"
#include "log.h"
#include "policy.h"
#include "supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef ECHOD_VERSION
#define ECHOD_VERSION "0.1.0"
#endif

#define EXIT_USAGE  64
#define EXIT_OSERR  71
#define EXIT_CONFIG 78

#define FD_RESERVE 64 /* listeners, epoll, signalfd, stdio */

/* fatal(): say what failed, in one log line, and exit with its status. */
static void
die(int status, const char *event, const char *msg)
{
	log_always(LOG_ERROR, event, "msg=\"%s\"", msg);
	exit(status);
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
static void
raise_fd_limit(const struct policy *p)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)p->tcp_max_connections + FD_RESERVE;
	char msg[200];

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		die(EXIT_OSERR, "fd_limit", strerror(errno));
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		snprintf(msg, sizeof(msg),
			 "tcp-max-connections %u needs %llu open files but the "
			 "hard limit is %llu: lower it or raise LimitNOFILE",
			 p->tcp_max_connections, (unsigned long long)need,
			 (unsigned long long)rl.rlim_max);
		die(EXIT_OSERR, "fd_limit", msg);
	}
	if (rl.rlim_cur < need) {
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			die(EXIT_OSERR, "fd_limit", strerror(errno));
	}
}

static void
load_policy(const struct options *o, struct policy *p)
{
	struct policy_error err;

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
}

int
main(int argc, char **argv)
{
	struct options opts;
	struct policy policy;
	struct listen_set sockets;
	char err[256];
	unsigned nworkers;

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
	load_policy(&opts, &policy);
	if (opts.check_only) {
		puts("ok");
		return 0;
	}
	/* A closed stderr must not kill us; sockets use MSG_NOSIGNAL. */
	signal(SIGPIPE, SIG_IGN);
	log_init(policy.log_level, "main", -1);
	nworkers = worker_count(&policy);
	raise_fd_limit(&policy);
	if (counters_init(nworkers + 1) != 0)
		die(EXIT_OSERR, "counters", strerror(errno));
	if (listen_bind(&policy, nworkers, 24, 56, &sockets, err,
			sizeof(err)) != 0)
		die(EXIT_OSERR, "bind_failed", err);
	for (size_t i = 0; i < sockets.n; i++)
		if (sockets.l[i].worker == 0 ||
		    sockets.l[i].worker == LISTENER_SHARED)
			log_always(LOG_INFO, "listening", "proto=%.3s addr=%s",
				   sockets.l[i].name, sockets.l[i].name + 4);
	return supervisor_run(&policy, &sockets, nworkers, NULL);
}
