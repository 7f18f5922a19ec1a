/* client/stats: probe lines, loss and round-trip times. */
#include "stats.h"

#include "io.h"
#include "options.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
stats_init(struct stats *st)
{
	memset(st, 0, sizeof(*st));
	st->rtt = xcalloc(opts.count, sizeof(st->rtt[0]));
}

void
stats_record(struct stats *st, uint32_t seq, enum echo_result r, uint64_t rtt)
{
	st->sent++;
	switch (r) {
	case ECHO_OK:
		st->received++;
		st->rtt[st->nrtt++] = rtt;
		printf("seq=%" PRIu32 " bytes=%zu rtt=%.3f ms\n", seq,
		       opts.size, (double)rtt / (double)NS_PER_MS);
		break;
	case ECHO_MISMATCH:
	case ECHO_CLOSED:
		st->received++;
		st->mismatched++;
		printf("seq=%" PRIu32 " mismatch\n", seq);
		break;
	default:
		printf("seq=%" PRIu32 " lost\n", seq);
		break;
	}
	/* Someone watching a long run wants each line as it happens. */
	fflush(stdout);
}

static int
compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static double
ms(uint64_t ns)
{
	return (double)ns / (double)NS_PER_MS;
}

/* Nearest-rank percentile of a sorted, non-empty array. */
static uint64_t
percentile(const uint64_t *sorted, size_t n, unsigned pct)
{
	size_t rank = (size_t)(((uint64_t)n * pct + 99) / 100);

	return sorted[rank > 0 ? rank - 1 : 0];
}

int
stats_finish(struct stats *st)
{
	uint64_t lost = st->sent - st->received, loss = 0, sum = 0;
	char lossbuf[32];
	size_t i, n = st->nrtt;

	/* In 1/10000 %, so that 1 lost in 10^6 does not show as none. */
	if (st->sent > 0)
		loss = (lost * 1000000 + st->sent / 2) / st->sent;
	printf("--- %s port %u echo statistics ---\n", opts.host, opts.port);
	printf("%" PRIu64 " probes sent, %" PRIu64 " received, %s%% loss",
	       st->sent, st->received,
	       format_decimal(loss, 4, lossbuf, sizeof(lossbuf)));
	if (st->mismatched > 0)
		printf(", %" PRIu64 " mismatched", st->mismatched);
	printf("\n");
	if (n == 0) {
		printf("rtt n/a\n");
	} else {
		qsort(st->rtt, n, sizeof(st->rtt[0]), compare_u64);
		for (i = 0; i < n; i++)
			sum += st->rtt[i];
		printf("rtt min/avg/p50/p99/max = %.3f/%.3f/%.3f/%.3f/%.3f "
		       "ms\n",
		       ms(st->rtt[0]), ms(sum) / (double)n,
		       ms(percentile(st->rtt, n, 50)),
		       ms(percentile(st->rtt, n, 99)), ms(st->rtt[n - 1]));
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		fatal(EXIT_NETWORK, "write to stdout");
	free(st->rtt);
	if (st->mismatched > 0)
		return EXIT_MISMATCH;
	return lost > 0 ? EXIT_LOSS : 0;
}
