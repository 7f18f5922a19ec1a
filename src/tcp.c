/* tcp: read only when the previous bytes have been written back, so a peer
 * that stops reading stops being read: the kernel's windows push back. */
#include "tcp.h"
#include "counters.h"
#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPTS_PER_EVENT 64 /* fairness between listeners and peers */
#define READS_PER_EVENT	  8

struct conn {
	int fd;
	bool eof;	   /* the peer sent FIN: echo what is left, close */
	uint64_t last_active;
	uint64_t bytes;
	char *pending;	   /* echo bytes the peer has not taken yet */
	size_t pending_off, pending_len;
	struct conn *prev, *next; /* idle list, least recently active first */
	struct tcp_server *srv;
	char peer[ADDR_STRLEN];
};

struct tcp_server {
	struct loop *loop;
	const struct policy *policy;
	char *scratch; /* tcp-buffer bytes shared by all connections */
	struct conn *oldest, *newest;
	int paused[64]; /* listeners paused after EMFILE */
	size_t npaused;
};

static void conn_event(struct loop *l, int fd, uint32_t events, void *arg);

static void
idle_unlink(struct tcp_server *srv, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->oldest = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		srv->newest = c->prev;
	c->prev = c->next = NULL;
}

static void
idle_append(struct tcp_server *srv, struct conn *c)
{
	c->prev = srv->newest;
	c->next = NULL;
	if (srv->newest)
		srv->newest->next = c;
	else
		srv->oldest = c;
	srv->newest = c;
}

/* Progress (a byte in or out) makes a connection the most recently active. */
static void
touch(struct conn *c)
{
	c->last_active = now_ms();
	if (c->srv->newest != c) {
		idle_unlink(c->srv, c);
		idle_append(c->srv, c);
	}
}

static void
conn_close(struct conn *c, const char *why)
{
	struct tcp_server *srv = c->srv;

	log_event(LOG_DEBUG, "tcp_close", "peer=%s reason=%s bytes=%llu",
		  c->peer, why, (unsigned long long)c->bytes);
	loop_del(srv->loop, c->fd);
	close(c->fd);
	idle_unlink(srv, c);
	free(c->pending);
	free(c);
	COUNT(tcp_active, -1);
	COUNT(tcp_closed, 1);
}

/* Write what is pending; true if it is all gone. */
static bool
flush_pending(struct conn *c, bool *dead)
{
	while (c->pending_len > 0) {
		ssize_t n = send(c->fd, c->pending + c->pending_off,
				 c->pending_len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				*dead = true;
			return false;
		}
		c->pending_off += (size_t)n;
		c->pending_len -= (size_t)n;
		c->bytes += (uint64_t)n;
		COUNT(tcp_bytes_out, n);
		touch(c);
	}
	free(c->pending);
	c->pending = NULL;
	c->pending_off = 0;
	return true;
}

/* Keep the unsent tail of an echo; the caller stops reading until it goes. */
static bool
hold_tail(struct conn *c, const char *data, size_t len)
{
	c->pending = malloc(len);
	if (c->pending == NULL)
		return false;
	memcpy(c->pending, data, len);
	c->pending_off = 0;
	c->pending_len = len;
	return true;
}

/* Echo one read's worth; false when the connection must close. */
static bool
echo_once(struct conn *c, bool *drained, const char **why)
{
	size_t cap = c->srv->policy->tcp_buffer;
	ssize_t n, w = 0;

	n = recv(c->fd, c->srv->scratch, cap, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR) {
			*drained = errno == EAGAIN;
			return true;
		}
		*why = "read_error";
		return false;
	}
	if (n == 0) {
		c->eof = true;
		*drained = true;
		return true;
	}
	COUNT(tcp_bytes_in, n);
	touch(c);
	while (w < n) {
		ssize_t k = send(c->fd, c->srv->scratch + w, (size_t)(n - w),
				 MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno != EAGAIN) {
			*why = "write_error";
			return false;
		}
		if (k < 0)
			break;
		w += k;
	}
	c->bytes += (uint64_t)w;
	COUNT(tcp_bytes_out, w);
	if (w < n && !hold_tail(c, c->srv->scratch + w, (size_t)(n - w))) {
		*why = "out_of_memory";
		return false;
	}
	*drained = (size_t)n < cap;
	return true;
}

