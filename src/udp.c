/* udp: recvmmsg a batch, decide each datagram, sendmmsg the echoes. */
#include "udp.h"
#include "counters.h"
#include "guard.h"
#include "log.h"
#include "variant.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define BATCH             UDP_BATCH
#define BATCHES_PER_EVENT 4 /* full batches taken per wakeup */
#define CMSG_SPACE_MAX                                                         \
	(CMSG_SPACE(sizeof(struct in6_pktinfo)) >                              \
	         CMSG_SPACE(sizeof(struct in_pktinfo))                         \
	     ? CMSG_SPACE(sizeof(struct in6_pktinfo))                          \
	     : CMSG_SPACE(sizeof(struct in_pktinfo)))

/* Where a datagram was sent: the reply leaves from there. */
struct destination {
	struct ipaddr addr;
	struct in_pktinfo v4;
	struct in6_pktinfo v6;
	bool v6_control; /* which of the two the kernel gave, and we give */
};

struct udp_server {
	const struct policy *policy;
	struct udp_guard *guard;
	size_t nlisteners; /* still served: a failed one is dropped */
	uint64_t evictions_counted;
	struct log_limit drop_log; /* per reason and per source */
	size_t bufsize; /* udp-max-datagram, at least 1 to see truncation */
	char *payload;  /* BATCH * bufsize */
	struct mmsghdr in[BATCH], out[BATCH];
	struct iovec in_iov[BATCH], out_iov[BATCH];
	struct sockaddr_storage peers[BATCH];
	union {
		char buf[CMSG_SPACE_MAX];
		struct cmsghdr align;
	} in_ctl[BATCH], out_ctl[BATCH];
	int used; /* receive slots the last batch filled */
};

/* Point every receive slot at its buffers, once. */
static void
arm_receive(struct udp_server *srv)
{
	for (int i = 0; i < BATCH; i++) {
		srv->in_iov[i].iov_base =
		    srv->payload + (size_t)i * srv->bufsize;
		srv->in_iov[i].iov_len = srv->bufsize;
		srv->in[i].msg_hdr = (struct msghdr){
		    .msg_name = &srv->peers[i],
		    .msg_namelen = sizeof(srv->peers[i]),
		    .msg_iov = &srv->in_iov[i],
		    .msg_iovlen = 1,
		    .msg_control = srv->in_ctl[i].buf,
		    .msg_controllen = sizeof(srv->in_ctl[i].buf),
		};
	}
	srv->used = 0;
}

/* recvmmsg rewrote the lengths of the slots the last batch used: only
 * those need resetting. */
static void
rearm_receive(struct udp_server *srv)
{
	for (int i = 0; i < srv->used; i++) {
		srv->in[i].msg_hdr.msg_namelen = sizeof(srv->peers[i]);
		srv->in[i].msg_hdr.msg_controllen = sizeof(srv->in_ctl[i].buf);
	}
	srv->used = 0;
}

/* The datagram's destination address, from IP_PKTINFO / IPV6_PKTINFO.
 * False if the kernel gave none (then we cannot answer correctly). */
static bool
read_destination(struct msghdr *in, struct destination *d)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(in); c != NULL; c = CMSG_NXTHDR(in, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct sockaddr_in sin = {.sin_family = AF_INET};
			memcpy(&d->v4, CMSG_DATA(c), sizeof(d->v4));
			d->v6_control = false;
			sin.sin_addr = d->v4.ipi_addr;
			ipaddr_from_sockaddr((struct sockaddr *)&sin, &d->addr,
			                     NULL);
			return true;
		}
		if (c->cmsg_level == IPPROTO_IPV6 &&
		    c->cmsg_type == IPV6_PKTINFO) {
			struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
			memcpy(&d->v6, CMSG_DATA(c), sizeof(d->v6));
			sin6.sin6_addr = d->v6.ipi6_addr;
			ipaddr_from_sockaddr((struct sockaddr *)&sin6, &d->addr,
			                     NULL);
			d->v6_control = true;
			return true;
		}
	}
	return false;
}

