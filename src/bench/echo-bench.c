/*
 * echo-bench: the load generator of `make bench`. Every echoed byte is
 * checked against what was sent, so a server that is fast because it is
 * wrong fails instead of winning. One mode per run, one result line of
 * key=value pairs on stdout (src/bench/bench.py reads it).
 *
 *   tcp      C connections stream for D seconds, at most W bytes in flight
 *            each; the rate counts verified echo bytes. -u: unbounded,
 *            each writes S-byte chunks as fast as its socket takes them
 *            (no cap in flight, as `ncat < file` does) and reads at most
 *            S bytes at a time; after D seconds each half-closes and
 *            reads the rest of its echo up to the server's FIN, and the
 *            rate is over the whole, to the last FIN
 *   udp      datagrams of S bytes, at most W outstanding per socket (so the
 *            server is measured, not the kernel's drops), optionally paced;
 *            -g sends each batch as UDP GSO super-datagrams (UDP_SEGMENT):
 *            the server still receives separate datagrams (the kernel
 *            splits them on delivery), but the generator's own send path
 *            runs once per batch, so one CPU can load a batching server
 *   tcp-rtt  N round trips of S bytes, one at a time: p50 and p99
 *   udp-rtt  the same with datagrams. Given several HOST PORT pairs, both
 *            take turns: one round trip to each target in turn, in a
 *            shuffled order each turn, so the servers compared are sampled
 *            under the same moments of machine noise; one line per target
 *   idle     open C connections, prove each with a 1-byte echo, hold them
 *            until stdin closes
 *   flood    spoofed UDP from S sources counted up from -F, raw IPv4;
 *            only to and from 198.18.0.0/15, bounded by -n and -d; from
 *            source port -P if given (e.g. a port the guards refuse),
 *            else from ports 40000-59999; with -i IFACE -m MAC, whole
 *            Ethernet frames to MAC (the target's) on IFACE through an
 *            AF_PACKET socket that skips the qdisc: the sender's own
 *            cost per datagram is then a fraction of the IP raw socket's
 *            (no route, netfilter or neighbour lookup per datagram)
 *
 * Exit: 0 ok, 1 an echo differed, 2 network error, 64 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EXIT_MISMATCH 1
#define EXIT_NETWORK  2
#define EXIT_USAGE    64

#define PAT_LEN      65521 /* prime: a misplaced chunk never lines up */
#define MAX_CHUNK    (256 * 1024)
#define MAX_BIND     64
#define MAX_TARGETS  4 /* HOST PORT pairs of the rtt modes */
#define MAX_CONNS    20000
#define UDP_BATCH    64
#define GSO_MAX      60000 /* bytes in one UDP GSO super-datagram */
#define UDP_HEADER   8     /* sequence number */
#define UDP_LOSS_MS  50  /* nothing back this long: the outstanding are lost */
#define UDP_DRAIN_MS 500 /* at the end: how long the last echoes may take */
#define RTT_WAIT_MS  1000
#define NS           1000000000.0

/* Source ports echod's default policy refuses although they are in Linux's
 * ephemeral range (udp-deny-source-ports): never send from them. */
#define REFUSED_EPHEMERAL(p) ((p) == 33848 || (p) == 37810)

static struct {
	const char *mode;
	unsigned conns, window, sources, sport;
	size_t size;
	double seconds, rate;
	uint64_t count;
	struct sockaddr_storage target, first_source;
	socklen_t target_len;
	struct sockaddr_storage targets[MAX_TARGETS]; /* [0] is target */
	socklen_t target_lens[MAX_TARGETS];
	unsigned ntargets;
	struct sockaddr_storage bind[MAX_BIND];
	unsigned nbind;
	bool gso;
	bool unbounded;    /* tcp -u: no in-flight cap, reads of one chunk */
	const char *iface; /* flood: AF_PACKET on this interface */
	unsigned char dst_mac[ETH_ALEN]; /* flood: the target's MAC on it */
	bool have_mac;
} opt = {.conns = 1, .window = 0, .sources = 1, .size = 0, .seconds = 2};

