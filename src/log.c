/* log: no peer can make echod write more than LOG_RATE lines a second. */
#include "log.h"
#include "counters.h"
#include "errmsg.h"
#include "logline.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static char role_field[48] = "role=main";
static long my_pid;

/* Where lines go: stderr, or a datagram socket connected to syslog. */
static int sink_fd = STDERR_FILENO;
static bool sink_syslog, format_json;
/* Nothing to stderr (log_set_quiet): the fuzz harnesses. */
static bool quiet;

/* The line budget: a token bucket in whole lines, refilled from
 * CLOCK_MONOTONIC. Each of N workers spends 1/N of the service's. */
static struct {
	double tokens;
	struct timespec last;
	int primed;
	double rate, burst;
} budget = {.rate = LOG_RATE, .burst = LOG_BURST};

void
log_share_budget(unsigned n)
{
	if (n == 0)
		n = 1;
	budget.rate = (double)LOG_RATE / n;
	budget.burst = (double)LOG_BURST / n;
	if (budget.burst < 1)
		budget.burst = 1;
	budget.primed = 0;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *
log_level_name(enum log_level l)
{
	return level_names[l];
}

int
log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void
log_set_quiet(bool q)
{
	quiet = q;
}

void
log_init(enum log_level level, const char *role, int index)
{
	min_level = level;
	my_pid = (long)getpid();
	if (index >= 0)
		snprintf(role_field, sizeof(role_field), "role=%s worker=%d",
		         role, index);
	else
		snprintf(role_field, sizeof(role_field), "role=%s", role);
}

int
log_open_syslog(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return errmsg(err, errlen, "syslog socket path %s is too long",
		              path);
	memcpy(sa.sun_path, path, strlen(path));
	/* Non-blocking: a stuck syslog daemon must not stall a worker. */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return errmsg(err, errlen, "syslog socket: %s",
		              strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(fd);
		return errmsg(err, errlen, "cannot connect to %s: %s", path,
		              strerror(e));
	}
	sink_fd = fd;
	sink_syslog = true;
	return 0;
}

void
log_set_json(bool json)
{
	format_json = json;
}

int
log_enabled(enum log_level level)
{
	return level <= min_level;
}

static int
take_budget(void)
{
	struct timespec now;
	double elapsed;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!budget.primed) {
		budget.tokens = budget.burst;
		budget.primed = 1;
	} else {
		elapsed = (double)(now.tv_sec - budget.last.tv_sec) +
		          (double)(now.tv_nsec - budget.last.tv_nsec) / 1e9;
		if (elapsed > 0)
			budget.tokens += elapsed * budget.rate;
		if (budget.tokens > budget.burst)
			budget.tokens = budget.burst;
	}
	budget.last = now;
	if (budget.tokens < 1)
		return 0;
	budget.tokens -= 1;
	return 1;
}

/*
 * UTC calendar fields from epoch seconds (Howard Hinnant's civil_from_days).
 * Not gmtime_r: glibc's reads /etc/localtime on first use, a file access
 * the sandbox forbids.
 */
void
utc_fields(time_t t, int f[6])
{
	long long days = t / 86400, secs = t % 86400;
	long long era, doe, yoe, doy, mp;

	if (secs < 0) {
		secs += 86400;
		days--;
	}
	days += 719468;
	era = (days >= 0 ? days : days - 146096) / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	f[2] = (int)(doy - (153 * mp + 2) / 5 + 1);
	f[1] = (int)(mp < 10 ? mp + 3 : mp - 9);
	f[0] = (int)(yoe + era * 400 + (f[1] <= 2));
	f[3] = (int)(secs / 3600);
	f[4] = (int)(secs / 60 % 60);
	f[5] = (int)(secs % 60);
}

/* One logfmt line (no newline) out to the sink, in the policy's format.
 * One write per line: workers share the sink and lines must not mix. */
static void
emit(enum log_level level, const char *line, size_t n)
{
	char out[LOG_LINE_MAX * 3 + 64];
	size_t used = 0, prefix;
	ssize_t r;

	if (sink_syslog)
		used =
		    logline_syslog_prefix((int)level, my_pid, out, sizeof(out));
	prefix = used;
	if (format_json) {
		used += logline_json(line, n, out + used, sizeof(out) - used);
	} else {
		memcpy(out + used, line, n);
		used += n;
	}
	if (!sink_syslog)
		out[used++] = '\n';
	if (quiet && !sink_syslog)
		return; /* made, as ever, but written nowhere */
	while ((r = write(sink_fd, out, used)) < 0 && errno == EINTR)
		;
	/* syslog gone (restarted: the socket cannot be reconnected inside
	 * the sandbox) or full: the line goes to stderr rather than nowhere. */
	if (r < 0 && sink_syslog && !quiet) {
		out[used++] = '\n';
		while (write(STDERR_FILENO, out + prefix, used - prefix) < 0 &&
		       errno == EINTR)
			;
	}
}

