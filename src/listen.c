/* listen: socket(), setsockopt(), bind(), listen(); nothing after this
 * needs the right to bind, so the bootstrap can drop it. */
#include "listen.h"
#include "errmsg.h"
#include "gro.h"
#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define TCP_BACKLOG 1024
#define GOLDEN      0x9e3779b1u /* odd multiplier: spreads prefixes evenly */

static int
set_int(int fd, int level, int opt, int value)
{
	return setsockopt(fd, level, opt, &value, sizeof(value));
}

/* Append one instruction to a classic BPF program under construction. */
static void
emit(struct sock_filter *prog, size_t *n, uint16_t code, uint32_t k)
{
	prog[(*n)++] = (struct sock_filter)BPF_STMT(code, k);
}

/*
 * Addresses are read relative to the network header. The state starts at
 * key[0]; each word of the prefix is mixed in (xor, multiply, xorshift)
 * and key[1 + word] added; a final xorshift-multiply-xorshift with the
 * odd key[5] spreads the high bits into the low ones before the modulo.
 */
size_t
listen_build_steering(struct sock_filter *prog, int family, unsigned bits,
                      unsigned nworkers, const uint32_t key[STEERING_KEY_WORDS])
{
	unsigned words = family == AF_INET ? 1 : 4;
	uint32_t src_off = family == AF_INET ? 12 : 8;
	size_t n = 0;

	emit(prog, &n, BPF_LD | BPF_IMM, key[0]);
	emit(prog, &n, BPF_ST, 0);
	for (unsigned w = 0; w < words && bits > w * 32; w++) {
		unsigned keep = bits - w * 32 >= 32 ? 32 : bits - w * 32;
		uint32_t mask =
		    keep == 32 ? 0xffffffffu : ~(0xffffffffu >> keep);

		emit(prog, &n, BPF_LD | BPF_W | BPF_ABS,
		     (uint32_t)SKF_NET_OFF + src_off + 4 * w);
		emit(prog, &n, BPF_ALU | BPF_AND | BPF_K, mask);
		emit(prog, &n, BPF_MISC | BPF_TAX, 0);
		emit(prog, &n, BPF_LD | BPF_MEM, 0);
		emit(prog, &n, BPF_ALU | BPF_XOR | BPF_X, 0);
		emit(prog, &n, BPF_ALU | BPF_MUL | BPF_K, GOLDEN);
		emit(prog, &n, BPF_MISC | BPF_TAX, 0);
		emit(prog, &n, BPF_ALU | BPF_RSH | BPF_K, 15);
		emit(prog, &n, BPF_ALU | BPF_XOR | BPF_X, 0);
		emit(prog, &n, BPF_ALU | BPF_ADD | BPF_K, key[1 + w]);
		emit(prog, &n, BPF_ST, 0);
	}
	emit(prog, &n, BPF_LD | BPF_MEM, 0);
	emit(prog, &n, BPF_MISC | BPF_TAX, 0);
	emit(prog, &n, BPF_ALU | BPF_RSH | BPF_K, 16);
	emit(prog, &n, BPF_ALU | BPF_XOR | BPF_X, 0);
	emit(prog, &n, BPF_ALU | BPF_MUL | BPF_K, key[5] | 1);
	emit(prog, &n, BPF_MISC | BPF_TAX, 0);
	emit(prog, &n, BPF_ALU | BPF_RSH | BPF_K, 13);
	emit(prog, &n, BPF_ALU | BPF_XOR | BPF_X, 0);
	emit(prog, &n, BPF_ALU | BPF_MOD | BPF_K, nworkers);
	emit(prog, &n, BPF_RET | BPF_A, 0);
	return n;
}

static int
attach_steering(int fd, int family, unsigned bits, unsigned nworkers,
                const uint32_t key[STEERING_KEY_WORDS])
{
	struct sock_filter prog[STEERING_MAX_INSNS];
	struct sock_fprog fprog;

	fprog.len = (unsigned short)listen_build_steering(prog, family, bits,
	                                                  nworkers, key);
	fprog.filter = prog;
	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog,
	                  sizeof(fprog));
}

