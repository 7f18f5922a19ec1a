/* client/io: errors, the clock, poll() with a deadline, stdin and stdout. */
#include "io.h"

#include "options.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

unsigned char iobuf[IO_CHUNK];

/* Set by SIGINT in probe mode, so that the summary still gets printed. */
static volatile sig_atomic_t interrupted;

void
vwarn(const char *fmt, va_list ap, const char *reason)
{
	fputs("echo-client: ", stderr);
	vfprintf(stderr, fmt, ap);
	if (reason != NULL)
		fprintf(stderr, ": %s", reason);
	fputc('\n', stderr);
}

void
warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap, NULL);
	va_end(ap);
}

_Noreturn void
fatalx(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap, NULL);
	va_end(ap);
	exit(status);
}

/* Like fatalx(), and says why with errno. */
_Noreturn void
fatal(int status, const char *fmt, ...)
{
	const char *reason = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap, reason);
	va_end(ap);
	exit(status);
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		fatal(EXIT_NETWORK, "out of memory");
	return p;
}

uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

uint64_t
timeout_ns(void)
{
	return opts.timeout_ms * NS_PER_MS;
}

/* Print v / 10^digits without trailing zeros: 2000,3 is "2", 500,3 "0.5". */
const char *
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

const char *
timeout_str(void)
{
	static char buf[32];

	return format_decimal(opts.timeout_ms, 3, buf, sizeof(buf));
}

_Noreturn void
timed_out(const char *what)
{
	fatalx(EXIT_NETWORK, "timed out after %s s waiting for %s",
	       timeout_str(), what);
}

/*
 * Sockets must not land on 0, 1 or 2 if we were started with one closed:
 * we would then read our own socket as stdin.
 */
void
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
void
catch_sigint(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint; /* no SA_RESTART: poll() must return */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) == -1)
		fatal(EXIT_NETWORK, "sigaction");
}

/* poll() until something is ready or the deadline (0: none) has passed. */
enum wait_result
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
void
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
size_t
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
size_t
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
void
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
