/* logline: logfmt to JSON, and syslog framing. */
#include "logline.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define TRUNCATED       ",\"truncated\":true}"
#define TRUNCATED_FIRST "\"truncated\":true}"

/* A bounded writer: `used` stops growing once the text would not fit. */
struct out {
	char *buf;
	size_t len, used;
	bool full;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->full || o->used + n >= o->len) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->used, s, n);
	o->used += n;
}

/* A JSON string: quotes, backslashes and every byte outside printable
 * ASCII escaped (bytes >= 0x80 as \u00XX: Latin-1, always valid). */
static void
put_string(struct out *o, const char *s, size_t n)
{
	char esc[8];

	put(o, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(o, esc, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(o, esc, 6);
		} else {
			put(o, (const char *)&s[i], 1);
		}
	}
	put(o, "\"", 1);
}

static bool
is_number(const char *s, size_t n)
{
	if (n == 0 || n > 18 || (s[0] == '0' && n > 1))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* One quoted logfmt value starting after its opening quote: unescaped into
 * val (at most n bytes). Returns the input consumed, closing quote too. */
static size_t
unquote(const char *in, size_t n, char *val, size_t *vlen)
{
	size_t i = 0;

	*vlen = 0;
	while (i < n && in[i] != '"') {
		if (in[i] == '\\' && i + 1 < n)
			i++;
		val[(*vlen)++] = in[i++];
	}
	return i < n ? i + 1 : i;
}

size_t
logline_json(const char *in, size_t n, char *out, size_t len)
{
	struct out o = {out, len - sizeof(TRUNCATED), 0, false};
	char val[4096];
	size_t i = 0;
	bool first = true;

	put(&o, "{", 1);
	while (i < n) {
		size_t key, klen, vlen = 0, mark = o.used;
		const char *v = val;
		bool quoted = false;

		while (i < n && in[i] == ' ')
			i++;
		if (i == n)
			break;
		key = i;
		while (i < n && in[i] != ' ' && in[i] != '=')
			i++;
		klen = i - key;
		if (i < n && in[i] == '=') {
			i++;
			if (i < n && in[i] == '"') {
				size_t room = n - i - 1;
				if (room > sizeof(val))
					room = sizeof(val);
				i += 1 + unquote(in + i + 1, room, val, &vlen);
				quoted = true;
			} else {
				v = in + i;
				while (i < n && in[i] != ' ')
					i++;
				vlen = (size_t)(in + i - v);
			}
		}
		if (!first)
			put(&o, ",", 1);
		put_string(&o, in + key, klen);
		put(&o, ":", 1);
		if (!quoted && is_number(v, vlen))
			put(&o, v, vlen);
		else
			put_string(&o, v, vlen);
		if (o.full) {
			/* Leave the pair out whole and say so. */
			o.used = mark;
			o.len = len;
			o.full = false;
			put(&o, first ? TRUNCATED_FIRST : TRUNCATED,
			    strlen(first ? TRUNCATED_FIRST : TRUNCATED));
			out[o.used] = '\0';
			return o.used;
		}
		first = false;
	}
	o.len = len;
	put(&o, "}", 1);
	out[o.used] = '\0';
	return o.used;
}

size_t
logline_syslog_prefix(int level, long pid, char *out, size_t len)
{
	static const int severity[] = {3, 4, 6, 7}; /* err warning info debug */
	int r;

	if (level < 0 || level > 3)
		level = 0;
	r = snprintf(out, len, "<%d>echod[%ld]: ", 3 * 8 + severity[level],
	             pid);
	if (r < 0)
		r = 0;
	return (size_t)r < len ? (size_t)r : len - 1;
}
