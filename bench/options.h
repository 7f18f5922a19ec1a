/*
 * bench/options: echo-bench's command line, parsed once into `opt`, the
 * process-wide configuration every mode reads (as echo-client's
 * options.h).
 */
#ifndef ECHO_BENCH_OPTIONS_H
#define ECHO_BENCH_OPTIONS_H

#include <net/ethernet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MAX_BIND    64
#define MAX_TARGETS 4 /* HOST PORT pairs of the rtt modes */
#define MAX_CONNS   20000

struct bench_opts {
	const char *mode;
	unsigned conns, window, sources, sport;
	size_t size;
	double seconds, rate;
	uint64_t count;
	struct sockaddr_storage target, first_source;
	socklen_t target_len;
	struct sockaddr_storage targets[MAX_TARGETS]; /* [0] is target */
	socklen_t target_lens[MAX_TARGETS];
	unsigned ntargets;
	struct sockaddr_storage bind[MAX_BIND];
	unsigned nbind;
	bool gso;
	bool unbounded;    /* tcp -u: no in-flight cap, reads of one chunk */
	const char *iface; /* flood: AF_PACKET on this interface */
	unsigned char dst_mac[ETH_ALEN]; /* flood: the target's MAC on it */
	bool have_mac;
};

extern struct bench_opts opt;

/* Fill opt from argv; exits EXIT_USAGE on any bad flag. */
void parse_args(int argc, char **argv);

/* The usage text, for errors. */
extern const char usage[];

#endif