/* pat[PAT_LEN..] repeats its start, so any MAX_CHUNK slice is contiguous. */
static unsigned char pat[PAT_LEN + MAX_CHUNK];
static unsigned char rxbuf[MAX_CHUNK];

static void __attribute__((noreturn, format(printf, 2, 3)))
die(int status, const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	fputs("echo-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (status == EXIT_NETWORK && e != 0)
		fprintf(stderr, ": %s", strerror(e));
	fputc('\n', stderr);
	exit(status);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / NS;
}

static void
fill_pattern(void)
{
	uint32_t x = 2463534242u;

	for (size_t i = 0; i < PAT_LEN; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		pat[i] = (unsigned char)x;
	}
	for (size_t i = PAT_LEN; i < sizeof(pat); i++)
		pat[i] = pat[i - PAT_LEN];
}

/* Where a stream's byte at offset `off` comes from in pat. */
static size_t
stream_pos(unsigned id, uint64_t off)
{
	return (size_t)((off + (uint64_t)id * 4099) % PAT_LEN);
}

/* Check n received bytes that sit at stream offset off; false if any is
 * not the byte sent there. */
static bool
stream_verify(unsigned id, uint64_t off, const unsigned char *buf, size_t n)
{
	while (n > 0) {
		size_t piece = n < MAX_CHUNK ? n : MAX_CHUNK;
		if (memcmp(buf, pat + stream_pos(id, off), piece) != 0)
			return false;
		buf += piece;
		off += piece;
		n -= piece;
	}
	return true;
}

static int
parse_addr(const char *s, uint16_t port, struct sockaddr_storage *ss,
           socklen_t *len)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		*len = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		*len = sizeof(*a6);
		return 0;
	}
	return -1;
}

static socklen_t
sa_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                 : sizeof(struct sockaddr_in);
}

static uint16_t
sa_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET6
	                 ? ((const struct sockaddr_in6 *)ss)->sin6_port
	                 : ((const struct sockaddr_in *)ss)->sin_port);
}

/* A socket to `to`, bound to the i-th -b address (round robin). */
static int
open_socket_to(int type, unsigned i, const struct sockaddr_storage *to,
               socklen_t to_len)
{
	int fd = -1;

	for (int tries = 0; tries < 8; tries++) {
		struct sockaddr_storage local;
		socklen_t len = sizeof(local);

		fd = socket(to->ss_family, type | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die(EXIT_NETWORK, "socket");
		if (opt.nbind > 0) {
			const struct sockaddr_storage *b =
			    &opt.bind[i % opt.nbind];
			if (bind(fd, (const struct sockaddr *)b, sa_len(b)) !=
			    0)
				die(EXIT_NETWORK, "bind");
		}
		if (connect(fd, (const struct sockaddr *)to, to_len) != 0)
			return -1;
		if (type != SOCK_DGRAM ||
		    getsockname(fd, (struct sockaddr *)&local, &len) != 0 ||
		    !REFUSED_EPHEMERAL(sa_port(&local)))
			return fd;
		close(fd);
	}
	die(EXIT_NETWORK, "no usable UDP source port");
}

/* A socket to the (first) target, bound to the i-th -b address. */
static int
open_socket(int type, unsigned i)
{
	return open_socket_to(type, i, &opt.target, opt.target_len);
}

static void
set_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		die(EXIT_NETWORK, "FIONBIO");
}

/* ---- tcp: verified stream throughput ---- */

struct stream {
	int fd;
	unsigned id;
	uint64_t sent, rcvd;
	uint32_t events;
};

static void
stream_watch(int ep, struct stream *s, uint32_t want)
{
	struct epoll_event ev = {.events = want, .data.ptr = s};

	if (s->events != want && epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev) != 0)
		die(EXIT_NETWORK, "epoll_ctl");
	s->events = want;
}