/* Control data that makes the echo leave from the address it was sent to. */
static void
reply_from(const struct destination *d, struct msghdr *out, void *ctl,
           size_t ctllen)
{
	struct cmsghdr *o;

	memset(ctl, 0, ctllen);
	out->msg_control = ctl;
	out->msg_controllen = ctllen;
	o = CMSG_FIRSTHDR(out);
	if (!d->v6_control) {
		struct in_pktinfo pi = {0};
		/* Source = the address it was sent to; route freely. */
		pi.ipi_spec_dst = d->v4.ipi_addr;
		o->cmsg_level = IPPROTO_IP;
		o->cmsg_type = IP_PKTINFO;
		o->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(o), &pi, sizeof(pi));
		out->msg_controllen = CMSG_SPACE(sizeof(pi));
	} else {
		/* Keep the interface: link-local sources need it. */
		o->cmsg_level = IPPROTO_IPV6;
		o->cmsg_type = IPV6_PKTINFO;
		o->cmsg_len = CMSG_LEN(sizeof(d->v6));
		memcpy(CMSG_DATA(o), &d->v6, sizeof(d->v6));
		out->msg_controllen = CMSG_SPACE(sizeof(d->v6));
	}
}

static void
count_drop(enum guard_reason r)
{
	switch (r) {
#define COUNT_REASON(name)                                                     \
	case GUARD_##name:                                                     \
		COUNT(udp_drop_##name, 1);                                     \
		break;
		GUARD_DROP_REASONS(COUNT_REASON)
#undef COUNT_REASON
	default:
		break;
	}
}

static const char *
reason_name(unsigned r)
{
	return guard_reason_name((enum guard_reason)r);
}

/* The first few drops of each source and of each reason are logged, the
 * rest counted and summarised once per window. */
static void
log_drop(struct udp_server *srv, enum guard_reason r,
         const struct sockaddr *peer, const struct ipaddr *dst)
{
	struct rate_entry *source = udp_guard_source(srv->guard);
	char from[ADDR_STRLEN], to[ADDR_STRLEN];

	if (!log_limit_allow(&srv->drop_log, r,
	                     source != NULL ? &source->logged : NULL))
		return;
	format_sockaddr(peer, from, sizeof(from));
	format_ipaddr(dst, to, sizeof(to));
	log_event(LOG_INFO,
	          srv->policy->enforce ? "udp_drop" : "udp_would_drop",
	          "reason=%s peer=%s dst=%s", guard_reason_name(r), from, to);
}

void
udp_server_tick(struct udp_server *srv, uint64_t now)
{
	uint64_t evictions = udp_guard_evictions(srv->guard);

	COUNT(udp_table_evictions, evictions - srv->evictions_counted);
	srv->evictions_counted = evictions;
	/* A gauge: set, not added. */
	counters->udp_table_entries =
	    rate_table_used(udp_guard_table(srv->guard));
	log_limit_tick(&srv->drop_log, now);
}

/* Send the batch; a failure drops that datagram only (UDP may lose). */
static void
send_batch(int fd, struct mmsghdr *out, int n)
{
	int sent = 0;

	while (sent < n) {
		int r = sendmmsg(fd, out + sent, (unsigned)(n - sent), 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				COUNT(udp_send_errors, n - sent);
				return;
			}
			COUNT(udp_send_errors, 1);
			log_event(LOG_DEBUG, "udp_send_error", "error=\"%s\"",
			          strerror(errno));
			sent++;
			continue;
		}
		/* Counted once per batch, not per datagram. */
		uint64_t bytes = 0;
		for (int i = sent; i < sent + r; i++)
			bytes += out[i].msg_len;
		COUNT(udp_echoed, r);
		COUNT(udp_bytes_out, bytes);
		sent += r;
	}
}

/* One recvmmsg and its echoes; how many datagrams it took (-1: the
 * listener failed and is no longer watched). */
