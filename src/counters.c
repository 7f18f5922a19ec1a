/* counters: a MAP_SHARED array so the supervisor can print one line. */
#include "counters.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

struct counters *counters;
static struct counters *slots;
static unsigned nslots;

int
counters_init(unsigned n)
{
	void *m =
	    mmap(NULL, n * sizeof(struct counters), PROT_READ | PROT_WRITE,
	         MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return -1;
	slots = m;
	nslots = n;
	counters = &slots[0];
	return 0;
}

void
counters_select(unsigned slot)
{
	counters = &slots[slot];
}

void
counters_reset_gauges(unsigned slot)
{
	__atomic_store_n(&slots[slot].tcp_active, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slots[slot].workers_ready, 0, __ATOMIC_RELAXED);
}

uint64_t
counters_total_active(void)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < nslots; i++)
		total +=
		    __atomic_load_n(&slots[i].tcp_active, __ATOMIC_RELAXED);
	return total;
}

void
counters_sum(struct counters *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < nslots; i++) {
#define COUNTER_ADD(name)                                                      \
	out->name += __atomic_load_n(&slots[i].name, __ATOMIC_RELAXED);
		COUNTER_LIST(COUNTER_ADD)
#undef COUNTER_ADD
	}
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
