/*
 * naive: the lab's unguarded echo (RFC 862), chargen (RFC 864), daytime
 * (RFC 867), quote of the day (RFC 865) and time (RFC 868) server, built
 * the way the classic implementations are (inetd's internal services, the
 * Go tutorial echo server): answer every datagram, whoever it claims to be
 * from, and read every TCP byte into memory until the peer takes its echo.
 *
 * It exists only so that `make lab` can show each attack working. It is
 * never installed and must never face a real network.
 *
 *   naive [-n NOFILE] [-s SECONDS] SERVICE:PORT...
 *
 * SERVICE is udp-echo, tcp-echo, udp-chargen, udp-daytime, udp-qotd or
 * udp-time; each is served on 0.0.0.0 and [::]. -n sets RLIMIT_NOFILE (the
 * lab uses 1024, the usual default), -s exits after SECONDS whatever
 * happens (the lab's safety net for the loops). SIGUSR1 prints one logfmt
 * line `event=counters ...`; SIGTERM and SIGINT end it; it also dies with
 * its parent. It prints `event=ready` once every socket is bound.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum service {
	UDP_ECHO,
	TCP_ECHO,
	UDP_CHARGEN,
	UDP_DAYTIME,
	UDP_QOTD,
	UDP_TIME
};

static const char *const service_names[] = {
    "udp-echo",    "tcp-echo", "udp-chargen",
    "udp-daytime", "udp-qotd", "udp-time",
};

#define MAX_LISTENERS 32
#define CHUNK         65536

struct listener {
	int fd;
	enum service service;
};

/* One TCP connection: everything read and not yet echoed is kept. */
struct conn {
	int fd;
	char *buf;
	size_t len, cap;
	int peer_done;
};

static struct listener listeners[MAX_LISTENERS];
static size_t nlisteners;
static struct conn **conns; /* indexed by fd */
static size_t nconns_max;
static int epfd;

static struct {
	uint64_t udp_received, udp_answered, udp_bytes_in, udp_bytes_out;
	uint64_t tcp_accepted, tcp_active, tcp_accept_errors, tcp_bytes_in;
	uint64_t tcp_bytes_out, tcp_buffered;
} count;

static void
die(const char *what)
{
	fprintf(stderr, "naive: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
watch(int fd, uint32_t events, int op)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};

	if (epoll_ctl(epfd, op, fd, &ev) < 0)
		die("epoll_ctl");
}

static void
add_listener(enum service svc, int family, unsigned port)
{
	int tcp = svc == TCP_ECHO, one = 1, fd;
	struct sockaddr_storage ss;
	socklen_t len;

	if (nlisteners == MAX_LISTENERS) {
		fprintf(stderr, "naive: too many services\n");
		exit(64);
	}
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		len = sizeof(*a);
	}
	fd =
	    socket(family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		die("bind");
	if (tcp && listen(fd, SOMAXCONN) < 0)
		die("listen");
	listeners[nlisteners].fd = fd;
	listeners[nlisteners].service = svc;
	nlisteners++;
	watch(fd, EPOLLIN, EPOLL_CTL_ADD);
}

/* What a datagram service answers to `in`: written to out, length returned. */
static size_t
udp_answer(enum service svc, const char *in, size_t n, char *out, size_t cap)
{
	static unsigned rotor;
	time_t now = time(NULL);
	size_t i;

	switch (svc) {
	case UDP_ECHO:
		memcpy(out, in, n);
		return n;
	case UDP_CHARGEN: /* one 72-character line, as inetd's chargen_dg */
		for (i = 0; i < 72; i++)
			out[i] = (char)(' ' + (rotor + i) % 95);
		rotor = (rotor + 1) % 95;
		out[72] = '\r';
		out[73] = '\n';
		return 74;
	case UDP_DAYTIME:
		return (size_t)snprintf(out, cap, "%s", ctime(&now));
	case UDP_QOTD:
		return (size_t)snprintf(out, cap, "%s",
		                        "\"An echo answers everyone.\"\r\n");
	case UDP_TIME: {
		uint32_t t = htonl((uint32_t)((uint64_t)now + 2208988800u));
		memcpy(out, &t, 4);
		return 4;
	}
	case TCP_ECHO:
		break;
	}
	return 0;
}

/* Answer every datagram waiting: no check of who sent it. */
static void
serve_udp(const struct listener *l)
{
	static char in[CHUNK], out[CHUNK];
	struct sockaddr_storage from;
	socklen_t fromlen;
	ssize_t n;
	size_t reply;
	int i;

	for (i = 0; i < 64; i++) {
		fromlen = sizeof(from);
		n = recvfrom(l->fd, in, sizeof(in), 0, (struct sockaddr *)&from,
		             &fromlen);
		if (n < 0)
			return;
		count.udp_received++;
		count.udp_bytes_in += (uint64_t)n;
		reply = udp_answer(l->service, in, (size_t)n, out, sizeof(out));
		if (sendto(l->fd, out, reply, 0, (struct sockaddr *)&from,
		           fromlen) >= 0) {
			count.udp_answered++;
			count.udp_bytes_out += reply;
		}
	}
}

static void
conn_close(struct conn *c)
{
	count.tcp_buffered -= c->len;
	count.tcp_active--;
	conns[c->fd] = NULL;
	close(c->fd);
	free(c->buf);
	free(c);
}

static void
accept_all(const struct listener *l)
{
	struct conn *c;
	int fd;

	for (;;) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				/* Out of descriptors: the pending peers wait in
				 * the backlog. Pause instead of spinning. */
				count.tcp_accept_errors++;
				usleep(10000);
			}
			return;
		}
		if ((size_t)fd >= nconns_max || !(c = calloc(1, sizeof(*c)))) {
			close(fd);
			return;
		}
		c->fd = fd;
		conns[fd] = c;
		count.tcp_accepted++;
		count.tcp_active++;
		watch(fd, EPOLLIN, EPOLL_CTL_ADD);
	}
}

