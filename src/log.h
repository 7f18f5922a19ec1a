/*
 * log: one event per line on stderr or to syslog, logfmt or JSON, with a
 * global line budget.
 * Map: base layer; calls counters, errmsg, logline.
 */
#ifndef ECHOD_LOG_H
#define ECHOD_LOG_H

#include <stdbool.h>
#include <stddef.h>
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

/* Write each line as one JSON object instead of logfmt (same fields). */
void log_set_json(bool json);

/* True if an event at this level would be written (before rate limiting). */
int log_enabled(enum log_level level);

/*
 * Write "ts=... level=... event=EVENT role=... FIELDS\n" in one write(2)
 * (or that line as JSON, or as a syslog datagram, as configured above).
 * FIELDS is a printf format of key=value pairs; values that could hold
 * spaces must be quoted by the caller. Lines beyond the budget (LOG_RATE
 * per second) are counted and reported in a later log_suppressed event.
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

#define LOG_RATE  50 /* lines per second once the burst is spent */
#define LOG_BURST 200

#endif
