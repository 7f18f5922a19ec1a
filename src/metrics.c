/* metrics: render the counters for Prometheus; bind the endpoint. */
#include "metrics.h"
#include "errmsg.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Each counter's place in the exposition: rows of one metric are adjacent
 * (HELP and TYPE once), drops and refusals carry their reason as a label. */
struct row {
	const char *counter, *metric, *labels, *type, *help;
};

#define DROPPED  "UDP datagrams not answered, by reason."
#define REFUSED  "TCP connections closed at once, by reason."
#define LIMITED  "TCP connections closed by a limit, by reason."
#define SCRAPES  "Requests to this endpoint, by result."
#define RELOADS  "SIGHUP reloads of the policy, by result."
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
    {"tcp_refused_bad_source", "echod_tcp_refused_total",
     "reason=\"bad_source\"", "counter", REFUSED},
    {"tcp_refused_per_aggregate", "echod_tcp_refused_total",
     "reason=\"per_aggregate\"", "counter", REFUSED},
    {"tcp_refused_aggregate_rate", "echod_tcp_refused_total",
     "reason=\"aggregate_rate\"", "counter", REFUSED},
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
    {"tcp_splice_bytes", "echod_tcp_splice_bytes_total", "", "counter",
     "TCP echo bytes moved by splice(2), never copied through user memory."},
    {"tcp_splice_fallbacks", "echod_tcp_splice_fallbacks_total", "", "counter",
     "TCP transfers that found every pipe lent and took the copy path."},
    {"tcp_splice_pipes_busy", "echod_tcp_splice_pipes_busy", "", "gauge",
     "Pipes lent to TCP connections, each holding echo bytes a peer's window "
     "has not taken."},
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
    {"udp_drop_aggregate_rate", "echod_udp_dropped_total",
     "reason=\"aggregate_rate\"", "counter", DROPPED},
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
    {"xdp_udp_drop_aggregate_rate", "echod_xdp_dropped_total",
     "proto=\"udp\",reason=\"aggregate_rate\"", "counter", XDP},
    {"xdp_tcp_drop_bad_source", "echod_xdp_dropped_total",
     "proto=\"tcp\",reason=\"bad_source\"", "counter", XDP},
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
    {"metrics_restarts", "echod_metrics_restarts_total", "", "counter",
     "Metrics processes restarted after dying."},
    {"worker_restarts", "echod_worker_restarts_total", "", "counter",
     "Workers restarted after dying."},
    {"policy_reloads", "echod_policy_reloads_total", "result=\"ok\"", "counter",
     RELOADS},
    {"policy_reloads_refused", "echod_policy_reloads_total",
     "result=\"refused\"", "counter", RELOADS},
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
 * wants (a chroot path is the operator's text); any other byte outside
 * printable ASCII becomes '?', so the text is valid UTF-8 whatever the
 * path holds. */
static void
label_value(struct text *t, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '\\' || ch == '"')
			add(t, "\\%c", ch);
		else if (ch == '\n')
			add(t, "\\n");
		else if (ch < 0x20 || ch > 0x7e)
			add(t, "?");
		else
			add(t, "%c", ch);
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
	if (f->policy_digest != NULL) {
		family(&t, "echod_policy_info", "gauge",
		       "The digest of the policy in force (as event=reload "
		       "says it); always 1.");
		add(&t, "echod_policy_info{digest=\"");
		label_value(&t, f->policy_digest);
		add(&t, "\"} 1\n");
	}
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
	    listen(fd, METRICS_BACKLOG) != 0) {
		errmsg(err, errlen, "metrics %s: %s", where, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}
