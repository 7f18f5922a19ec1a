/*
 * client/stats: -n mode's per-probe lines and its closing summary, in
 * the manner of ping. Calls io.h and probe.h (for enum echo_result).
 */
#ifndef ECHO_CLIENT_STATS_H
#define ECHO_CLIENT_STATS_H

#include "probe.h"

#include <stddef.h>
#include <stdint.h>

struct stats {
	uint64_t sent;
	uint64_t received; /* echoes that came back, intact or not */
	uint64_t mismatched;
	uint64_t *rtt; /* of the intact ones, in ns */
	size_t nrtt;
};

/* Room for opts.count round-trip times. */
void stats_init(struct stats *st);
/* Count probe seq's outcome and print its line. */
void stats_record(struct stats *st, uint32_t seq, enum echo_result r,
                  uint64_t rtt);
/* Print the summary; the exit status follows the worst that happened. */
int stats_finish(struct stats *st);

#endif
