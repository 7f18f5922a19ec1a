/* facts: getifaddrs and getrandom, neither of which the sandbox allows. */
#include "facts.h"
#include "errmsg.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* Add a to list[*n] unless it is there or the list is full. */
static void
add_address(struct ipaddr *list, size_t *n, const struct ipaddr *a)
{
	for (size_t k = 0; k < *n; k++)
		if (ipaddr_equal(&list[k], a))
			return;
	if (*n < FACTS_MAX_ADDRS)
		list[(*n)++] = *a;
}

/* The host's own address on i, and i's index if it is a loopback
 * interface (only the host itself can send from there). */
static void
add_local(struct facts *f, const struct ifaddrs *i)
{
	struct ipaddr addr;
	unsigned idx;

	ipaddr_from_sockaddr(i->ifa_addr, &addr, NULL);
	add_address(f->local, &f->nlocal, &addr);
	if (!(i->ifa_flags & IFF_LOOPBACK) ||
	    (idx = if_nametoindex(i->ifa_name)) == 0)
		return;
	for (size_t k = 0; k < f->nloopback; k++)
		if (f->loopback_ifindex[k] == (int)idx)
			return;
	if (f->nloopback < FACTS_MAX_LOOPBACK)
		f->loopback_ifindex[f->nloopback++] = (int)idx;
}

/*
 * The directed broadcast of an IPv4 address: address | ~netmask, which the
 * kernel delivers even when the address was configured without "brd" (then
 * glibc reports the address itself as ifa_broadaddr, which must not be
 * mistaken for a broadcast). /31 and /32 have none (RFC 3021).
 */
static void
add_broadcasts(struct facts *f, const struct ifaddrs *i)
{
	struct ipaddr addr, mask, bcast;

	ipaddr_from_sockaddr(i->ifa_addr, &addr, NULL);
	if (i->ifa_netmask != NULL) {
		ipaddr_from_sockaddr(i->ifa_netmask, &mask, NULL);
		if (mask.bytes[3] < 0xfe) {
			bcast = addr;
			for (int k = 0; k < 4; k++)
				bcast.bytes[k] |= (uint8_t)~mask.bytes[k];
			add_address(f->broadcast, &f->nbroadcast, &bcast);
		}
	}
	if ((i->ifa_flags & IFF_BROADCAST) && i->ifa_broadaddr != NULL) {
		ipaddr_from_sockaddr(i->ifa_broadaddr, &bcast, NULL);
		if (!ipaddr_equal(&bcast, &addr))
			add_address(f->broadcast, &f->nbroadcast, &bcast);
	}
}

int
facts_gather(struct facts *f, char *err, size_t errlen)
{
	struct ifaddrs *ifs, *i;
	ssize_t n;

	memset(f, 0, sizeof(*f));
	n = getrandom(f->secret, sizeof(f->secret), 0);
	if (n != (ssize_t)sizeof(f->secret))
		return errmsg(err, errlen, "getrandom: %s",
		              n < 0 ? strerror(errno) : "short read");
	if (getifaddrs(&ifs) != 0)
		return errmsg(err, errlen, "getifaddrs: %s", strerror(errno));
	for (i = ifs; i != NULL; i = i->ifa_next) {
		if (i->ifa_addr == NULL || (i->ifa_addr->sa_family != AF_INET &&
		                            i->ifa_addr->sa_family != AF_INET6))
			continue;
		add_local(f, i);
		if (i->ifa_addr->sa_family == AF_INET)
			add_broadcasts(f, i);
	}
	freeifaddrs(ifs);
	return 0;
}
