/* log: no peer can make echod write more than LOG_RATE lines a second. */
#include "log.h"
#include "counters.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static char role_field[48] = "role=main";

/* The line budget: a token bucket in whole lines, refilled from CLOCK_MONOTONIC. */
static struct {
	double tokens;
	struct timespec last;
	int primed;
} budget;

void
log_init(enum log_level level, const char *role, int index)
{
	min_level = level;
	if (index >= 0)
		snprintf(role_field, sizeof(role_field), "role=%s worker=%d",
			 role, index);
	else
		snprintf(role_field, sizeof(role_field), "role=%s", role);
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
		budget.tokens = LOG_BURST;
		budget.primed = 1;
	} else {
		elapsed = (double)(now.tv_sec - budget.last.tv_sec) +
			  (double)(now.tv_nsec - budget.last.tv_nsec) / 1e9;
		if (elapsed > 0)
			budget.tokens += elapsed * LOG_RATE;
		if (budget.tokens > LOG_BURST)
			budget.tokens = LOG_BURST;
	}
	budget.last = now;
	if (budget.tokens < 1)
		return 0;
	budget.tokens -= 1;
	return 1;
}

static void
write_line(enum log_level level, const char *event, const char *fmt,
	   va_list ap)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	r = snprintf(line, sizeof(line),
		     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s "
		     "event=%s %s",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level],
		     event, role_field);
	n = (size_t)r;
	if (fmt[0] != '\0' && n + 1 < sizeof(line)) {
		line[n++] = ' ';
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (r > 0)
			n += (size_t)r;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line: workers share stderr and lines must not mix. */
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
}

static void
report_suppressed(void)
{
	static uint64_t reported;
	uint64_t now = counters ? counters->log_suppressed : 0;

	if (now == reported)
		return;
	log_always(LOG_WARN, "log_suppressed", "suppressed=%llu",
		   (unsigned long long)(now - reported));
	reported = now;
}

void
log_event(enum log_level level, const char *event, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	if (!take_budget()) {
		if (counters != NULL)
			COUNT(log_suppressed, 1);
		return;
	}
	report_suppressed();
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