/* Send while the window allows; then watch for output only if it is open. */
static void
stream_send(int ep, struct stream *s, size_t chunk, uint64_t window)
{
	while (s->sent - s->rcvd < window) {
		size_t len = window - (s->sent - s->rcvd);
		ssize_t n;

		if (len > chunk)
			len = chunk;
		n = send(s->fd, pat + stream_pos(s->id, s->sent), len,
		         MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0)
			die(EXIT_NETWORK, "tcp send (connection %u)", s->id);
		s->sent += (uint64_t)n;
	}
	stream_watch(ep, s,
	             EPOLLIN | (s->sent - s->rcvd < window ? EPOLLOUT : 0));
}

/* Read one chunk of c's echo and verify it; false at the server's EOF. */
static bool
stream_receive(struct stream *c, size_t rlen, uint64_t *total)
{
	ssize_t r = recv(c->fd, rxbuf, rlen, MSG_DONTWAIT);

	if (r == 0)
		return false;
	if (r < 0 && errno != EAGAIN)
		die(EXIT_NETWORK, "tcp connection %u ended after %llu bytes",
		    c->id, (unsigned long long)c->rcvd);
	if (r < 0)
		return true;
	if (!stream_verify(c->id, c->rcvd, rxbuf, (size_t)r))
		die(EXIT_MISMATCH,
		    "tcp connection %u: echo differs near byte %llu", c->id,
		    (unsigned long long)c->rcvd);
	c->rcvd += (uint64_t)r;
	*total += (uint64_t)r;
	return true;
}

/* Unbounded writes end with a half-close: each connection reads the rest
 * of its echo up to the server's FIN, which must come after exactly the
 * bytes sent. The time counted runs to the last FIN. */
static void
stream_finish(int ep, struct stream *s, size_t rlen, uint64_t *total)
{
	struct epoll_event evs[256];
	unsigned open = opt.conns;
	double give_up = now_s() + 60;

	for (unsigned i = 0; i < opt.conns; i++) {
		if (shutdown(s[i].fd, SHUT_WR) != 0)
			die(EXIT_NETWORK, "shutdown (connection %u)", s[i].id);
		stream_watch(ep, &s[i], EPOLLIN);
	}
	while (open > 0) {
		int n = epoll_wait(ep, evs, 256, 1000);

		if (n < 0 && errno != EINTR)
			die(EXIT_NETWORK, "epoll_wait");
		if (now_s() > give_up)
			die(EXIT_NETWORK, "no FIN from the server within 60 s");
		for (int i = 0; i < n; i++) {
			struct stream *c = evs[i].data.ptr;
			if (stream_receive(c, rlen, total))
				continue;
			if (c->rcvd != c->sent)
				die(EXIT_MISMATCH,
				    "tcp connection %u: FIN after %llu of "
				    "%llu bytes",
				    c->id, (unsigned long long)c->rcvd,
				    (unsigned long long)c->sent);
			if (epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL) != 0)
				die(EXIT_NETWORK, "epoll_ctl");
			open--;
		}
	}
}

