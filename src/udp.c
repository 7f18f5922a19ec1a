/* udp: recvmmsg a batch, decide each datagram, sendmmsg the echoes. A
 * GRO buffer's datagrams are decided one by one and the admitted ones go
 * back in one GSO send. */
#include "udp.h"
#include "counters.h"
#include "gro.h"
#include "guard.h"
#include "log.h"
#include "variant.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
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
/* Received: PKTINFO and UDP_GRO's segment size; sent: PKTINFO and
 * UDP_SEGMENT's. */
#define IN_CTL_SPACE  (CMSG_SPACE_MAX + CMSG_SPACE(sizeof(int)))
#define OUT_CTL_SPACE (CMSG_SPACE_MAX + CMSG_SPACE(sizeof(uint16_t)))

/* Where a datagram was sent: the reply leaves from there. */
struct destination {
	struct ipaddr addr;
	struct in_pktinfo v4;
	struct in6_pktinfo v6;
	bool v6_control; /* which of the two the kernel gave, and we give */
};

/* What one echo message carries besides its msghdr. */
struct echo_meta {
	size_t segsize;     /* UDP_SEGMENT's size; 0: one plain datagram */
	size_t nsegs;       /* datagrams in it, for the counters */
	size_t pktinfo_len; /* control bytes without UDP_SEGMENT */
};

struct udp_server {
	const struct policy *policy;
	struct udp_guard *guard;
	size_t nlisteners; /* still served: a failed one is dropped */
	uint64_t evictions_counted, exempted_counted;
	bool no_packet_info_logged; /* said once: see log_no_packet_info */
	struct log_limit drop_log;  /* per reason and per source */
	char *payload;              /* BATCH * UDP_SLOT_SIZE */
	struct mmsghdr in[BATCH], out[BATCH];
	struct iovec in_iov[BATCH], out_iov[BATCH];
	struct echo_meta out_meta[BATCH];
	struct sockaddr_storage peers[BATCH];
	union {
		char buf[IN_CTL_SPACE];
		struct cmsghdr align;
	} in_ctl[BATCH];
	union {
		char buf[OUT_CTL_SPACE];
		struct cmsghdr align;
	} out_ctl[BATCH];
	int used; /* receive slots the last batch filled */
	int nout; /* echoes queued, not yet sent */
	/* A GSO echo the kernel refused, one datagram per message. */
	struct mmsghdr split[GSO_MAX_SEGMENTS];
	struct iovec split_iov[GSO_MAX_SEGMENTS];
	struct echo_meta split_meta[GSO_MAX_SEGMENTS];
};

