/* loop: handlers live in an fd-indexed table. Each registration of an fd
 * gets a new generation, carried in its epoll events beside the fd: when a
 * handler closes another fd during a batch and the number is reused at
 * once (accept), the old fd's pending events are dropped, not delivered to
 * the new handler. */
#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define BATCH 128

struct handler {
	loop_fn fn; /* NULL: not watched */
	void *arg;
	uint32_t events;
	uint32_t gen; /* bumped by each loop_add of this fd number */
};

struct loop {
	int epfd;
	int maxfd;
	int stopping;
	struct handler *handlers;
	unsigned tick_period;
	tick_fn tick;
	void *tick_arg;
};

/* An epoll event's tag: the fd and the generation of its registration. */
static uint64_t
tag(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct loop *
loop_new(int maxfd)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->handlers = calloc((size_t)maxfd, sizeof(*l->handlers));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->handlers == NULL || l->epfd < 0) {
		loop_free(l);
		return NULL;
	}
	l->maxfd = maxfd;
	return l;
}

void
loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	if (l->epfd >= 0)
		close(l->epfd);
	free(l->handlers);
	free(l);
}

int
loop_add(struct loop *l, int fd, uint32_t events, loop_fn fn, void *arg)
{
	struct epoll_event ev = {.events = events};
	uint32_t gen;

	if (fd < 0 || fd >= l->maxfd) {
		errno = EMFILE;
		return -1;
	}
	gen = l->handlers[fd].gen + 1;
	ev.data.u64 = tag(fd, gen);
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		return -1;
	l->handlers[fd] = (struct handler){fn, arg, events, gen};
	return 0;
}

int
loop_set_events(struct loop *l, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events,
	                         .data.u64 = tag(fd, l->handlers[fd].gen)};

	if (l->handlers[fd].events == events)
		return 0;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
		return -1;
	l->handlers[fd].events = events;
	return 0;
}

uint32_t
loop_events(const struct loop *l, int fd)
{
	if (fd < 0 || fd >= l->maxfd || l->handlers[fd].fn == NULL)
		return 0;
	return l->handlers[fd].events;
}

void
loop_del(struct loop *l, int fd)
{
	if (fd < 0 || fd >= l->maxfd || l->handlers[fd].fn == NULL)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	l->handlers[fd] = (struct handler){.gen = l->handlers[fd].gen};
}

void
loop_set_tick(struct loop *l, unsigned period_ms, tick_fn fn, void *arg)
{
	l->tick_period = period_ms;
	l->tick = fn;
	l->tick_arg = arg;
}

void
loop_stop(struct loop *l)
{
	l->stopping = 1;
}

int
loop_run(struct loop *l)
{
	struct epoll_event events[BATCH];
	uint64_t next_tick = now_ms();

	l->stopping = 0;
	while (!l->stopping) {
		uint64_t now = now_ms();
		int timeout = -1, n;

		if (l->tick != NULL) {
			if (now >= next_tick) {
				l->tick(l, now, l->tick_arg);
				next_tick = now + l->tick_period;
				if (l->stopping)
					break;
			}
			timeout = (int)(next_tick - now);
		}
		n = epoll_wait(l->epfd, events, BATCH, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (int i = 0; i < n && !l->stopping; i++) {
			int fd = (int)(uint32_t)events[i].data.u64;
			struct handler *h = &l->handlers[fd];

			/* Another generation: fd was closed, and maybe reused,
			 * earlier in this batch. */
			if (h->fn != NULL &&
			    h->gen == (uint32_t)(events[i].data.u64 >> 32))
				h->fn(l, fd, events[i].events, h->arg);
		}
	}
	return 0;
}

int
loop_signalfd(const int *signals, size_t n)
{
	sigset_t mask;

	sigemptyset(&mask);
	for (size_t i = 0; i < n; i++)
		sigaddset(&mask, signals[i]);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0)
		return -1;
	return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

size_t
loop_fd_bytes(void)
{
	return sizeof(struct handler) + sizeof(struct epoll_event);
}
