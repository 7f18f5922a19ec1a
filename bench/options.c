/* bench/options: the command line. */
#include "options.h"
#include "common.h"
#include "net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct bench_opts opt = {
    .conns = 1, .window = 0, .sources = 1, .size = 0, .seconds = 2};

const char usage[] =
    "usage: echo-bench MODE [-c CONNS] [-d SECONDS] [-s SIZE] [-w WINDOW] "
    "[-g] [-u]\n"
    "                  [-n COUNT] [-r RATE] [-b BINDADDR]... [-S SOURCES]\n"
    "                  [-F FIRSTSOURCE] [-P SOURCEPORT] [-i IFACE -m MAC]\n"
    "                  HOST PORT [HOST PORT]...\n"
    "MODE: tcp, udp, tcp-rtt, udp-rtt, idle, flood (see the source's "
    "head)\n";

static double
num(const char *s, double lo, double hi, char flag)
{
	char *end;
	double v = strtod(s, &end);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi)
		die(EXIT_USAGE, "-%c: '%s' is not a number from %g to %g\n%s",
		    flag, s, lo, hi, usage);
	return v;
}

void
parse_args(int argc, char **argv)
{
	socklen_t len;
	int c;

	if (argc < 2)
		die(EXIT_USAGE, "no mode\n%s", usage);
	opt.mode = argv[1];
	optind = 2;
	while ((c = getopt(argc, argv, "c:d:s:w:n:r:b:S:F:P:i:m:gu")) != -1) {
		switch (c) {
		case 'c':
			opt.conns = (unsigned)num(optarg, 1, MAX_CONNS, 'c');
			break;
		case 'd':
			opt.seconds = num(optarg, 0.1, 600, 'd');
			break;
		case 's':
			opt.size = (size_t)num(optarg, 1, 1 << 20, 's');
			break;
		case 'w':
			opt.window = (unsigned)num(optarg, 1, 1 << 30, 'w');
			break;
		case 'n':
			opt.count = (uint64_t)num(optarg, 1, 1e8, 'n');
			break;
		case 'r':
			opt.rate = num(optarg, 1, 1e8, 'r');
			break;
		case 'g':
			opt.gso = true;
			break;
		case 'u':
			opt.unbounded = true;
			break;
		case 'P':
			opt.sport = (unsigned)num(optarg, 1, 65535, 'P');
			break;
		case 'S':
			opt.sources = (unsigned)num(optarg, 1, 131072, 'S');
			break;
		case 'b':
			if (opt.nbind == MAX_BIND ||
			    parse_addr(optarg, 0, &opt.bind[opt.nbind++],
			               &len) != 0)
				die(EXIT_USAGE,
				    "-b: '%s': a numeric address, "
				    "at most 64",
				    optarg);
			break;
		case 'i':
			opt.iface = optarg;
			break;
		case 'm':
			if (sscanf(optarg,
			           "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx%c",
			           &opt.dst_mac[0], &opt.dst_mac[1],
			           &opt.dst_mac[2], &opt.dst_mac[3],
			           &opt.dst_mac[4], &opt.dst_mac[5],
			           &(char){0}) != 6)
				die(EXIT_USAGE, "-m: '%s' is not a MAC",
				    optarg);
			opt.have_mac = true;
			break;
		case 'F':
			if (parse_addr(optarg, 0, &opt.first_source, &len) != 0)
				die(EXIT_USAGE, "-F: '%s' is not an address",
				    optarg);
			break;
		default:
			die(EXIT_USAGE, "%s", usage);
		}
	}
	if (argc - optind < 2 || (argc - optind) % 2 != 0)
		die(EXIT_USAGE, "need HOST and PORT\n%s", usage);
	opt.ntargets = (unsigned)(argc - optind) / 2;
	if (opt.ntargets > 1 && strcmp(opt.mode, "tcp-rtt") != 0 &&
	    strcmp(opt.mode, "udp-rtt") != 0)
		die(EXIT_USAGE,
		    "only tcp-rtt and udp-rtt take several "
		    "targets\n%s",
		    usage);
	if (opt.ntargets > MAX_TARGETS)
		die(EXIT_USAGE, "at most %d targets\n%s", MAX_TARGETS, usage);
	for (unsigned t = 0; t < opt.ntargets; t++) {
		const char *host = argv[optind + 2 * t];

		if (parse_addr(
		        host,
		        (uint16_t)num(argv[optind + 2 * t + 1], 1, 65535, 'p'),
		        &opt.targets[t], &opt.target_lens[t]) != 0)
			die(EXIT_USAGE, "'%s' is not a numeric address", host);
	}
	opt.target = opt.targets[0];
	opt.target_len = opt.target_lens[0];
}