/* The prefix length a listener's group is steered by. */
static unsigned
steering_bits(const struct steering *st, int type, int family)
{
	if (type == SOCK_STREAM)
		return family == AF_INET ? st->tcp_v4 : st->tcp_v6;
	return family == AF_INET ? st->udp_v4 : st->udp_v6;
}

static const char *
bind_advice(int err)
{
	switch (err) {
	case EADDRINUSE:
		return "the port is in use: stop the other service or choose "
		       "another port with -p or listen";
	case EACCES:
		return "ports below 1024 need root, the file capability "
		       "(setcap cap_net_bind_service=ep echod, or make setcap) "
		       "or systemd socket activation";
	case EADDRNOTAVAIL:
		return "the address is not configured on this host";
	case EAFNOSUPPORT:
		return "this host has no support for the address family";
	default:
		return "check the listen addresses";
	}
}

static int
open_one(const struct endpoint *ep, int type, bool reuseport, char *err,
         size_t errlen, const char *name)
{
	int fd, family = ep->ss.ss_family, e;

	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) != 0)
		goto fail;
	if (reuseport && set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1) != 0)
		goto fail;
	/* Separate v4 and v6 sockets: every check sees the real family. */
	if (family == AF_INET6 && set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1))
		goto fail;
	if (type == SOCK_DGRAM) {
		/* Learn each datagram's destination to reply from it. */
		if (family == AF_INET &&
		    set_int(fd, IPPROTO_IP, IP_PKTINFO, 1) != 0)
			goto fail;
		if (family == AF_INET6 &&
		    set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) != 0)
			goto fail;
	} else if (set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1) != 0) {
		goto fail;
	}
	if (bind(fd, (const struct sockaddr *)&ep->ss, ep->len) != 0) {
		e = errno;
		close(fd);
		return errmsg(err, errlen, "cannot bind %s: %s: %s", name,
		              strerror(e), bind_advice(e));
	}
	if (type == SOCK_STREAM && listen(fd, TCP_BACKLOG) != 0)
		goto fail;
	return fd;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	return errmsg(err, errlen, "cannot set up %s: %s", name, strerror(e));
}

/* One socket's receive buffer: SO_RCVBUF, which net.core.rmem_max caps,
 * then SO_RCVBUFFORCE past the cap where CAP_NET_ADMIN allows it. A buffer
 * already as large (systemd's ReceiveBuffer=) is left as it is. The
 * kernel's figure (twice the request: its bookkeeping) in *granted. */
static int
set_rcvbuf(int fd, int bytes, int *granted)
{
	socklen_t len = sizeof(*granted);

	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, granted, &len) != 0)
		return -1;
	if (*granted / 2 >= bytes)
		return 0;
	if (set_int(fd, SOL_SOCKET, SO_RCVBUF, bytes) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, granted, &len) != 0)
		return -1;
	if (*granted / 2 < bytes &&
	    set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, bytes) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, granted, &len) != 0)
		return -1;
	return 0;
}

int
listen_set_rcvbuf(const struct listen_set *s, uint64_t bytes, uint64_t *granted,
                  char *err, size_t errlen)
{
	int want = bytes > INT32_MAX / 2 ? INT32_MAX / 2 : (int)bytes;

	*granted = 0;
	for (size_t i = 0; i < s->n; i++) {
		int got = 0;
		if (s->l[i].type != SOCK_DGRAM)
			continue;
		if (set_rcvbuf(s->l[i].fd, want, &got) != 0)
			return errmsg(err, errlen,
			              "cannot set the receive buffer of %s: %s",
			              s->l[i].name, strerror(errno));
		if (*granted == 0 || (uint64_t)got < *granted)
			*granted = (uint64_t)got;
	}
	return 0;
}