static int
run_tcp(void)
{
	size_t chunk = opt.size ? opt.size : 64 * 1024;
	uint64_t window = opt.unbounded ? UINT64_MAX
	                  : opt.window  ? opt.window
	                                : 256 * 1024;
	size_t rlen = opt.unbounded ? chunk : sizeof(rxbuf);
	struct stream *s = calloc(opt.conns, sizeof(*s));
	struct epoll_event evs[256];
	uint64_t total = 0;
	double start, end, t;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (s == NULL || ep < 0)
		die(EXIT_NETWORK, "setup");
	if (chunk > MAX_CHUNK)
		die(EXIT_USAGE, "-s: at most %d for tcp", MAX_CHUNK);
	for (unsigned i = 0; i < opt.conns; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s[i]};
		s[i].id = i;
		s[i].fd = open_socket(SOCK_STREAM, i);
		if (s[i].fd < 0)
			die(EXIT_NETWORK, "connect (connection %u)", i);
		set_nonblocking(s[i].fd);
		s[i].events = EPOLLIN;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, s[i].fd, &ev) != 0)
			die(EXIT_NETWORK, "epoll_ctl");
	}
	start = now_s();
	end = start + opt.seconds;
	for (unsigned i = 0; i < opt.conns; i++)
		stream_send(ep, &s[i], chunk, window);
	while ((t = now_s()) < end) {
		int ms = (int)((end - t) * 1000) + 1;
		int n = epoll_wait(ep, evs, 256, ms);

		if (n < 0 && errno != EINTR)
			die(EXIT_NETWORK, "epoll_wait");
		for (int i = 0; i < n; i++) {
			struct stream *c = evs[i].data.ptr;
			if ((evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
			    !stream_receive(c, rlen, &total))
				die(EXIT_NETWORK,
				    "tcp connection %u ended after %llu bytes",
				    c->id, (unsigned long long)c->rcvd);
			stream_send(ep, c, chunk, window);
		}
	}
	if (opt.unbounded)
		stream_finish(ep, s, rlen, &total);
	t = now_s() - start;
	printf("mode=tcp conns=%u chunk=%zu window=%llu seconds=%.3f "
	       "bytes=%llu verified=yes mb_per_s=%.1f\n",
	       opt.conns, chunk,
	       opt.unbounded ? 0ULL : (unsigned long long)window, t,
	       (unsigned long long)total, (double)total / t / 1e6);
	return 0;
}

/* ---- udp: verified datagrams per second ---- */

struct dsock {
	int fd;
	uint64_t next_seq, rcvd, lost;
	double last_rx;
};

static const unsigned char *
dgram_body(uint64_t seq)
{
	return pat + (seq * 131) % PAT_LEN;
}

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

static int
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

/* ---- round trips ---- */

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static bool
recv_all(int fd, unsigned char *buf, size_t len, int timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;

		if (poll(&p, 1, timeout_ms) <= 0)
			return false;
		n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
		if (n <= 0 && !(n < 0 && errno == EAGAIN))
			return false;
		if (n > 0)
			got += (size_t)n;
	}
	return true;
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

	memcpy(udp_tx[0], &seq, sizeof(seq));
	memcpy(udp_tx[0] + UDP_HEADER, dgram_body(seq), size - UDP_HEADER);
	t0 = now_s();
	if (send(fd, udp_tx[0], size, MSG_NOSIGNAL) != (ssize_t)size)
		die(EXIT_NETWORK, "send");
	if (!recv_all(fd, udp_rx[0], size, RTT_WAIT_MS)) {
		if (!udp)
			die(EXIT_NETWORK, "tcp echo %llu missing",
			    (unsigned long long)seq);
		return -1;
	}
	t0 = (now_s() - t0) * 1e6;
	if (memcmp(udp_rx[0], udp_tx[0], size) != 0)
		die(EXIT_MISMATCH, "echo %llu differs",
		    (unsigned long long)seq);
	return t0;
}

static int
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

/* ---- idle: hold connections open for an RSS reading ---- */

static void
raise_fd_limit(rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
		rl.rlim_cur = need;
		if (rl.rlim_max < need)
			rl.rlim_max = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			die(EXIT_NETWORK, "cannot raise RLIMIT_NOFILE to %llu",
			    (unsigned long long)need);
	}
}

static int
run_idle(void)
{
	int *fds = calloc(opt.conns, sizeof(int));
	unsigned open = 0, failed = 0;
	char c;

	if (fds == NULL)
		die(EXIT_NETWORK, "calloc");
	raise_fd_limit((rlim_t)opt.conns + 64);
	for (unsigned i = 0; i < opt.conns && failed < 16; i++) {
		unsigned char b = (unsigned char)('a' + i % 26), e = 0;
		int fd = open_socket(SOCK_STREAM, i);
		/* Served means echoed: accepted, not only in the backlog. */
		if (fd >= 0 && send(fd, &b, 1, MSG_NOSIGNAL) == 1 &&
		    recv_all(fd, &e, 1, 2000) && e == b) {
			fds[open++] = fd;
			continue;
		}
		if (fd >= 0)
			close(fd);
		failed++;
	}
	printf("mode=idle asked=%u open=%u failed=%u\n", opt.conns, open,
	       failed);
	fflush(stdout);
	while (read(STDIN_FILENO, &c, 1) > 0)
		;
	for (unsigned i = 0; i < open; i++)
		close(fds[i]);
	return 0;
}

