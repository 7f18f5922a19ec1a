/*
 * client/net: name resolution, a TCP connection within -t, and a
 * connected UDP socket that moves on to the next address when refused.
 * Calls io.h, options.h and probe.h (to skip late echoes of probes).
 */
#ifndef ECHO_CLIENT_NET_H
#define ECHO_CLIENT_NET_H

#include "probe.h"

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The addresses of opts.host, or exit EXIT_NETWORK. */
struct addrinfo *resolve(int socktype);
/* A non-blocking, close-on-exec socket for ai; -1 with errno. */
int open_socket(const struct addrinfo *ai);
/* Connect to each address in turn within -t, or exit EXIT_NETWORK. */
int tcp_connect(void);

/*
 * UDP.  The socket is connected, so that only the server's datagrams reach
 * us and an ICMP port unreachable comes back as ECONNREFUSED.
 */
struct udp_peer {
	struct addrinfo *list;
	struct addrinfo *cur;
	int fd;
	bool answered; /* once it answers, this is the right address */
};

/* Resolve opts.host and connect to its first address that takes it. */
void udp_open(struct udp_peer *u);
void udp_close(struct udp_peer *u);
/*
 * Send one datagram and wait up to -t for its echo, left in iobuf.  With a
 * prober, late echoes of earlier probes are skipped.
 */
enum echo_result udp_roundtrip(struct udp_peer *u, const unsigned char *msg,
                               size_t len, const struct prober *pr, size_t *got,
                               uint64_t *rtt);

#endif
