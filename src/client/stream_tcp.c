/* client/stream_tcp: stdin through a TCP echo service to stdout. */
#include "modes.h"

#include "io.h"
#include "net.h"
#include "options.h"

#include <sys/socket.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INFLIGHT_MAX ((size_t)64 * 1024 * 1024)

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

int
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
