/*
 * echo-client: talk to an RFC 862 echo service and check what comes back.
 *
 * Without -n, stdin goes to the server and the echo to stdout, and the echo
 * must equal the input byte for byte.  With -n, fixed-size probes are timed,
 * in the manner of the old echoping.
 *
 * Exit status: 0 the echo was exact; 1 it differed; 2 network or I/O error;
 * 3 a datagram or probe got no echo in time; 64 usage error.
 */
#include "units.h"

#include <sys/types.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_MISMATCH 1
#define EXIT_NETWORK  2
#define EXIT_LOSS     3
#define EXIT_USAGE    64 /* EX_USAGE of sysexits(3) */

#define DEFAULT_HOST       "localhost"
#define DEFAULT_PORT       7
#define DEFAULT_TIMEOUT_MS 2000
#define MAX_TIMEOUT_MS     (3600 * 1000)
#define MAX_COUNT          1000000
#define UDP_MAX_SIZE       65507 /* 65535 - 20 (IPv4) - 8 (UDP) */
#define UDP_PIPE_SIZE      1472  /* fills one Ethernet frame over IPv4 */
#define PROBE_SIZE         64
#define TCP_PROBE_MAX_SIZE (1024 * 1024)
#define PROBE_HEADER       8     /* run tag and sequence number */
#define IO_CHUNK           65536 /* also holds any UDP datagram */
#define INFLIGHT_MAX       ((size_t)64 * 1024 * 1024)
#define NS_PER_MS          UINT64_C(1000000)

static struct {
	const char *host;
	char service[8]; /* the port as text, for getaddrinfo */
	unsigned port;
	int family;
	bool udp;
	uint64_t timeout_ms;
	uint64_t count; /* probes to send; 0 selects stream mode */
	size_t size;
} opts;

/* Set by SIGINT in probe mode, so that the summary still gets printed. */
static volatile sig_atomic_t interrupted;

/* Receive buffer for every mode; big enough for any UDP datagram. */
static unsigned char iobuf[IO_CHUNK];

static const char usage_text[] =
    "usage: echo-client [-u] [-4|-6] [-p PORT] [-t SECONDS] [-n COUNT]\n"
    "                   [-s SIZE] [-h] [HOST]\n"
    "\n"
    "Send stdin to the echo service on HOST (default localhost) and check\n"
    "that the echo, copied to stdout, is identical.\n"
    "\n"
    "  -u          use UDP, one datagram of at most SIZE bytes at a time\n"
    "  -4, -6      use only IPv4 or only IPv6 addresses\n"
    "  -p PORT     port to use (default 7)\n"
    "  -t SECONDS  how long to wait for the server to make progress\n"
    "              (default 2; fractions such as 0.5 are allowed)\n"
    "  -n COUNT    send COUNT timed probes instead of reading stdin\n"
    "  -s SIZE     probe size (default 64) or, with -u, largest datagram\n"
    "              (default 1472)\n"
    "  -h          show this help\n"
    "\n"
    "Exit status: 0 echo exact, 1 echo differs, 2 network or I/O error,\n"
    "3 echo lost or late, 64 usage error.\n";

static void vwarn(const char *, va_list, const char *)
    __attribute__((format(printf, 1, 0)));
static void warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void fatalx(int, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static _Noreturn void fatal(int, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static _Noreturn void usage_error(const char *, ...)
    __attribute__((format(printf, 1, 2)));

static void
vwarn(const char *fmt, va_list ap, const char *reason)
{
	fputs("echo-client: ", stderr);
	vfprintf(stderr, fmt, ap);
	if (reason != NULL)
		fprintf(stderr, ": %s", reason);
	fputc('\n', stderr);
}

static void
warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap, NULL);
	va_end(ap);
}

static _Noreturn void
fatalx(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap, NULL);
	va_end(ap);
	exit(status);
}

/* Like fatalx(), and says why with errno. */
static _Noreturn void
fatal(int status, const char *fmt, ...)
{
	const char *reason = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap, reason);
	va_end(ap);
	exit(status);
}

static _Noreturn void
usage(FILE *out, int status)
{
	fputs(usage_text, out);
	exit(status);
}

static _Noreturn void
usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap, NULL);
	va_end(ap);
	usage(stderr, EXIT_USAGE);
}

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		fatal(EXIT_NETWORK, "out of memory");
	return p;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static uint64_t
timeout_ns(void)
{
	return opts.timeout_ms * NS_PER_MS;
}