static void __attribute__((format(printf, 3, 0)))
write_line(enum log_level level, const char *event, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	int tm[6];
	size_t n;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	utc_fields(ts.tv_sec, tm);
	r = snprintf(line, sizeof(line),
	             "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s "
	             "event=%s %s",
	             tm[0], tm[1], tm[2], tm[3], tm[4], tm[5],
	             ts.tv_nsec / 1000000, level_names[level], event,
	             role_field);
	n = (size_t)r;
	if (fmt[0] != '\0' && n + 1 < sizeof(line)) {
		line[n++] = ' ';
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (r > 0)
			n += (size_t)r;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	emit(level, line, n);
}

static void __attribute__((format(printf, 3, 4)))
put_line(enum log_level level, const char *event, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	write_line(level, event, fmt, ap);
	va_end(ap);
}

/* Lines dropped (counters->log_suppressed) as of the last report. */
static uint64_t suppressed_reported;

static uint64_t
suppressed_since_report(void)
{
	return counters ? counters->log_suppressed - suppressed_reported : 0;
}

void
log_event(enum log_level level, const char *event, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	/* The report of dropped lines is a line like any other: it spends a
	 * token, and the line that follows needs one more. */
	if (suppressed_since_report() > 0 && take_budget()) {
		put_line(LOG_WARN, "log_suppressed", "suppressed=%llu",
		         (unsigned long long)suppressed_since_report());
		suppressed_reported = counters->log_suppressed;
	}
	if (!take_budget()) {
		if (counters != NULL)
			COUNT(log_suppressed, 1);
		return;
	}
	va_start(ap, fmt);
	write_line(level, event, fmt, ap);
	va_end(ap);
}

void
log_always(enum log_level level, const char *event, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	write_line(level, event, fmt, ap);
	va_end(ap);
}

static char *
put_str(char *p, char *end, const char *s)
{
	while (*s != '\0' && p < end)
		*p++ = *s++;
	return p;
}

/* v in decimal, at least `width` digits. */
static char *
put_num(char *p, char *end, unsigned long long v, int width)
{
	char d[24];
	int n = 0;

	do {
		d[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0 || n < width);
	while (n > 0 && p < end)
		*p++ = d[--n];
	return p;
}

void
log_signal_safe(enum log_level level, const char *event, const char *fields)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	static const int widths[6] = {4, 2, 2, 2, 2, 2};
	static const char seps[6] = {'-', '-', 'T', ':', ':', '.'};
	char line[512], *p = line, *end = line + sizeof(line) - 1;
	struct timespec ts;
	int tm[6];

	if (!log_enabled(level))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	utc_fields(ts.tv_sec, tm);
	p = put_str(p, end, "ts=");
	for (int i = 0; i < 6; i++) {
		p = put_num(p, end, (unsigned long long)tm[i], widths[i]);
		if (p < end)
			*p++ = seps[i];
	}
	p = put_num(p, end, (unsigned long long)(ts.tv_nsec / 1000000), 3);
	p = put_str(p, end, "Z level=");
	p = put_str(p, end, names[level]);
	p = put_str(p, end, " event=");
	p = put_str(p, end, event);
	p = put_str(p, end, " ");
	p = put_str(p, end, role_field);
	p = put_str(p, end, " ");
	p = put_str(p, end, fields);
	*p++ = '\n';
	if (quiet)
		return;
	while (write(STDERR_FILENO, line, (size_t)(p - line)) < 0 &&
	       errno == EINTR)
		;
}

int
log_limit_allow(struct log_limit *l, unsigned r, uint32_t *source_lines)
{
	if (r >= LOG_LIMIT_MAX_REASONS || !log_enabled(LOG_INFO))
		return 0;
	if (l->logged[r] >= LOG_LIMIT_LINES ||
	    (source_lines != NULL && *source_lines >= LOG_LIMIT_SOURCE_LINES)) {
		l->suppressed[r]++;
		return 0;
	}
	l->logged[r]++;
	if (source_lines != NULL)
		(*source_lines)++;
	return 1;
}

void
log_limit_tick(struct log_limit *l, uint64_t now)
{
	if (now - l->window_start < LOG_LIMIT_WINDOW_MS)
		return;
	l->window_start = now;
	for (unsigned r = 0; r < LOG_LIMIT_MAX_REASONS; r++) {
		if (l->suppressed[r] > 0)
			log_event(LOG_INFO, l->summary_event,
			          "reason=%s suppressed=%llu window_ms=%d",
			          l->name(r),
			          (unsigned long long)l->suppressed[r],
			          LOG_LIMIT_WINDOW_MS);
		l->suppressed[r] = 0;
		l->logged[r] = 0;
	}
}
