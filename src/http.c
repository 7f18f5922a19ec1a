/* http: a strict reading of RFC 9112's request line and header fields,
 * bounded in size; anything unusual is an error, never a guess. */
#include "http.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 tchar: the characters of a method or a field name. */
static bool
is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A field value's bytes: visible ASCII, space, tab, obs-text. */
static bool
is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* The line starting at buf[pos]: its length without the line end, and
 * where the next begins. false if no line end is in buf yet. */
static bool
next_line(const char *buf, size_t len, size_t pos, size_t *line_len,
          size_t *next)
{
	const char *nl = memchr(buf + pos, '\n', len - pos);

	if (nl == NULL)
		return false;
	*line_len = (size_t)(nl - (buf + pos));
	*next = *line_len + pos + 1;
	if (*line_len > 0 && buf[pos + *line_len - 1] == '\r')
		(*line_len)--;
	return true;
}

static bool
ieq(const char *s, size_t n, const char *word)
{
	return n == strlen(word) && strncasecmp(s, word, n) == 0;
}

/* The method of a request line: one or more tchars up to a space. */
static bool
method_ok(const char *s, size_t mlen)
{
	if (mlen == 0)
		return false;
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar((unsigned char)s[i]))
			return false;
	return true;
}

/* "METHOD SP TARGET SP HTTP/1.x" */
static enum http_status
request_line(const char *s, size_t n, const char *path, struct http_request *r)
{
	const char *sp1 = memchr(s, ' ', n), *sp2, *target;
	size_t mlen, tlen, plen = strlen(path);

	if (sp1 == NULL || !method_ok(s, (size_t)(sp1 - s)))
		return HTTP_BAD_REQUEST;
	mlen = (size_t)(sp1 - s);
	target = sp1 + 1;
	sp2 = memchr(target, ' ', n - mlen - 1);
	/* Length first, as partial_request_line judges it before the end. */
	tlen = sp2 != NULL ? (size_t)(sp2 - target) : n - mlen - 1;
	if (tlen > HTTP_MAX_TARGET)
		return HTTP_URI_TOO_LONG;
	if (sp2 == NULL || sp2 == target)
		return HTTP_BAD_REQUEST;
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)target[i] <= 0x20 ||
		    (unsigned char)target[i] >= 0x7f)
			return HTTP_BAD_REQUEST;
	n -= (size_t)(sp2 + 1 - s);
	s = sp2 + 1;
	if (n != 8 || memcmp(s, "HTTP/1.", 7) != 0)
		return n >= 5 && memcmp(s, "HTTP/", 5) == 0
		           ? HTTP_VERSION_NOT_SUPPORTED
		           : HTTP_BAD_REQUEST;
	if (s[7] != '0' && s[7] != '1')
		return HTTP_VERSION_NOT_SUPPORTED;
	r->head = mlen == 4 && memcmp(sp1 - 4, "HEAD", 4) == 0;
	if (!(mlen == 3 && memcmp(sp1 - 3, "GET", 3) == 0) && !r->head)
		return HTTP_METHOD_NOT_ALLOWED;
	if (tlen < plen || memcmp(target, path, plen) != 0 ||
	    (tlen > plen && target[plen] != '?'))
		return HTTP_NOT_FOUND;
	return HTTP_OK;
}

/* "name: value" with a token name; a body is refused. */
static enum http_status
header_line(const char *s, size_t n)
{
	const char *colon = memchr(s, ':', n), *v;
	size_t nlen, vlen;

	if (colon == NULL || colon == s)
		return HTTP_BAD_REQUEST; /* also obs-fold: a leading space */
	nlen = (size_t)(colon - s);
	for (size_t i = 0; i < nlen; i++)
		if (!is_tchar((unsigned char)s[i]))
			return HTTP_BAD_REQUEST;
	v = colon + 1;
	vlen = n - nlen - 1;
	for (size_t i = 0; i < vlen; i++)
		if (!is_value_char((unsigned char)v[i]))
			return HTTP_BAD_REQUEST;
	while (vlen > 0 && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	if (ieq(s, nlen, "transfer-encoding"))
		return HTTP_BAD_REQUEST;
	if (ieq(s, nlen, "content-length") && !ieq(v, vlen, "0"))
		return HTTP_BAD_REQUEST;
	return HTTP_OK;
}

/* A request line with no line end yet: a verdict only if more bytes
 * cannot change it (so a verdict on a prefix is the verdict on the whole).
 * No separate check for NUL bytes anywhere: every part's character rules
 * refuse them, in the order the parts arrive. */
static enum http_status
partial_request_line(const char *buf, size_t len)
{
	const char *sp = memchr(buf, ' ', len), *sp2;
	size_t rest;

	/* A method token as long as the whole bound is a verdict too:
	 * the caller has no room left to wait for its end. */
	if (sp == NULL && !method_ok(buf, len) && len > 0)
		return HTTP_BAD_REQUEST;
	if (sp == NULL)
		return len == HTTP_MAX_REQUEST ? HTTP_HEADERS_TOO_LARGE
		                               : HTTP_INCOMPLETE;
	if (!method_ok(buf, (size_t)(sp - buf)))
		return HTTP_BAD_REQUEST;
	rest = len - (size_t)(sp + 1 - buf);
	if (rest > 0 && buf[len - 1] == '\r')
		rest--; /* maybe the line end's first half */
	sp2 = memchr(sp + 1, ' ', rest);
	if ((sp2 != NULL ? (size_t)(sp2 - sp - 1) : rest) > HTTP_MAX_TARGET)
		return HTTP_URI_TOO_LONG;
	return len == HTTP_MAX_REQUEST ? HTTP_HEADERS_TOO_LARGE
	                               : HTTP_INCOMPLETE;
}

enum http_status
http_parse_request(const char *buf, size_t len, const char *path,
                   struct http_request *req)
{
	size_t n, next, pos;
	enum http_status st;
	unsigned headers = 0;

	memset(req, 0, sizeof(*req));
	if (len > HTTP_MAX_REQUEST)
		len = HTTP_MAX_REQUEST; /* judge only what may be kept */
	if (!next_line(buf, len, 0, &n, &next))
		return partial_request_line(buf, len);
	st = request_line(buf, n, path, req);
	if (st != HTTP_OK)
		return st;
	for (pos = next;; pos = next) {
		if (!next_line(buf, len, pos, &n, &next))
			return len == HTTP_MAX_REQUEST ? HTTP_HEADERS_TOO_LARGE
			                               : HTTP_INCOMPLETE;
		if (n == 0)
			break;
		if (++headers > HTTP_MAX_HEADERS)
			return HTTP_HEADERS_TOO_LARGE;
		st = header_line(buf + pos, n);
		if (st != HTTP_OK)
			return st;
	}
	req->length = next;
	return HTTP_OK;
}

const char *
http_reason(enum http_status status)
{
	switch (status) {
	case HTTP_OK:
		return "OK";
	case HTTP_BAD_REQUEST:
		return "Bad Request";
	case HTTP_NOT_FOUND:
		return "Not Found";
	case HTTP_METHOD_NOT_ALLOWED:
		return "Method Not Allowed";
	case HTTP_URI_TOO_LONG:
		return "URI Too Long";
	case HTTP_HEADERS_TOO_LARGE:
		return "Request Header Fields Too Large";
	case HTTP_VERSION_NOT_SUPPORTED:
		return "HTTP Version Not Supported";
	case HTTP_INCOMPLETE:
		break;
	}
	return "";
}
