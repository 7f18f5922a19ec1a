/* scrape: the metrics process: accept, parse, answer, forget. */
#include "scrape.h"
#include "acl.h"
#include "addr.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define TICK_MS           50
#define ACCEPTS_PER_EVENT 64
#define REFUSED_SOURCES   16 /* sources with a count of refusal lines */

/* Reasons of the refusal lines' limiter (log.h: per reason, per source). */
enum { LOG_not_allowed, LOG_REASONS };

/* One scrape: its request as received, then its response as sent. */
struct conn {
	int fd; /* -1: free */
	struct ipaddr peer;
	uint64_t since, deadline;
	enum { READING, WRITING, DRAINING } state;
	size_t got, sent, out_len;
	char in[HTTP_MAX_REQUEST];
	char out[METRICS_MAX_RESPONSE];
};

/* A refused source and the lines it has had, while it is in the ring. */
struct refused {
	struct ipaddr ip;
	uint32_t lines;
	bool used;
};

struct scrape {
	struct loop *loop;
	int fd, feed_fd, report_fd;
	struct acl allowed; /* loopback and metrics-allow; the rest denied */
	struct metrics_facts facts;
	struct scrape_feed latest; /* the last whole snapshot */
	struct log_limit refusals;
	struct listener_pauses paused; /* the listener, out of descriptors */
	struct refused refused[REFUSED_SOURCES];
	unsigned refused_next;
	struct conn conns[METRICS_MAX_CONNS];
	char body[METRICS_MAX_RESPONSE];
};

static const char *
reason_name(unsigned r)
{
	return r == LOG_not_allowed ? "not_allowed" : "unknown";
}

static void
conn_close(struct scrape *m, struct conn *c)
{
	loop_del(m->loop, c->fd);
	close(c->fd);
	c->fd = -1;
}

/* The response to send: the metrics, or a short error page. */
static void
respond(struct scrape *m, struct conn *c, enum http_status st, bool head)
{
	struct counters sum;
	size_t body_len;
	const char *type = "text/plain; charset=utf-8";
	int r;

	/* Counted first: a scrape's figures include the scrape itself. */
	if (st == HTTP_OK)
		COUNT(metrics_ok, 1);
	else
		COUNT(metrics_errors, 1);
	if (st == HTTP_OK) {
		/* The supervisor's figures and this process's own; readiness
		 * is the supervisor's count, not this process's ready bit. */
		sum = m->latest.sum;
		counters_add(&sum, counters);
		sum.workers_ready = m->latest.sum.workers_ready;
		m->facts.workers_alive = m->latest.workers_alive;
		m->latest.policy_digest[sizeof(m->latest.policy_digest) - 1] =
		    '\0';
		m->facts.policy_digest = m->latest.policy_digest;
		body_len =
		    metrics_render(&sum, &m->facts, m->body, sizeof(m->body));
		if (body_len == 0) /* cannot happen: the size is fixed */
			st = HTTP_BAD_REQUEST;
		type = "text/plain; version=0.0.4; charset=utf-8";
	}
	if (st != HTTP_OK)
		body_len = (size_t)snprintf(m->body, sizeof(m->body), "%d %s\n",
		                            (int)st, http_reason(st));
	r = snprintf(c->out, sizeof(c->out),
	             "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	             "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
	             (int)st, http_reason(st), type, body_len,
	             st == HTTP_METHOD_NOT_ALLOWED ? "Allow: GET, HEAD\r\n"
	                                           : "");
	c->out_len = (size_t)r;
	if (!head && c->out_len + body_len <= sizeof(c->out)) {
		memcpy(c->out + c->out_len, m->body, body_len);
		c->out_len += body_len;
	}
	c->sent = 0;
	c->state = WRITING;
	loop_set_events(m->loop, c->fd, EPOLLOUT);
}

static void
conn_write(struct scrape *m, struct conn *c)
{
	while (c->sent < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->sent, c->out_len - c->sent,
		                 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return; /* EPOLLOUT again */
		if (n <= 0) {
			conn_close(m, c);
			return;
		}
		c->sent += (size_t)n;
	}
	/* All sent: FIN, then wait for the client's close (discarding what it
	 * still sends), so no reset can destroy the response in flight. */
	shutdown(c->fd, SHUT_WR);
	c->state = DRAINING;
	loop_set_events(m->loop, c->fd, EPOLLIN);
}

/* Past its deadline: closed, with a 408 if no request came. */
static bool
expired(struct scrape *m, struct conn *c, uint64_t now)
{
	static const char timeout[] = "HTTP/1.1 408 Request Timeout\r\n"
	                              "Content-Length: 0\r\n"
	                              "Connection: close\r\n\r\n";

	if (now < c->deadline)
		return false;
	if (c->state == READING) {
		(void)send(c->fd, timeout, sizeof(timeout) - 1, MSG_NOSIGNAL);
		COUNT(metrics_errors, 1);
	}
	conn_close(m, c);
	return true;
}

