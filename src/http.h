/*
 * http: the metrics endpoint's request parser, a pure function over the
 * bytes received so far. Only what a Prometheus scrape needs: GET (or
 * HEAD) of one path over HTTP/1.0 or 1.1, no body.
 * Map: parser layer; calls nothing of echod.
 */
#ifndef ECHOD_HTTP_H
#define ECHOD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_REQUEST 4096 /* request line and headers together */
#define HTTP_MAX_TARGET  256
#define HTTP_MAX_HEADERS 64

enum http_status {
	HTTP_INCOMPLETE = 0, /* no verdict yet: read more */
	HTTP_OK = 200,
	HTTP_BAD_REQUEST = 400,
	HTTP_NOT_FOUND = 404,
	HTTP_METHOD_NOT_ALLOWED = 405,
	HTTP_URI_TOO_LONG = 414,
	HTTP_HEADERS_TOO_LARGE = 431,
	HTTP_VERSION_NOT_SUPPORTED = 505,
};

struct http_request {
	bool head;     /* HEAD: headers only */
	size_t length; /* bytes of buf the request took, with its headers */
};

/*
 * Judge the request at the start of buf[0..len). Returns HTTP_INCOMPLETE
 * while the request (line and headers, up to the empty line) is not whole
 * and could still be valid; HTTP_OK for a GET or HEAD of path, or of path
 * with a query, with *req filled; or the status of the error to answer.
 * Lines end in CRLF or LF. The server answers one request per connection
 * (Connection: close), so Connection fields are not read. A request longer than
 * HTTP_MAX_REQUEST is 431 (or 414 while still in a target longer than
 * HTTP_MAX_TARGET). A body (Content-Length other than 0, Transfer-Encoding) is
 * 400. Pure.
 */
enum http_status http_parse_request(const char *buf, size_t len,
                                    const char *path, struct http_request *req);

/* The reason phrase of a status ("Not Found"), "" if unknown. */
const char *http_reason(enum http_status status);

#endif