static int
serve_batch(struct loop *l, int fd, uint32_t events, struct udp_server *srv)
{
	struct destination dest;
	struct datagram dg;
	enum guard_reason verdict;
	uint64_t now = now_ms(), bytes_in = 0;
	int n, nout = 0;

	rearm_receive(srv);
	n = recvmmsg(fd, srv->in, BATCH, MSG_DONTWAIT, NULL);
	if (n < 0 &&
	    (errno == EAGAIN || errno == EINTR || errno == ENOMEM ||
	     errno == ENOBUFS) &&
	    !(events & (EPOLLERR | EPOLLHUP)))
		return 0;
	if (n < 0 || (n == 0 && (events & (EPOLLERR | EPOLLHUP)))) {
		/* The same error would wake us again at once: stop watching. */
		loop_del(l, fd);
		srv->nlisteners--;
		listener_failed(fd, "udp",
		                n < 0 ? strerror(errno) : "EPOLLHUP");
		return -1;
	}
	if (n == 0)
		return 0;
	srv->used = n;
	COUNT(udp_received, n);
	for (int i = 0; i < n; i++)
		bytes_in += srv->in[i].msg_len;
	COUNT(udp_bytes_in, bytes_in);
	for (int i = 0; i < n; i++) {
		struct msghdr *in = &srv->in[i].msg_hdr;
		struct msghdr *out = &srv->out[nout].msg_hdr;
		size_t len = srv->in[i].msg_len;

		/* Never echo part of a datagram: drop the whole of it. */
		if ((in->msg_flags & MSG_TRUNC) ||
		    len > srv->policy->udp_max_datagram) {
			COUNT(udp_drop_oversize, 1);
			continue;
		}
		if (!read_destination(in, &dest)) {
			COUNT(udp_send_errors, 1);
			continue;
		}
		dg.payload = in->msg_iov->iov_base;
		dg.len = len;
		ipaddr_from_sockaddr(in->msg_name, &dg.src, &dg.sport);
		dg.dst = dest.addr;
		dg.ifindex = dest.v6_control ? (int)dest.v6.ipi6_ifindex
		                             : dest.v4.ipi_ifindex;
		verdict = GUARDS_ON ? udp_guard_check(srv->guard, &dg, now)
		                    : GUARD_ok;
		if (verdict != GUARD_ok) {
			log_drop(srv, verdict, in->msg_name, &dest.addr);
			if (srv->policy->enforce) {
				count_drop(verdict);
				continue;
			}
			COUNT(udp_would_drop, 1);
		}
		*out = (struct msghdr){0};
		reply_from(&dest, out, srv->out_ctl[nout].buf,
		           sizeof(srv->out_ctl[nout].buf));
		/* The echo is the request's payload: never larger. */
		srv->out_iov[nout] = (struct iovec){in->msg_iov->iov_base, len};
		out->msg_name = in->msg_name;
		out->msg_namelen = in->msg_namelen;
		out->msg_iov = &srv->out_iov[nout];
		out->msg_iovlen = 1;
		nout++;
	}
	if (nout > 0)
		send_batch(fd, srv->out, nout);
	return n;
}

/* A full batch means more may be queued: take up to BATCHES_PER_EVENT
 * before going back to epoll_wait, one system call saved per batch. */
static void
datagram_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	for (int i = 0; i < BATCHES_PER_EVENT; i++)
		if (serve_batch(l, fd, events, arg) < BATCH)
			break;
}

struct udp_server *
udp_server_new(struct loop *l, const struct policy *p,
               const struct listen_set *s, const struct facts *f,
               unsigned nworkers)
{
	struct udp_server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL)
		return NULL;
	srv->policy = p;
	srv->drop_log = (struct log_limit){.summary_event = "udp_drop_summary",
	                                   .name = reason_name,
	                                   .window_start = now_ms()};
	srv->guard = udp_guard_new(p, f, nworkers);
	if (srv->guard == NULL) {
		free(srv);
		return NULL;
	}
	srv->bufsize = p->udp_max_datagram > 0 ? p->udp_max_datagram : 1;
	srv->payload = malloc(BATCH * srv->bufsize);
	if (srv->payload == NULL) {
		udp_server_free(srv);
		return NULL;
	}
	arm_receive(srv);
	for (size_t i = 0; i < s->n; i++) {
		if (s->l[i].type != SOCK_DGRAM)
			continue;
		uint32_t ev = EPOLLIN;
		if (s->l[i].worker == LISTENER_SHARED)
			ev |= EPOLLEXCLUSIVE;
		if (loop_add(l, s->l[i].fd, ev, datagram_event, srv) != 0) {
			udp_server_free(srv);
			return NULL;
		}
		srv->nlisteners++;
	}
	return srv;
}

size_t
udp_server_listeners(const struct udp_server *srv)
{
	return srv->nlisteners;
}

void
udp_server_free(struct udp_server *srv)
{
	udp_guard_free(srv->guard);
	free(srv->payload);
	free(srv);
}
