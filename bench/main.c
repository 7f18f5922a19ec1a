/*
 * echo-bench: the load generator of `make bench`. Every echoed byte is
 * checked against what was sent, so a server that is fast because it is
 * wrong fails instead of winning. One mode per run, one result line of
 * key=value pairs on stdout (bench/bench.py reads it).
 *
 *   tcp      C connections stream for D seconds, at most W bytes in flight
 *            each; the rate counts verified echo bytes. -u: unbounded,
 *            each writes S-byte chunks as fast as its socket takes them
 *            (no cap in flight, as `ncat < file` does) and reads at most
 *            S bytes at a time; after D seconds each half-closes and
 *            reads the rest of its echo up to the server's FIN, and the
 *            rate is over the whole, to the last FIN
 *   udp      datagrams of S bytes, at most W outstanding per socket (so the
 *            server is measured, not the kernel's drops), optionally paced;
 *            -g sends each batch as UDP GSO super-datagrams (UDP_SEGMENT):
 *            the server still receives separate datagrams (the kernel
 *            splits them on delivery), but the generator's own send path
 *            runs once per batch, so one CPU can load a batching server
 *   tcp-rtt  N round trips of S bytes, one at a time: p50 and p99
 *   udp-rtt  the same with datagrams. Given several HOST PORT pairs, both
 *            take turns: one round trip to each target in turn, in a
 *            shuffled order each turn, so the servers compared are sampled
 *            under the same moments of machine noise; one line per target
 *   idle     open C connections, prove each with a 1-byte echo, hold them
 *            until stdin closes
 *   flood    spoofed UDP from S sources counted up from -F, raw IPv4;
 *            only to and from 198.18.0.0/15, bounded by -n and -d; from
 *            source port -P if given (e.g. a port the guards refuse),
 *            else from ports 40000-59999; with -i IFACE -m MAC, whole
 *            Ethernet frames to MAC (the target's) on IFACE through an
 *            AF_PACKET socket that skips the qdisc: the sender's own
 *            cost per datagram is then a fraction of the IP raw socket's
 *            (no route, netfilter or neighbour lookup per datagram)
 *
 * Exit: 0 ok, 1 an echo differed, 2 network error, 64 usage.
 */

#include "common.h"
#include "modes.h"
#include "options.h"

#include <stdio.h>
#include <string.h>

int
main(int argc, char **argv)
{
	parse_args(argc, argv);
	fill_pattern();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(opt.mode, "tcp") == 0)
		return run_tcp();
	if (strcmp(opt.mode, "udp") == 0)
		return run_udp();
	if (strcmp(opt.mode, "tcp-rtt") == 0)
		return run_rtt(false);
	if (strcmp(opt.mode, "udp-rtt") == 0)
		return run_rtt(true);
	if (strcmp(opt.mode, "idle") == 0)
		return run_idle();
	if (strcmp(opt.mode, "flood") == 0)
		return run_flood();
	die(EXIT_USAGE, "unknown mode '%s'\n%s", opt.mode, usage);
}
