/* counters: private to each process; copies travel over a pipe. */
#include "counters.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct counters own;
static struct counters last_sent;
struct counters *counters = &own;

_Static_assert(sizeof(struct counters_msg) <= 4096,
               "a counters message must fit PIPE_BUF");

int
counters_send(int fd, enum counters_kind kind)
{
	struct counters_msg m = {.kind = kind, .c = *counters};
	ssize_t n;

	while ((n = write(fd, &m, sizeof(m))) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(m))
		return -1;
	last_sent = m.c;
	return 0;
}

int
counters_changed(void)
{
	return memcmp(&last_sent, counters, sizeof(last_sent)) != 0;
}

void
counters_add(struct counters *out, const struct counters *a)
{
#define COUNTER_ADD(name) out->name += a->name;
	COUNTER_LIST(COUNTER_ADD)
#undef COUNTER_ADD
}

void
counters_format(const struct counters *c, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
#define COUNTER_PRINT(name)                                                    \
	if (used < len)                                                        \
		used += (size_t)snprintf(buf + used, len - used, "%s%s=%llu",  \
		                         used ? " " : "", #name,               \
		                         (unsigned long long)c->name);
	COUNTER_LIST(COUNTER_PRINT)
#undef COUNTER_PRINT
}
