/*
 * fuzz_sockact: sockact_parse, the pure check of LISTEN_PID / LISTEN_FDS,
 * and sockact_take over real sockets.
 *
 * Input: a flag byte, then "PID\0FDS" (the FDS part runs to the end; a
 * missing NUL leaves FDS empty). Flags: bit 0 LISTEN_PID unset (NULL),
 * bit 1 LISTEN_FDS unset, bit 2 "self" is our real pid (else it is the
 * next 4 bytes, so the fuzzer can match PID without knowing it).
 *
 * Invariants: success with nfds > 0 implies 1..SOCKACT_MAX_FDS, LISTEN_FDS
 * set, and LISTEN_PID a decimal number equal to self (never success for
 * another pid); LISTEN_FDS unset is always success with nfds == 0; every
 * error leaves a non-empty, NUL-terminated reason.
 *
 * Flag bit 3 instead asks for sockact_take: the next byte holds the count
 * of passed fds (bits 0-3, at most MAX_TAKE), bit 4 a wrong LISTEN_PID,
 * bit 5 LISTEN_FDS unset; then one byte per fd picks its kind (enum kind:
 * listening TCP, bound UDP, IPv6 with or without V6ONLY, a unix socket, a
 * pipe, UDP-Lite, ...; all on loopback with a kernel-chosen port). The
 * fds are moved to 3, 4, ... for the call and put back after. Invariants:
 * sockact_take succeeds exactly when every kind is one systemd may pass
 * us, takes them in order with their type and family, leaves each one
 * non-blocking and close-on-exec, names it "tcp ..." or "udp ...", stops
 * at the first bad one with a reason, and unsets the variables.
 */
#include "sockact.h"

#include "fuzz.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_TEXT 255
#define MAX_TAKE 8
#define SAVED_FD 100 /* where fds 3.. wait while the test ones stand in */

enum kind {
	TCP4_LISTENING,
	TCP6_LISTENING,
	UDP4_BOUND,
	UDP6_BOUND,
	UDP6_DUAL,    /* bad: no IPV6_V6ONLY */
	TCP4_BOUND,   /* bad: not listening */
	TCP6_DUAL,    /* bad: listening without IPV6_V6ONLY */
	UDP4_UNBOUND, /* bad: no port */
	UNIX_STREAM,  /* bad: not IPv4 or IPv6 */
	PIPE,         /* bad: not a socket */
	UDPLITE4,     /* bad: neither TCP nor UDP */
	NKINDS
};

static bool
kind_good(enum kind k)
{
	return k <= UDP6_BOUND;
}

/* A socket (or pipe) of kind k, or -1. */
static int
make_fd(enum kind k)
{
	bool v6 = k == TCP6_LISTENING || k == UDP6_BOUND || k == UDP6_DUAL ||
	          k == TCP6_DUAL;
	bool stream = k == TCP4_LISTENING || k == TCP6_LISTENING ||
	              k == TCP4_BOUND || k == TCP6_DUAL;
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	struct sockaddr_in a4 = {.sin_family = AF_INET};
	int fd, on = 1, off = 0, p[2];

	if (k == PIPE) {
		if (pipe(p) != 0)
			return -1;
		close(p[1]);
		return p[0];
	}
	if (k == UNIX_STREAM)
		return socket(AF_UNIX, SOCK_STREAM, 0);
	fd = socket(v6 ? AF_INET6 : AF_INET, stream ? SOCK_STREAM : SOCK_DGRAM,
	            k == UDPLITE4 ? IPPROTO_UDPLITE : 0);
	if (fd < 0 || k == UDP4_UNBOUND)
		return fd;
	a6.sin6_addr = in6addr_loopback;
	/* Bound to [::1], the kernel sets IPV6_V6ONLY itself: the dual ones
	 * take the v4-mapped loopback. */
	if (k == UDP6_DUAL || k == TCP6_DUAL)
		CHECK(inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr) ==
		      1);
	a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (v6)
		CHECK(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
		                 k == UDP6_DUAL || k == TCP6_DUAL ? &off : &on,
		                 sizeof(on)) == 0);
	CHECK(v6 ? bind(fd, (struct sockaddr *)&a6, sizeof(a6)) == 0
	         : bind(fd, (struct sockaddr *)&a4, sizeof(a4)) == 0);
	if (stream && k != TCP4_BOUND)
		CHECK(listen(fd, 1) == 0);
	return fd;
}

static void
check_taken(const struct listener *l, int fd, enum kind k)
{
	bool v6 = k == TCP6_LISTENING || k == UDP6_BOUND;
	bool stream = k == TCP4_LISTENING || k == TCP6_LISTENING;
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);

	CHECK(l->fd == fd);
	CHECK(l->type == (stream ? SOCK_STREAM : SOCK_DGRAM));
	CHECK(l->family == (v6 ? AF_INET6 : AF_INET));
	CHECK(l->worker == LISTENER_SHARED);
	CHECK(strncmp(l->name, stream ? "tcp " : "udp ", 4) == 0);
	CHECK(strstr(l->name, v6 ? "[::1]:" : "127.0.0.1:") != NULL);
	CHECK(fl >= 0 && (fl & O_NONBLOCK) && fdfl >= 0 && (fdfl & FD_CLOEXEC));
}