/* ---- flood: spoofed sources, benchmark range only ---- */

static bool
in_bench_range(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

	return ss->ss_family == AF_INET &&
	       (ntohl(a->sin_addr.s_addr) & 0xfffe0000u) == 0xc6120000u;
}

struct flood_pkt {
	unsigned char pad[2];    /* so that ip is aligned */
	struct ether_header eth; /* sent only through AF_PACKET (-i) */
	struct iphdr ip;
	struct udphdr udp;
	unsigned char body[1400];
};

/* The IPv4 header checksum (RFC 1071): AF_PACKET frames get no help. */
static uint16_t
ip_checksum(const struct iphdr *ip)
{
	uint16_t w[sizeof(*ip) / 2];
	uint32_t sum = 0;

	memcpy(w, ip, sizeof(w));
	for (size_t i = 0; i < sizeof(*ip) / 2; i++)
		sum += w[i];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The flood's socket: an IP raw socket (the kernel routes each datagram
 * and fills in the IP checksum, id and length), or with -i an AF_PACKET
 * socket bound to that interface that bypasses its qdisc. */
static int
flood_socket(struct sockaddr_ll *ll)
{
	int fd, one = 1;

	if (!opt.iface) {
		fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
		if (fd < 0)
			die(EXIT_NETWORK, "raw socket (needs CAP_NET_RAW)");
		return fd;
	}
	if (!opt.have_mac)
		die(EXIT_USAGE, "-i needs -m (the target's MAC on it)");
	*ll =
	    (struct sockaddr_ll){.sll_family = AF_PACKET,
	                         .sll_protocol = htons(ETH_P_IP),
	                         .sll_ifindex = (int)if_nametoindex(opt.iface),
	                         .sll_halen = ETH_ALEN};
	if (ll->sll_ifindex == 0)
		die(EXIT_NETWORK, "-i %s", opt.iface);
	memcpy(ll->sll_addr, opt.dst_mac, ETH_ALEN);
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die(EXIT_NETWORK, "packet socket (needs CAP_NET_RAW)");
	if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one,
	               sizeof(one)) != 0)
		die(EXIT_NETWORK, "PACKET_QDISC_BYPASS");
	return fd;
}

/* This interface's own MAC, the frames' source. */
static void
iface_mac(int fd, unsigned char mac[ETH_ALEN])
{
	struct ifreq ifr = {0};

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", opt.iface);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0)
		die(EXIT_NETWORK, "SIOCGIFHWADDR %s", opt.iface);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
}

