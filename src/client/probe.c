/* client/probe: tagged, numbered, pseudo-random probes. */
#include "probe.h"

#include "io.h"
#include "options.h"

#include <sys/random.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
fill_probe(unsigned char *p, size_t size, uint32_t tag, uint32_t seq)
{
	unsigned char head[PROBE_HEADER];
	uint32_t x = (tag ^ seq * UINT32_C(0x9e3779b9)) | 1; /* never 0 */
	size_t i;

	put32(head, tag);
	put32(head + 4, seq);
	for (i = 0; i < size; i++) {
		if (i < PROBE_HEADER) {
			p[i] = head[i];
			continue;
		}
		x ^= x << 13; /* xorshift32 */
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

void
prober_init(struct prober *pr)
{
	if (getrandom(&pr->tag, sizeof(pr->tag), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(pr->tag))
		pr->tag = (uint32_t)now_ns() ^ (uint32_t)getpid();
	pr->seq = 0;
	pr->size = opts.size;
	pr->probe = xcalloc(1, pr->size + 1);
	pr->scratch = xcalloc(1, pr->size + 1);
}

void
prober_next(struct prober *pr)
{
	pr->seq++;
	fill_probe(pr->probe, pr->size, pr->tag, pr->seq);
}

void
prober_free(struct prober *pr)
{
	free(pr->probe);
	free(pr->scratch);
}

bool
is_stale_probe(const struct prober *pr, const unsigned char *p, size_t len)
{
	uint32_t seq;

	if (len != pr->size || len < PROBE_HEADER || get32(p) != pr->tag)
		return false;
	seq = get32(p + 4);
	if (seq == 0 || seq >= pr->seq)
		return false;
	fill_probe(pr->scratch, pr->size, pr->tag, seq);
	return memcmp(pr->scratch, p, len) == 0;
}