/* Point every receive slot at its buffers, once. */
static void
arm_receive(struct udp_server *srv)
{
	for (int i = 0; i < BATCH; i++) {
		srv->in_iov[i].iov_base =
		    srv->payload + (size_t)i * UDP_SLOT_SIZE;
		srv->in_iov[i].iov_len = UDP_SLOT_SIZE;
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
	for (int i = 0; i < GSO_MAX_SEGMENTS; i++)
		srv->split_meta[i] = (struct echo_meta){0, 1, 0};
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

/* The datagram's destination address, from IP_PKTINFO / IPV6_PKTINFO,
 * and the segment size of a GRO buffer (*segsize, 0 if not one). False if
 * the kernel gave no destination or no interface: then we can neither
 * answer from the right address nor tell the host talking to itself from
 * a forged own address. An IPv4 datagram queued before IP_PKTINFO was set
 * (a socket passed by systemd without PassPacketInfo=yes) comes with its
 * destination but interface 0. */
static bool
read_control(struct msghdr *in, struct destination *d, size_t *segsize)
{
	struct cmsghdr *c;
	bool found = false;

	*segsize = 0;
	for (c = CMSG_FIRSTHDR(in); c != NULL; c = CMSG_NXTHDR(in, c)) {
		if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
			int size;
			memcpy(&size, CMSG_DATA(c), sizeof(size));
			*segsize = size > 0 ? (size_t)size : 0;
		} else if (c->cmsg_level == IPPROTO_IP &&
		           c->cmsg_type == IP_PKTINFO) {
			struct sockaddr_in sin = {.sin_family = AF_INET};
			memcpy(&d->v4, CMSG_DATA(c), sizeof(d->v4));
			d->v6_control = false;
			sin.sin_addr = d->v4.ipi_addr;
			ipaddr_from_sockaddr((struct sockaddr *)&sin, &d->addr,
			                     NULL);
			found = d->v4.ipi_ifindex != 0;
		} else if (c->cmsg_level == IPPROTO_IPV6 &&
		           c->cmsg_type == IPV6_PKTINFO) {
			struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
			memcpy(&d->v6, CMSG_DATA(c), sizeof(d->v6));
			sin6.sin6_addr = d->v6.ipi6_addr;
			ipaddr_from_sockaddr((struct sockaddr *)&sin6, &d->addr,
			                     NULL);
			d->v6_control = true;
			found = d->v6.ipi6_ifindex != 0;
		}
	}
	return found;
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
	char from[ADDR_STRLEN], to[ADDR_STRLEN];

	if (!udp_guard_may_log(srv->guard, &srv->drop_log, r))
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
	struct guard_stats st;

	udp_guard_stats(srv->guard, &st);
	COUNT(udp_table_evictions, st.evictions - srv->evictions_counted);
	srv->evictions_counted = st.evictions;
	COUNT(udp_rate_exempt, st.exempted - srv->exempted_counted);
	srv->exempted_counted = st.exempted;
	/* A gauge: set, not added. */
	counters->udp_table_entries = st.entries;
	log_limit_tick(&srv->drop_log, now);
}

static void send_queued(struct udp_server *srv, int fd, struct mmsghdr *out,
                        const struct echo_meta *meta, int n);

/* The kernel refused GSO echo m (a route whose MTU the segment size does
 * not fit, a device without checksum offload): send its datagrams one
 * per message, so that nothing admitted is lost for the sake of GSO. */
static void
send_split(struct udp_server *srv, int fd, const struct mmsghdr *m,
           const struct echo_meta *meta)
{
	const struct msghdr *h = &m->msg_hdr;
	const char *base = h->msg_iov->iov_base;
	size_t len = h->msg_iov->iov_len;

	COUNT(udp_gso_fallbacks, 1);
	for (size_t i = 0; i < meta->nsegs; i++) {
		srv->split_iov[i] =
		    (struct iovec){(void *)(base + i * meta->segsize),
		                   gro_segment_len(len, meta->segsize, i)};
		srv->split[i].msg_hdr = *h;
		srv->split[i].msg_hdr.msg_iov = &srv->split_iov[i];
		srv->split[i].msg_hdr.msg_controllen = meta->pktinfo_len;
	}
	send_queued(srv, fd, srv->split, srv->split_meta, (int)meta->nsegs);
}

/* Send n echoes; a failure drops that echo only (UDP may lose), after a
 * GSO echo's datagrams were tried one by one. Counted in datagrams. */
static void
send_queued(struct udp_server *srv, int fd, struct mmsghdr *out,
            const struct echo_meta *meta, int n)
{
	int sent = 0;

	while (sent < n) {
		int r = sendmmsg(fd, out + sent, (unsigned)(n - sent), 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				for (; sent < n; sent++)
					COUNT(udp_send_errors,
					      meta[sent].nsegs);
				return;
			}
			if (meta[sent].nsegs > 1) {
				send_split(srv, fd, &out[sent], &meta[sent]);
			} else {
				COUNT(udp_send_errors, 1);
				log_event(LOG_DEBUG, "udp_send_error",
				          "error=\"%s\"", strerror(errno));
			}
			sent++;
			continue;
		}
		/* Counted once per sendmmsg, not per datagram. */
		uint64_t bytes = 0, datagrams = 0;
		for (int i = sent; i < sent + r; i++) {
			bytes += out[i].msg_len;
			datagrams += meta[i].nsegs;
		}
		COUNT(udp_echoed, datagrams);
		COUNT(udp_bytes_out, bytes);
		sent += r;
	}
}