/* Print v / 10^digits without trailing zeros: 2000,3 is "2", 500,3 "0.5". */
static const char *
format_decimal(uint64_t v, unsigned digits, char *buf, size_t len)
{
	uint64_t scale = 1;
	size_t n;
	unsigned i;

	for (i = 0; i < digits; i++)
		scale *= 10;
	snprintf(buf, len, "%" PRIu64 ".%0*" PRIu64, v / scale, (int)digits,
	         v % scale);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '0')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '.')
		buf[--n] = '\0';
	return buf;
}

static const char *
timeout_str(void)
{
	static char buf[32];

	return format_decimal(opts.timeout_ms, 3, buf, sizeof(buf));
}

static _Noreturn void
timed_out(const char *what)
{
	fatalx(EXIT_NETWORK, "timed out after %s s waiting for %s",
	       timeout_str(), what);
}

/*
 * Seconds as plain decimal ("2", "0.5", ".25") to the millisecond, or a
 * duration with a unit ("500ms") as in the policy files.
 */
static int
parse_seconds(const char *s, uint64_t *out_ms)
{
	uint64_t whole = 0, frac = 0;
	unsigned ndigits = 0, nfrac = 0;

	if (parse_duration(s, out_ms) == 0)
		return 0;
	for (; *s >= '0' && *s <= '9'; s++, ndigits++) {
		whole = whole * 10 + (uint64_t)(*s - '0');
		if (whole > MAX_TIMEOUT_MS / 1000)
			return -1;
	}
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, ndigits++) {
			if (++nfrac > 3)
				return -1; /* finer than we can wait */
			frac = frac * 10 + (uint64_t)(*s - '0');
		}
	}
	if (ndigits == 0 || *s != '\0')
		return -1;
	for (; nfrac < 3; nfrac++)
		frac *= 10;
	*out_ms = whole * 1000 + frac;
	return 0;
}

/* The defaults and limits of -s depend on the mode chosen by -u and -n. */
static void
settle_size(bool size_given)
{
	if (!size_given) {
		opts.size =
		    opts.udp && opts.count == 0 ? UDP_PIPE_SIZE : PROBE_SIZE;
		return;
	}
	if (opts.udp && opts.size > UDP_MAX_SIZE)
		usage_error("-s: at most %d bytes fit in a UDP datagram",
		            UDP_MAX_SIZE);
	if (opts.udp && opts.count == 0 && opts.size == 0)
		usage_error("-s: datagrams of 0 bytes cannot carry stdin");
	if (!opts.udp && opts.count > 0 && opts.size == 0)
		usage_error("-s: a TCP probe needs at least 1 byte");
}

static void
parse_args(int argc, char **argv)
{
	bool size_given = false;
	uint64_t v;
	int ch, family;

	opts.host = DEFAULT_HOST;
	opts.port = DEFAULT_PORT;
	opts.family = AF_UNSPEC;
	opts.timeout_ms = DEFAULT_TIMEOUT_MS;
	opterr = 0; /* we word our own complaints */
	while ((ch = getopt(argc, argv, ":u46p:t:n:s:h")) != -1) {
		switch (ch) {
		case 'u':
			opts.udp = true;
			break;
		case '4':
		case '6':
			family = ch == '4' ? AF_INET : AF_INET6;
			if (opts.family != AF_UNSPEC && opts.family != family)
				usage_error("-4 and -6 exclude each other");
			opts.family = family;
			break;
		case 'p':
			if (parse_uint(optarg, 65535, &v) != 0 || v == 0)
				usage_error(
				    "-p: port must be 1..65535, not '%s'",
				    optarg);
			opts.port = (unsigned)v;
			break;
		case 't':
			if (parse_seconds(optarg, &v) != 0 || v == 0 ||
			    v > MAX_TIMEOUT_MS)
				usage_error("-t: seconds must be more than 0 "
				            "and at most 3600, not '%s'",
				            optarg);
			opts.timeout_ms = v;
			break;
		case 'n':
			if (parse_uint(optarg, MAX_COUNT, &v) != 0 || v == 0)
				usage_error("-n: count must be 1..%d, not '%s'",
				            MAX_COUNT, optarg);
			opts.count = v;
			break;
		case 's':
			if (parse_size(optarg, &v) != 0 ||
			    v > TCP_PROBE_MAX_SIZE)
				usage_error("-s: size must be 0..%d, not '%s'",
				            TCP_PROBE_MAX_SIZE, optarg);
			opts.size = (size_t)v;
			size_given = true;
			break;
		case 'h':
			usage(stdout, 0);
		case ':':
			usage_error("-%c needs a value", optopt);
		default:
			usage_error("unknown option -%c", optopt);
		}
	}
	if (argc - optind > 1)
		usage_error("only one HOST, please");
	if (argc - optind == 1)
		opts.host = argv[optind];
	if (opts.host[0] == '\0')
		usage_error("HOST is empty");
	settle_size(size_given);
	snprintf(opts.service, sizeof(opts.service), "%u", opts.port);
}

