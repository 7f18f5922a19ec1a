/* bench/rtt: round trips, one at a time: p50 and p99. */
#include "modes.h"
#include "common.h"
#include "net.h"
#include "options.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RTT_WAIT_MS 1000

static unsigned char rtt_tx[65536], rtt_rx[65536];

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static uint64_t
xorshift64(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

/* One round trip of size bytes (sequence number seq) on fd: its latency
 * in microseconds, or a negative value if a datagram went unanswered. */
static double
round_trip(int fd, bool udp, uint64_t seq, size_t size)
{
	double t0;

	memcpy(rtt_tx, &seq, sizeof(seq));
	memcpy(rtt_tx + UDP_HEADER, dgram_body(seq), size - UDP_HEADER);
	t0 = now_s();
	if (send(fd, rtt_tx, size, MSG_NOSIGNAL) != (ssize_t)size)
		die(EXIT_NETWORK, "send");
	if (!recv_all(fd, rtt_rx, size, RTT_WAIT_MS)) {
		if (!udp)
			die(EXIT_NETWORK, "tcp echo %llu missing",
			    (unsigned long long)seq);
		return -1;
	}
	t0 = (now_s() - t0) * 1e6;
	if (memcmp(rtt_rx, rtt_tx, size) != 0)
		die(EXIT_MISMATCH, "echo %llu differs",
		    (unsigned long long)seq);
	return t0;
}

int
run_rtt(bool udp)
{
	uint64_t count = opt.count ? opt.count : 2000;
	uint64_t lost[MAX_TARGETS] = {0}, ok[MAX_TARGETS] = {0};
	size_t size = opt.size ? opt.size : 64;
	unsigned k = opt.ntargets;
	double *lat[MAX_TARGETS];
	int fd[MAX_TARGETS], one = 1;
	uint64_t rng = 0x9e3779b97f4a7c15ull; /* fixed: runs repeat */

	if (size < UDP_HEADER || size > 65507)
		die(EXIT_USAGE, "-s: %d to 65507 bytes", UDP_HEADER);
	for (unsigned t = 0; t < k; t++) {
		lat[t] = calloc(count, sizeof(double));
		fd[t] = open_socket_to(udp ? SOCK_DGRAM : SOCK_STREAM, 0,
		                       &opt.targets[t], opt.target_lens[t]);
		if (lat[t] == NULL)
			die(EXIT_NETWORK, "out of memory");
		if (fd[t] < 0)
			die(EXIT_NETWORK, "connect to target %u", t + 1);
		if (!udp)
			setsockopt(fd[t], IPPROTO_TCP, TCP_NODELAY, &one,
			           sizeof(one));
	}
	for (uint64_t seq = 0; seq < count; seq++) {
		unsigned order[MAX_TARGETS] = {0};

		/* A fresh shuffled order each turn: a fixed rotation made one
		 * server follow a given other more often than the rest, and a
		 * server that keeps its CPU busy after answering (the Go
		 * runtime's spinning threads) slows whoever comes next. */
		for (unsigned j = 0; j < k; j++) {
			unsigned r = (unsigned)(xorshift64(&rng) % (j + 1));

			order[j] = order[r];
			order[r] = j;
		}
		for (unsigned j = 0; j < k; j++) {
			unsigned t = order[j];
			double us = round_trip(fd[t], udp, seq, size);

			if (us < 0)
				lost[t]++;
			else
				lat[t][ok[t]++] = us;
		}
	}
	for (unsigned t = 0; t < k; t++) {
		char host[INET6_ADDRSTRLEN] = "?";
		const struct sockaddr_storage *a = &opt.targets[t];

		if (ok[t] == 0)
			die(EXIT_NETWORK, "no echo at all from target %u",
			    t + 1);
		inet_ntop(a->ss_family,
		          a->ss_family == AF_INET6
		              ? (const void *)&((const struct sockaddr_in6 *)a)
		                    ->sin6_addr
		              : (const void *)&((const struct sockaddr_in *)a)
		                    ->sin_addr,
		          host, sizeof(host));
		qsort(lat[t], ok[t], sizeof(double), cmp_double);
		printf("mode=%s target=%s:%u size=%zu count=%llu lost=%llu "
		       "verified=yes p50_us=%.1f p99_us=%.1f max_us=%.1f\n",
		       udp ? "udp-rtt" : "tcp-rtt", host, sa_port(a), size,
		       (unsigned long long)count, (unsigned long long)lost[t],
		       lat[t][ok[t] / 2], lat[t][ok[t] * 99 / 100],
		       lat[t][ok[t] - 1]);
		free(lat[t]);
		close(fd[t]);
	}
	return 0;
}