static int
run_flood(void)
{
	static struct flood_pkt pkt[UDP_BATCH];
	struct mmsghdr m[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	struct sockaddr_ll ll;
	unsigned char src_mac[ETH_ALEN] = {0};
	size_t body = opt.size ? opt.size : 64;
	uint32_t first =
	    ntohl(((struct sockaddr_in *)&opt.first_source)->sin_addr.s_addr);
	struct sockaddr_storage last = opt.first_source;
	uint64_t limit = opt.count ? opt.count : 1000000, sent = 0;
	double start = now_s(), t;
	int fd;

	((struct sockaddr_in *)&last)->sin_addr.s_addr =
	    htonl(first + opt.sources - 1);
	if (!in_bench_range(&opt.target) ||
	    !in_bench_range(&opt.first_source) || !in_bench_range(&last))
		die(EXIT_USAGE, "flood: target and every source must be in "
		                "198.18.0.0/15");
	if (body > sizeof(pkt[0].body))
		die(EXIT_USAGE, "-s: at most %zu for flood",
		    sizeof(pkt[0].body));
	fd = flood_socket(&ll);
	if (opt.iface)
		iface_mac(fd, src_mac);
	while (sent < limit && (t = now_s()) - start < opt.seconds) {
		uint64_t n = limit - sent;
		if (opt.rate > 0) {
			double allowed = opt.rate * (t - start) - (double)sent;
			if (allowed < 1) {
				struct timespec ts = {0, 200000};
				nanosleep(&ts, NULL);
				continue;
			}
			if ((double)n > allowed)
				n = (uint64_t)allowed;
		}
		if (n > UDP_BATCH)
			n = UDP_BATCH;
		for (unsigned i = 0; i < n; i++) {
			uint64_t k = sent + i;
			struct flood_pkt *p = &pkt[i];
			/* The kernel fills in the checksum, id and length. */
			p->ip = (struct iphdr){
			    .version = 4,
			    .ihl = 5,
			    .ttl = 64,
			    .protocol = IPPROTO_UDP,
			    .saddr = htonl(first + (uint32_t)(k % opt.sources)),
			    .daddr = ((struct sockaddr_in *)&opt.target)
			                 ->sin_addr.s_addr,
			};
			p->udp = (struct udphdr){
			    .source = htons(
			        opt.sport ? (uint16_t)opt.sport
			                  : (uint16_t)(40000 + k % 20000)),
			    .dest =
			        ((struct sockaddr_in *)&opt.target)->sin_port,
			    .len = htons((uint16_t)(sizeof(p->udp) + body)),
			};
			memcpy(p->body, dgram_body(k), body);
			iov[i] = (struct iovec){
			    &p->ip, sizeof(p->ip) + sizeof(p->udp) + body};
			m[i] = (struct mmsghdr){
			    .msg_hdr = {.msg_name = &opt.target,
			                .msg_namelen = opt.target_len,
			                .msg_iov = &iov[i],
			                .msg_iovlen = 1}};
			if (opt.iface) {
				memcpy(p->eth.ether_dhost, opt.dst_mac,
				       ETH_ALEN);
				memcpy(p->eth.ether_shost, src_mac, ETH_ALEN);
				p->eth.ether_type = htons(ETHERTYPE_IP);
				p->ip.tot_len =
				    htons((uint16_t)(iov[i].iov_len));
				p->ip.id = htons((uint16_t)k);
				p->ip.check = ip_checksum(&p->ip);
				iov[i].iov_base = &p->eth;
				iov[i].iov_len += sizeof(p->eth);
				m[i].msg_hdr.msg_name = &ll;
				m[i].msg_hdr.msg_namelen = sizeof(ll);
			}
		}
		int r = sendmmsg(fd, m, (unsigned)n, 0);
		if (r < 0 && errno != ENOBUFS && errno != EAGAIN)
			die(EXIT_NETWORK, "flood sendmmsg");
		if (r > 0)
			sent += (uint64_t)r;
	}
	t = now_s() - start;
	printf("mode=flood sources=%u sent=%llu seconds=%.3f per_s=%.0f\n",
	       opt.sources, (unsigned long long)sent, t, (double)sent / t);
	return 0;
}

/* ---- options ---- */

static const char usage[] =
    "usage: echo-bench MODE [-c CONNS] [-d SECONDS] [-s SIZE] [-w WINDOW] "
    "[-g] [-u]\n"
    "                  [-n COUNT] [-r RATE] [-b BINDADDR]... [-S SOURCES]\n"
    "                  [-F FIRSTSOURCE] [-P SOURCEPORT] [-i IFACE -m MAC]\n"
    "                  HOST PORT [HOST PORT]...\n"
    "MODE: tcp, udp, tcp-rtt, udp-rtt, idle, flood (see the source's "
    "head)\n";

static double
num(const char *s, double lo, double hi, char flag)
{
	char *end;
	double v = strtod(s, &end);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi)
		die(EXIT_USAGE, "-%c: '%s' is not a number from %g to %g\n%s",
		    flag, s, lo, hi, usage);
	return v;
}