/*
 * Sockets must not land on 0, 1 or 2 if we were started with one closed:
 * we would then read our own socket as stdin.
 */
static void
keep_std_fds_open(void)
{
	int fd;

	for (fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		if (open("/dev/null", O_RDWR) != fd)
			exit(EXIT_NETWORK);
	}
}

static void
on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Probe mode stops on ^C like ping, and still prints its summary. */
static void
catch_sigint(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint; /* no SA_RESTART: poll() must return */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) == -1)
		fatal(EXIT_NETWORK, "sigaction");
}

enum wait_result { WAIT_READY, WAIT_TIMEOUT, WAIT_INTERRUPTED };

/* poll() until something is ready or the deadline (0: none) has passed. */
static enum wait_result
poll_until(struct pollfd *pfd, nfds_t nfd, uint64_t deadline)
{
	for (;;) {
		int timeout = -1, r;

		if (interrupted)
			return WAIT_INTERRUPTED;
		if (deadline != 0) {
			uint64_t now = now_ns(), left;

			if (now >= deadline)
				return WAIT_TIMEOUT;
			/* Round up, or we would spin just before the end. */
			left = (deadline - now + NS_PER_MS - 1) / NS_PER_MS;
			timeout = left > INT_MAX ? INT_MAX : (int)left;
		}
		r = poll(pfd, nfd, timeout);
		if (r > 0)
			return WAIT_READY;
		if (r == -1 && errno != EINTR)
			fatal(EXIT_NETWORK, "poll");
	}
}

/* Write all of p, even if whoever gave us stdout made it non-blocking. */
static void
write_stdout(const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, p, n);

		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w == -1 &&
		           (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = {STDOUT_FILENO, POLLOUT, 0};

			(void)poll(&pfd, 1, -1);
		} else if (w == -1 && errno != EINTR) {
			fatal(EXIT_NETWORK, "write to stdout");
		}
	}
}

/* One read() from stdin; 0 at end of file.  Waits as long as it takes. */
static size_t
read_stdin(unsigned char *p, size_t n)
{
	for (;;) {
		ssize_t r = read(STDIN_FILENO, p, n);

		if (r >= 0)
			return (size_t)r;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};

			(void)poll(&pfd, 1, -1);
		} else if (errno != EINTR) {
			fatal(EXIT_NETWORK, "read from stdin");
		}
	}
}

/* Index of the first byte where a and b differ, or n if they agree. */
static size_t
first_difference(const unsigned char *a, const unsigned char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i] != b[i])
			break;
	return i;
}

/*
 * Say where the echo `got` of datagram or probe number `num` departs from
 * what was sent; bytes count from 1 like cmp(1), starting after `base`.
 */
static void
report_difference(const char *what, uint64_t num, const unsigned char *want,
                  size_t wlen, const unsigned char *got, size_t glen,
                  uint64_t base)
{
	size_t n = wlen < glen ? wlen : glen;
	size_t i = first_difference(want, got, n);

	if (i < n)
		warnx("mismatch at byte %" PRIu64 " (%s %" PRIu64 ")",
		      base + i + 1, what, num);
	else
		warnx("%s echo: sent %zu bytes, got %zu (%s %" PRIu64 ")",
		      glen < wlen ? "short" : "long", wlen, glen, what, num);
}

static struct addrinfo *
resolve(int socktype)
{
	struct addrinfo hints, *res;
	int r;

	/* No AI_ADDRCONFIG: it hides ::1 on hosts with only loopback v6. */
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = opts.family;
	hints.ai_socktype = socktype;
	hints.ai_flags = AI_NUMERICSERV;
	r = getaddrinfo(opts.host, opts.service, &hints, &res);
	if (r == EAI_SYSTEM)
		fatal(EXIT_NETWORK, "%s", opts.host);
	if (r != 0)
		fatalx(EXIT_NETWORK, "%s: %s", opts.host, gai_strerror(r));
	return res;
}

static int
open_socket(const struct addrinfo *ai)
{
	return socket(ai->ai_family,
	              ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
	              ai->ai_protocol);
}