/* Read all there is into the connection's buffer, which grows as needed;
 * write back what the peer will take. */
static void
serve_conn(struct conn *c)
{
	ssize_t n;

	while (!c->peer_done) {
		if (c->cap - c->len < CHUNK) {
			char *p = realloc(c->buf, c->cap + 4 * CHUNK);
			if (!p)
				die("realloc");
			c->buf = p;
			c->cap += 4 * CHUNK;
		}
		n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n == 0 || (n < 0 && errno != EAGAIN)) {
			c->peer_done = 1;
			break;
		}
		if (n < 0)
			break;
		c->len += (size_t)n;
		count.tcp_bytes_in += (uint64_t)n;
		count.tcp_buffered += (uint64_t)n;
	}
	while (c->len > 0) {
		n = write(c->fd, c->buf, c->len);
		if (n < 0 && errno != EAGAIN) {
			conn_close(c); /* reset: what it held is lost */
			return;
		}
		if (n <= 0)
			break;
		memmove(c->buf, c->buf + n, c->len - (size_t)n);
		c->len -= (size_t)n;
		count.tcp_bytes_out += (uint64_t)n;
		count.tcp_buffered -= (uint64_t)n;
	}
	if (c->peer_done && c->len == 0) {
		conn_close(c);
		return;
	}
	watch(c->fd, (c->peer_done ? 0 : EPOLLIN) | (c->len ? EPOLLOUT : 0),
	      EPOLL_CTL_MOD);
}

static void
print_counters(void)
{
	fprintf(stderr,
	        "event=counters role=naive udp_received=%llu udp_answered=%llu "
	        "udp_bytes_in=%llu udp_bytes_out=%llu tcp_accepted=%llu "
	        "tcp_active=%llu tcp_accept_errors=%llu tcp_bytes_in=%llu "
	        "tcp_bytes_out=%llu tcp_buffered=%llu\n",
	        (unsigned long long)count.udp_received,
	        (unsigned long long)count.udp_answered,
	        (unsigned long long)count.udp_bytes_in,
	        (unsigned long long)count.udp_bytes_out,
	        (unsigned long long)count.tcp_accepted,
	        (unsigned long long)count.tcp_active,
	        (unsigned long long)count.tcp_accept_errors,
	        (unsigned long long)count.tcp_bytes_in,
	        (unsigned long long)count.tcp_bytes_out,
	        (unsigned long long)count.tcp_buffered);
}

static void
parse_service(const char *arg)
{
	const char *colon = strrchr(arg, ':');
	char *end;
	unsigned long port;
	size_t i;

	if (colon) {
		port = strtoul(colon + 1, &end, 10);
		for (i = 0; i < sizeof(service_names) / sizeof(*service_names);
		     i++) {
			if (strlen(service_names[i]) == (size_t)(colon - arg) &&
			    !strncmp(arg, service_names[i],
			             (size_t)(colon - arg)) &&
			    *end == '\0' && port > 0 && port < 65536) {
				add_listener((enum service)i, AF_INET,
				             (unsigned)port);
				add_listener((enum service)i, AF_INET6,
				             (unsigned)port);
				return;
			}
		}
	}
	fprintf(stderr, "naive: bad service '%s' (e.g. udp-echo:7)\n", arg);
	exit(64);
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[64];
	struct rlimit rl;
	struct timespec t0, t;
	long nofile = 0, seconds = 0;
	sigset_t mask;
	int opt, sfd, i, n;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while ((opt = getopt(argc, argv, "n:s:")) != -1) {
		if (opt == 'n')
			nofile = atol(optarg);
		else if (opt == 's')
			seconds = atol(optarg);
		else
			exit(64);
	}
	if (optind == argc) {
		fprintf(stderr, "usage: naive [-n NOFILE] [-s SECONDS] "
		                "SERVICE:PORT...\n");
		exit(64);
	}
	if (nofile > 0) {
		rl.rlim_cur = rl.rlim_max = (rlim_t)nofile;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			die("setrlimit");
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit");
	nconns_max = rl.rlim_cur;
	if (!(conns = calloc(nconns_max, sizeof(*conns))))
		die("calloc");
	if ((epfd = epoll_create1(0)) < 0)
		die("epoll_create1");
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if ((sfd = signalfd(-1, &mask, SFD_NONBLOCK)) < 0)
		die("signalfd");
	watch(sfd, EPOLLIN, EPOLL_CTL_ADD);
	for (i = optind; i < argc; i++)
		parse_service(argv[i]);
	setvbuf(stderr, NULL, _IOLBF, 0);
	fprintf(stderr, "event=ready role=naive pid=%d\n", (int)getpid());
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		n = epoll_wait(epfd, evs, 64, 100);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (seconds > 0 && t.tv_sec - t0.tv_sec >= seconds) {
			fprintf(stderr, "event=stop role=naive reason=time\n");
			return 0;
		}
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			size_t k;

			if (fd == sfd) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) ==
				       sizeof(si)) {
					if (si.ssi_signo == SIGUSR1)
						print_counters();
					else
						return 0;
				}
				continue;
			}
			for (k = 0; k < nlisteners && listeners[k].fd != fd;
			     k++)
				;
			if (k < nlisteners && listeners[k].service == TCP_ECHO)
				accept_all(&listeners[k]);
			else if (k < nlisteners)
				serve_udp(&listeners[k]);
			else if (conns[fd])
				serve_conn(conns[fd]);
		}
	}
}
