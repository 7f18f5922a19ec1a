/* addr: addresses as the rest of echod sees them, one canonical form each. */
#include "addr.h"
#include "units.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0,    0,
                                            0, 0, 0, 0, 0xff, 0xff};

/* Fold ::ffff:a.b.c.d to a.b.c.d so lists and rate keys see one address. */
static void
fold_mapped(struct ipaddr *a)
{
	if (a->family == AF_INET6 &&
	    memcmp(a->bytes, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
		memmove(a->bytes, a->bytes + 12, 4);
		memset(a->bytes + 4, 0, 12);
		a->family = AF_INET;
	}
}

int
parse_ipaddr(const char *s, struct ipaddr *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, s, out->bytes) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, out->bytes) == 1) {
		out->family = AF_INET6;
		fold_mapped(out);
		return 0;
	}
	return -1;
}

enum embedded_v4
ipaddr_embedded_v4(const struct ipaddr *a, struct ipaddr *v4)
{
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
	static const uint8_t nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};
	static const uint8_t zero[15];
	const uint8_t *b = a->bytes;
	enum embedded_v4 kind;
	unsigned at = 12;

	if (a->family != AF_INET6)
		return EMBEDDED_NONE;
	if (memcmp(b, nat64, sizeof(nat64)) == 0)
		kind = EMBEDDED_NAT64;
	else if (memcmp(b, nat64_local, sizeof(nat64_local)) == 0)
		kind = EMBEDDED_NAT64_LOCAL;
	else if (b[0] == 0x20 && b[1] == 0x02)
		kind = EMBEDDED_6TO4, at = 2;
	else if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0)
		kind = EMBEDDED_TEREDO;
	else if (memcmp(b, zero, 12) == 0 &&
	         !(memcmp(b + 12, zero, 3) == 0 && b[15] <= 1))
		kind = EMBEDDED_COMPAT;
	else
		return EMBEDDED_NONE;
	memset(v4, 0, sizeof(*v4));
	v4->family = AF_INET;
	memcpy(v4->bytes, b + at, 4);
	if (kind == EMBEDDED_TEREDO)
		for (int i = 0; i < 4; i++)
			v4->bytes[i] ^= 0xff;
	return kind;
}

static unsigned
family_bits(const struct ipaddr *a)
{
	return a->family == AF_INET ? 32 : 128;
}

void
ipaddr_prefix(const struct ipaddr *a, unsigned bits, struct ipaddr *out)
{
	unsigned total = family_bits(a), whole;

	*out = *a;
	if (bits > total)
		bits = total;
	/* Whole bytes, then the partial one: this runs on every datagram. */
	whole = bits / 8;
	if (bits % 8 != 0)
		out->bytes[whole++] &= (uint8_t)(0xff00u >> (bits % 8));
	memset(out->bytes + whole, 0, sizeof(out->bytes) - whole);
}

int
parse_cidr(const char *s, struct cidr *out)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t bits;
	struct ipaddr masked;
	bool mapped;

	if (n == 0 || n >= sizeof(addr))
		return -1;
	memcpy(addr, s, n);
	addr[n] = '\0';
	mapped = strchr(addr, ':') != NULL;
	if (parse_ipaddr(addr, &out->addr) != 0)
		return -1;
	if (slash == NULL) {
		out->prefix = (uint8_t)family_bits(&out->addr);
		return 0;
	}
	if (parse_uint(slash + 1, 128, &bits) != 0)
		return -1;
	/* ::ffff:0:0/96 and longer mean IPv4 prefixes of length bits - 96. */
	if (mapped && out->addr.family == AF_INET) {
		if (bits < 96)
			return -1;
		bits -= 96;
	}
	if (bits > family_bits(&out->addr))
		return -1;
	ipaddr_prefix(&out->addr, (unsigned)bits, &masked);
	if (!ipaddr_equal(&masked, &out->addr))
		return -1;
	out->prefix = (uint8_t)bits;
	return 0;
}

