/* udp: datagram echo in batches, replying from the address it was sent to. */
#ifndef ECHOD_UDP_H
#define ECHOD_UDP_H

#include "listen.h"
#include "loop.h"
#include "policy.h"

struct udp_server;

/* Serve every SOCK_DGRAM listener of s on loop l. NULL on failure. */
struct udp_server *udp_server_new(struct loop *l, const struct policy *p,
				  const struct listen_set *s);
void udp_server_free(struct udp_server *srv);

#endif