static void
flush_echoes(struct udp_server *srv, int fd)
{
	if (srv->nout > 0)
		send_queued(srv, fd, srv->out, srv->out_meta, srv->nout);
	srv->nout = 0;
}

/* Queue the echo of nsegs datagrams of segsize bytes (the last may be
 * shorter) at data, len bytes in all, to the sender of in, from dest:
 * one GSO message if there are more than one. */
static void
queue_echo(struct udp_server *srv, int fd, struct msghdr *in,
           const struct destination *dest, char *data, size_t len,
           size_t segsize, size_t nsegs)
{
	struct msghdr *out;
	struct echo_meta *meta;

	if (srv->nout == BATCH)
		flush_echoes(srv, fd);
	out = &srv->out[srv->nout].msg_hdr;
	meta = &srv->out_meta[srv->nout];
	*out = (struct msghdr){0};
	reply_from(dest, out, srv->out_ctl[srv->nout].buf,
	           sizeof(srv->out_ctl[srv->nout].buf));
	*meta = (struct echo_meta){nsegs > 1 ? segsize : 0, nsegs,
	                           out->msg_controllen};
	if (nsegs > 1) {
		struct cmsghdr *c =
		    (struct cmsghdr *)((char *)out->msg_control +
		                       out->msg_controllen);
		uint16_t size = (uint16_t)segsize;

		c->cmsg_level = IPPROTO_UDP;
		c->cmsg_type = UDP_SEGMENT;
		c->cmsg_len = CMSG_LEN(sizeof(size));
		memcpy(CMSG_DATA(c), &size, sizeof(size));
		out->msg_controllen += CMSG_SPACE(sizeof(size));
	}
	/* The echo is the request's payload: never larger. */
	srv->out_iov[srv->nout] = (struct iovec){data, len};
	out->msg_name = in->msg_name;
	out->msg_namelen = in->msg_namelen;
	out->msg_iov = &srv->out_iov[srv->nout];
	out->msg_iovlen = 1;
	srv->nout++;
}

/* Once per worker: what the counter udp_drop_no_packet_info means is not
 * guessable, and it is a setup error (not an attack) the operator can fix. */
static void
log_no_packet_info(struct udp_server *srv, const struct sockaddr *peer)
{
	char from[ADDR_STRLEN];

	if (srv->no_packet_info_logged)
		return;
	srv->no_packet_info_logged = true;
	format_sockaddr(peer, from, sizeof(from));
	log_event(
	    LOG_WARN, "udp_drop",
	    "reason=no_packet_info peer=%s msg=\"a datagram came without "
	    "its destination and interface (queued before echod asked "
	    "for packet info: a socket unit without PassPacketInfo=yes?): "
	    "dropped, as it cannot be judged; said once per worker, "
	    "counted in udp_drop_no_packet_info\"",
	    from);
}

/*
 * Decide each of the buffer's nsegs datagrams as if it came alone, then
 * echo the admitted ones: moved together in place, in their order (so a
 * short last one stays last), GSO_MAX_SEGMENTS per message at most.
 */