int
listen_bind(const struct policy *p, unsigned nworkers,
            const struct steering *st, struct listen_set *out, char *err,
            size_t errlen)
{
	static const int types[] = {SOCK_STREAM, SOCK_DGRAM};
	size_t max = p->nlisten * 2 * nworkers;

	out->n = 0;
	out->l = calloc(max, sizeof(*out->l));
	if (out->l == NULL)
		return errmsg(err, errlen, "out of memory");
	for (size_t a = 0; a < p->nlisten; a++) {
		const struct endpoint *ep = &p->listen[a];
		for (size_t t = 0; t < 2; t++) {
			int type = types[t];
			char name[ADDR_STRLEN + 8], where[ADDR_STRLEN];

			if ((type == SOCK_STREAM && !p->tcp) ||
			    (type == SOCK_DGRAM && !p->udp))
				continue;
			format_sockaddr((const struct sockaddr *)&ep->ss, where,
			                sizeof(where));
			snprintf(name, sizeof(name), "%s %s",
			         type == SOCK_STREAM ? "tcp" : "udp", where);
			for (unsigned w = 0; w < nworkers; w++) {
				struct listener *l = &out->l[out->n];
				int fd = open_one(ep, type, nworkers > 1, err,
				                  errlen, name);
				if (fd < 0) {
					listener_close_all(out);
					return -1;
				}
				*l = (struct listener){fd, type,
				                       ep->ss.ss_family, w, ""};
				snprintf(l->name, sizeof(l->name), "%s", name);
				out->n++;
				if (w == 0 && nworkers > 1 &&
				    attach_steering(
				        fd, ep->ss.ss_family,
				        steering_bits(st, type,
				                      ep->ss.ss_family),
				        nworkers, st->key) != 0) {
					int e = errno;
					listener_close_all(out);
					return errmsg(err, errlen,
					              "cannot attach the "
					              "per-source steering "
					              "program to %s: %s",
					              name, strerror(e));
				}
			}
		}
	}
	return 0;
}

int
listen_bind_steered(const struct policy *p, unsigned nworkers,
                    struct listen_set *out, char *err, size_t errlen)
{
	struct steering st;
	int r;

	/* Steer TCP by its aggregate (the coarsest level) and UDP by the
	 * shorter of its rate and aggregate prefixes, so that every key
	 * either protocol counts lives in exactly one worker; under a key
	 * drawn afresh at each start. */
	st.tcp_v4 = p->tcp_prefix_v4[p->tcp_levels_v4 - 1];
	st.tcp_v6 = p->tcp_prefix_v6[p->tcp_levels_v6 - 1];
	st.udp_v4 = MIN(p->rate_prefix_v4, p->udp_aggregate_prefix_v4);
	st.udp_v6 = MIN(p->rate_prefix_v6, p->udp_aggregate_prefix_v6);
	if (getrandom(st.key, sizeof(st.key), 0) != (ssize_t)sizeof(st.key))
		return errmsg(err, errlen, "getrandom for the steering key: %s",
		              strerror(errno));
	r = listen_bind(p, nworkers, &st, out, err, errlen);
	/* The kernel holds the programs now; no copy of the key stays. */
	explicit_bzero(st.key, sizeof(st.key));
	return r;
}

void
listen_enable_gro(const struct listen_set *s)
{
	unsigned failed = 0;
	int err = 0;

	for (size_t i = 0; i < s->n; i++)
		if (s->l[i].type == SOCK_DGRAM && gro_enable(s->l[i].fd) != 0) {
			failed++;
			err = errno;
		}
	if (failed > 0)
		log_always(LOG_WARN, "udp_gro_unavailable",
		           "listeners=%u error=\"%s\" msg=\"UDP_GRO cannot "
		           "be set: one datagram per receive\"",
		           failed, strerror(err));
}

int
listen_size_udp_buffers(const struct listen_set *s, uint64_t bytes, char *err,
                        size_t errlen)
{
	uint64_t granted;

	if (listen_set_rcvbuf(s, bytes, &granted, err, errlen) != 0)
		return -1;
	if (granted == 0)
		return 0;
	if (granted / 2 < bytes)
		log_always(LOG_WARN, "udp_receive_buffer",
		           "bytes=%llu asked=%llu msg=\"net.core.rmem_max caps "
		           "it without CAP_NET_ADMIN: raise the sysctl\"",
		           (unsigned long long)granted / 2,
		           (unsigned long long)bytes);
	else
		log_always(LOG_INFO, "udp_receive_buffer", "bytes=%llu",
		           (unsigned long long)granted / 2);
	return 0;
}

void
listen_announce(const struct listen_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->l[i].worker == 0 || s->l[i].worker == LISTENER_SHARED)
			log_always(LOG_INFO, "listening", "proto=%.3s addr=%s",
			           s->l[i].name, s->l[i].name + 4);
}
