/* bench/tcp: verified stream throughput. */
#include "modes.h"
#include "common.h"
#include "net.h"
#include "options.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static unsigned char rxbuf[MAX_CHUNK];

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

int
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
