/*
 * fuzz_http: http_parse_request, the metrics endpoint's request parser
 * (its input comes from the network, though only from allowed scrapers).
 *
 * Input: the bytes a client sent, as received so far.
 *
 * Invariants: the verdict is one of the statuses in http.h; HTTP_OK only
 * for "GET " or "HEAD " of /metrics, with a length within the input (and
 * the bound) that ends on a line end; parsing exactly that length gives
 * the same verdict; a verdict other than HTTP_INCOMPLETE on any prefix is
 * the verdict on the whole input (more bytes never change a decision, so
 * the server may answer as soon as it has one).
 */
#include "http.h"

#include "fuzz.h"

#include <string.h>

static enum http_status
judge(const uint8_t *data, size_t size, struct http_request *r)
{
	return http_parse_request((const char *)data, size, "/metrics", r);
}

static int
known(enum http_status s)
{
	switch (s) {
	case HTTP_INCOMPLETE:
	case HTTP_OK:
	case HTTP_BAD_REQUEST:
	case HTTP_NOT_FOUND:
	case HTTP_METHOD_NOT_ALLOWED:
	case HTTP_URI_TOO_LONG:
	case HTTP_HEADERS_TOO_LARGE:
	case HTTP_VERSION_NOT_SUPPORTED:
		return 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request whole, part;
	enum http_status v = judge(data, size, &whole), p;
	size_t cuts[5] = {0, size / 4, size / 2, size - size / 4,
	                  size ? size - 1 : 0};

	CHECK(known(v));
	CHECK(*http_reason(v) != '\0' || v == HTTP_INCOMPLETE);
	if (v == HTTP_OK) {
		CHECK(whole.length > 0 && whole.length <= size &&
		      whole.length <= HTTP_MAX_REQUEST);
		CHECK(data[whole.length - 1] == '\n');
		CHECK(whole.head ? memcmp(data, "HEAD /metrics", 13) == 0
		                 : memcmp(data, "GET /metrics", 12) == 0);
		p = judge(data, whole.length, &part);
		CHECK(p == HTTP_OK && part.length == whole.length &&
		      part.head == whole.head);
	}
	if (size > HTTP_MAX_REQUEST)
		CHECK(v != HTTP_INCOMPLETE);
	for (int i = 0; i < 5; i++) {
		p = judge(data, cuts[i], &part);
		CHECK(known(p));
		if (p == HTTP_INCOMPLETE)
			continue;
		CHECK(p == v);
		if (p == HTTP_OK)
			CHECK(part.length == whole.length);
	}
	return 0;
}