/* sockact_take over the fds data describes (see the top). */
static void
take(const uint8_t *data, size_t size)
{
	enum kind kinds[MAX_TAKE];
	struct listen_set set = {NULL, 12345};
	char err[128], text[16];
	unsigned n, want_ok, saved = 0;
	bool wrong_pid, unset;
	int rc;

	if (size < 1)
		return;
	n = data[0] & 15;
	wrong_pid = data[0] & 16;
	unset = data[0] & 32;
	if (n > MAX_TAKE || size - 1 < n)
		return;
	for (unsigned i = 0; i < n; i++)
		kinds[i] = (enum kind)(data[1 + i] % NKINDS);

	/* The stand-ins, then fds 3.. moved out of their way. */
	int made[MAX_TAKE];
	int saved_flags[MAX_TAKE];
	for (unsigned i = 0; i < n; i++) {
		int fd = make_fd(kinds[i]);
		CHECK(fd >= 0);
		made[i] = fcntl(fd, F_DUPFD_CLOEXEC, SAVED_FD + MAX_TAKE);
		CHECK(made[i] >= SAVED_FD + MAX_TAKE);
		close(fd);
	}
	for (unsigned i = 0; i < n; i++) {
		int fd = SOCKACT_FIRST_FD + (int)i;
		if ((saved_flags[i] = fcntl(fd, F_GETFD)) >= 0) {
			CHECK(dup2(fd, SAVED_FD + (int)i) == SAVED_FD + (int)i);
			saved |= 1u << i;
		}
		CHECK(dup2(made[i], fd) == fd);
		close(made[i]);
	}

	snprintf(text, sizeof(text), "%d", (int)getpid() + (wrong_pid ? 1 : 0));
	CHECK(setenv("LISTEN_PID", text, 1) == 0);
	snprintf(text, sizeof(text), "%u", n);
	if (unset)
		unsetenv("LISTEN_FDS");
	else
		CHECK(setenv("LISTEN_FDS", n ? text : "0", 1) == 0);
	CHECK(setenv("LISTEN_FDNAMES", "echo", 1) == 0);
	/* What echod counts before taking them: the count, if valid. */
	CHECK(sockact_passed() == (unset || wrong_pid ? 0 : n));
	memset(err, 0, sizeof(err));
	rc = sockact_take(&set, err, sizeof(err));

	for (want_ok = 0; want_ok < n && kind_good(kinds[want_ok]); want_ok++)
		;
	if (unset) {
		CHECK(rc == 0 && set.n == 0 && set.l == NULL);
	} else if (wrong_pid || n == 0) {
		/* LISTEN_FDS=0 is not a count: an error like a wrong pid. */
		CHECK(rc == -1 && set.n == 0 && set.l == NULL);
		CHECK(err[0] != '\0');
	} else if (want_ok == n) {
		CHECK(rc == 1 && set.n == n);
		for (unsigned i = 0; i < n; i++)
			check_taken(&set.l[i], SOCKACT_FIRST_FD + (int)i,
			            kinds[i]);
	} else {
		CHECK(rc == -1 && set.n == want_ok);
		CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)));
		for (unsigned i = 0; i < want_ok; i++)
			check_taken(&set.l[i], SOCKACT_FIRST_FD + (int)i,
			            kinds[i]);
	}
	/* Once the variables are read as valid, they are gone. */
	if (unset || (!wrong_pid && n > 0))
		CHECK(getenv("LISTEN_PID") == NULL &&
		      getenv("LISTEN_FDS") == NULL &&
		      getenv("LISTEN_FDNAMES") == NULL);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	free(set.l);

	for (unsigned i = 0; i < n; i++) {
		int fd = SOCKACT_FIRST_FD + (int)i;
		if (saved & (1u << i)) {
			CHECK(dup2(SAVED_FD + (int)i, fd) == fd);
			CHECK(fcntl(fd, F_SETFD, saved_flags[i]) == 0);
			close(SAVED_FD + (int)i);
		} else {
			close(fd);
		}
	}
}

/* Independent reading of a pid: digits only, 1..INT32_MAX. */
static bool
ref_pid(const char *s, int64_t *out)
{
	int64_t v = 0;

	if (*s == '\0')
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (*s - '0');
		if (v > INT32_MAX)
			return false;
	}
	*out = v;
	return v != 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[MAX_TEXT + 2], err[128];
	const char *pid_s, *fds_s;
	unsigned nfds = 12345;
	pid_t self;
	uint8_t flags;
	size_t n;
	int rc;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	if (flags & 8) {
		take(data, size);
		return 0;
	}
	if (flags & 4) {
		self = getpid();
	} else {
		uint32_t v = 0;
		if (size < 4)
			return 0;
		memcpy(&v, data, 4);
		self = (pid_t)(v & 0x7fffffff);
		data += 4;
		size -= 4;
	}
	n = size < MAX_TEXT ? size : MAX_TEXT;
	memcpy(text, data, n);
	text[n] = '\0';
	text[n + 1] = '\0';
	pid_s = text;
	fds_s = text + strlen(text) + 1; /* "" when there was no NUL */
	if (flags & 1)
		pid_s = NULL;
	if (flags & 2)
		fds_s = NULL;

	memset(err, 0, sizeof(err));
	rc = sockact_parse(pid_s, fds_s, self, &nfds, err, sizeof(err));
	CHECK(rc == 0 || rc == -1);
	if (fds_s == NULL) {
		CHECK(rc == 0 && nfds == 0);
		return 0;
	}
	if (rc != 0) {
		CHECK(err[0] != '\0');
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		return 0;
	}
	/* Activation in use: only for this very process. */
	int64_t pid;
	CHECK(nfds >= 1 && nfds <= SOCKACT_MAX_FDS);
	CHECK(pid_s != NULL);
	CHECK(ref_pid(pid_s, &pid));
	CHECK(pid == (int64_t)self);
	/* The count is LISTEN_FDS read as a plain number. */
	CHECK((unsigned)strtoul(fds_s, NULL, 10) == nfds);
	for (const char *c = fds_s; *c; c++)
		CHECK(*c >= '0' && *c <= '9');
	return 0;
}