/* Connect within -t; the socket, or -1 with *err set (0 for timeout). */
static int
connect_one(const struct addrinfo *ai, int *err)
{
	struct pollfd pfd;
	socklen_t len = sizeof(*err);
	int fd;

	if ((fd = open_socket(ai)) == -1) {
		*err = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	/* After EINTR the connection goes on in the background, too. */
	if (errno != EINPROGRESS && errno != EINTR) {
		*err = errno;
		close(fd);
		return -1;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	if (poll_until(&pfd, 1, now_ns() + timeout_ns()) != WAIT_READY) {
		*err = 0;
		close(fd);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &len) == -1)
		*err = errno;
	if (*err != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Try each address in turn; the error shown is that of the last one. */
static int
tcp_connect(void)
{
	struct addrinfo *res = resolve(SOCK_STREAM), *ai;
	int fd = -1, err = 0;

	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next)
		fd = connect_one(ai, &err);
	freeaddrinfo(res);
	if (fd != -1)
		return fd;
	if (err == 0)
		fatalx(EXIT_NETWORK,
		       "timed out after %s s waiting for connection to %s "
		       "port %u",
		       timeout_str(), opts.host, opts.port);
	fatalx(EXIT_NETWORK, "connect to %s port %u: %s", opts.host, opts.port,
	       strerror(err));
}

/*
 * TCP stream mode.  The buffer holds what was read from stdin and not yet
 * echoed back: buf[head..sent) is in flight, buf[sent..tail) not yet sent.
 * Stdin is read only once everything before is sent, so the buffer grows
 * only by what the server holds, which is all we need to check the echo.
 */
struct inflight {
	unsigned char *buf;
	size_t cap;
	size_t head;
	size_t sent;
	size_t tail;
	uint64_t echoed; /* stream offset of buf[head] */
	uint64_t total_sent;
};

static void
inflight_reserve(struct inflight *f, size_t need)
{
	size_t live = f->tail - f->head, cap;
	unsigned char *p;

	if (f->cap - f->tail >= need)
		return;
	if (live + need > INFLIGHT_MAX)
		fatalx(EXIT_NETWORK,
		       "over %zu MiB sent to %s port %u without an echo; "
		       "giving up",
		       INFLIGHT_MAX >> 20, opts.host, opts.port);
	if (f->head > 0) {
		memmove(f->buf, f->buf + f->head, live);
		f->sent -= f->head;
		f->tail = live;
		f->head = 0;
	}
	/*
	 * Keep at least half the buffer free after sliding down, so that
	 * each byte is moved about once however much stays in flight.
	 */
	if (f->cap - f->tail >= need && f->tail <= f->cap / 2)
		return;
	cap = f->cap != 0 ? f->cap : IO_CHUNK * 4;
	while (cap - f->tail < need || f->tail > cap / 2)
		cap *= 2;
	if ((p = realloc(f->buf, cap)) == NULL)
		fatal(EXIT_NETWORK, "out of memory");
	f->buf = p;
	f->cap = cap;
}

/* Read what stdin has; false at end of file. */
static bool
pump_stdin(struct inflight *f)
{
	size_t n;

	inflight_reserve(f, IO_CHUNK);
	n = read_stdin(f->buf + f->tail, IO_CHUNK);
	f->tail += n;
	return n > 0;
}

/* Send what we can; true if anything went. */
static bool
pump_send(int fd, struct inflight *f)
{
	ssize_t n = send(fd, f->buf + f->sent, f->tail - f->sent, MSG_NOSIGNAL);

	if (n >= 0) {
		f->sent += (size_t)n;
		f->total_sent += (uint64_t)n;
		return n > 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return false;
	fatal(EXIT_NETWORK, "send to %s port %u", opts.host, opts.port);
}

enum pump_result { PUMP_IDLE, PUMP_PROGRESS, PUMP_EOF };

/* Receive some echo, pass it to stdout and check it against the input. */
static enum pump_result
pump_echo(int fd, struct inflight *f)
{
	ssize_t r = recv(fd, iobuf, sizeof(iobuf), 0);
	size_t n, owed, i;

	if (r == 0)
		return PUMP_EOF;
	if (r == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return PUMP_IDLE;
		fatal(EXIT_NETWORK, "receive from %s port %u", opts.host,
		      opts.port);
	}
	n = (size_t)r;
	write_stdout(iobuf, n);
	owed = f->sent - f->head;
	i = first_difference(f->buf + f->head, iobuf, n < owed ? n : owed);
	if (i < n && i < owed)
		fatalx(EXIT_MISMATCH, "mismatch at byte %" PRIu64,
		       f->echoed + i + 1);
	if (n > owed)
		fatalx(EXIT_MISMATCH,
		       "long echo: sent %" PRIu64 " bytes, got %" PRIu64
		       " or more",
		       f->total_sent, f->echoed + n);
	f->head += n;
	f->echoed += n;
	return PUMP_PROGRESS;
}

static const char *
stream_wait_reason(const struct inflight *f)
{
	if (f->head < f->sent)
		return "the echo";
	if (f->sent < f->tail)
		return "the server to take more data";
	return "the server to close the connection";
}

static int
stream_tcp(void)
{
	struct inflight f;
	uint64_t deadline = 0;
	bool in_eof = false, shut = false;
	int fd = tcp_connect();

	memset(&f, 0, sizeof(f));
	for (;;) {
		struct pollfd pfd[2];
		nfds_t nfd = 1;
		bool unsent = f.sent < f.tail;

		if (in_eof && !unsent && !shut) {
			/* The server closes once it has echoed everything. */
			if (shutdown(fd, SHUT_WR) == -1)
				fatal(EXIT_NETWORK, "shutdown");
			shut = true;
		}
		pfd[0].fd = fd;
		pfd[0].events = POLLIN | (unsent ? POLLOUT : 0);
		pfd[0].revents = 0;
		if (!in_eof && !unsent) {
			pfd[1].fd = STDIN_FILENO;
			pfd[1].events = POLLIN;
			pfd[1].revents = 0;
			nfd = 2;
		}
		/* A slow stdin is not the server's fault: time what it owes. */
		if (f.head == f.tail && !shut)
			deadline = 0;
		else if (deadline == 0)
			deadline = now_ns() + timeout_ns();
		if (poll_until(pfd, nfd, deadline) != WAIT_READY)
			timed_out(stream_wait_reason(&f));

		/* Reading first sees an early close before a send fails. */
		if (pfd[0].revents & (POLLIN | POLLERR | POLLHUP)) {
			enum pump_result r = pump_echo(fd, &f);

			if (r == PUMP_EOF)
				break;
			if (r == PUMP_PROGRESS)
				deadline = 0;
		}
		if ((pfd[0].revents & POLLOUT) && pump_send(fd, &f))
			deadline = 0;
		if (nfd == 2 && pfd[1].revents != 0 && !pump_stdin(&f))
			in_eof = true;
	}
	close(fd);
	if (f.head < f.sent)
		fatalx(EXIT_MISMATCH,
		       "short echo: sent %" PRIu64 " bytes, got %" PRIu64,
		       f.total_sent, f.echoed);
	if (f.sent < f.tail || !in_eof)
		fatalx(EXIT_MISMATCH,
		       "short echo: the server closed the connection after "
		       "%" PRIu64 " bytes, before the input ended",
		       f.echoed);
	free(f.buf);
	return 0;
}

/*
 * UDP.  The socket is connected, so that only the server's datagrams reach
 * us and an ICMP port unreachable comes back as ECONNREFUSED.
 */
struct udp_peer {
	struct addrinfo *list;
	struct addrinfo *cur;
	int fd;
	bool answered; /* once it answers, this is the right address */
};

/* Connect to the current address or, failing that, a later one. */
static void
udp_connect_from(struct udp_peer *u)
{
	int err = 0, fd;

	for (; u->cur != NULL; u->cur = u->cur->ai_next) {
		if ((fd = open_socket(u->cur)) == -1) {
			err = errno;
			continue;
		}
		if (connect(fd, u->cur->ai_addr, u->cur->ai_addrlen) == 0) {
			u->fd = fd;
			return;
		}
		err = errno;
		close(fd);
	}
	fatalx(EXIT_NETWORK, "connect to %s port %u (udp): %s", opts.host,
	       opts.port, strerror(err));
}

static void
udp_open(struct udp_peer *u)
{
	u->list = resolve(SOCK_DGRAM);
	u->cur = u->list;
	u->fd = -1;
	u->answered = false;
	udp_connect_from(u);
}

static void
udp_close(struct udp_peer *u)
{
	close(u->fd);
	freeaddrinfo(u->list);
}

/*
 * "localhost" often gives ::1 first while the server listens on IPv4 only;
 * a refusal before any answer means this address is the wrong one.
 */
static bool
udp_try_next(struct udp_peer *u)
{
	if (u->answered || u->cur->ai_next == NULL)
		return false;
	close(u->fd);
	u->cur = u->cur->ai_next;
	udp_connect_from(u);
	return true;
}

static _Noreturn void
udp_refused(void)
{
	fatalx(EXIT_NETWORK,
	       "udp to %s port %u: Connection refused (port unreachable)",
	       opts.host, opts.port);
}

enum udp_result { UDP_DONE, UDP_TIMEOUT, UDP_INTERRUPTED, UDP_REFUSED };

static enum udp_result
udp_send(struct udp_peer *u, const unsigned char *msg, size_t len,
         uint64_t deadline)
{
	for (;;) {
		struct pollfd pfd = {u->fd, POLLOUT, 0};
		enum wait_result w;

		if (send(u->fd, msg, len, 0) >= 0)
			return UDP_DONE;
		if (errno == ECONNREFUSED)
			return UDP_REFUSED;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			fatal(EXIT_NETWORK, "send to %s port %u (udp)",
			      opts.host, opts.port);
		if ((w = poll_until(&pfd, 1, deadline)) != WAIT_READY)
			return w == WAIT_TIMEOUT ? UDP_TIMEOUT
			                         : UDP_INTERRUPTED;
	}
}

/* Wait for the next datagram into iobuf. */
static enum udp_result
udp_await(struct udp_peer *u, uint64_t deadline, size_t *len)
{
	for (;;) {
		struct pollfd pfd = {u->fd, POLLIN, 0};
		enum wait_result w = poll_until(&pfd, 1, deadline);
		ssize_t n;

		if (w != WAIT_READY)
			return w == WAIT_TIMEOUT ? UDP_TIMEOUT
			                         : UDP_INTERRUPTED;
		n = recv(u->fd, iobuf, sizeof(iobuf), 0);
		if (n >= 0) {
			u->answered = true;
			*len = (size_t)n;
			return UDP_DONE;
		}
		if (errno == ECONNREFUSED)
			return UDP_REFUSED;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			fatal(EXIT_NETWORK, "receive from %s port %u (udp)",
			      opts.host, opts.port);
	}
}

/*
 * Probes start with a per-run tag and their sequence number, so that a
 * late echo of an earlier probe is recognised instead of being taken for
 * damage; the rest is a pseudo-random pattern seeded by both, so damage is
 * unlikely to go unnoticed.
 */
struct prober {
	uint32_t tag;
	uint32_t seq;
	size_t size;
	unsigned char *probe;   /* the current probe */
	unsigned char *scratch; /* to rebuild earlier ones */
};

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
fill_probe(unsigned char *p, size_t size, uint32_t tag, uint32_t seq)
{
	unsigned char head[PROBE_HEADER];
	uint32_t x = (tag ^ seq * UINT32_C(0x9e3779b9)) | 1; /* never 0 */
	size_t i;

	put32(head, tag);
	put32(head + 4, seq);
	for (i = 0; i < size; i++) {
		if (i < PROBE_HEADER) {
			p[i] = head[i];
			continue;
		}
		x ^= x << 13; /* xorshift32 */
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

static void
prober_init(struct prober *pr)
{
	if (getrandom(&pr->tag, sizeof(pr->tag), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(pr->tag))
		pr->tag = (uint32_t)now_ns() ^ (uint32_t)getpid();
	pr->seq = 0;
	pr->size = opts.size;
	pr->probe = xcalloc(1, pr->size + 1);
	pr->scratch = xcalloc(1, pr->size + 1);
}

static void
prober_next(struct prober *pr)
{
	pr->seq++;
	fill_probe(pr->probe, pr->size, pr->tag, pr->seq);
}

static bool
is_stale_probe(const struct prober *pr, const unsigned char *p, size_t len)
{
	uint32_t seq;

	if (len != pr->size || len < PROBE_HEADER || get32(p) != pr->tag)
		return false;
	seq = get32(p + 4);
	if (seq == 0 || seq >= pr->seq)
		return false;
	fill_probe(pr->scratch, pr->size, pr->tag, seq);
	return memcmp(pr->scratch, p, len) == 0;
}

enum echo_result {
	ECHO_OK,
	ECHO_MISMATCH,
	ECHO_LOST,
	ECHO_CLOSED,
	ECHO_INTERRUPTED
};

/*
 * Send one datagram and wait up to -t for its echo, left in iobuf.  With a
 * prober, late echoes of earlier probes are skipped.
 */
static enum echo_result
udp_roundtrip(struct udp_peer *u, const unsigned char *msg, size_t len,
              const struct prober *pr, size_t *got, uint64_t *rtt)
{
	for (;;) {
		uint64_t t0 = now_ns(), deadline = t0 + timeout_ns();
		enum udp_result r = udp_send(u, msg, len, deadline);

		while (r == UDP_DONE) {
			if ((r = udp_await(u, deadline, got)) != UDP_DONE)
				break;
			*rtt = now_ns() - t0;
			if (*got == len && memcmp(iobuf, msg, len) == 0)
				return ECHO_OK;
			if (pr == NULL || !is_stale_probe(pr, iobuf, *got))
				return ECHO_MISMATCH;
		}
		if (r == UDP_TIMEOUT)
			return ECHO_LOST;
		if (r == UDP_INTERRUPTED)
			return ECHO_INTERRUPTED;
		if (!udp_try_next(u))
			udp_refused();
		/* Start over on the next address. */
	}
}

/* UDP stream mode: each read() from stdin goes as one datagram. */
static int
stream_udp(void)
{
	struct udp_peer u;
	unsigned char *msg = xcalloc(1, opts.size);
	uint64_t dgram = 0, offset = 0, rtt;
	size_t len, got;

	udp_open(&u);
	while ((len = read_stdin(msg, opts.size)) > 0) {
		dgram++;
		switch (udp_roundtrip(&u, msg, len, NULL, &got, &rtt)) {
		case ECHO_OK:
			write_stdout(iobuf, got);
			break;
		case ECHO_MISMATCH:
			write_stdout(iobuf, got);
			report_difference("datagram", dgram, msg, len, iobuf,
			                  got, offset);
			exit(EXIT_MISMATCH);
		default:
			fatalx(EXIT_LOSS,
			       "no echo for datagram %" PRIu64 " within %s s",
			       dgram, timeout_str());
		}
		offset += len;
	}
	udp_close(&u);
	free(msg);
	return 0;
}

struct stats {
	uint64_t sent;
	uint64_t received; /* echoes that came back, intact or not */
	uint64_t mismatched;
	uint64_t *rtt; /* of the intact ones, in ns */
	size_t nrtt;
};

static void
record(struct stats *st, uint32_t seq, enum echo_result r, uint64_t rtt)
{
	st->sent++;
	switch (r) {
	case ECHO_OK:
		st->received++;
		st->rtt[st->nrtt++] = rtt;
		printf("seq=%" PRIu32 " bytes=%zu rtt=%.3f ms\n", seq,
		       opts.size, (double)rtt / (double)NS_PER_MS);
		break;
	case ECHO_MISMATCH:
	case ECHO_CLOSED:
		st->received++;
		st->mismatched++;
		printf("seq=%" PRIu32 " mismatch\n", seq);
		break;
	default:
		printf("seq=%" PRIu32 " lost\n", seq);
		break;
	}
	/* Someone watching a long run wants each line as it happens. */
	fflush(stdout);
}

static int
compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static double
ms(uint64_t ns)
{
	return (double)ns / (double)NS_PER_MS;
}

/* Nearest-rank percentile of a sorted, non-empty array. */
static uint64_t
percentile(const uint64_t *sorted, size_t n, unsigned pct)
{
	size_t rank = (size_t)(((uint64_t)n * pct + 99) / 100);

	return sorted[rank > 0 ? rank - 1 : 0];
}

/* Print the summary; the exit status follows the worst that happened. */
static int
finish(struct stats *st)
{
	uint64_t lost = st->sent - st->received, loss = 0, sum = 0;
	char lossbuf[32];
	size_t i, n = st->nrtt;

	/* In 1/10000 %, so that 1 lost in 10^6 does not show as none. */
	if (st->sent > 0)
		loss = (lost * 1000000 + st->sent / 2) / st->sent;
	printf("--- %s port %u echo statistics ---\n", opts.host, opts.port);
	printf("%" PRIu64 " probes sent, %" PRIu64 " received, %s%% loss",
	       st->sent, st->received,
	       format_decimal(loss, 4, lossbuf, sizeof(lossbuf)));
	if (st->mismatched > 0)
		printf(", %" PRIu64 " mismatched", st->mismatched);
	printf("\n");
	if (n == 0) {
		printf("rtt n/a\n");
	} else {
		qsort(st->rtt, n, sizeof(st->rtt[0]), compare_u64);
		for (i = 0; i < n; i++)
			sum += st->rtt[i];
		printf("rtt min/avg/p50/p99/max = %.3f/%.3f/%.3f/%.3f/%.3f "
		       "ms\n",
		       ms(st->rtt[0]), ms(sum) / (double)n,
		       ms(percentile(st->rtt, n, 50)),
		       ms(percentile(st->rtt, n, 99)), ms(st->rtt[n - 1]));
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		fatal(EXIT_NETWORK, "write to stdout");
	free(st->rtt);
	if (st->mismatched > 0)
		return EXIT_MISMATCH;
	return lost > 0 ? EXIT_LOSS : 0;
}

static void
stats_init(struct stats *st)
{
	memset(st, 0, sizeof(*st));
	st->rtt = xcalloc(opts.count, sizeof(st->rtt[0]));
}

static int
probe_udp(void)
{
	struct udp_peer u;
	struct prober pr;
	struct stats st;
	enum echo_result r;
	uint64_t rtt = 0;
	size_t got;

	udp_open(&u);
	prober_init(&pr);
	stats_init(&st);
	catch_sigint();
	while (pr.seq < opts.count) {
		prober_next(&pr);
		r = udp_roundtrip(&u, pr.probe, pr.size, &pr, &got, &rtt);
		if (r == ECHO_INTERRUPTED)
			break;
		if (r == ECHO_MISMATCH)
			report_difference("probe", pr.seq, pr.probe, pr.size,
			                  iobuf, got, 0);
		record(&st, pr.seq, r, rtt);
	}
	udp_close(&u);
	free(pr.probe);
	free(pr.scratch);
	return finish(&st);
}

/*
 * Write one probe and read back its echo, both at once so that a probe
 * larger than the socket buffers cannot deadlock.  Exactly the probe's
 * length is read, so that the stream stays in step after a mismatch.
 */
static enum echo_result
tcp_roundtrip(int fd, const struct prober *pr, uint64_t *rtt)
{
	uint64_t t0 = now_ns(), deadline = t0 + timeout_ns();
	size_t woff = 0, roff = 0, bad = SIZE_MAX, want, i;
	ssize_t n;

	while (roff < pr->size) {
		struct pollfd pfd = {fd, POLLIN, 0};
		enum wait_result w;

		if (woff < pr->size)
			pfd.events |= POLLOUT;
		if ((w = poll_until(&pfd, 1, deadline)) != WAIT_READY)
			return w == WAIT_TIMEOUT ? ECHO_LOST : ECHO_INTERRUPTED;
		if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
			want = pr->size - roff;
			if (want > sizeof(iobuf))
				want = sizeof(iobuf);
			n = recv(fd, iobuf, want, 0);
			if (n == 0) {
				warnx("short echo: sent %zu bytes, got %zu "
				      "(probe %" PRIu32 ")",
				      pr->size, roff, pr->seq);
				return ECHO_CLOSED;
			}
			if (n > 0) {
				i = first_difference(pr->probe + roff, iobuf,
				                     (size_t)n);
				if (bad == SIZE_MAX && i < (size_t)n)
					bad = roff + i;
				roff += (size_t)n;
				deadline = now_ns() + timeout_ns();
			} else if (errno != EAGAIN && errno != EWOULDBLOCK &&
			           errno != EINTR) {
				fatal(EXIT_NETWORK, "receive from %s port %u",
				      opts.host, opts.port);
			}
		}
		if (woff < pr->size && (pfd.revents & POLLOUT)) {
			n = send(fd, pr->probe + woff, pr->size - woff,
			         MSG_NOSIGNAL);
			if (n > 0) {
				woff += (size_t)n;
				deadline = now_ns() + timeout_ns();
			} else if (n == -1 && errno != EAGAIN &&
			           errno != EWOULDBLOCK && errno != EINTR) {
				fatal(EXIT_NETWORK, "send to %s port %u",
				      opts.host, opts.port);
			}
		}
	}
	*rtt = now_ns() - t0;
	if (bad == SIZE_MAX)
		return ECHO_OK;
	warnx("mismatch at byte %zu (probe %" PRIu32 ")", bad + 1, pr->seq);
	return ECHO_MISMATCH;
}

static int
probe_tcp(void)
{
	struct prober pr;
	struct stats st;
	enum echo_result r;
	uint64_t rtt = 0;
	int fd = tcp_connect(), one = 1;

	/* Each probe waits for its echo: Nagle's algorithm only adds delay. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		fatal(EXIT_NETWORK, "setsockopt TCP_NODELAY");
	prober_init(&pr);
	stats_init(&st);
	catch_sigint();
	while (pr.seq < opts.count) {
		prober_next(&pr);
		r = tcp_roundtrip(fd, &pr, &rtt);
		if (r == ECHO_INTERRUPTED)
			break;
		record(&st, pr.seq, r, rtt);
		if (r == ECHO_CLOSED)
			break;
		if (r == ECHO_LOST) {
			/*
			 * Its echo may still come and would be read as the
			 * next probe's: the stream is out of step for good.
			 */
			warnx("timed out after %s s waiting for the echo of "
			      "probe %" PRIu32 "; stopping",
			      timeout_str(), pr.seq);
			break;
		}
	}
	close(fd);
	free(pr.probe);
	free(pr.scratch);
	return finish(&st);
}

int
main(int argc, char **argv)
{
	keep_std_fds_open();
	/* A closed connection must be an error we can report, not death. */
	signal(SIGPIPE, SIG_IGN);
	parse_args(argc, argv);
	if (opts.count > 0)
		return opts.udp ? probe_udp() : probe_tcp();
	return opts.udp ? stream_udp() : stream_tcp();
}