/*
 * At most SCRAPE_READS_PER_WAKEUP reads, the deadline checked before each:
 * a client that keeps writing costs its slot and its share of the loop,
 * never more, and is closed on time.
 */
static void
conn_read(struct scrape *m, struct conn *c)
{
	struct http_request req;
	enum http_status st;
	char sink[SCRAPE_SINK];
	ssize_t n;

	for (int k = 0; k < SCRAPE_READS_PER_WAKEUP; k++) {
		if (expired(m, c, now_ms()))
			return;
		if (c->state == DRAINING)
			n = recv(c->fd, sink, sizeof(sink), 0);
		else
			n = recv(c->fd, c->in + c->got, sizeof(c->in) - c->got,
			         0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) { /* gone, or done with us */
			conn_close(m, c);
			return;
		}
		if (c->state == DRAINING)
			continue;
		c->got += (size_t)n;
		st = http_parse_request(c->in, c->got, "/metrics", &req);
		if (st == HTTP_INCOMPLETE)
			continue;
		respond(m, c, st, st == HTTP_OK && req.head);
		conn_write(m, c);
		return;
	}
}

static void
conn_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct scrape *m = arg;
	struct conn *c = NULL;

	(void)l;
	for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
		if (m->conns[i].fd == fd)
			c = &m->conns[i];
	if (c == NULL)
		return;
	if (c->state == WRITING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		conn_write(m, c);
	else if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_read(m, c);
}

/* The count of refusal lines of ip, in a small ring of recent sources. */
static uint32_t *
refused_lines(struct scrape *m, const struct ipaddr *ip)
{
	struct refused *r;

	for (size_t i = 0; i < REFUSED_SOURCES; i++)
		if (m->refused[i].used && ipaddr_equal(&m->refused[i].ip, ip))
			return &m->refused[i].lines;
	r = &m->refused[m->refused_next++ % REFUSED_SOURCES];
	*r = (struct refused){.ip = *ip, .used = true};
	return &r->lines;
}

/* A source that may not scrape: closed at once, no answer, a line within
 * the per-reason and per-source limits. */
static void
refuse(struct scrape *m, int fd, const struct ipaddr *ip, const char *peer)
{
	close(fd);
	COUNT(metrics_refused, 1);
	if (log_limit_allow(&m->refusals, LOG_not_allowed,
	                    refused_lines(m, ip)))
		log_event(LOG_INFO, "metrics_refused",
		          "peer=%s reason=not_allowed", peer);
}

/* Give up c's slot for a newcomer; a request it never finished is an
 * error like a timeout. */
static struct conn *
vacate(struct scrape *m, struct conn *c)
{
	if (c->state == READING)
		COUNT(metrics_errors, 1);
	conn_close(m, c);
	return c;
}

/*
 * The slot for a new connection from ip: the one its source already holds
 * (one connection per source address), else a free one, else the one held
 * longest without a whole request, else the oldest.
 */
static struct conn *
slot_for(struct scrape *m, const struct ipaddr *ip)
{
	struct conn *free_slot = NULL, *stalled = NULL, *oldest = NULL;

	for (size_t i = 0; i < METRICS_MAX_CONNS; i++) {
		struct conn *c = &m->conns[i];
		if (c->fd >= 0 && ipaddr_equal(&c->peer, ip))
			return vacate(m, c);
	}
	for (size_t i = 0; i < METRICS_MAX_CONNS; i++) {
		struct conn *c = &m->conns[i];
		if (c->fd < 0) {
			if (free_slot == NULL)
				free_slot = c;
			continue;
		}
		if (c->state == READING &&
		    (stalled == NULL || c->since < stalled->since))
			stalled = c;
		if (oldest == NULL || c->since < oldest->since)
			oldest = c;
	}
	if (free_slot != NULL)
		return free_slot;
	return vacate(m, stalled != NULL ? stalled : oldest);
}

