/* cli: flags are checked as strictly as the policy file. */
#include "cli.h"
#include "errmsg.h"

#include <stdio.h>
#include <string.h>

#define DEFAULT_PORT 7

const char cli_usage[] =
    "usage: echod [-c FILE] [-t | -T] [-l ADDR[:PORT]]... [-p PORT] [-u USER]\n"
    "             [-w WORKERS] [-v] [-V] [-h]\n"
    "  -c FILE     policy file (default: built-in, same as policy/echod.conf)\n"
    "  -t          check the policy and flags, print ok, exit\n"
    "  -T          check as -t, then print the effective policy, exit\n"
    "  -l ADDR     listen address, repeatable, replaces 'listen':\n"
    "              127.0.0.1, 127.0.0.1:7007, [::1]:7007\n"
    "  -p PORT     port for every listen address without one (default 7)\n"
    "  -u USER     user to run as after binding\n"
    "  -w WORKERS  worker processes: auto (one per CPU) or 1-256\n"
    "  -v          more logging (repeat for debug)\n"
    "  -V          print the version and exit\n"
    "  -h          print this help and exit\n"
    "signals: TERM/INT stop, HUP reloads the policy, USR1 logs every counter\n"
    "exit: 0 ok, 64 usage, 71 cannot bind or harden, 78 bad policy\n";

static int
take_value(char flag, const char *value, struct options *out, char *err,
           size_t errlen)
{
	uint64_t v;

	switch (flag) {
	case 'c':
		out->config = value;
		return 0;
	case 'l':
		if (out->nlisten == POLICY_MAX_LISTEN)
			return errmsg(err, errlen,
			              "-l: at most %d listen addresses",
			              POLICY_MAX_LISTEN);
		if (parse_endpoint(value, &out->listen[out->nlisten]) != 0)
			return errmsg(err, errlen,
			              "-l: '%s' is not ADDR, ADDR:PORT or "
			              "[V6]:PORT with a numeric address and a "
			              "port from 1 to 65535",
			              value);
		for (size_t i = 0; i < out->nlisten; i++)
			if (memcmp(&out->listen[i], &out->listen[out->nlisten],
			           sizeof(out->listen[i])) == 0)
				return errmsg(err, errlen,
				              "-l: '%s' given twice", value);
		out->nlisten++;
		return 0;
	case 'p':
		if (parse_uint(value, 65535, &v) != 0 || v == 0)
			return errmsg(err, errlen,
			              "-p: '%s' is not a port (1-65535)",
			              value);
		out->port = (uint16_t)v;
		out->port_set = true;
		return 0;
	case 'u':
		if (!policy_valid_user(value))
			return errmsg(err, errlen,
			              "-u: '%s' is not a valid user name",
			              value);
		out->user = value;
		return 0;
	case 'w':
		out->workers_set = true;
		if (strcmp(value, "auto") == 0) {
			out->workers = 0;
			return 0;
		}
		if (parse_uint(value, 256, &v) != 0 || v == 0)
			return errmsg(err, errlen,
			              "-w: '%s' is not auto or 1-256", value);
		out->workers = (unsigned)v;
		return 0;
	}
	return errmsg(err, errlen, "unknown option -%c", flag);
}

int
cli_parse(int argc, char *const argv[], struct options *o, char *err,
          size_t errlen)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->port = DEFAULT_PORT;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		for (const char *f = a + 1; *f; f++) {
			if (strchr("tTvVh", *f) != NULL) {
				if (*f == 't' || *f == 'T') {
					o->check_only = true;
					o->print_policy |= *f == 'T';
				} else if (*f == 'v')
					o->verbose++;
				else if (*f == 'V')
					o->version = true;
				else
					o->help = true;
				continue;
			}
			if (strchr("clpuw", *f) == NULL)
				return errmsg(err, errlen, "unknown option -%c",
				              *f);
			/* A value flag takes the rest of the word or the next.
			 */
			const char *value = f[1] ? f + 1 : argv[++i];
			if (value == NULL || i >= argc)
				return errmsg(err, errlen,
				              "option -%c needs a value", *f);
			if (take_value(*f, value, o, err, errlen) != 0)
				return -1;
			break;
		}
	}
	if (i < argc)
		return errmsg(err, errlen, "unexpected argument '%s'", argv[i]);
	return 0;
}

int
cli_check_listen(const struct policy *p, char *err, size_t errlen)
{
	char where[ADDR_STRLEN];

	for (size_t i = 0; i < p->nlisten; i++)
		for (size_t j = i + 1; j < p->nlisten; j++)
			if (p->listen[i].len == p->listen[j].len &&
			    memcmp(&p->listen[i].ss, &p->listen[j].ss,
			           p->listen[i].len) == 0) {
				format_sockaddr(
				    (const struct sockaddr *)&p->listen[i].ss,
				    where, sizeof(where));
				return errmsg(
				    err, errlen,
				    "listen address %s is given twice "
				    "once the port is filled in",
				    where);
			}
	return 0;
}

void
cli_apply(const struct options *o, struct policy *p)
{
	if (o->nlisten > 0) {
		memcpy(p->listen, o->listen, sizeof(o->listen));
		p->nlisten = o->nlisten;
	}
	for (size_t i = 0; i < p->nlisten; i++)
		if (!p->listen[i].has_port)
			endpoint_set_port(&p->listen[i],
			                  o->port_set ? o->port : DEFAULT_PORT);
	if (o->user != NULL)
		snprintf(p->user, sizeof(p->user), "%s", o->user);
	if (o->workers_set)
		p->workers = o->workers;
	for (int v = 0; v < o->verbose && p->log_level < LOG_DEBUG; v++)
		p->log_level++;
}
