/* client/probe_tcp: -n, timed probes on one TCP connection. */
#include "modes.h"

#include "io.h"
#include "net.h"
#include "options.h"
#include "probe.h"
#include "stats.h"

#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <unistd.h>

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

int
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
		stats_record(&st, pr.seq, r, rtt);
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
	prober_free(&pr);
	return stats_finish(&st);
}
