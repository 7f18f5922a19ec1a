/* client/stream_udp: stdin as datagrams through a UDP echo service. */
#include "modes.h"

#include "io.h"
#include "net.h"
#include "options.h"

#include <inttypes.h>
#include <stdlib.h>

/* UDP stream mode: each read() from stdin goes as one datagram. */
int
stream_udp(void)
{
	struct udp_peer u;
	unsigned char *msg = xcalloc(1, opts.size);
	uint64_t dgram = 0, offset = 0, rtt;
	size_t len, got;

	udp_open(&u);
	while ((len = read_stdin(msg, opts.size)) > 0) {
		dgram++;
		switch (udp_roundtrip(&u, msg, len, NULL, &got, &rtt)) {
		case ECHO_OK:
			write_stdout(iobuf, got);
			break;
		case ECHO_MISMATCH:
			write_stdout(iobuf, got);
			report_difference("datagram", dgram, msg, len, iobuf,
			                  got, offset);
			exit(EXIT_MISMATCH);
		default:
			fatalx(EXIT_LOSS,
			       "no echo for datagram %" PRIu64 " within %s s",
			       dgram, timeout_str());
		}
		offset += len;
	}
	udp_close(&u);
	free(msg);
	return 0;
}
