/* Unit tests for src/landlock.c: a child that applies only the Landlock
 * ruleset can no longer open a file, connect over TCP or, where the ABI
 * scopes signals, signal its parent. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "landlock.h"
#include "privdrop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
	ALL_DENIED = 0,
	OPEN_WORKED = 1,
	CONNECT_WORKED = 2,
	KILL_WORKED = 3,
	SETUP_FAILED = 4
};

/* In the child: everything Landlock should stop, one exit code per leak. */
static int
probe(int abi, const struct sockaddr_in *listener)
{
	char err[256];
	int fd, s;

	if (set_no_new_privs(err, sizeof(err)) != 0 ||
	    landlock_restrict(err, sizeof(err)) != abi)
		return SETUP_FAILED;
	fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
	if (fd >= 0 || errno != EACCES)
		return OPEN_WORKED;
	if (abi >= 4) {
		s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0 ||
		    connect(s, (const struct sockaddr *)listener,
		            sizeof(*listener)) == 0 ||
		    errno != EACCES)
			return CONNECT_WORKED;
	}
	if (abi >= 6 && (kill(getppid(), 0) == 0 || errno != EPERM))
		return KILL_WORKED;
	return ALL_DENIED;
}

static void
test_ruleset_denies_files_tcp_and_signals(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int abi = landlock_abi(), lfd, status;
	pid_t pid;

	(void)state;
	if (abi <= 0)
		skip(); /* no Landlock in this kernel: nothing to test */
	/* Before the test: all of it works without the ruleset. */
	assert_int_equal(access("/etc/hostname", R_OK), 0);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(probe(abi, &sin));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(lfd);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), ALL_DENIED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ruleset_denies_files_tcp_and_signals),
	};

	return cmocka_run_group_tests_name("landlock", tests, NULL, NULL);
}
