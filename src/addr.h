/*
 * addr: IP addresses, CIDR prefixes, endpoints and port sets; pure parsers.
 * Map: base layer; calls units.
 */
#ifndef ECHOD_ADDR_H
#define ECHOD_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/* An address without port. IPv4-mapped IPv6 is always stored as IPv4. */
struct ipaddr {
	uint8_t family; /* AF_INET (bytes[0..3]) or AF_INET6 */
	uint8_t bytes[16];
};

struct cidr {
	struct ipaddr addr; /* host bits are zero */
	uint8_t prefix;
};

/* A listen address as written: port 0 with has_port false means "use -p". */
struct endpoint {
	struct sockaddr_storage ss;
	socklen_t len;
	bool has_port;
};

/* One bit per port, 8 KiB: membership is one load on the hot path. */
struct portset {
	uint64_t bits[65536 / 64];
};

#define ADDR_STRLEN 64 /* "[v6%scope]:65535" fits */

/* Numeric IPv4 or IPv6 address; IPv4-mapped IPv6 becomes IPv4. */
int parse_ipaddr(const char *s, struct ipaddr *out);

/* "ADDR/LEN" or bare "ADDR" (a host); host bits set after LEN is an error. */
int parse_cidr(const char *s, struct cidr *out);

/* "ADDR", "ADDR:PORT", "[V6]", "[V6]:PORT"; a bare V6 takes no port;
 * a port, when given, is 1-65535. */
int parse_endpoint(const char *s, struct endpoint *out);

/* "N" or "LO-HI", each 0..65535 and LO <= HI. */
int parse_port_range(const char *s, uint16_t *lo, uint16_t *hi);

/* Address and port of a sockaddr, IPv4-mapped folded to IPv4. */
void ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out,
                          uint16_t *port);

/* IPv6 forms that carry an IPv4 address (besides ::ffff:0:0/96, which
 * is always folded to IPv4). */
enum embedded_v4 {
	EMBEDDED_NONE,
	EMBEDDED_NAT64,       /* 64:ff9b::/96 (RFC 6052): the last 32 bits */
	EMBEDDED_NAT64_LOCAL, /* 64:ff9b:1::/48 (RFC 8215): the last 32 bits,
	                       * as a /96 translation prefix places it */
	EMBEDDED_6TO4,        /* 2002::/16 (RFC 3056): bits 16..47 */
	EMBEDDED_TEREDO,      /* 2001::/32 (RFC 4380): the client's public
	                       * address, the last 32 bits inverted */
	EMBEDDED_COMPAT,      /* ::/96 but :: and ::1 (RFC 4291, deprecated) */
};

/* Which form a is (EMBEDDED_NONE for IPv4 and other IPv6), and the IPv4
 * address it carries in *v4 (untouched for EMBEDDED_NONE). Pure. */
enum embedded_v4 ipaddr_embedded_v4(const struct ipaddr *a, struct ipaddr *v4);

/* The first `bits` bits of `a`, the rest zeroed. */
void ipaddr_prefix(const struct ipaddr *a, unsigned bits, struct ipaddr *out);

/* Inline: every rate-table lookup compares a set's eight keys with it. */
static inline bool
ipaddr_equal(const struct ipaddr *a, const struct ipaddr *b)
{
	return a->family == b->family &&
	       memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}
bool cidr_contains(const struct cidr *c, const struct ipaddr *a);

/* Add the ports lo..hi to a set; test one port. */
void portset_add(struct portset *ps, uint16_t lo, uint16_t hi);
static inline bool
portset_has(const struct portset *ps, uint16_t port)
{
	return (ps->bits[port / 64] >> (port % 64)) & 1;
}

/* "1.2.3.4", "2001:db8::1". */
void format_ipaddr(const struct ipaddr *a, char *buf, size_t len);
/* "1.2.3.4:7", "[2001:db8::1]:7"; "?" for another family. */
void format_sockaddr(const struct sockaddr *sa, char *buf, size_t len);
/* The same of an address and port (AF_INET or AF_INET6 only). */
void format_ipaddr_port(const struct ipaddr *a, uint16_t port, char *buf,
                        size_t len);

/* Set the port of an endpoint's sockaddr. */
void endpoint_set_port(struct endpoint *ep, uint16_t port);
uint16_t endpoint_port(const struct endpoint *ep);

#endif
