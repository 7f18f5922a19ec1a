/* udp: recvmmsg a batch, decide each datagram, sendmmsg the echoes. */
#include "udp.h"
#include "counters.h"
#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define BATCH 32
#define CMSG_SPACE_MAX                                                         \
	(CMSG_SPACE(sizeof(struct in6_pktinfo)) > CMSG_SPACE(sizeof(struct in_pktinfo)) \
	     ? CMSG_SPACE(sizeof(struct in6_pktinfo))                         \
	     : CMSG_SPACE(sizeof(struct in_pktinfo)))

struct udp_server {
	const struct policy *policy;
	size_t bufsize;	    /* udp-max-datagram, at least 1 to see truncation */
	char *payload;	    /* BATCH * bufsize */
	struct mmsghdr in[BATCH], out[BATCH];
	struct iovec in_iov[BATCH], out_iov[BATCH];
	struct sockaddr_storage peers[BATCH];
	union {
		char buf[CMSG_SPACE_MAX];
		struct cmsghdr align;
	} in_ctl[BATCH], out_ctl[BATCH];
};

static void
arm_receive(struct udp_server *srv)
{
	for (int i = 0; i < BATCH; i++) {
		srv->in_iov[i].iov_base = srv->payload + (size_t)i * srv->bufsize;
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
}

/*
 * Copy the destination of the received datagram into the reply's control
 * data, so the echo leaves from the address the peer sent to. False if the
 * kernel gave no destination (then we cannot answer correctly).
 */
static bool
reply_from_destination(struct msghdr *in, struct msghdr *out, void *ctl,
		       size_t ctllen)
{
	struct cmsghdr *c, *o;

	for (c = CMSG_FIRSTHDR(in); c != NULL; c = CMSG_NXTHDR(in, c)) {
		out->msg_control = ctl;
		out->msg_controllen = ctllen;
		o = CMSG_FIRSTHDR(out);
		memset(ctl, 0, ctllen);
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			/* Source = the address it was sent to; route freely. */
			pi.ipi_spec_dst = pi.ipi_addr;
			pi.ipi_ifindex = 0;
			o->cmsg_level = IPPROTO_IP;
			o->cmsg_type = IP_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(o), &pi, sizeof(pi));
			out->msg_controllen = CMSG_SPACE(sizeof(pi));
			return true;
		}
		if (c->cmsg_level == IPPROTO_IPV6 &&
		    c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			/* Keep the interface: link-local sources need it. */
			o->cmsg_level = IPPROTO_IPV6;
			o->cmsg_type = IPV6_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(o), &pi, sizeof(pi));
			out->msg_controllen = CMSG_SPACE(sizeof(pi));
			return true;
		}
	}
	return false;
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
		for (int i = sent; i < sent + r; i++) {
			COUNT(udp_echoed, 1);
			COUNT(udp_bytes_out, out[i].msg_len);
		}
		sent += r;
	}
}

static void
datagram_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct udp_server *srv = arg;
	int n, nout = 0;

	(void)l;
	(void)events;
	arm_receive(srv);
	n = recvmmsg(fd, srv->in, BATCH, MSG_DONTWAIT, NULL);
	if (n <= 0)
		return;
	for (int i = 0; i < n; i++) {
		struct msghdr *in = &srv->in[i].msg_hdr;
		struct msghdr *out = &srv->out[nout].msg_hdr;
		size_t len = srv->in[i].msg_len;

		COUNT(udp_received, 1);
		COUNT(udp_bytes_in, len);
		/* Never echo part of a datagram: drop the whole of it. */
		if ((in->msg_flags & MSG_TRUNC) ||
		    len > srv->policy->udp_max_datagram) {
			COUNT(udp_drop_oversize, 1);
			continue;
		}
		*out = (struct msghdr){0};
		if (!reply_from_destination(in, out, srv->out_ctl[nout].buf,
					    sizeof(srv->out_ctl[nout].buf))) {
			COUNT(udp_send_errors, 1);
			continue;
		}
		srv->out_iov[nout] = (struct iovec){in->msg_iov->iov_base, len};
		out->msg_name = in->msg_name;
		out->msg_namelen = in->msg_namelen;
		out->msg_iov = &srv->out_iov[nout];
		out->msg_iovlen = 1;
		nout++;
	}
	if (nout > 0)
		send_batch(fd, srv->out, nout);
}

struct udp_server *
udp_server_new(struct loop *l, const struct policy *p,
	       const struct listen_set *s)
{
	struct udp_server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL)
		return NULL;
	srv->policy = p;
	srv->bufsize = p->udp_max_datagram > 0 ? p->udp_max_datagram : 1;
	srv->payload = malloc(BATCH * srv->bufsize);
	if (srv->payload == NULL) {
		free(srv);
		return NULL;
	}
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
	}
	return srv;
}

void
udp_server_free(struct udp_server *srv)
{
	free(srv->payload);
	free(srv);
}
