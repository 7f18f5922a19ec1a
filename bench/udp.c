/* bench/udp: verified datagrams per second. */
#include "modes.h"
#include "common.h"
#include "net.h"
#include "options.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GSO_MAX      60000 /* bytes in one UDP GSO super-datagram */
#define UDP_LOSS_MS  50  /* nothing back this long: the outstanding are lost */
#define UDP_DRAIN_MS 500 /* at the end: how long the last echoes may take */

struct dsock {
	int fd;
	uint64_t next_seq, rcvd, lost;
	double last_rx;
};

/* Check one echo: right length, a sequence number we sent, the body that
 * goes with it. */
static bool
dgram_verify(const struct dsock *d, const unsigned char *buf, size_t len)
{
	uint64_t seq;

	if (len != opt.size)
		return false;
	memcpy(&seq, buf, sizeof(seq));
	return seq < d->next_seq && memcmp(buf + UDP_HEADER, dgram_body(seq),
	                                   opt.size - UDP_HEADER) == 0;
}

static unsigned char udp_tx[UDP_BATCH][65536];
static unsigned char udp_rx[UDP_BATCH][65536];

/* m[i] and iov[i] describe one datagram in buf. */
static void
mmsg_one(struct mmsghdr *m, struct iovec *iov, void *buf, size_t len)
{
	*iov = (struct iovec){buf, len};
	*m = (struct mmsghdr){.msg_hdr = {.msg_iov = iov, .msg_iovlen = 1}};
}

static unsigned char udp_gso[UDP_BATCH * 2048];

/* n datagrams, one message each. */
static int
dgram_send_each(struct dsock *d, unsigned n)
{
	struct mmsghdr m[UDP_BATCH];
	struct iovec iov[UDP_BATCH];

	for (unsigned i = 0; i < n; i++) {
		uint64_t seq = d->next_seq + i;
		memcpy(udp_tx[i], &seq, sizeof(seq));
		memcpy(udp_tx[i] + UDP_HEADER, dgram_body(seq),
		       opt.size - UDP_HEADER);
		mmsg_one(&m[i], &iov[i], udp_tx[i], opt.size);
	}
	return sendmmsg(d->fd, m, n, MSG_DONTWAIT);
}

/* n datagrams laid end to end in one UDP GSO send: the socket's
 * UDP_SEGMENT (opt.size) cuts them apart. All or nothing. */
static int
dgram_send_gso(struct dsock *d, unsigned n)
{
	unsigned per = GSO_MAX / opt.size;

	if (n > per)
		n = per;
	for (unsigned i = 0; i < n; i++) {
		uint64_t seq = d->next_seq + i;
		unsigned char *p = udp_gso + (size_t)i * opt.size;
		memcpy(p, &seq, sizeof(seq));
		memcpy(p + UDP_HEADER, dgram_body(seq), opt.size - UDP_HEADER);
	}
	if (send(d->fd, udp_gso, (size_t)n * opt.size, MSG_DONTWAIT) < 0)
		return -1;
	return (int)n;
}

static void
dgram_send(struct dsock *d, unsigned n)
{
	int sent =
	    opt.gso && n > 1 ? dgram_send_gso(d, n) : dgram_send_each(d, n);

	if (sent < 0 && errno != EAGAIN && errno != ECONNREFUSED &&
	    errno != ENOBUFS)
		die(EXIT_NETWORK, "udp send");
	if (sent > 0)
		d->next_seq += (uint64_t)sent;
}

