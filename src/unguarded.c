/* unguarded: the bench-only build serves the benchmark and nothing else. */
#include "unguarded.h"
#include "addr.h"
#include "errmsg.h"
#include "log.h"
#include "variant.h"

#include <string.h>
#include <sys/socket.h>

static bool
bench_address(const struct ipaddr *a)
{
	bool loop6 = a->family == AF_INET6 && a->bytes[15] == 1 &&
	             memcmp(a->bytes, (uint8_t[15]){0}, 15) == 0;
	bool v4 = a->family == AF_INET &&
	          (a->bytes[0] == 127 ||
	           (a->bytes[0] == 198 && (a->bytes[1] & 0xfe) == 18));

	return loop6 || v4;
}

int
unguarded_check_exposure(const struct policy *p, char *err, size_t errlen)
{
	if (GUARDS_ON)
		return 0;
	for (size_t i = 0; i < p->nlisten; i++) {
		struct ipaddr a;
		ipaddr_from_sockaddr((const struct sockaddr *)&p->listen[i].ss,
		                     &a, NULL);
		if (!bench_address(&a))
			return errmsg(
			    err, errlen,
			    "this bench-only build has no abuse "
			    "checks and no sandbox: it listens on "
			    "127.0.0.0/8, ::1 and 198.18.0.0/15 only");
	}
	log_always(LOG_WARN, "unguarded_build",
	           "msg=\"WARNING: bench-only build: abuse checks and "
	           "seccomp are compiled out\"");
	return 0;
}
