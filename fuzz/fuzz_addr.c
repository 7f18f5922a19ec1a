/*
 * fuzz_addr: the address parsers of src/addr.c. The first byte picks the
 * parser (% 5: ipaddr, cidr, endpoint, port range, all four); the rest,
 * capped at 255 bytes, is the NUL-terminated text.
 *
 * Invariants: a parsed address formats and parses back to itself, never
 * IPv4-mapped; a CIDR has prefix <= 32/128, zero host bits and contains
 * its own address; an endpoint has the sockaddr length of its family and
 * format_sockaddr's text fits ADDR_STRLEN and parses back to the same
 * address and port; a port range has lo <= hi and portset_add sets exactly
 * lo..hi.
 */
#include "addr.h"

#include "fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define MAX_TEXT 255

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void
check_ipaddr(const struct ipaddr *a)
{
	char buf[128];
	struct ipaddr back;

	CHECK(a->family == AF_INET || a->family == AF_INET6);
	if (a->family == AF_INET) {
		for (int i = 4; i < 16; i++)
			CHECK(a->bytes[i] == 0);
	} else {
		CHECK(memcmp(a->bytes, v4mapped, sizeof(v4mapped)) != 0);
	}
	format_ipaddr(a, buf, sizeof(buf));
	CHECK(strlen(buf) < INET6_ADDRSTRLEN);
	CHECK(parse_ipaddr(buf, &back) == 0);
	CHECK(ipaddr_equal(a, &back));
}

static void
do_ipaddr(const char *s)
{
	struct ipaddr a;

	if (parse_ipaddr(s, &a) != 0)
		return;
	check_ipaddr(&a);
}

static void
do_cidr(const char *s)
{
	struct cidr c, back;
	struct ipaddr m;
	char host[128], text[160];

	if (parse_cidr(s, &c) != 0)
		return;
	check_ipaddr(&c.addr);
	CHECK(c.prefix <= (c.addr.family == AF_INET ? 32 : 128));
	ipaddr_prefix(&c.addr, c.prefix, &m);
	CHECK(ipaddr_equal(&m, &c.addr));
	CHECK(cidr_contains(&c, &c.addr));
	/* Never across families; a prefix longer than the family clamps. */
	m = c.addr;
	m.family = c.addr.family == AF_INET ? AF_INET6 : AF_INET;
	CHECK(!cidr_contains(&c, &m));
	ipaddr_prefix(&c.addr, 255, &m);
	CHECK(ipaddr_equal(&m, &c.addr));
	/* A bare address is a host route. */
	if (strchr(s, '/') == NULL)
		CHECK(c.prefix == (c.addr.family == AF_INET ? 32 : 128));
	/* Canonical text parses back to the same prefix. */
	format_ipaddr(&c.addr, host, sizeof(host));
	snprintf(text, sizeof(text), "%s/%u", host, c.prefix);
	CHECK(parse_cidr(text, &back) == 0);
	CHECK(back.prefix == c.prefix && ipaddr_equal(&back.addr, &c.addr));
	/* The last address of the prefix is inside; one past it is not. */
	if (c.prefix > 0) {
		struct ipaddr last = c.addr, out = c.addr;
		unsigned total = c.addr.family == AF_INET ? 32 : 128;
		for (unsigned i = c.prefix; i < total; i++)
			last.bytes[i / 8] |= (uint8_t)(0x80u >> (i % 8));
		CHECK(cidr_contains(&c, &last));
		out.bytes[(c.prefix - 1) / 8] ^=
		    (uint8_t)(0x80u >> ((c.prefix - 1) % 8));
		CHECK(!cidr_contains(&c, &out));
	}
}

static void
do_endpoint(const char *s)
{
	struct endpoint e, back;
	struct ipaddr a, b;
	uint16_t pa = 0, pb = 0;
	char buf[256];

	if (parse_endpoint(s, &e) != 0)
		return;
	if (e.ss.ss_family == AF_INET)
		CHECK(e.len == sizeof(struct sockaddr_in));
	else
		CHECK(e.ss.ss_family == AF_INET6 &&
		      e.len == sizeof(struct sockaddr_in6));
	if (!e.has_port)
		CHECK(endpoint_port(&e) == 0);
	else
		CHECK(endpoint_port(&e) >= 1); /* port 0 is refused */
	ipaddr_from_sockaddr((const struct sockaddr *)&e.ss, &a, &pa);
	check_ipaddr(&a);
	CHECK(pa == endpoint_port(&e));
	/* The address family of the sockaddr is the parsed one, folded. */
	CHECK(a.family == e.ss.ss_family);

	/* Formatted with a port (0 when none was given, which does not
	 * parse back), it parses back to the same address and port. */
	if (!e.has_port)
		endpoint_set_port(&e, 7);
	format_sockaddr((const struct sockaddr *)&e.ss, buf, sizeof(buf));
	CHECK(strlen(buf) < ADDR_STRLEN);
	CHECK(parse_endpoint(buf, &back) == 0);
	CHECK(back.has_port);
	CHECK(back.len == e.len && back.ss.ss_family == e.ss.ss_family);
	ipaddr_from_sockaddr((const struct sockaddr *)&back.ss, &b, &pb);
	CHECK(ipaddr_equal(&a, &b));
	CHECK(pb == endpoint_port(&e));

	endpoint_set_port(&e, 65535);
	CHECK(endpoint_port(&e) == 65535);
}

static void
do_port_range(const char *s)
{
	static struct portset ps;
	uint16_t lo, hi;

	if (parse_port_range(s, &lo, &hi) != 0)
		return;
	CHECK(lo <= hi);
	memset(&ps, 0, sizeof(ps));
	portset_add(&ps, lo, hi);
	CHECK(portset_has(&ps, lo) && portset_has(&ps, hi));
	CHECK(portset_has(&ps, (uint16_t)(lo + (hi - lo) / 2)));
	if (lo > 0)
		CHECK(!portset_has(&ps, (uint16_t)(lo - 1)));
	if (hi < 65535)
		CHECK(!portset_has(&ps, (uint16_t)(hi + 1)));
	if (strchr(s, '-') == NULL)
		CHECK(lo == hi);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[MAX_TEXT + 1];
	size_t n;
	unsigned which;

	if (size < 1)
		return 0;
	which = data[0] % 5;
	n = size - 1 < MAX_TEXT ? size - 1 : MAX_TEXT;
	memcpy(s, data + 1, n);
	s[n] = '\0';

	switch (which) {
	case 0:
		do_ipaddr(s);
		break;
	case 1:
		do_cidr(s);
		break;
	case 2:
		do_endpoint(s);
		break;
	case 3:
		do_port_range(s);
		break;
	default:
		do_ipaddr(s);
		do_cidr(s);
		do_endpoint(s);
		do_port_range(s);
		break;
	}

	/* A sockaddr of another family formats as "?". */
	if (data[0] == 0xff) {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		char buf[16];
		format_sockaddr((const struct sockaddr *)&un, buf, sizeof(buf));
		CHECK(strcmp(buf, "?") == 0);
	}
	return 0;
}