static void
accept_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct scrape *m = arg;

	(void)events;
	/* On a failure: out of descriptors or memory, pause the listener
	 * until the tick (as the TCP echo does); one connection's trouble,
	 * the next; anything else, return: the metrics listener is never
	 * dropped, and the next event retries it. */
	for (int k = 0; k < ACCEPTS_PER_EVENT; k++) {
		struct sockaddr_storage ss;
		enum listener_error e;
		struct ipaddr ip;
		char peer[ADDR_STRLEN];
		struct conn *c;
		int cfd = listener_accept(fd, &ss, &e);

		if (cfd < 0 && e == LISTENER_TRANSIENT)
			continue;
		if (cfd < 0 && e == LISTENER_EXHAUSTED)
			listener_pause(&m->paused, l, fd);
		if (cfd < 0)
			return;
		ipaddr_from_sockaddr((struct sockaddr *)&ss, &ip, NULL);
		if (!acl_allows(&m->allowed, &ip)) {
			format_sockaddr((struct sockaddr *)&ss, peer,
			                sizeof(peer));
			refuse(m, cfd, &ip, peer);
			continue;
		}
		c = slot_for(m, &ip);
		if (loop_add(l, cfd, EPOLLIN, conn_event, m) != 0) {
			close(cfd);
			continue;
		}
		c->fd = cfd;
		c->peer = ip;
		c->got = 0;
		c->state = READING;
		c->since = now_ms();
		c->deadline = c->since + METRICS_TIMEOUT_MS;
		/* A request that came with the connection is answered now,
		 * before a later arrival could take the slot. */
		conn_read(m, c);
	}
}

/* The supervisor's snapshots: keep the last. The pipe is in packet mode
 * (keeper.c): a read takes one record, so whatever an earlier metrics
 * process read or left, this one reads whole records. End of file: the
 * supervisor stops (or is gone). */
static void
feed_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct scrape *m = arg;
	union {
		struct scrape_feed msg;
		unsigned char bytes[sizeof(struct scrape_feed) + 1];
	} in;

	(void)events;
	for (;;) {
		ssize_t n = read(fd, &in, sizeof(in));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			loop_stop(l);
			return;
		}
		if (n == (ssize_t)sizeof(in.msg))
			m->latest = in.msg;
	}
}

static void
tick(struct loop *l, uint64_t now, void *arg)
{
	struct scrape *m = arg;

	for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
		if (m->conns[i].fd >= 0)
			(void)expired(m, &m->conns[i], now);
	log_limit_tick(&m->refusals, now);
	listener_resume(&m->paused, l, accept_event, m);
	if (counters_changed())
		counters_send(m->report_fd, COUNTERS_UPDATE);
}

/* Loopback always; metrics-allow; nothing else (an ACL allows what no rule
 * matches, so the catch-all denials go last). */
static void
build_allowed(struct acl *a, const struct policy *p)
{
	static const char *const fixed[] = {"127.0.0.0/8", "::1/128"};
	static const char *const rest[] = {"0.0.0.0/0", "::/0"};
	struct cidr net;

	*a = p->metrics_allow;
	for (size_t i = 0; i < 2; i++)
		if (parse_cidr(fixed[i], &net) == 0)
			(void)acl_add(a, &net, true);
	for (size_t i = 0; i < 2; i++)
		if (parse_cidr(rest[i], &net) == 0)
			(void)acl_add(a, &net, false); /* unless allowed */
	acl_finish(a);
}

int
scrape_run(const struct policy *p, const struct metrics_facts *facts,
           int listen_fd, int feed_fd, int report_fd, void (*harden)(void))
{
	struct scrape *m = calloc(1, sizeof(*m));
	struct rlimit rl;

	if (m == NULL || getrlimit(RLIMIT_NOFILE, &rl) != 0 ||
	    (m->loop = loop_new((int)rl.rlim_cur)) == NULL) {
		log_always(LOG_ERROR, "metrics_process_failed", "step=setup");
		return 1;
	}
	m->fd = listen_fd;
	m->feed_fd = feed_fd;
	m->report_fd = report_fd;
	m->facts = *facts;
	m->refusals = (struct log_limit){
	    .summary_event = "metrics_refused_summary", .name = reason_name};
	build_allowed(&m->allowed, p);
	for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
		m->conns[i].fd = -1;
	if (loop_add(m->loop, listen_fd, EPOLLIN, accept_event, m) != 0 ||
	    loop_add(m->loop, feed_fd, EPOLLIN, feed_event, m) != 0) {
		log_always(LOG_ERROR, "metrics_process_failed", "step=epoll");
		return 1;
	}
	loop_set_tick(m->loop, TICK_MS, tick, m);
	harden();
	/* Hardened and about to serve: the one ready report, latched by the
	 * keeper. */
	COUNT(workers_ready, 1);
	counters_send(report_fd, COUNTERS_UPDATE);
	log_event(LOG_DEBUG, "metrics_ready", "pid=%d", getpid());
	if (loop_run(m->loop) != 0) {
		log_always(LOG_ERROR, "metrics_process_failed",
		           "step=epoll_wait");
		return 1;
	}
	counters_send(report_fd, COUNTERS_UPDATE);
	return 0;
}
