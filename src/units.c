/* units: numbers with units, as written in policy files and flags. */
#include "units.h"

#include <stdio.h>
#include <string.h>

/* Upper bound on any value so that products below never overflow. */
#define VALUE_MAX (UINT64_C(1) << 48)

int
parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		uint64_t digit = (uint64_t)(*s - '0');
		if (*s < '0' || *s > '9')
			return -1;
		/* Checked before multiplying: v * 10 must not wrap. */
		if (v > (max - digit) / 10 || digit > max)
			return -1;
		v = v * 10 + digit;
	}
	*out = v;
	return 0;
}

/* Split "123unit" into the digits and the suffix; the digits must exist. */
static int
split_number(const char *s, uint64_t *num, const char **suffix)
{
	char digits[24];
	size_t n = strspn(s, "0123456789");

	if (n == 0 || n >= sizeof(digits))
		return -1;
	memcpy(digits, s, n);
	digits[n] = '\0';
	if (parse_uint(digits, VALUE_MAX, num) != 0)
		return -1;
	*suffix = s + n;
	return 0;
}

static int
unit_ms(const char *unit, uint64_t *ms)
{
	if (strcmp(unit, "ms") == 0)
		*ms = 1;
	else if (strcmp(unit, "s") == 0)
		*ms = 1000;
	else if (strcmp(unit, "m") == 0)
		*ms = 60 * 1000;
	else if (strcmp(unit, "h") == 0)
		*ms = 3600 * 1000;
	else
		return -1;
	return 0;
}

int
parse_duration(const char *s, uint64_t *out_ms)
{
	uint64_t n, mult;
	const char *unit;

	if (split_number(s, &n, &unit) != 0 || unit_ms(unit, &mult) != 0)
		return -1;
	if (n > VALUE_MAX / mult)
		return -1;
	*out_ms = n * mult;
	return 0;
}

int
parse_size(const char *s, uint64_t *out)
{
	uint64_t n, mult;
	const char *unit;

	if (split_number(s, &n, &unit) != 0)
		return -1;
	if (strcmp(unit, "") == 0)
		mult = 1;
	else if (strcmp(unit, "k") == 0)
		mult = 1024;
	else if (strcmp(unit, "m") == 0)
		mult = 1024 * 1024;
	else if (strcmp(unit, "g") == 0)
		mult = 1024 * 1024 * 1024;
	else
		return -1;
	if (n > VALUE_MAX / mult)
		return -1;
	*out = n * mult;
	return 0;
}

/* "X/unit" where X is parsed by `amount`; the period must be one unit. */
static int
parse_per(const char *s, int (*amount)(const char *, uint64_t *),
          struct rate *out)
{
	char head[32];
	const char *slash = strchr(s, '/');
	size_t n;

	if (slash == NULL)
		return -1;
	n = (size_t)(slash - s);
	if (n == 0 || n >= sizeof(head))
		return -1;
	memcpy(head, s, n);
	head[n] = '\0';
	if (amount(head, &out->count) != 0)
		return -1;
	if (strcmp(slash + 1, "ms") == 0 || unit_ms(slash + 1, &out->period_ms))
		return -1;
	return 0;
}

static int
count_amount(const char *s, uint64_t *out)
{
	return parse_uint(s, VALUE_MAX, out);
}

int
parse_rate(const char *s, struct rate *out)
{
	return parse_per(s, count_amount, out);
}

int
parse_byte_rate(const char *s, struct rate *out)
{
	return parse_per(s, parse_size, out);
}

void
format_duration(uint64_t ms, char *buf, size_t len)
{
	if (ms != 0 && ms % 3600000 == 0)
		snprintf(buf, len, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(buf, len, "%llum", (unsigned long long)(ms / 60000));
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(buf, len, "%llums", (unsigned long long)ms);
}
