/* sockact: trust the passed fds only after checking what they are. */
#include "sockact.h"
#include "errmsg.h"
#include "units.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int
sockact_parse(const char *listen_pid, const char *listen_fds, pid_t self,
              unsigned *nfds, char *err, size_t errlen)
{
	uint64_t pid, n;

	*nfds = 0;
	if (listen_fds == NULL)
		return 0;
	if (listen_pid == NULL)
		return errmsg(err, errlen,
		              "LISTEN_FDS is set but LISTEN_PID "
		              "is not");
	if (parse_uint(listen_pid, INT32_MAX, &pid) != 0 || pid == 0)
		return errmsg(err, errlen, "LISTEN_PID '%.32s' is not a pid",
		              listen_pid);
	if ((pid_t)pid != self)
		return errmsg(err, errlen,
		              "LISTEN_PID %llu is not this process (%d): the "
		              "sockets were meant for another program",
		              (unsigned long long)pid, (int)self);
	if (parse_uint(listen_fds, SOCKACT_MAX_FDS, &n) != 0 || n == 0)
		return errmsg(err, errlen,
		              "LISTEN_FDS '%.32s' is not a count from 1 to %d",
		              listen_fds, SOCKACT_MAX_FDS);
	*nfds = (unsigned)n;
	return 0;
}

static int
get_int(int fd, int level, int opt, int *value)
{
	socklen_t len = sizeof(*value);

	return getsockopt(fd, level, opt, value, &len);
}

/* Check one passed fd and describe it; the UDP ones get IP_PKTINFO. */
static int
check_socket(int fd, struct listener *l, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int type, domain, listening = 0, v6only = 0, one = 1, protocol = -1;
	char where[ADDR_STRLEN];

	if (get_int(fd, SOL_SOCKET, SO_TYPE, &type) != 0 ||
	    get_int(fd, SOL_SOCKET, SO_DOMAIN, &domain) != 0)
		return errmsg(err, errlen, "passed fd %d is not a socket", fd);
	if (domain != AF_INET && domain != AF_INET6)
		return errmsg(err, errlen,
		              "passed fd %d is not an IPv4 or IPv6 socket", fd);
	if (type == SOCK_STREAM &&
	    (get_int(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening) != 0 ||
	     !listening))
		return errmsg(err, errlen,
		              "passed fd %d is a TCP socket that is not "
		              "listening",
		              fd);
	if (get_int(fd, SOL_SOCKET, SO_PROTOCOL, &protocol) != 0 ||
	    (type == SOCK_STREAM && protocol != IPPROTO_TCP) ||
	    (type == SOCK_DGRAM && protocol != IPPROTO_UDP))
		return errmsg(
		    err, errlen,
		    "passed fd %d is neither TCP nor UDP (protocol %d)", fd,
		    protocol);
	if (type != SOCK_STREAM && type != SOCK_DGRAM)
		return errmsg(err, errlen,
		              "passed fd %d is neither a stream nor a datagram "
		              "socket",
		              fd);
	if (domain == AF_INET6 &&
	    (get_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only) != 0 || !v6only))
		return errmsg(err, errlen,
		              "passed fd %d is IPv6 without IPV6_V6ONLY: set "
		              "BindIPv6Only=ipv6-only in the .socket unit",
		              fd);
	if (type == SOCK_DGRAM &&
	    setsockopt(fd, domain == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
	               domain == AF_INET ? IP_PKTINFO : IPV6_RECVPKTINFO, &one,
	               sizeof(one)) != 0)
		return errmsg(err, errlen,
		              "passed fd %d: cannot enable "
		              "packet info: %s",
		              fd, strerror(errno));
	/* The loop never blocks, and workers race for shared listeners. */
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
		return errmsg(err, errlen, "passed fd %d: fcntl: %s", fd,
		              strerror(errno));
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return errmsg(err, errlen, "passed fd %d: getsockname: %s", fd,
		              strerror(errno));
	if (endpoint_port(&(struct endpoint){.ss = ss}) == 0)
		return errmsg(err, errlen,
		              "passed fd %d is not bound to a port", fd);
	format_sockaddr((struct sockaddr *)&ss, where, sizeof(where));
	*l = (struct listener){fd, type, domain, LISTENER_SHARED, ""};
	snprintf(l->name, sizeof(l->name), "%s %s",
	         type == SOCK_STREAM ? "tcp" : "udp", where);
	return 0;
}

unsigned
sockact_passed(void)
{
	char err[256];
	unsigned passed;

	if (sockact_parse(getenv("LISTEN_PID"), getenv("LISTEN_FDS"), getpid(),
	                  &passed, err, sizeof(err)) != 0)
		return 0;
	return passed;
}

int
sockact_take(struct listen_set *out, char *err, size_t errlen)
{
	unsigned n;

	out->n = 0;
	out->l = NULL;
	if (sockact_parse(getenv("LISTEN_PID"), getenv("LISTEN_FDS"), getpid(),
	                  &n, err, errlen) != 0)
		return -1;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (n == 0)
		return 0;
	out->l = calloc(n, sizeof(*out->l));
	if (out->l == NULL)
		return errmsg(err, errlen, "out of memory");
	for (unsigned i = 0; i < n; i++) {
		int fd = SOCKACT_FIRST_FD + (int)i;
		if (check_socket(fd, &out->l[i], err, errlen) != 0)
			return -1;
		out->n++;
	}
	return 1;
}
