/* facts: getifaddrs and getrandom, neither of which the sandbox allows. */
#include "facts.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static int __attribute__((format(printf, 3, 4)))
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int
facts_gather(struct facts *f, char *err, size_t errlen)
{
	struct ifaddrs *ifs, *i;
	ssize_t n;

	memset(f, 0, sizeof(*f));
	n = getrandom(f->secret, sizeof(f->secret), 0);
	if (n != (ssize_t)sizeof(f->secret))
		return fail(err, errlen, "getrandom: %s",
		            n < 0 ? strerror(errno) : "short read");
	if (getifaddrs(&ifs) != 0)
		return fail(err, errlen, "getifaddrs: %s", strerror(errno));
	for (i = ifs; i != NULL; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET ||
		    !(i->ifa_flags & IFF_BROADCAST) || i->ifa_broadaddr == NULL)
			continue;
		if (f->nbroadcast == FACTS_MAX_ADDRS)
			break;
		ipaddr_from_sockaddr(i->ifa_broadaddr,
		                     &f->broadcast[f->nbroadcast++], NULL);
	}
	freeifaddrs(ifs);
	return 0;
}
