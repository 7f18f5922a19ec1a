/*
 * units: pure parsers for the policy grammar's values.
 * Map: base layer; calls nothing of echod.
 */
#ifndef ECHOD_UNITS_H
#define ECHOD_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* A rate: `count` events (or bytes) per `period_ms` milliseconds. */
struct rate {
	uint64_t count;
	uint64_t period_ms;
};

/* `rate` tokens every `period_ms`, holding at most `burst` tokens. A rate
 * of 0 means unlimited (every take succeeds). */
struct bucket_cfg {
	uint64_t rate;
	uint64_t period_ms;
	uint64_t burst;
};

/* Unsigned decimal integer, no sign, no spaces; 0 or -1 (overflow, junk). */
int parse_uint(const char *s, uint64_t max, uint64_t *out);

/* Duration with a mandatory unit: "500ms", "30s", "5m", "2h"; into ms. */
int parse_duration(const char *s, uint64_t *out_ms);

/* Size: "512", "64k", "1m", "1g" (powers of 1024); into bytes. */
int parse_size(const char *s, uint64_t *out);

/* Event rate: "100/s", "6000/m", "10/h". */
int parse_rate(const char *s, struct rate *out);

/* Byte rate: SIZE/UNIT, e.g. "64k/s", "1m/m". */
int parse_byte_rate(const char *s, struct rate *out);

/* Format ms as the shortest exact duration ("1500ms", "30s", "5m"). */
void format_duration(uint64_t ms, char *buf, size_t len);

#endif
