/* metrics: render the counters for Prometheus; a small bounded HTTP server
 * for them in the supervisor's loop. */
#include "metrics.h"
#include "acl.h"
#include "errmsg.h"
#include "http.h"
#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPTS_PER_EVENT 16

/* Each counter's place in the exposition: rows of one metric are adjacent
 * (HELP and TYPE once), drops and refusals carry their reason as a label. */
struct row {
	const char *counter, *metric, *labels, *type, *help;
};

#define DROPPED  "UDP datagrams not answered, by reason."
#define REFUSED  "TCP connections closed at once, by reason."
#define LIMITED  "TCP connections closed by a limit, by reason."
#define SCRAPES  "Requests to this endpoint, by result."
#define EVICTED  "Rate-table entries evicted for new sources, by protocol."
#define BYTES_IN "Payload bytes received, by protocol."
#define ENTRIES                                                                \
	"Sources held in the rate tables of all workers, by protocol (each "   \
	"worker has rate-table-size slots per protocol)."
#define XDP       "Packets the XDP prefilter dropped, by protocol and reason."
#define BYTES_OUT "Payload bytes echoed, by protocol."
#define EXEMPT                                                                 \
	"UDP datagrams passed and TCP connections opened for rate-exempt "     \
	"sources, with no rate limit checked, by protocol."

