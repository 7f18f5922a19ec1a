/* client/net: resolving, connecting, and UDP round trips. */
#include "net.h"

#include "io.h"
#include "options.h"

#include <sys/socket.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

struct addrinfo *
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

int
open_socket(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family,
	                ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
	                ai->ai_protocol);

	/* -b: the source address; the kernel picks the port. */
	if (fd >= 0 && opts.source_len > 0 &&
	    bind(fd, (const struct sockaddr *)&opts.source, opts.source_len) !=
	        0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
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
int
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

void
udp_open(struct udp_peer *u)
{
	u->list = resolve(SOCK_DGRAM);
	u->cur = u->list;
	u->fd = -1;
	u->answered = false;
	udp_connect_from(u);
}

void
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

enum echo_result
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
