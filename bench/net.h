/*
 * bench/net: addresses and sockets for echo-bench's modes: parsed
 * numerically, bound round robin to the -b addresses, never from a
 * source port echod's default policy refuses.
 */
#ifndef ECHO_BENCH_NET_H
#define ECHO_BENCH_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A numeric IPv4 or IPv6 address and port; -1 if s is neither. */
int parse_addr(const char *s, uint16_t port, struct sockaddr_storage *ss,
               socklen_t *len);
socklen_t sa_len(const struct sockaddr_storage *ss);
uint16_t sa_port(const struct sockaddr_storage *ss);

/* A socket to `to`, bound to the i-th -b address (round robin); -1 if
 * connect fails (other failures exit). */
int open_socket_to(int type, unsigned i, const struct sockaddr_storage *to,
                   socklen_t to_len);
/* A socket to the (first) target, bound to the i-th -b address. */
int open_socket(int type, unsigned i);
void set_nonblocking(int fd);

/* Exactly len bytes from fd, each wait at most timeout_ms; false if they
 * do not come. */
bool recv_all(int fd, unsigned char *buf, size_t len, int timeout_ms);

#endif
