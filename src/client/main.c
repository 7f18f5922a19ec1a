/*
 * echo-client: talk to an RFC 862 echo service and check what comes back.
 *
 * Without -n, stdin goes to the server and the echo to stdout, and the echo
 * must equal the input byte for byte.  With -n, fixed-size probes are timed,
 * in the manner of the old echoping.
 *
 * Exit status: 0 the echo was exact; 1 it differed; 2 network or I/O error;
 * 3 a datagram or probe got no echo in time; 64 usage error.
 *
 * Map: main picks one of the four modes (modes.h: stream_tcp.c,
 * stream_udp.c, probe_tcp.c, probe_udp.c). They share net (resolving,
 * connecting, UDP round trips), probe and stats (-n mode), io (errors,
 * clock, poll, stdio) and options (the parsed command line, `opts`).
 */
#include "io.h"
#include "modes.h"
#include "options.h"

#include <signal.h>

int
main(int argc, char **argv)
{
	keep_std_fds_open();
	/* A closed connection must be an error we can report, not death. */
	signal(SIGPIPE, SIG_IGN);
	parse_args(argc, argv);
	if (opts.count > 0)
		return opts.udp ? probe_udp() : probe_tcp();
	return opts.udp ? stream_udp() : stream_tcp();
}