/* Receive what is there; false if an echo was wrong. */
static bool
dgram_receive(struct dsock *d, double t)
{
	struct mmsghdr m[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	int n;

	for (int i = 0; i < UDP_BATCH; i++)
		mmsg_one(&m[i], &iov[i], udp_rx[i], sizeof(udp_rx[i]));
	n = recvmmsg(d->fd, m, UDP_BATCH, MSG_DONTWAIT, NULL);
	for (int i = 0; i < n; i++) {
		if (!dgram_verify(d, udp_rx[i], m[i].msg_len))
			return false;
		d->rcvd++;
		/* A late echo of one written off as lost. */
		if (d->next_seq - d->rcvd < d->lost)
			d->lost--;
		d->last_rx = t;
	}
	return true;
}

/* Receive on every socket poll found readable; exit if an echo is wrong. */
static void
receive_ready(struct dsock *d, const struct pollfd *pfd, unsigned nsock,
              double t)
{
	for (unsigned i = 0; i < nsock; i++)
		if ((pfd[i].revents & POLLIN) && !dgram_receive(&d[i], t))
			die(EXIT_MISMATCH,
			    "udp: an echo differs from the datagram sent");
}

/* After the last send: the echoes still on their way, for UDP_DRAIN_MS at
 * most, so that the last datagrams are not counted lost for being last
 * (a server's queue under a flood holds them a while). */
static void
dgram_drain(struct dsock *d, struct pollfd *pfd, unsigned nsock)
{
	double end = now_s() + UDP_DRAIN_MS / 1e3, t;
	bool waiting = true;

	while (waiting && (t = now_s()) < end) {
		waiting = false;
		for (unsigned i = 0; i < nsock; i++)
			waiting |= d[i].rcvd < d[i].next_seq;
		if (!waiting || (poll(pfd, nsock, 1) < 0 && errno != EINTR))
			break;
		receive_ready(d, pfd, nsock, t);
	}
}

int
run_udp(void)
{
	unsigned nsock = opt.nbind ? opt.nbind : 1;
	unsigned window = opt.window ? opt.window : 64;
	struct dsock d[MAX_BIND] = {0};
	struct pollfd pfd[MAX_BIND];
	uint64_t sent = 0, rcvd = 0, lost = 0;
	double start, end, t;

	if (opt.size == 0)
		opt.size = 64;
	if (opt.size < UDP_HEADER || opt.size > 65507)
		die(EXIT_USAGE, "-s: %d to 65507 bytes for udp", UDP_HEADER);
	if (opt.gso && opt.size > 2048)
		die(EXIT_USAGE, "-g: datagrams of at most 2048 bytes");
	for (unsigned i = 0; i < nsock; i++) {
		d[i].fd = open_socket(SOCK_DGRAM, i);
		if (d[i].fd < 0)
			die(EXIT_NETWORK, "udp connect");
		pfd[i] = (struct pollfd){d[i].fd, POLLIN, 0};
		if (opt.gso &&
		    setsockopt(d[i].fd, SOL_UDP, UDP_SEGMENT,
		               &(int){(int)opt.size}, sizeof(int)) != 0)
			die(EXIT_NETWORK, "UDP_SEGMENT (-g)");
	}
	start = now_s();
	end = start + opt.seconds;
	for (unsigned i = 0; i < nsock; i++)
		d[i].last_rx = start;
	while ((t = now_s()) < end) {
		uint64_t total_sent = 0;
		for (unsigned i = 0; i < nsock; i++)
			total_sent += d[i].next_seq;
		for (unsigned i = 0; i < nsock; i++) {
			uint64_t out = d[i].next_seq - d[i].rcvd - d[i].lost;
			uint64_t room = out < window ? window - out : 0;
			if (opt.rate > 0) {
				double allowed = opt.rate * (t - start);
				double left = allowed - (double)total_sent;
				room = left < 1              ? 0
				       : left < (double)room ? (uint64_t)left
				                             : room;
			}
			if (room > UDP_BATCH)
				room = UDP_BATCH;
			if (room > 0) {
				dgram_send(&d[i], (unsigned)room);
				total_sent += room;
			}
			/* Written off: nothing came back for a while. */
			if (out > 0 && t - d[i].last_rx > UDP_LOSS_MS / 1e3) {
				d[i].lost += out;
				d[i].last_rx = t;
			}
		}
		if (poll(pfd, nsock, 1) < 0 && errno != EINTR)
			die(EXIT_NETWORK, "poll");
		t = now_s();
		receive_ready(d, pfd, nsock, t);
	}
	t = now_s() - start;
	dgram_drain(d, pfd, nsock);
	for (unsigned i = 0; i < nsock; i++) {
		sent += d[i].next_seq;
		rcvd += d[i].rcvd;
		lost += d[i].next_seq - d[i].rcvd;
	}
	printf("mode=udp size=%zu window=%u sockets=%u gso=%s seconds=%.3f "
	       "sent=%llu received=%llu unanswered=%llu verified=yes "
	       "per_s=%.0f echoed_pct=%.2f\n",
	       opt.size, window, nsock, opt.gso ? "yes" : "no", t,
	       (unsigned long long)sent, (unsigned long long)rcvd,
	       (unsigned long long)lost, (double)rcvd / t,
	       sent ? 100.0 * (double)rcvd / (double)sent : 0.0);
	return 0;
}
