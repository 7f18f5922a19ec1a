/* client/probe_udp: -u -n, timed datagram probes. */
#include "modes.h"

#include "io.h"
#include "net.h"
#include "options.h"
#include "probe.h"
#include "stats.h"

int
probe_udp(void)
{
	struct udp_peer u;
	struct prober pr;
	struct stats st;
	enum echo_result r;
	uint64_t rtt = 0;
	size_t got;

	udp_open(&u);
	prober_init(&pr);
	stats_init(&st);
	catch_sigint();
	while (pr.seq < opts.count) {
		prober_next(&pr);
		r = udp_roundtrip(&u, pr.probe, pr.size, &pr, &got, &rtt);
		if (r == ECHO_INTERRUPTED)
			break;
		if (r == ECHO_MISMATCH)
			report_difference("probe", pr.seq, pr.probe, pr.size,
			                  iobuf, got, 0);
		stats_record(&st, pr.seq, r, rtt);
	}
	udp_close(&u);
	prober_free(&pr);
	return stats_finish(&st);
}
