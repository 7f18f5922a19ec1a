/*
 * client/probe: the probes of -n mode and the outcome of one round trip.
 * Calls io.h (allocation) and options.h (-s).
 */
#ifndef ECHO_CLIENT_PROBE_H
#define ECHO_CLIENT_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROBE_HEADER 8 /* run tag and sequence number */

/*
 * Probes start with a per-run tag and their sequence number, so that a
 * late echo of an earlier probe is recognised instead of being taken for
 * damage; the rest is a pseudo-random pattern seeded by both, so damage is
 * unlikely to go unnoticed.
 */
struct prober {
	uint32_t tag;
	uint32_t seq;
	size_t size;
	unsigned char *probe;   /* the current probe */
	unsigned char *scratch; /* to rebuild earlier ones */
};

/* A new run tag and buffers for probes of opts.size bytes. */
void prober_init(struct prober *pr);
/* The next probe, in pr->probe. */
void prober_next(struct prober *pr);
void prober_free(struct prober *pr);
/* True if p is the intact echo of an earlier probe of this run. */
bool is_stale_probe(const struct prober *pr, const unsigned char *p,
                    size_t len);

/* How one round trip (a probe or a datagram) ended. */
enum echo_result {
	ECHO_OK,
	ECHO_MISMATCH,
	ECHO_LOST,
	ECHO_CLOSED,
	ECHO_INTERRUPTED
};

#endif