static void
conn_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct conn *c = arg;
	const char *why = "error";
	bool dead = false;

	(void)fd;
	if (c->pending_len > 0 && !flush_pending(c, &dead)) {
		if (dead) {
			conn_close(c, "write_error");
			return;
		}
		loop_set_events(l, c->fd, EPOLLOUT);
		return;
	}
	if (!c->eof && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		for (int i = 0; i < READS_PER_EVENT && !c->eof; i++) {
			bool drained = false;
			if (!echo_once(c, &drained, &why)) {
				conn_close(c, why);
				return;
			}
			if (c->pending_len > 0 || drained)
				break;
		}
	}
	if (c->pending_len > 0) {
		/* Backpressure: stop reading until the peer takes its echo. */
		loop_set_events(l, c->fd, EPOLLOUT);
	} else if (c->eof) {
		conn_close(c, "eof");
	} else {
		loop_set_events(l, c->fd, EPOLLIN);
	}
}

static void
pause_listener(struct tcp_server *srv, int fd)
{
	if (srv->npaused < sizeof(srv->paused) / sizeof(srv->paused[0])) {
		srv->paused[srv->npaused++] = fd;
		loop_set_events(srv->loop, fd, 0);
	}
}

static void
accept_event(struct loop *l, int lfd, uint32_t events, void *arg)
{
	struct tcp_server *srv = arg;

	(void)events;
	for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct conn *c;
		char peer[ADDR_STRLEN];
		int fd;

		fd = accept4(lfd, (struct sockaddr *)&ss, &len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			COUNT(tcp_accept_errors, 1);
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				log_event(LOG_WARN, "tcp_accept_paused",
					  "error=\"%s\"", strerror(errno));
				pause_listener(srv, lfd);
				return;
			}
			continue;
		}
		format_sockaddr((struct sockaddr *)&ss, peer, sizeof(peer));
		if (counters_total_active() >= srv->policy->tcp_max_connections) {
			COUNT(tcp_refused_max, 1);
			log_event(LOG_DEBUG, "tcp_refused",
				  "peer=%s reason=max_connections", peer);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (c == NULL || loop_add(l, fd, EPOLLIN, conn_event, c) != 0) {
			COUNT(tcp_accept_errors, 1);
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->srv = srv;
		memcpy(c->peer, peer, sizeof(peer));
		c->last_active = now_ms();
		idle_append(srv, c);
		COUNT(tcp_accepted, 1);
		COUNT(tcp_active, 1);
		log_event(LOG_DEBUG, "tcp_open", "peer=%s", peer);
	}
}

void
tcp_server_tick(struct tcp_server *srv, uint64_t now)
{
	uint64_t idle = srv->policy->tcp_idle_timeout_ms;

	while (srv->oldest != NULL && now - srv->oldest->last_active >= idle) {
		COUNT(tcp_idle_timeouts, 1);
		conn_close(srv->oldest, "idle_timeout");
	}
	for (size_t i = 0; i < srv->npaused; i++)
		loop_set_events(srv->loop, srv->paused[i], EPOLLIN);
	srv->npaused = 0;
}

struct tcp_server *
tcp_server_new(struct loop *l, const struct policy *p,
	       const struct listen_set *s)
{
	struct tcp_server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL)
		return NULL;
	srv->loop = l;
	srv->policy = p;
	srv->scratch = malloc(p->tcp_buffer);
	if (srv->scratch == NULL) {
		free(srv);
		return NULL;
	}
	for (size_t i = 0; i < s->n; i++) {
		if (s->l[i].type != SOCK_STREAM)
			continue;
		/* A socket shared by all workers wakes only one of them. */
		uint32_t ev = EPOLLIN;
		if (s->l[i].worker == LISTENER_SHARED)
			ev |= EPOLLEXCLUSIVE;
		if (loop_add(l, s->l[i].fd, ev, accept_event, srv) != 0) {
			tcp_server_free(srv);
			return NULL;
		}
	}
	return srv;
}

void
tcp_server_free(struct tcp_server *srv)
{
	while (srv->oldest != NULL)
		conn_close(srv->oldest, "shutdown");
	free(srv->scratch);
	free(srv);
}