static const struct row rows[] = {
    {"tcp_accepted", "echod_tcp_connections_accepted_total", "", "counter",
     "TCP connections accepted."},
    {"tcp_closed", "echod_tcp_connections_closed_total", "", "counter",
     "TCP connections closed, for any reason."},
    {"tcp_active", "echod_tcp_connections_open", "", "gauge",
     "TCP connections open now, over all workers."},
    {"tcp_refused_max", "echod_tcp_refused_total", "reason=\"max_connections\"",
     "counter", REFUSED},
    {"tcp_refused_deny", "echod_tcp_refused_total", "reason=\"deny\"",
     "counter", REFUSED},
    {"tcp_refused_per_source", "echod_tcp_refused_total",
     "reason=\"per_source\"", "counter", REFUSED},
    {"tcp_refused_rate", "echod_tcp_refused_total", "reason=\"rate\"",
     "counter", REFUSED},
    {"tcp_refused_table", "echod_tcp_refused_total", "reason=\"table\"",
     "counter", REFUSED},
    {"tcp_idle_timeouts", "echod_tcp_limit_closes_total", "reason=\"idle\"",
     "counter", LIMITED},
    {"tcp_lifetime_closes", "echod_tcp_limit_closes_total",
     "reason=\"lifetime\"", "counter", LIMITED},
    {"tcp_max_bytes_closes", "echod_tcp_limit_closes_total",
     "reason=\"max_bytes\"", "counter", LIMITED},
    {"tcp_evicted_largest", "echod_tcp_limit_closes_total",
     "reason=\"evicted_largest\"", "counter", LIMITED},
    {"tcp_evicted_slow", "echod_tcp_limit_closes_total",
     "reason=\"evicted_slow\"", "counter", LIMITED},
    {"tcp_would_evict", "echod_tcp_would_evict_total", "", "counter",
     "enforce log-only: TCP connections tcp-min-rate would have closed."},
    {"tcp_would_refuse", "echod_tcp_would_refuse_total", "", "counter",
     "enforce log-only: TCP connections that would have been refused."},
    {"tcp_throttled", "echod_tcp_throttled_total", "", "counter",
     "Times tcp-byte-rate paused a connection's reads."},
    {"tcp_accept_errors", "echod_tcp_accept_errors_total", "", "counter",
     "accept() failures other than an empty queue."},
    {"listener_failures", "echod_listener_failures_total", "", "counter",
     "Listening sockets that failed for good and are no longer polled."},
    {"udp_received", "echod_udp_datagrams_received_total", "", "counter",
     "UDP datagrams received."},
    {"udp_echoed", "echod_udp_datagrams_echoed_total", "", "counter",
     "UDP datagrams echoed."},
    {"udp_drop_oversize", "echod_udp_dropped_total", "reason=\"oversize\"",
     "counter", DROPPED},
    {"udp_drop_port", "echod_udp_dropped_total", "reason=\"source_port\"",
     "counter", DROPPED},
    {"udp_drop_bad_source", "echod_udp_dropped_total", "reason=\"bad_source\"",
     "counter", DROPPED},
    {"udp_drop_bad_dest", "echod_udp_dropped_total",
     "reason=\"bad_destination\"", "counter", DROPPED},
    {"udp_drop_deny", "echod_udp_dropped_total", "reason=\"deny\"", "counter",
     DROPPED},
    {"udp_drop_table", "echod_udp_dropped_total", "reason=\"table\"", "counter",
     DROPPED},
    {"udp_drop_loop", "echod_udp_dropped_total", "reason=\"loop\"", "counter",
     DROPPED},
    {"udp_drop_rate", "echod_udp_dropped_total", "reason=\"rate\"", "counter",
     DROPPED},
    {"udp_drop_global_rate", "echod_udp_dropped_total",
     "reason=\"global_rate\"", "counter", DROPPED},
    {"udp_send_errors", "echod_udp_dropped_total", "reason=\"send_error\"",
     "counter", DROPPED},
    {"udp_drop_no_packet_info", "echod_udp_dropped_total",
     "reason=\"no_packet_info\"", "counter", DROPPED},
    {"udp_gro_buffers", "echod_udp_gro_buffers_total", "", "counter",
     "UDP_GRO buffers that carried more than one datagram."},
    {"udp_gso_fallbacks", "echod_udp_gso_fallbacks_total", "", "counter",
     "GSO echoes the kernel refused, sent one datagram at a time."},
    {"udp_would_drop", "echod_udp_would_drop_total", "", "counter",
     "enforce log-only: UDP datagrams that would have been dropped."},
    {"tcp_bytes_in", "echod_bytes_received_total", "proto=\"tcp\"", "counter",
     BYTES_IN},
    {"udp_bytes_in", "echod_bytes_received_total", "proto=\"udp\"", "counter",
     BYTES_IN},
    {"tcp_bytes_out", "echod_bytes_echoed_total", "proto=\"tcp\"", "counter",
     BYTES_OUT},
    {"udp_bytes_out", "echod_bytes_echoed_total", "proto=\"udp\"", "counter",
     BYTES_OUT},
    {"udp_table_evictions", "echod_rate_table_evictions_total", "proto=\"udp\"",
     "counter", EVICTED},
    {"tcp_table_evictions", "echod_rate_table_evictions_total", "proto=\"tcp\"",
     "counter", EVICTED},
    {"xdp_udp_drop_port", "echod_xdp_dropped_total",
     "proto=\"udp\",reason=\"source_port\"", "counter", XDP},
    {"xdp_udp_drop_bad_source", "echod_xdp_dropped_total",
     "proto=\"udp\",reason=\"bad_source\"", "counter", XDP},
    {"xdp_udp_drop_bad_dest", "echod_xdp_dropped_total",
     "proto=\"udp\",reason=\"bad_destination\"", "counter", XDP},
    {"xdp_udp_drop_deny", "echod_xdp_dropped_total",
     "proto=\"udp\",reason=\"deny\"", "counter", XDP},
    {"xdp_udp_drop_rate", "echod_xdp_dropped_total",
     "proto=\"udp\",reason=\"rate\"", "counter", XDP},
    {"xdp_tcp_drop_deny", "echod_xdp_dropped_total",
     "proto=\"tcp\",reason=\"deny\"", "counter", XDP},
    {"xdp_would_drop", "echod_xdp_would_drop_total", "", "counter",
     "enforce log-only: packets the XDP prefilter would have dropped."},
    {"udp_rate_exempt", "echod_rate_exempt_total", "proto=\"udp\"", "counter",
     EXEMPT},
    {"tcp_rate_exempt", "echod_rate_exempt_total", "proto=\"tcp\"", "counter",
     EXEMPT},
    {"udp_table_entries", "echod_rate_table_entries", "proto=\"udp\"", "gauge",
     ENTRIES},
    {"tcp_table_entries", "echod_rate_table_entries", "proto=\"tcp\"", "gauge",
     ENTRIES},
    {"workers_ready", "echod_workers_ready", "", "gauge",
     "Workers sandboxed and serving."},
    {"worker_restarts", "echod_worker_restarts_total", "", "counter",
     "Workers restarted after dying."},
    {"log_suppressed", "echod_log_lines_suppressed_total", "", "counter",
     "Log lines dropped by the line budget."},
    {"metrics_ok", "echod_metrics_requests_total", "result=\"ok\"", "counter",
     SCRAPES},
    {"metrics_errors", "echod_metrics_requests_total", "result=\"error\"",
     "counter", SCRAPES},
    {"metrics_refused", "echod_metrics_requests_total", "result=\"refused\"",
     "counter", SCRAPES},
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))

