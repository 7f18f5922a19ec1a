/* Unit tests for src/loop.c: registration, level triggering, the tick,
 * and the fd-reuse rule (events of a closed fd never reach a handler
 * registered on the same number within the same batch). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define MAXFD 1024

/* A pipe whose read end is readable (one byte in it). */
static int
readable_fd(void)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	close(p[1]);
	return p[0];
}

struct reuse {
	int a, b;     /* two readable fds, both pending in the first batch */
	int first;    /* the one whose handler ran first */
	int reused;   /* the other's number, now an eventfd */
	int batches;  /* calls of the first fd's handler */
	int new_hits; /* calls of the eventfd's handler */
	int new_hit_batch;
};

static void
on_new(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct reuse *r = arg;
	uint64_t v;

	(void)events;
	assert_int_equal(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
	r->new_hits++;
	r->new_hit_batch = r->batches;
	loop_stop(l);
}

/*
 * First call: close the other fd and register an eventfd (nothing to
 * read) on the very same number; its pending EPOLLIN from this batch is
 * the old fd's and must not reach on_new. Second call (next batch): make
 * the eventfd readable, so on_new runs once, legitimately.
 */
static void
on_pipe(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct reuse *r = arg;

	(void)events;
	if (r->first == -1) {
		int other = fd == r->a ? r->b : r->a, e;

		r->first = fd;
		loop_del(l, other);
		close(other);
		e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		assert_true(e >= 0);
		if (e != other) {
			assert_int_equal(dup2(e, other), other);
			close(e);
		}
		r->reused = other;
		assert_int_equal(loop_add(l, other, EPOLLIN, on_new, r), 0);
	}
	assert_int_equal(fd, r->first);
	if (++r->batches == 2) {
		uint64_t one = 1;

		assert_int_equal(write(r->reused, &one, sizeof(one)),
		                 (ssize_t)sizeof(one));
	}
	assert_true(r->batches <= 3);
}

static void
test_fd_reuse_drops_stale_events(void **state)
{
	struct loop *l = loop_new(MAXFD);
	struct reuse r = {.first = -1, .reused = -1};

	(void)state;
	assert_non_null(l);
	r.a = readable_fd();
	r.b = readable_fd();
	assert_int_equal(loop_add(l, r.a, EPOLLIN, on_pipe, &r), 0);
	assert_int_equal(loop_add(l, r.b, EPOLLIN, on_pipe, &r), 0);
	assert_int_equal(loop_run(l), 0);
	/* Not in the first batch (the stale event), once in the second. */
	assert_int_equal(r.new_hits, 1);
	assert_true(r.new_hit_batch >= 2);
	loop_free(l);
	close(r.first);
	close(r.reused);
}

struct closer {
	int victim; /* -1 once closed */
	int victim_calls, calls;
};

static void
on_victim(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct closer *c = arg;

	(void)l, (void)events;
	assert_int_equal(fd, c->victim); /* never after its close */
	c->victim_calls++;
}

/* First call: close the victim; second call (next batch): stop. */
static void
on_closer(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct closer *c = arg;

	(void)fd, (void)events;
	if (c->victim != -1) {
		loop_del(l, c->victim);
		close(c->victim);
		c->victim = -1;
	}
	if (++c->calls == 2)
		loop_stop(l);
}

/* Without reuse too: a fd deleted mid-batch gets no more events. */
static void
test_del_drops_pending_events(void **state)
{
	struct loop *l = loop_new(MAXFD);
	struct closer c = {0};
	int a = readable_fd(), b = readable_fd();

	(void)state;
	c.victim = b;
	assert_int_equal(loop_add(l, a, EPOLLIN, on_closer, &c), 0);
	assert_int_equal(loop_add(l, b, EPOLLIN, on_victim, &c), 0);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(c.calls, 2);
	/* b ran before a in the first batch, or never. */
	assert_true(c.victim_calls <= 1);
	assert_int_equal(loop_events(l, b), 0);
	loop_free(l);
	close(a);
}

static void
count_calls(struct loop *l, int fd, uint32_t events, void *arg)
{
	int *n = arg;

	(void)fd;
	assert_true(events & EPOLLIN);
	if (++*n == 3)
		loop_stop(l);
}

/* Level-triggered: an fd left readable is reported batch after batch. */
static void
test_level_triggered(void **state)
{
	struct loop *l = loop_new(MAXFD);
	int fd = readable_fd(), n = 0;

	(void)state;
	assert_int_equal(loop_add(l, fd, EPOLLIN, count_calls, &n), 0);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(n, 3);
	loop_free(l);
	close(fd);
}

static void
test_registration(void **state)
{
	struct loop *l = loop_new(MAXFD);
	int fd = readable_fd(), n = 0;

	(void)state;
	assert_int_equal(loop_events(l, fd), 0);
	assert_int_equal(loop_add(l, fd, EPOLLIN, count_calls, &n), 0);
	assert_int_equal(loop_events(l, fd), EPOLLIN);
	assert_int_equal(loop_set_events(l, fd, EPOLLOUT), 0);
	assert_int_equal(loop_events(l, fd), EPOLLOUT);
	/* Twice on one fd: epoll refuses, the first handler stays. */
	assert_int_equal(loop_add(l, fd, EPOLLIN, count_calls, &n), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(loop_events(l, fd), EPOLLOUT);
	loop_del(l, fd);
	assert_int_equal(loop_events(l, fd), 0);
	loop_del(l, fd); /* twice is harmless */
	/* Outside the table: refused, not written past its end. */
	errno = 0;
	assert_int_equal(loop_add(l, MAXFD, EPOLLIN, count_calls, &n), -1);
	assert_int_equal(errno, EMFILE);
	assert_int_equal(loop_add(l, -1, EPOLLIN, count_calls, &n), -1);
	assert_int_equal(loop_events(l, MAXFD), 0);
	loop_free(l);
	close(fd);
}

struct ticks {
	int n;
	uint64_t first, last;
};

static void
on_tick(struct loop *l, uint64_t now, void *arg)
{
	struct ticks *t = arg;

	if (t->n++ == 0)
		t->first = now;
	t->last = now;
	if (t->n == 3)
		loop_stop(l);
}

/* The tick runs at once, then every period; loop_stop from it ends the
 * run before epoll_wait. */
static void
test_tick(void **state)
{
	struct loop *l = loop_new(MAXFD);
	struct ticks t = {0};
	uint64_t start = now_ms();

	(void)state;
	loop_set_tick(l, 20, on_tick, &t);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(t.n, 3);
	assert_true(t.first - start < 20);
	assert_true(t.last - t.first >= 40);
	loop_free(l);
}

/* A blocked signal arrives through the fd, not as a handler call. */
static void
test_signalfd(void **state)
{
	static const int signals[] = {SIGUSR2, SIGWINCH};
	struct signalfd_siginfo si;
	sigset_t now;
	int fd = loop_signalfd(signals, 2);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(sigprocmask(SIG_BLOCK, NULL, &now), 0);
	assert_true(sigismember(&now, SIGUSR2) && sigismember(&now, SIGWINCH));
	/* Nothing yet: non-blocking. */
	assert_int_equal(read(fd, &si, sizeof(si)), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(raise(SIGUSR2), 0); /* would end the test if not */
	assert_int_equal(read(fd, &si, sizeof(si)), (ssize_t)sizeof(si));
	assert_int_equal(si.ssi_signo, SIGUSR2);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fd_reuse_drops_stale_events),
	    cmocka_unit_test(test_del_drops_pending_events),
	    cmocka_unit_test(test_level_triggered),
	    cmocka_unit_test(test_registration),
	    cmocka_unit_test(test_tick),
	    cmocka_unit_test(test_signalfd),
	};

	return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
