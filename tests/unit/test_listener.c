/* Unit tests for src/listener.c's accepting: how accept4's failures are
 * sorted, and a paused listener's way out of the loop and back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "listener.h"
#include "loop.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 1024

/* A listening TCP socket on a loopback port the kernel picks, and a
 * connection to it, queued. */
static int
listening_with_one_queued(int *client)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*client = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*client >= 0);
	assert_int_equal(connect(*client, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void
ignore(struct loop *l, int fd, uint32_t events, void *arg)
{
	(void)l, (void)fd, (void)events, (void)arg;
}

static void
test_accept_sorts_failures(void **state)
{
	struct sockaddr_storage peer;
	enum listener_error e = LISTENER_BROKEN;
	struct rlimit saved, none;
	int client, fd = listening_with_one_queued(&client), c;

	(void)state;
	/* Out of descriptors: the queued connection waits. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	c = dup(0); /* the lowest free number: none below it is free */
	assert_true(c >= 0);
	close(c);
	none = saved;
	none.rlim_cur = (rlim_t)c;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
	assert_int_equal(listener_accept(fd, &peer, &e), -1);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_int_equal(e, LISTENER_EXHAUSTED);
	/* Then it is accepted, and the queue is empty. */
	c = listener_accept(fd, &peer, &e);
	assert_true(c >= 0);
	assert_int_equal(peer.ss_family, AF_INET);
	assert_int_equal(listener_accept(fd, &peer, &e), -1);
	assert_int_equal(e, LISTENER_EMPTY);
	close(c);
	/* Not a listening socket: the listener's own trouble. */
	assert_int_equal(listener_accept(client, &peer, &e), -1);
	assert_int_equal(e, LISTENER_BROKEN);
	close(client);
	close(fd);
}

static void
test_pause_and_resume(void **state)
{
	struct listener_pauses p = {.n = 0};
	struct loop *l = loop_new(MAXFD);
	int client, fd = listening_with_one_queued(&client);

	(void)state;
	assert_non_null(l);
	assert_int_equal(
	    loop_add(l, fd, EPOLLIN | EPOLLEXCLUSIVE, ignore, NULL), 0);
	listener_pause(&p, l, fd);
	assert_int_equal(p.n, 1);
	assert_int_equal(loop_events(l, fd), 0);
	listener_resume(&p, l, ignore, NULL);
	assert_int_equal(p.n, 0);
	assert_int_equal(loop_events(l, fd), EPOLLIN | EPOLLEXCLUSIVE);
	loop_free(l);
	close(client);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accept_sorts_failures),
	    cmocka_unit_test(test_pause_and_resume),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