bool
cidr_contains(const struct cidr *c, const struct ipaddr *a)
{
	struct ipaddr masked;

	if (a->family != c->addr.family)
		return false;
	ipaddr_prefix(a, c->prefix, &masked);
	return ipaddr_equal(&masked, &c->addr);
}

static int
parse_port(const char *s, uint16_t *port)
{
	uint64_t v;

	if (parse_uint(s, 65535, &v) != 0)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int
parse_endpoint(const char *s, struct endpoint *out)
{
	char host[INET6_ADDRSTRLEN];
	const char *port = NULL, *end;
	struct ipaddr ip;
	uint16_t portnum = 0;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL)
			return -1;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -1;
		s++;
	} else {
		end = strchr(s, ':');
		/* Two colons: a bare IPv6 address, which cannot carry a port.
		 */
		if (end != NULL && strchr(end + 1, ':') != NULL)
			end = s + strlen(s);
		else if (end != NULL)
			port = end + 1;
		else
			end = s + strlen(s);
	}
	n = (size_t)(end - s);
	if (n == 0 || n >= sizeof(host))
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	/* Port 0 would give every SO_REUSEPORT socket a different port. */
	if (port != NULL && (parse_port(port, &portnum) != 0 || portnum == 0))
		return -1;
	if (parse_ipaddr(host, &ip) != 0)
		return -1;
	if (ip.family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, ip.bytes, 4);
		out->len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, ip.bytes, 16);
		out->len = sizeof(*sin6);
	}
	out->has_port = port != NULL;
	endpoint_set_port(out, portnum);
	return 0;
}

int
parse_port_range(const char *s, uint16_t *lo, uint16_t *hi)
{
	char first[8];
	const char *dash = strchr(s, '-');
	size_t n;

	if (dash == NULL) {
		if (parse_port(s, lo) != 0)
			return -1;
		*hi = *lo;
		return 0;
	}
	n = (size_t)(dash - s);
	if (n == 0 || n >= sizeof(first))
		return -1;
	memcpy(first, s, n);
	first[n] = '\0';
	if (parse_port(first, lo) != 0 || parse_port(dash + 1, hi) != 0)
		return -1;
	return *lo <= *hi ? 0 : -1;
}

void
ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out,
                     uint16_t *port)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		out->family = AF_INET;
		memcpy(out->bytes, &sin->sin_addr, 4);
		if (port)
			*port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)sa;
		out->family = AF_INET6;
		memcpy(out->bytes, &sin6->sin6_addr, 16);
		fold_mapped(out);
		if (port)
			*port = ntohs(sin6->sin6_port);
	}
}

void
portset_add(struct portset *ps, uint16_t lo, uint16_t hi)
{
	for (uint32_t p = lo; p <= hi; p++)
		ps->bits[p / 64] |= UINT64_C(1) << (p % 64);
}

void
format_ipaddr(const struct ipaddr *a, char *buf, size_t len)
{
	if (inet_ntop(a->family, a->bytes, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
}

void
format_ipaddr_port(const struct ipaddr *a, uint16_t port, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	format_ipaddr(a, host, sizeof(host));
	if (a->family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", host, port);
	else
		snprintf(buf, len, "%s:%u", host, port);
}

void
format_sockaddr(const struct sockaddr *sa, char *buf, size_t len)
{
	struct ipaddr ip;
	uint16_t port;

	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) {
		snprintf(buf, len, "?");
		return;
	}
	ipaddr_from_sockaddr(sa, &ip, &port);
	format_ipaddr_port(&ip, port, buf, len);
}

void
endpoint_set_port(struct endpoint *ep, uint16_t port)
{
	if (ep->ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ep->ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&ep->ss)->sin6_port = htons(port);
}

uint16_t
endpoint_port(const struct endpoint *ep)
{
	if (ep->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&ep->ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&ep->ss)->sin6_port);
}