static void
echo_buffer(struct udp_server *srv, int fd, struct msghdr *in,
            const struct destination *dest, size_t len, size_t segsize,
            size_t nsegs, uint64_t now)
{
	char *base = in->msg_iov->iov_base;
	size_t kept = 0, kept_len = 0;
	struct datagram dg;
	enum guard_reason source = GUARD_ok, verdicts[GSO_MAX_SEGMENTS];

	ipaddr_from_sockaddr(in->msg_name, &dg.src, &dg.sport);
	dg.dst = dest->addr;
	dg.ifindex = dest->v6_control ? (int)dest->v6.ipi6_ifindex
	                              : dest->v4.ipi_ifindex;
	dg.payload = (const uint8_t *)base;
	dg.len = gro_segment_len(len, segsize, 0);
	/* Where it came from and went is the same for every datagram in it:
	 * checked once, then each datagram's payload (guard.h). */
	if (GUARDS_ON)
		source = udp_guard_source_check(srv->guard, &dg, now);
	for (size_t i = 0; i < nsegs; i++) {
		enum guard_reason verdict = source;

		if (GUARDS_ON && source == GUARD_ok &&
		    i % GSO_MAX_SEGMENTS == 0)
			udp_guard_payload_checks(
			    srv->guard, (const uint8_t *)base + i * segsize,
			    len - i * segsize, segsize,
			    nsegs - i < GSO_MAX_SEGMENTS ? nsegs - i
			                                 : GSO_MAX_SEGMENTS,
			    now, verdicts);
		if (GUARDS_ON && source == GUARD_ok)
			verdict = verdicts[i % GSO_MAX_SEGMENTS];
		dg.payload = (const uint8_t *)base + i * segsize;
		dg.len = gro_segment_len(len, segsize, i);
		if (verdict != GUARD_ok) {
			log_drop(srv, verdict, in->msg_name, &dest->addr);
			if (srv->policy->enforce) {
				count_drop(verdict);
				continue;
			}
			COUNT(udp_would_drop, 1);
		}
		if (kept != i)
			memmove(base + kept * segsize, dg.payload, dg.len);
		kept++;
		kept_len += dg.len;
	}
	for (size_t first = 0; first < kept; first += GSO_MAX_SEGMENTS) {
		size_t n = kept - first < GSO_MAX_SEGMENTS ? kept - first
		                                           : GSO_MAX_SEGMENTS;
		size_t off = first * segsize, chunk = kept_len - off;

		if (segsize > 0 && n * segsize < chunk)
			chunk = n * segsize;

		queue_echo(srv, fd, in, dest, base + off, chunk, segsize, n);
	}
}

/* One recvmmsg and its echoes; how many buffers it took (-1: the
 * listener failed and is no longer watched). Every datagram of a GRO
 * buffer counts as one, for the counters as for the guards. */
static int
serve_batch(struct loop *l, int fd, uint32_t events, struct udp_server *srv)
{
	struct destination dest;
	uint64_t now = now_ms(), bytes_in = 0, datagrams = 0, gro = 0;
	uint64_t oversize = 0, no_dest = 0;
	int n;

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
	for (int i = 0; i < n; i++) {
		struct msghdr *in = &srv->in[i].msg_hdr;
		size_t len = srv->in[i].msg_len, segsize, nsegs;
		bool have_dest = read_control(in, &dest, &segsize);

		nsegs = gro_segments(len, segsize);
		datagrams += nsegs;
		bytes_in += len;
		gro += nsegs > 1;
		/* Never echo part of a datagram: drop the whole of it. */
		if ((in->msg_flags & MSG_TRUNC) ||
		    (nsegs > 1 ? segsize : len) >
		        srv->policy->udp_max_datagram) {
			oversize += nsegs;
			continue;
		}
		if (!have_dest) {
			no_dest += nsegs;
			log_no_packet_info(srv, in->msg_name);
			continue;
		}
		echo_buffer(srv, fd, in, &dest, len, segsize, nsegs, now);
	}
	/* Counted once per batch, not per datagram. */
	COUNT(udp_received, datagrams);
	COUNT(udp_bytes_in, bytes_in);
	COUNT(udp_gro_buffers, gro);
	COUNT(udp_drop_oversize, oversize);
	COUNT(udp_drop_no_packet_info, no_dest);
	flush_echoes(srv, fd);
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
	/* Whole slots whatever udp-max-datagram says: a GRO buffer cut
	 * short would lose every datagram in it. Untouched pages of the
	 * allocation cost no memory. */
	srv->payload = malloc((size_t)BATCH * UDP_SLOT_SIZE);
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

void
udp_server_policy_changed(struct udp_server *srv)
{
	udp_guard_policy_changed(srv->guard);
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

unsigned long long
udp_memory_bound(const struct policy *p)
{
	return 2ULL * BATCH * UDP_SLOT_SIZE + sizeof(struct udp_server) +
	       udp_guard_bytes(p);
}
