/*
 * logline: one log event as the bytes its sink wants. Pure functions over
 * buffers (the fuzzer and the unit tests call them directly).
 * Map: base layer; calls nothing of echod.
 */
#ifndef ECHOD_LOGLINE_H
#define ECHOD_LOGLINE_H

#include <stddef.h>

/*
 * Convert one logfmt line in[0..n) (key=value or key="quoted \"value\"",
 * separated by spaces, no newline) into one JSON object with the same keys
 * and values, in order, into out[0..len). Values of plain decimal digits
 * (no leading zero, at most 18 digits) become numbers, all else strings; a
 * word without '=' becomes a key with the value "". Every byte outside
 * printable ASCII is escaped, so the object is valid JSON (and UTF-8)
 * whatever the input holds. Pairs that do not fit are left out whole and
 * "truncated":true ends the object. Returns the length written, not
 * counting the NUL; len must be at least LOGLINE_JSON_MIN.
 */
size_t logline_json(const char *in, size_t n, char *out, size_t len);

#define LOGLINE_JSON_MIN 32

/* "<PRI>echod[PID]: " for a datagram to the local syslog socket (facility
 * daemon; severity from the level: 0 error, 1 warn, 2 info, 3 debug).
 * Returns the length written, not counting the NUL. */
size_t logline_syslog_prefix(int level, long pid, char *out, size_t len);

#endif
