/* client/options: the command line and its limits. */
#include "options.h"

#include "io.h"
#include "units.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_HOST       "localhost"
#define DEFAULT_PORT       7
#define DEFAULT_TIMEOUT_MS 2000
#define MAX_TIMEOUT_MS     (3600 * 1000)
#define MAX_COUNT          1000000
#define UDP_MAX_SIZE       65507 /* 65535 - 20 (IPv4) - 8 (UDP) */
#define UDP_PIPE_SIZE      1472  /* fills one Ethernet frame over IPv4 */
#define PROBE_SIZE         64
#define TCP_PROBE_MAX_SIZE (1024 * 1024)

struct client_opts opts;

static const char usage_text[] =
    "usage: echo-client [-u] [-4|-6] [-b ADDR] [-p PORT] [-t SECONDS]\n"
    "                   [-n COUNT] [-s SIZE] [-h] [HOST]\n"
    "\n"
    "Send stdin to the echo service on HOST (default localhost) and check\n"
    "that the echo, copied to stdout, is identical.\n"
    "\n"
    "  -u          use UDP, one datagram of at most SIZE bytes at a time\n"
    "  -4, -6      use only IPv4 or only IPv6 addresses\n"
    "  -b ADDR     send from this numeric source address (of this host),\n"
    "              e.g. to try a deny rule from the server itself\n"
    "  -p PORT     port to use (default 7)\n"
    "  -t SECONDS  how long to wait for the server to make progress\n"
    "              (default 2; fractions such as 0.5 are allowed)\n"
    "  -n COUNT    send COUNT timed probes instead of reading stdin\n"
    "  -s SIZE     probe size (default 64) or, with -u, largest datagram\n"
    "              (default 1472)\n"
    "  -h          show this help\n"
    "\n"
    "Exit status: 0 echo exact, 1 echo differs, 2 network or I/O error,\n"
    "3 echo lost or late, 64 usage error.\n";

static _Noreturn void usage_error(const char *, ...)
    __attribute__((format(printf, 1, 2)));

static _Noreturn void
usage(FILE *out, int status)
{
	fputs(usage_text, out);
	exit(status);
}

static _Noreturn void
usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap, NULL);
	va_end(ap);
	usage(stderr, EXIT_USAGE);
}

/*
 * Seconds as plain decimal ("2", "0.5", ".25") to the millisecond, or a
 * duration with a unit ("500ms") as in the policy files.
 */
static int
parse_seconds(const char *s, uint64_t *out_ms)
{
	uint64_t whole = 0, frac = 0;
	unsigned ndigits = 0, nfrac = 0;

	if (parse_duration(s, out_ms) == 0)
		return 0;
	for (; *s >= '0' && *s <= '9'; s++, ndigits++) {
		whole = whole * 10 + (uint64_t)(*s - '0');
		if (whole > MAX_TIMEOUT_MS / 1000)
			return -1;
	}
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, ndigits++) {
			if (++nfrac > 3)
				return -1; /* finer than we can wait */
			frac = frac * 10 + (uint64_t)(*s - '0');
		}
	}
	if (ndigits == 0 || *s != '\0')
		return -1;
	for (; nfrac < 3; nfrac++)
		frac *= 10;
	*out_ms = whole * 1000 + frac;
	return 0;
}

/* The defaults and limits of -s depend on the mode chosen by -u and -n. */
static void
settle_size(bool size_given)
{
	if (!size_given) {
		opts.size =
		    opts.udp && opts.count == 0 ? UDP_PIPE_SIZE : PROBE_SIZE;
		return;
	}
	if (opts.udp && opts.size > UDP_MAX_SIZE)
		usage_error("-s: at most %d bytes fit in a UDP datagram",
		            UDP_MAX_SIZE);
	if (opts.udp && opts.count == 0 && opts.size == 0)
		usage_error("-s: datagrams of 0 bytes cannot carry stdin");
	if (!opts.udp && opts.count > 0 && opts.size == 0)
		usage_error("-s: a TCP probe needs at least 1 byte");
}

/* -b ADDR: a numeric IPv4 or IPv6 address, port 0 (any). */
static void
take_source(const char *text)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)&opts.source;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&opts.source;

	memset(&opts.source, 0, sizeof(opts.source));
	if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		opts.source_len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		opts.source_len = sizeof(*v6);
	} else {
		usage_error("-b: '%s' is not a numeric IPv4 or IPv6 address",
		            text);
	}
	opts.source_text = text;
}

void
parse_args(int argc, char **argv)
{
	bool size_given = false;
	uint64_t v;
	int ch, family;

	opts.host = DEFAULT_HOST;
	opts.port = DEFAULT_PORT;
	opts.family = AF_UNSPEC;
	opts.timeout_ms = DEFAULT_TIMEOUT_MS;
	opterr = 0; /* we word our own complaints */
	while ((ch = getopt(argc, argv, ":u46b:p:t:n:s:h")) != -1) {
		switch (ch) {
		case 'u':
			opts.udp = true;
			break;
		case '4':
		case '6':
			family = ch == '4' ? AF_INET : AF_INET6;
			if (opts.family != AF_UNSPEC && opts.family != family)
				usage_error("-4 and -6 exclude each other");
			opts.family = family;
			break;
		case 'b':
			take_source(optarg);
			break;
		case 'p':
			if (parse_uint(optarg, 65535, &v) != 0 || v == 0)
				usage_error(
				    "-p: port must be 1..65535, not '%s'",
				    optarg);
			opts.port = (unsigned)v;
			break;
		case 't':
			if (parse_seconds(optarg, &v) != 0 || v == 0 ||
			    v > MAX_TIMEOUT_MS)
				usage_error("-t: seconds must be more than 0 "
				            "and at most 3600, not '%s'",
				            optarg);
			opts.timeout_ms = v;
			break;
		case 'n':
			if (parse_uint(optarg, MAX_COUNT, &v) != 0 || v == 0)
				usage_error("-n: count must be 1..%d, not '%s'",
				            MAX_COUNT, optarg);
			opts.count = v;
			break;
		case 's':
			if (parse_size(optarg, &v) != 0 ||
			    v > TCP_PROBE_MAX_SIZE)
				usage_error("-s: size must be 0..%d, not '%s'",
				            TCP_PROBE_MAX_SIZE, optarg);
			opts.size = (size_t)v;
			size_given = true;
			break;
		case 'h':
			usage(stdout, 0);
		case ':':
			usage_error("-%c needs a value", optopt);
		default:
			usage_error("unknown option -%c", optopt);
		}
	}
	if (argc - optind > 1)
		usage_error("only one HOST, please");
	if (argc - optind == 1)
		opts.host = argv[optind];
	if (opts.host[0] == '\0')
		usage_error("HOST is empty");
	settle_size(size_given);
	if (opts.source_len > 0 && opts.family != AF_UNSPEC &&
	    opts.family != opts.source.ss_family)
		usage_error("-b: %s is not of the family -4/-6 asks for",
		            opts.source_text);
	if (opts.source_len > 0)
		opts.family = opts.source.ss_family; /* reach HOST that way */
	snprintf(opts.service, sizeof(opts.service), "%u", opts.port);
}