static const char *const counter_names[] = {
#define COUNTER_NAME(name) #name,
    COUNTER_LIST(COUNTER_NAME)
#undef COUNTER_NAME
};

#define NCOUNTERS (sizeof(counter_names) / sizeof(counter_names[0]))

static int
counter_index(const char *name)
{
	for (size_t i = 0; i < NCOUNTERS; i++)
		if (strcmp(counter_names[i], name) == 0)
			return (int)i;
	return -1;
}

int
metrics_covers_every_counter(void)
{
	for (size_t i = 0; i < NCOUNTERS; i++) {
		size_t r = 0;
		while (r < NROWS && strcmp(rows[r].counter, counter_names[i]))
			r++;
		if (r == NROWS)
			return 0;
	}
	for (size_t r = 0; r < NROWS; r++)
		if (counter_index(rows[r].counter) < 0)
			return 0;
	return 1;
}

/* A bounded appender: once something does not fit, nothing more is added
 * and the render reports failure. */
struct text {
	char *buf;
	size_t len, used;
	bool full;
};

static void __attribute__((format(printf, 2, 3)))
add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (t->full)
		return;
	va_start(ap, fmt);
	r = vsnprintf(t->buf + t->used, t->len - t->used, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= t->len - t->used)
		t->full = true;
	else
		t->used += (size_t)r;
}

static void
family(struct text *t, const char *metric, const char *type, const char *help)
{
	add(t, "# HELP %s %s\n# TYPE %s %s\n", metric, help, metric, type);
}

/* A label value: backslash, quote and newline escaped, as the format
 * wants (a chroot path is the operator's text). */
static void
label_value(struct text *t, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			add(t, "\\%c", *s);
		else if (*s == '\n')
			add(t, "\\n");
		else
			add(t, "%c", *s);
	}
}

size_t
metrics_render(const struct counters *sum, const struct metrics_facts *f,
               char *buf, size_t len)
{
	const uint64_t *v = (const uint64_t *)sum;
	struct text t = {buf, len, 0, len == 0};

	family(&t, "echod_build_info", "gauge",
	       "Version and hardening facts of this echod; always 1.");
	add(&t, "echod_build_info{version=\"");
	label_value(&t, f->version);
	add(&t, "\",seccomp=\"");
	label_value(&t, f->seccomp);
	add(&t, "\",landlock=\"");
	label_value(&t, f->landlock);
	add(&t, "\",chroot=\"");
	label_value(&t, f->chroot);
	add(&t, "\",user=\"");
	label_value(&t, f->user);
	add(&t, "\"} 1\n");
	family(&t, "echod_workers", "gauge", "Workers configured.");
	add(&t, "echod_workers %u\n", f->workers);
	family(&t, "echod_workers_alive", "gauge", "Workers running now.");
	add(&t, "echod_workers_alive %u\n", f->workers_alive);
	family(&t, "echod_rate_table_slots", "gauge",
	       "Rate-table slots of all workers, per protocol (rate-table-size "
	       "times the workers).");
	add(&t, "echod_rate_table_slots %llu\n",
	    (unsigned long long)f->table_slots * f->workers);

	for (size_t r = 0; r < NROWS; r++) {
		int i = counter_index(rows[r].counter);
		if (i < 0)
			continue;
		if (r == 0 || strcmp(rows[r].metric, rows[r - 1].metric) != 0)
			family(&t, rows[r].metric, rows[r].type, rows[r].help);
		if (rows[r].labels[0] != '\0')
			add(&t, "%s{%s} %llu\n", rows[r].metric, rows[r].labels,
			    (unsigned long long)v[i]);
		else
			add(&t, "%s %llu\n", rows[r].metric,
			    (unsigned long long)v[i]);
	}
	if (t.full)
		return 0;
	return t.used;
}

