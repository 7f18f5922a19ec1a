/* bench/idle: hold connections open for an RSS reading. */
#include "modes.h"
#include "common.h"
#include "net.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static void
raise_fd_limit(rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
		rl.rlim_cur = need;
		if (rl.rlim_max < need)
			rl.rlim_max = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			die(EXIT_NETWORK, "cannot raise RLIMIT_NOFILE to %llu",
			    (unsigned long long)need);
	}
}

int
run_idle(void)
{
	int *fds = calloc(opt.conns, sizeof(int));
	unsigned open = 0, failed = 0;
	char c;

	if (fds == NULL)
		die(EXIT_NETWORK, "calloc");
	raise_fd_limit((rlim_t)opt.conns + 64);
	for (unsigned i = 0; i < opt.conns && failed < 16; i++) {
		unsigned char b = (unsigned char)('a' + i % 26), e = 0;
		int fd = open_socket(SOCK_STREAM, i);
		/* Served means echoed: accepted, not only in the backlog. */
		if (fd >= 0 && send(fd, &b, 1, MSG_NOSIGNAL) == 1 &&
		    recv_all(fd, &e, 1, 2000) && e == b) {
			fds[open++] = fd;
			continue;
		}
		if (fd >= 0)
			close(fd);
		failed++;
	}
	printf("mode=idle asked=%u open=%u failed=%u\n", opt.conns, open,
	       failed);
	fflush(stdout);
	while (read(STDIN_FILENO, &c, 1) > 0)
		;
	for (unsigned i = 0; i < open; i++)
		close(fds[i]);
	return 0;
}
