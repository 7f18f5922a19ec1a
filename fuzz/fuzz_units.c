/*
 * fuzz_units: the value parsers of src/units.c. The first byte picks the
 * parser (% 6: uint, duration, size, rate, byte rate, all); for parse_uint
 * the second byte picks the maximum. The rest, capped at 255 bytes, is the
 * NUL-terminated text.
 *
 * Invariants: parse_uint agrees with an independent reference; a parsed
 * duration formats (format_duration) and parses back to the same value;
 * sizes and durations are multiples of their unit and never above 2^48
 * (VALUE_MAX in units.c: the number times the unit is capped, so no
 * product overflows); rates have a count <= 2^48 and a period of exactly
 * one s, m or h.
 */
#include "units.h"

#include "fuzz.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT  255
#define VALUE_MAX (UINT64_C(1) << 48)

static const uint64_t maxima[] = {0,
                                  1,
                                  9,
                                  10,
                                  255,
                                  1000,
                                  65535,
                                  100000,
                                  INT32_MAX,
                                  UINT32_MAX,
                                  VALUE_MAX,
                                  UINT64_MAX / 10,
                                  UINT64_MAX / 10 + 1,
                                  UINT64_MAX - 1,
                                  UINT64_MAX};

/* The obvious reference: digits only, at least one, value <= max. */
static bool
ref_uint(const char *s, uint64_t max, uint64_t *out)
{
	unsigned __int128 v = 0;

	if (*s == '\0')
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > max)
			return false;
	}
	*out = (uint64_t)v;
	return true;
}

static void
do_uint(const char *s, uint64_t max)
{
	uint64_t v = 0xdeadbeef, r = 0;
	int rc = parse_uint(s, max, &v);
	bool ok = ref_uint(s, max, &r);

	CHECK(rc == 0 || rc == -1);
	CHECK((rc == 0) == ok);
	if (ok)
		CHECK(v == r && v <= max);
}

static void
do_duration(const char *s)
{
	uint64_t ms, back;
	char buf[64];

	if (parse_duration(s, &ms) != 0)
		return;
	CHECK(ms <= VALUE_MAX);
	format_duration(ms, buf, sizeof(buf));
	CHECK(strlen(buf) < sizeof(buf) - 1);
	CHECK(parse_duration(buf, &back) == 0);
	CHECK(back == ms);
	/* The unit of the text divides the value. */
	size_t len = strlen(s);
	if (len >= 2 && strcmp(s + len - 2, "ms") == 0)
		return;
	if (s[len - 1] == 's')
		CHECK(ms % 1000 == 0);
	else if (s[len - 1] == 'm')
		CHECK(ms % 60000 == 0);
	else if (s[len - 1] == 'h')
		CHECK(ms % 3600000 == 0);
	else
		CHECK(0 && "duration without a unit");
}

static void
do_size(const char *s)
{
	uint64_t v;
	size_t len;

	if (parse_size(s, &v) != 0)
		return;
	CHECK(v <= VALUE_MAX);
	len = strlen(s);
	CHECK(len > 0);
	if (s[len - 1] == 'k')
		CHECK(v % 1024 == 0);
	else if (s[len - 1] == 'm')
		CHECK(v % (1024 * 1024) == 0);
	else if (s[len - 1] == 'g')
		CHECK(v % (1024 * 1024 * 1024) == 0);
	else
		CHECK(s[len - 1] >= '0' && s[len - 1] <= '9');
}

static void
check_rate(const struct rate *r)
{
	CHECK(r->count <= VALUE_MAX);
	CHECK(r->period_ms == 1000 || r->period_ms == 60000 ||
	      r->period_ms == 3600000);
}

static void
do_rate(const char *s)
{
	struct rate r;

	if (parse_rate(s, &r) != 0)
		return;
	check_rate(&r);
	/* The count part is a plain number. */
	const char *slash = strchr(s, '/');
	CHECK(slash != NULL);
	for (const char *c = s; c < slash; c++)
		CHECK(*c >= '0' && *c <= '9');
}

static void
do_byte_rate(const char *s)
{
	struct rate r;

	if (parse_byte_rate(s, &r) != 0)
		return;
	check_rate(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[MAX_TEXT + 1];
	size_t n, skip;
	unsigned which;
	uint64_t max;

	if (size < 1)
		return 0;
	which = data[0] % 6;
	skip = which == 0 && size >= 2 ? 2 : 1;
	max = skip == 2 ? maxima[data[1] % (sizeof(maxima) / sizeof(*maxima))]
	                : VALUE_MAX;
	n = size - skip < MAX_TEXT ? size - skip : MAX_TEXT;
	memcpy(s, data + skip, n);
	s[n] = '\0';

	switch (which) {
	case 0:
		do_uint(s, max);
		break;
	case 1:
		do_duration(s);
		break;
	case 2:
		do_size(s);
		break;
	case 3:
		do_rate(s);
		break;
	case 4:
		do_byte_rate(s);
		break;
	default:
		do_uint(s, VALUE_MAX);
		do_duration(s);
		do_size(s);
		do_rate(s);
		do_byte_rate(s);
		break;
	}

	/* format_duration of any value (not only parsed ones) parses back
	 * when it is within range; the value is the first 8 bytes. */
	if (which == 5 && size >= 9) {
		uint64_t ms = 0, back;
		char buf[32];
		memcpy(&ms, data + 1, sizeof(ms));
		ms %= VALUE_MAX + 1;
		format_duration(ms, buf, sizeof(buf));
		CHECK(parse_duration(buf, &back) == 0 && back == ms);
	}
	return 0;
}