int
metrics_bind(const struct policy *p, char *err, size_t errlen)
{
	const struct endpoint *ep = &p->metrics;
	char where[ADDR_STRLEN];
	int one = 1, fd;

	format_sockaddr((const struct sockaddr *)&ep->ss, where, sizeof(where));
	fd = socket(ep->ss.ss_family,
	            SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		errmsg(err, errlen, "metrics %s: socket: %s", where,
		       strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (ep->ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) !=
	         0) ||
	    bind(fd, (const struct sockaddr *)&ep->ss, ep->len) != 0 ||
	    listen(fd, 16) != 0) {
		errmsg(err, errlen, "metrics %s: %s", where, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* One scrape: its request as received, then its response as sent. */
struct conn {
	int fd; /* -1: free */
	uint64_t deadline;
	enum { READING, WRITING, DRAINING } state;
	size_t got, sent, out_len;
	char in[HTTP_MAX_REQUEST];
	char out[METRICS_MAX_RESPONSE];
};

struct metrics_server {
	struct loop *loop;
	int fd;
	struct acl allowed; /* loopback and metrics-allow; the rest denied */
	metrics_snapshot_fn snap;
	void *arg;
	bool paused; /* every slot busy: the listener is not watched */
	struct conn conns[METRICS_MAX_CONNS];
	char body[METRICS_MAX_RESPONSE];
};

static void conn_event(struct loop *l, int fd, uint32_t events, void *arg);
static void accept_event(struct loop *l, int fd, uint32_t events, void *arg);
static void pause_accepting(struct metrics_server *m, bool pause);

static void
conn_close(struct metrics_server *m, struct conn *c)
{
	loop_del(m->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	pause_accepting(m, false);
}

/* The response to send: the metrics, or a short error page. */
static void
respond(struct metrics_server *m, struct conn *c, enum http_status st,
        bool head)
{
	struct counters sum;
	struct metrics_facts f;
	size_t body_len;
	const char *type = "text/plain; charset=utf-8";
	int r;

	/* Counted first: a scrape's figures include the scrape itself. */
	if (st == HTTP_OK)
		COUNT(metrics_ok, 1);
	else
		COUNT(metrics_errors, 1);
	if (st == HTTP_OK) {
		m->snap(m->arg, &sum, &f);
		body_len = metrics_render(&sum, &f, m->body, sizeof(m->body));
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
conn_write(struct metrics_server *m, struct conn *c)
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

static void
conn_read(struct metrics_server *m, struct conn *c)
{
	struct http_request req;
	enum http_status st;
	char sink[512];
	ssize_t n;

	if (c->state == DRAINING) {
		while ((n = recv(c->fd, sink, sizeof(sink), 0)) > 0)
			;
		if (n == 0 || errno != EAGAIN)
			conn_close(m, c);
		return;
	}
	n = recv(c->fd, c->in + c->got, sizeof(c->in) - c->got, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) { /* gone before a whole request */
		conn_close(m, c);
		return;
	}
	c->got += (size_t)n;
	st = http_parse_request(c->in, c->got, "/metrics", &req);
	if (st == HTTP_INCOMPLETE)
		return;
	respond(m, c, st, st == HTTP_OK && req.head);
	conn_write(m, c);
}

static void
conn_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct metrics_server *m = arg;
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

/* A source that may not scrape: closed at once, no answer. */
static void
refuse(int fd, const char *peer)
{
	close(fd);
	COUNT(metrics_refused, 1);
	log_event(LOG_INFO, "metrics_refused", "peer=%s reason=not_allowed",
	          peer);
}

static struct conn *
free_slot(struct metrics_server *m)
{
	for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
		if (m->conns[i].fd < 0)
			return &m->conns[i];
	return NULL;
}

/* Every slot busy: stop accepting (the kernel's backlog holds the next
 * scrapers) until one frees, rather than poll a listener we cannot serve. */
static void
pause_accepting(struct metrics_server *m, bool pause)
{
	if (pause == m->paused)
		return;
	m->paused = pause;
	if (pause)
		loop_del(m->loop, m->fd);
	else if (loop_add(m->loop, m->fd, EPOLLIN, accept_event, m) != 0)
		m->paused = true; /* retried when the next slot frees */
}

static void
accept_event(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct metrics_server *m = arg;

	(void)events;
	for (int k = 0; k < ACCEPTS_PER_EVENT; k++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct ipaddr ip;
		char peer[ADDR_STRLEN];
		struct conn *c = free_slot(m);
		int cfd;

		if (c == NULL) {
			pause_accepting(m, true);
			return;
		}
		cfd = accept4(fd, (struct sockaddr *)&ss, &sl,
		              SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0)
			return; /* EAGAIN, or an error the next event retries */
		format_sockaddr((struct sockaddr *)&ss, peer, sizeof(peer));
		ipaddr_from_sockaddr((struct sockaddr *)&ss, &ip, NULL);
		if (!acl_allows(&m->allowed, &ip)) {
			refuse(cfd, peer);
			continue;
		}
		if (loop_add(l, cfd, EPOLLIN, conn_event, m) != 0) {
			close(cfd);
			continue;
		}
		c->fd = cfd;
		c->got = 0;
		c->state = READING;
		c->deadline = now_ms() + METRICS_TIMEOUT_MS;
	}
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

struct metrics_server *
metrics_server_new(struct loop *l, int fd, const struct policy *p,
                   metrics_snapshot_fn snap, void *arg)
{
	struct metrics_server *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->loop = l;
	m->fd = fd;
	m->snap = snap;
	m->arg = arg;
	build_allowed(&m->allowed, p);
	for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
		m->conns[i].fd = -1;
	if (loop_add(l, fd, EPOLLIN, accept_event, m) != 0) {
		free(m);
		return NULL;
	}
	return m;
}

void
metrics_server_tick(struct metrics_server *m, uint64_t now)
{
	static const char timeout[] = "HTTP/1.1 408 Request Timeout\r\n"
	                              "Content-Length: 0\r\n"
	                              "Connection: close\r\n\r\n";

	for (size_t i = 0; i < METRICS_MAX_CONNS; i++) {
		struct conn *c = &m->conns[i];
		if (c->fd < 0 || now < c->deadline)
			continue;
		if (c->state == READING) {
			(void)send(c->fd, timeout, sizeof(timeout) - 1,
			           MSG_NOSIGNAL);
			COUNT(metrics_errors, 1);
		}
		conn_close(m, c);
	}
}

void
metrics_server_close_fds(struct metrics_server *m)
{
	for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
		if (m->conns[i].fd >= 0)
			close(m->conns[i].fd);
	close(m->fd);
}

void
metrics_server_free(struct metrics_server *m)
{
	for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
		if (m->conns[i].fd >= 0)
			conn_close(m, &m->conns[i]);
	if (!m->paused)
		loop_del(m->loop, m->fd);
	free(m);
}
