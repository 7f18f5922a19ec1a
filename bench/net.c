/* bench/net: addresses and sockets. */
#include "net.h"
#include "common.h"
#include "options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/* Source ports echod's default policy refuses although they are in Linux's
 * ephemeral range (udp-deny-source-ports): never send from them. */
#define REFUSED_EPHEMERAL(p) ((p) == 33848 || (p) == 37810)

int
parse_addr(const char *s, uint16_t port, struct sockaddr_storage *ss,
           socklen_t *len)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		*len = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		*len = sizeof(*a6);
		return 0;
	}
	return -1;
}

socklen_t
sa_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                 : sizeof(struct sockaddr_in);
}

uint16_t
sa_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET6
	                 ? ((const struct sockaddr_in6 *)ss)->sin6_port
	                 : ((const struct sockaddr_in *)ss)->sin_port);
}

int
open_socket_to(int type, unsigned i, const struct sockaddr_storage *to,
               socklen_t to_len)
{
	int fd = -1;

	for (int tries = 0; tries < 8; tries++) {
		struct sockaddr_storage local;
		socklen_t len = sizeof(local);

		fd = socket(to->ss_family, type | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die(EXIT_NETWORK, "socket");
		if (opt.nbind > 0) {
			const struct sockaddr_storage *b =
			    &opt.bind[i % opt.nbind];
			if (bind(fd, (const struct sockaddr *)b, sa_len(b)) !=
			    0)
				die(EXIT_NETWORK, "bind");
		}
		if (connect(fd, (const struct sockaddr *)to, to_len) != 0)
			return -1;
		if (type != SOCK_DGRAM ||
		    getsockname(fd, (struct sockaddr *)&local, &len) != 0 ||
		    !REFUSED_EPHEMERAL(sa_port(&local)))
			return fd;
		close(fd);
	}
	die(EXIT_NETWORK, "no usable UDP source port");
}

int
open_socket(int type, unsigned i)
{
	return open_socket_to(type, i, &opt.target, opt.target_len);
}

void
set_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		die(EXIT_NETWORK, "FIONBIO");
}

bool
recv_all(int fd, unsigned char *buf, size_t len, int timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;

		if (poll(&p, 1, timeout_ms) <= 0)
			return false;
		n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
		if (n <= 0 && !(n < 0 && errno == EAGAIN))
			return false;
		if (n > 0)
			got += (size_t)n;
	}
	return true;
}
