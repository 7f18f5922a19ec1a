/*
 * log: one event per line on stderr or to syslog, logfmt or JSON, with a
 * global line budget.
 * Map: base layer; calls counters, errmsg, logline.
 */
#ifndef ECHOD_LOG_H
#define ECHOD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define LOG_LINE_MAX 2048 /* one event, as logfmt */

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* "error", "warn", "info", "debug": the policy's words and the lines'. */
const char *log_level_name(enum log_level l);
/* The level called name; 0, or -1 if there is none. */
int log_level_parse(const char *name, enum log_level *out);

/* Set the minimum level and the process name field (e.g. "worker"). */
void log_init(enum log_level level, const char *role, int index);

/* Send every later line to the syslog socket at path (e.g. /dev/log), one
 * datagram per line, "<PRI>echod[PID]: " first. Before the sandbox: it
 * needs socket and connect. 0, or -1 with the reason in err. */
int log_open_syslog(const char *path, char *err, size_t errlen);

/* Quiet: lines are made as ever, but none reaches stderr (a syslog
 * socket still gets its own, and a full one drops them). For the fuzz
 * harnesses, whose replays provoke error lines by design and would hide
 * a real error, or a sanitizer's report, among them. */
void log_set_quiet(bool q);

/* Write each line as one JSON object instead of logfmt (same fields). */
void log_set_json(bool json);

/* This process spends 1/n of the service's line budget (a worker of n):
 * the budget holds whatever the worker count. */
void log_share_budget(unsigned n);

/* True if an event at this level would be written (before rate limiting). */
int log_enabled(enum log_level level);

/*
 * Write "ts=... level=... event=EVENT role=... FIELDS\n" in one write(2)
 * (or that line as JSON, or as a syslog datagram, as configured above).
 * FIELDS is a printf format of key=value pairs; values that could hold
 * spaces must be quoted by the caller. Lines beyond the budget (LOG_RATE
 * per second for the whole service) are counted and reported in a later
 * log_suppressed event, itself a line of the budget.
 */
void log_event(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same, exempt from the budget: for start, stop and operator requests. */
void log_always(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * UTC year, month (1-12), day, hour, minute, second of epoch seconds t,
 * for any t that fits (negative: before 1970). Pure; not gmtime_r, which
 * reads /etc/localtime inside the sandbox.
 */
void utc_fields(time_t t, int f[6]);

/* The same line for a signal handler: async-signal-safe (no stdio, no
 * locks, no budget), `fields` written as is. */
void log_signal_safe(enum log_level level, const char *event,
                     const char *fields);

/*
 * Lines about peers (drops, refusals, evictions) are limited before the
 * budget: LOG_LIMIT_LINES per reason per LOG_LIMIT_WINDOW_MS, then one
 * summary line per reason; and LOG_LIMIT_SOURCE_LINES per source (counted
 * in the source's table entry) while it is in the table.
 */
#define LOG_LIMIT_MAX_REASONS  16
#define LOG_LIMIT_LINES        5
#define LOG_LIMIT_SOURCE_LINES 3
#define LOG_LIMIT_WINDOW_MS    10000

struct log_limit {
	const char *summary_event;     /* "udp_drop_summary", ... */
	const char *(*name)(unsigned); /* a reason's name */
	uint64_t window_start;
	unsigned logged[LOG_LIMIT_MAX_REASONS];
	uint64_t suppressed[LOG_LIMIT_MAX_REASONS];
};

/* May a line for reason r be written now? source_lines: the source's
 * count of lines (NULL if the check ended before the table). False means
 * counted for the summary. */
int log_limit_allow(struct log_limit *l, unsigned r, uint32_t *source_lines);

/* Once a window: one summary_event line (through the budget) per reason
 * that had lines suppressed; a new window. */
void log_limit_tick(struct log_limit *l, uint64_t now);

#define LOG_RATE  50 /* lines per second once the burst is spent */
#define LOG_BURST 200

#endif
