/*
 * fuzz_logline: logline_json, the logfmt-to-JSON conversion of every log
 * line under "log-format json", and logline_syslog_prefix.
 *
 * Input: one byte picks the output size (LOGLINE_JSON_MIN and up), the
 * rest is the logfmt line (any bytes: a peer's address or a strerror text
 * may end up in a value).
 *
 * Invariants: the output is one JSON object of "string":string|number
 * pairs (checked by a small validator below, strings holding only printable
 * ASCII and \", \\, \u00XX escapes), shorter than the buffer, NUL-terminated
 * at the returned length; with room for the worst case (every byte escaped)
 * nothing is truncated; a truncated object still ends in "truncated":true}.
 */
#include "logline.h"

#include "fuzz.h"

#include <stdbool.h>
#include <string.h>

#define MAX_IN 4096

static const char *
string_end(const char *s)
{
	if (*s++ != '"')
		return NULL;
	while (*s != '"') {
		if (*s < 0x20 || *s > 0x7e)
			return NULL;
		if (*s == '\\') {
			s++;
			if (*s == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdef", s[i]) ||
					    s[i] == '\0')
						return NULL;
				s += 4;
			} else if (*s != '"' && *s != '\\') {
				return NULL;
			}
		}
		s++;
	}
	return s + 1;
}

static const char *
number_end(const char *s)
{
	const char *start = s;

	while (*s >= '0' && *s <= '9')
		s++;
	if (s == start || s - start > 18 || (*start == '0' && s - start > 1))
		return NULL;
	return s;
}

/* {"k":v,...} exactly, nothing after. */
static bool
valid_object(const char *s)
{
	if (*s++ != '{')
		return false;
	if (*s == '}')
		return s[1] == '\0';
	for (;;) {
		if ((s = string_end(s)) == NULL || *s++ != ':')
			return false;
		if (strncmp(s, "true}", 5) == 0) /* "truncated":true} */
			return s[5] == '\0';
		s = *s == '"' ? string_end(s) : number_end(s);
		if (s == NULL)
			return false;
		if (*s == '}')
			return s[1] == '\0';
		if (*s++ != ',')
			return false;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[MAX_IN * 6 + 64];
	char prefix[64];
	size_t len, n, in_len;
	const char *in;

	if (size < 1 || size > MAX_IN + 1)
		return 0;
	in = (const char *)data + 1;
	in_len = size - 1;

	len = LOGLINE_JSON_MIN + (size_t)data[0] * 4;
	memset(out, 'x', len + 1);
	n = logline_json(in, in_len, out, len);
	CHECK(n < len);
	CHECK(out[n] == '\0' && strlen(out) == n);
	CHECK(valid_object(out));
	CHECK(out[len] == 'x'); /* nothing written past the buffer */

	/* Room for every byte escaped: never truncated. */
	len = in_len * 6 + 64;
	n = logline_json(in, in_len, out, len);
	CHECK(valid_object(out));
	CHECK(n < 18 || strcmp(out + n - 18, ",\"truncated\":true}") != 0);
	CHECK(strcmp(out, "{\"truncated\":true}") != 0);

	n = logline_syslog_prefix(data[0] % 6 - 1, (long)in_len, prefix,
	                          sizeof(prefix));
	CHECK(n == strlen(prefix) && prefix[0] == '<');
	CHECK(strstr(prefix, ">echod[") != NULL);
	return 0;
}