static void
parse_args(int argc, char **argv)
{
	socklen_t len;
	int c;

	if (argc < 2)
		die(EXIT_USAGE, "no mode\n%s", usage);
	opt.mode = argv[1];
	optind = 2;
	while ((c = getopt(argc, argv, "c:d:s:w:n:r:b:S:F:P:i:m:gu")) != -1) {
		switch (c) {
		case 'c':
			opt.conns = (unsigned)num(optarg, 1, MAX_CONNS, 'c');
			break;
		case 'd':
			opt.seconds = num(optarg, 0.1, 600, 'd');
			break;
		case 's':
			opt.size = (size_t)num(optarg, 1, 1 << 20, 's');
			break;
		case 'w':
			opt.window = (unsigned)num(optarg, 1, 1 << 30, 'w');
			break;
		case 'n':
			opt.count = (uint64_t)num(optarg, 1, 1e8, 'n');
			break;
		case 'r':
			opt.rate = num(optarg, 1, 1e8, 'r');
			break;
		case 'g':
			opt.gso = true;
			break;
		case 'u':
			opt.unbounded = true;
			break;
		case 'P':
			opt.sport = (unsigned)num(optarg, 1, 65535, 'P');
			break;
		case 'S':
			opt.sources = (unsigned)num(optarg, 1, 131072, 'S');
			break;
		case 'b':
			if (opt.nbind == MAX_BIND ||
			    parse_addr(optarg, 0, &opt.bind[opt.nbind++],
			               &len) != 0)
				die(EXIT_USAGE,
				    "-b: '%s': a numeric address, "
				    "at most 64",
				    optarg);
			break;
		case 'i':
			opt.iface = optarg;
			break;
		case 'm':
			if (sscanf(optarg,
			           "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx%c",
			           &opt.dst_mac[0], &opt.dst_mac[1],
			           &opt.dst_mac[2], &opt.dst_mac[3],
			           &opt.dst_mac[4], &opt.dst_mac[5],
			           &(char){0}) != 6)
				die(EXIT_USAGE, "-m: '%s' is not a MAC",
				    optarg);
			opt.have_mac = true;
			break;
		case 'F':
			if (parse_addr(optarg, 0, &opt.first_source, &len) != 0)
				die(EXIT_USAGE, "-F: '%s' is not an address",
				    optarg);
			break;
		default:
			die(EXIT_USAGE, "%s", usage);
		}
	}
	if (argc - optind < 2 || (argc - optind) % 2 != 0)
		die(EXIT_USAGE, "need HOST and PORT\n%s", usage);
	opt.ntargets = (unsigned)(argc - optind) / 2;
	if (opt.ntargets > 1 && strcmp(opt.mode, "tcp-rtt") != 0 &&
	    strcmp(opt.mode, "udp-rtt") != 0)
		die(EXIT_USAGE,
		    "only tcp-rtt and udp-rtt take several "
		    "targets\n%s",
		    usage);
	if (opt.ntargets > MAX_TARGETS)
		die(EXIT_USAGE, "at most %d targets\n%s", MAX_TARGETS, usage);
	for (unsigned t = 0; t < opt.ntargets; t++) {
		const char *host = argv[optind + 2 * t];

		if (parse_addr(
		        host,
		        (uint16_t)num(argv[optind + 2 * t + 1], 1, 65535, 'p'),
		        &opt.targets[t], &opt.target_lens[t]) != 0)
			die(EXIT_USAGE, "'%s' is not a numeric address", host);
	}
	opt.target = opt.targets[0];
	opt.target_len = opt.target_lens[0];
}

int
main(int argc, char **argv)
{
	parse_args(argc, argv);
	fill_pattern();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(opt.mode, "tcp") == 0)
		return run_tcp();
	if (strcmp(opt.mode, "udp") == 0)
		return run_udp();
	if (strcmp(opt.mode, "tcp-rtt") == 0)
		return run_rtt(false);
	if (strcmp(opt.mode, "udp-rtt") == 0)
		return run_rtt(true);
	if (strcmp(opt.mode, "idle") == 0)
		return run_idle();
	if (strcmp(opt.mode, "flood") == 0)
		return run_flood();
	die(EXIT_USAGE, "unknown mode '%s'\n%s", opt.mode, usage);
}
