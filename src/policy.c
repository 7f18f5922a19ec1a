/* policy: a line-oriented grammar, one table of directives, no surprises. */
#include "policy.h"
#include "errmsg.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ARGS      (POLICY_MAX_CIDRS + 1)
#define SEEN_TEXT_MAX (POLICY_MAX_LINE + 1) /* a whole line: no truncation */

struct directive;
typedef int (*apply_fn)(const struct directive *d, struct policy *p,
                        char **argv, int argc, char *msg, size_t msglen);

struct directive {
	const char *name;
	apply_fn apply;
	size_t offset; /* field in struct policy, for the generic setters */
	uint64_t min, max;
	bool list;  /* may repeat: later lines add to the list */
	bool bytes; /* set_bucket, set_optional: sizes, not counts/times */
};

static int
want_args(const struct directive *d, int argc, int min, int max, char *msg,
          size_t msglen)
{
	if (argc < min)
		return errmsg(msg, msglen, "'%s' needs a value", d->name);
	if (argc > max)
		return errmsg(msg, msglen, "'%s' takes %d value%s, got %d",
		              d->name, max, max == 1 ? "" : "s", argc);
	return 0;
}

static int
set_uint(const struct directive *d, struct policy *p, char **argv, int argc,
         char *msg, size_t msglen)
{
	uint64_t v;

	if (want_args(d, argc, 1, 1, msg, msglen) != 0)
		return -1;
	if (parse_uint(argv[0], UINT32_MAX, &v) != 0 || v < d->min ||
	    v > d->max)
		return errmsg(msg, msglen,
		              "'%s': '%s' is not a whole number from %llu to "
		              "%llu",
		              d->name, argv[0], (unsigned long long)d->min,
		              (unsigned long long)d->max);
	*(unsigned *)((char *)p + d->offset) = (unsigned)v;
	return 0;
}

static int
set_duration(const struct directive *d, struct policy *p, char **argv, int argc,
             char *msg, size_t msglen)
{
	uint64_t v;

	if (want_args(d, argc, 1, 1, msg, msglen) != 0)
		return -1;
	if (parse_duration(argv[0], &v) != 0)
		return errmsg(msg, msglen,
		              "'%s': '%s' is not a duration (e.g. 500ms, 30s, "
		              "5m, 1h)",
		              d->name, argv[0]);
	if (v < d->min || v > d->max)
		return errmsg(msg, msglen,
		              "'%s': %s is out of range (%llums to "
		              "%llums)",
		              d->name, argv[0], (unsigned long long)d->min,
		              (unsigned long long)d->max);
	*(uint64_t *)((char *)p + d->offset) = v;
	return 0;
}

static int
set_size(const struct directive *d, struct policy *p, char **argv, int argc,
         char *msg, size_t msglen)
{
	uint64_t v;

	if (want_args(d, argc, 1, 1, msg, msglen) != 0)
		return -1;
	if (parse_size(argv[0], &v) != 0)
		return errmsg(msg, msglen,
		              "'%s': '%s' is not a size (e.g. 512, 64k, 1m)",
		              d->name, argv[0]);
	if (v < d->min || v > d->max)
		return errmsg(msg, msglen,
		              "'%s': %s is out of range (%llu to %llu bytes)",
		              d->name, argv[0], (unsigned long long)d->min,
		              (unsigned long long)d->max);
	*(uint64_t *)((char *)p + d->offset) = v;
	return 0;
}

size_t
policy_listen_index(const struct policy *p, const struct endpoint *ep)
{
	size_t i;

	for (i = 0; i < p->nlisten; i++)
		if (p->listen[i].len == ep->len &&
		    p->listen[i].has_port == ep->has_port &&
		    memcmp(&p->listen[i].ss, &ep->ss, ep->len) == 0)
			break;
	return i;
}

static int
set_listen(const struct directive *d, struct policy *p, char **argv, int argc,
           char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, POLICY_MAX_LISTEN, msg, msglen) != 0)
		return -1;
	for (int i = 0; i < argc; i++) {
		if (p->nlisten == POLICY_MAX_LISTEN)
			return errmsg(msg, msglen,
			              "'%s': more than %d addresses", d->name,
			              POLICY_MAX_LISTEN);
		if (parse_endpoint(argv[i], &p->listen[p->nlisten]) != 0)
			return errmsg(msg, msglen,
			              "'%s': '%s' is not ADDR, ADDR:PORT or "
			              "[V6]:PORT with a numeric address and a "
			              "port from 1 to 65535",
			              d->name, argv[i]);
		if (policy_listen_index(p, &p->listen[p->nlisten]) < p->nlisten)
			return errmsg(msg, msglen, "'%s': '%s' is listed twice",
			              d->name, argv[i]);
		p->nlisten++;
	}
	return 0;
}

static int
set_protocols(const struct directive *d, struct policy *p, char **argv,
              int argc, char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, 2, msg, msglen) != 0)
		return -1;
	p->tcp = p->udp = false;
	for (int i = 0; i < argc; i++) {
		bool *which;
		if (strcmp(argv[i], "tcp") == 0)
			which = &p->tcp;
		else if (strcmp(argv[i], "udp") == 0)
			which = &p->udp;
		else
			return errmsg(msg, msglen,
			              "'%s': '%s' is neither tcp nor udp",
			              d->name, argv[i]);
		if (*which)
			return errmsg(msg, msglen, "'%s': '%s' named twice",
			              d->name, argv[i]);
		*which = true;
	}
	return 0;
}

static int
set_workers(const struct directive *d, struct policy *p, char **argv, int argc,
            char *msg, size_t msglen)
{
	if (argc == 1 && strcmp(argv[0], "auto") == 0) {
		p->workers = 0;
		return 0;
	}
	if (set_uint(d, p, argv, argc, msg, msglen) != 0)
		return errmsg(msg, msglen, "'%s': expected auto or 1 to %llu",
		              d->name, (unsigned long long)d->max);
	return 0;
}

/* POSIX portable user names: no shell or path metacharacters get through. */
bool
policy_valid_user(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= POLICY_NAME_MAX || s[0] == '-')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' &&
		    *s != '.')
			return false;
	return true;
}

static int
set_user(const struct directive *d, struct policy *p, char **argv, int argc,
         char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, 1, msg, msglen) != 0)
		return -1;
	if (!policy_valid_user(argv[0]))
		return errmsg(msg, msglen,
		              "'%s': '%s' is not a valid user name", d->name,
		              argv[0]);
	snprintf(p->user, sizeof(p->user), "%s", argv[0]);
	return 0;
}

static int
set_log_level(const struct directive *d, struct policy *p, char **argv,
              int argc, char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, 1, msg, msglen) != 0)
		return -1;
	if (log_level_parse(argv[0], &p->log_level) == 0)
		return 0;
	return errmsg(msg, msglen,
	              "'%s': '%s' is not one of error, warn, info, debug",
	              d->name, argv[0]);
}

/* "/a/b": absolute, no empty, "." or ".." component, not "/" itself. */
static bool
plain_absolute_dir(const char *path)
{
	const char *c = path;

	if (*c != '/')
		return false;
	while (*c == '/') {
		const char *end = strchr(c + 1, '/');
		size_t n = end ? (size_t)(end - c - 1) : strlen(c + 1);

		if (n == 0 && end == NULL && c != path)
			return true; /* one trailing slash */
		if (n == 0 || (n == 1 && c[1] == '.') ||
		    (n == 2 && c[1] == '.' && c[2] == '.'))
			return false;
		if (end == NULL)
			return true;
		c = end;
	}
	return false;
}

static int
set_chroot(const struct directive *d, struct policy *p, char **argv, int argc,
           char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, 1, msg, msglen) != 0)
		return -1;
	if (!plain_absolute_dir(argv[0]) ||
	    strlen(argv[0]) >= sizeof(p->chroot_dir))
		return errmsg(msg, msglen,
		              "'%s': '%s' is not an absolute directory other "
		              "than /",
		              d->name, argv[0]);
	snprintf(p->chroot_dir, sizeof(p->chroot_dir), "%s", argv[0]);
	return 0;
}

static int
set_sandbox_violation(const struct directive *d, struct policy *p, char **argv,
                      int argc, char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, 1, msg, msglen) != 0)
		return -1;
	if (strcmp(argv[0], "kill") == 0)
		p->sandbox_log = false;
	else if (strcmp(argv[0], "log") == 0)
		p->sandbox_log = true;
	else
		return errmsg(msg, msglen, "'%s': '%s' is neither kill nor log",
		              d->name, argv[0]);
	return 0;
}

/* "none", or one or more of the steps echod may then skip. */
static int
set_landlock(const struct directive *d, struct policy *p, char **argv, int argc,
             char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, 1, msg, msglen) != 0)
		return -1;
	if (strcmp(argv[0], "optional") == 0)
		p->landlock_required = false;
	else if (strcmp(argv[0], "required") == 0)
		p->landlock_required = true;
	else
		return errmsg(msg, msglen,
		              "'%s': '%s' is neither optional nor required",
		              d->name, argv[0]);
	return 0;
}

static int
set_allow_downgrade(const struct directive *d, struct policy *p, char **argv,
                    int argc, char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, 2, msg, msglen) != 0)
		return -1;
	p->allow_big_stderr = p->allow_no_xdp = false;
	if (argc == 1 && strcmp(argv[0], "none") == 0)
		return 0;
	for (int i = 0; i < argc; i++) {
		bool *which;
		if (strcmp(argv[i], "fsize-limit") == 0)
			which = &p->allow_big_stderr;
		else if (strcmp(argv[i], "xdp-prefilter") == 0)
			which = &p->allow_no_xdp;
		else
			return errmsg(msg, msglen,
			              "'%s': '%s' is not none, fsize-limit or "
			              "xdp-prefilter (none stands alone)",
			              d->name, argv[i]);
		if (*which)
			return errmsg(msg, msglen, "'%s': '%s' named twice",
			              d->name, argv[i]);
		*which = true;
	}
	return 0;
}

static const char *const xdp_mode_names[] = {"auto", "native", "generic"};

const char *
xdp_mode_name(enum xdp_mode m)
{
	return xdp_mode_names[m];
}

/* An interface name the kernel would accept (dev_valid_name). */
static bool
valid_ifname(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= POLICY_IFNAME_MAX || strcmp(s, ".") == 0 ||
	    strcmp(s, "..") == 0)
		return false;
	for (; *s; s++)
		if (*s == '/' || *s == ':' || isspace((unsigned char)*s))
			return false;
	return true;
}

/* "xdp-prefilter IFACE... [mode native|generic|auto]" */
static int
set_xdp_prefilter(const struct directive *d, struct policy *p, char **argv,
                  int argc, char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, POLICY_MAX_XDP + 2, msg, msglen) != 0)
		return -1;
	p->nxdp = 0;
	p->xdp_mode = XDP_MODE_AUTO;
	if (argc >= 2 && strcmp(argv[argc - 2], "mode") == 0) {
		size_t m;
		for (m = 0; m < 3; m++)
			if (strcmp(argv[argc - 1], xdp_mode_names[m]) == 0)
				break;
		if (m == 3)
			return errmsg(msg, msglen,
			              "'%s': mode '%s' is not native, generic "
			              "or auto",
			              d->name, argv[argc - 1]);
		p->xdp_mode = (enum xdp_mode)m;
		argc -= 2;
	}
	if (argc == 0)
		return errmsg(msg, msglen, "'%s' needs an interface", d->name);
	if (argc > POLICY_MAX_XDP)
		return errmsg(msg, msglen, "'%s': more than %d interfaces",
		              d->name, POLICY_MAX_XDP);
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "mode") == 0 || !valid_ifname(argv[i]))
			return errmsg(msg, msglen,
			              "'%s': '%s' is not an interface name "
			              "(1-15 characters, no '/', ':' or space)",
			              d->name, argv[i]);
		for (size_t k = 0; k < p->nxdp; k++)
			if (strcmp(p->xdp_ifaces[k], argv[i]) == 0)
				return errmsg(msg, msglen,
				              "'%s': '%s' is listed twice",
				              d->name, argv[i]);
		snprintf(p->xdp_ifaces[p->nxdp++], POLICY_IFNAME_MAX, "%s",
		         argv[i]);
	}
	return 0;
}

/* allow, deny (one list, longest prefix wins) and metrics-allow (the
 * sources besides loopback that may scrape; the metrics server adds four
 * rules of its own: loopback, then deny everything else). */
static int
set_cidrs(const struct directive *d, struct policy *p, char **argv, int argc,
          char *msg, size_t msglen)
{
	bool metrics = strcmp(d->name, "metrics-allow") == 0;
	bool exempt = strcmp(d->name, "rate-exempt") == 0;
	/* rate-exempt is a list of prefixes, not verdicts: all "allow". */
	bool allow = metrics || exempt || strcmp(d->name, "allow") == 0;
	struct acl *acl = metrics  ? &p->metrics_allow
	                  : exempt ? &p->rate_exempt
	                           : &p->acl;
	size_t max = metrics ? ACL_MAX - 4 : ACL_MAX;
	struct cidr net;

	if (want_args(d, argc, 1, POLICY_MAX_CIDRS, msg, msglen) != 0)
		return -1;
	for (int i = 0; i < argc; i++) {
		if (parse_cidr(argv[i], &net) != 0)
			return errmsg(msg, msglen,
			              "'%s': '%s' is not ADDR or ADDR/LEN with "
			              "zero host bits",
			              d->name, argv[i]);
		if (acl->n == max)
			return errmsg(msg, msglen,
			              "'%s': more than %zu prefixes at '%s'",
			              d->name, max, argv[i]);
		if (acl_add(acl, &net, allow) != 0)
			return errmsg(msg, msglen,
			              "'%s': '%s' is already listed with the "
			              "other verdict",
			              d->name, argv[i]);
	}
	acl_finish(acl);
	return 0;
}

static int
set_ports(const struct directive *d, struct policy *p, char **argv, int argc,
          char *msg, size_t msglen)
{
	uint16_t lo, hi;

	if (want_args(d, argc, 1, MAX_ARGS, msg, msglen) != 0)
		return -1;
	if (argc == 1 && strcmp(argv[0], "none") == 0)
		return 0;
	for (int i = 0; i < argc; i++) {
		if (parse_port_range(argv[i], &lo, &hi) != 0)
			return errmsg(
			    msg, msglen,
			    "'%s': '%s' is not PORT or LO-HI (0-65535)",
			    d->name, argv[i]);
		portset_add(&p->udp_deny_ports, lo, hi);
	}
	return 0;
}

static int
set_on_off(const struct directive *d, const char *word, bool *out,
           const char *on, const char *off, char *msg, size_t msglen)
{
	if (strcmp(word, on) == 0)
		*out = true;
	else if (strcmp(word, off) == 0)
		*out = false;
	else
		return errmsg(msg, msglen, "'%s': '%s' is neither %s nor %s",
		              d->name, word, on, off);
	return 0;
}

static int
set_enforce(const struct directive *d, struct policy *p, char **argv, int argc,
            char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, 1, msg, msglen) != 0)
		return -1;
	return set_on_off(d, argv[0], &p->enforce, "on", "log-only", msg,
	                  msglen);
}

/* "tcp-prefix-v6 64 56 48": prefix levels, finest first, each shorter
 * than the one before; the count goes in the unsigned after the array. */
static int
set_levels(const struct directive *d, struct policy *p, char **argv, int argc,
           char *msg, size_t msglen)
{
	unsigned *level = (unsigned *)((char *)p + d->offset);
	unsigned *count = level + POLICY_MAX_LEVELS;

	if (want_args(d, argc, 1, POLICY_MAX_LEVELS, msg, msglen) != 0)
		return -1;
	for (int i = 0; i < argc; i++) {
		uint64_t v;

		if (parse_uint(argv[i], UINT32_MAX, &v) != 0 || v < d->min ||
		    v > d->max)
			return errmsg(msg, msglen,
			              "'%s': '%s' is not a prefix length from "
			              "%llu to %llu",
			              d->name, argv[i],
			              (unsigned long long)d->min,
			              (unsigned long long)d->max);
		if (i > 0 && v >= level[i - 1])
			return errmsg(msg, msglen,
			              "'%s': levels go from the longest prefix "
			              "to the shortest (%s after %u)",
			              d->name, argv[i], level[i - 1]);
		level[i] = (unsigned)v;
	}
	*count = (unsigned)argc;
	return 0;
}

static int
set_embedded_ipv4(const struct directive *d, struct policy *p, char **argv,
                  int argc, char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, 1, msg, msglen) != 0)
		return -1;
	return set_on_off(d, argv[0], &p->embedded_ipv4_judge, "judge", "drop",
	                  msg, msglen);
}

/* "udp-loop-guard on [repeats N] [window DURATION] [hold DURATION]" */
static int
set_loop_guard(const struct directive *d, struct policy *p, char **argv,
               int argc, char *msg, size_t msglen)
{
	uint64_t v;

	if (want_args(d, argc, 1, 7, msg, msglen) != 0)
		return -1;
	if (set_on_off(d, argv[0], &p->loop_guard, "on", "off", msg, msglen) !=
	    0)
		return -1;
	for (int i = 1; i < argc; i += 2) {
		const char *key = argv[i],
		           *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (val == NULL)
			return errmsg(msg, msglen, "'%s': '%s' needs a value",
			              d->name, key);
		if (strcmp(key, "repeats") == 0 &&
		    parse_uint(val, 1000, &v) == 0 && v >= 2)
			p->loop_repeats = (unsigned)v;
		else if (strcmp(key, "window") == 0 &&
		         parse_duration(val, &v) == 0 && v > 0)
			p->loop_window_ms = v;
		else if (strcmp(key, "hold") == 0 &&
		         parse_duration(val, &v) == 0 && v > 0)
			p->loop_hold_ms = v;
		else
			return errmsg(
			    msg, msglen,
			    "'%s': bad '%s %s' (repeats 2-1000, window "
			    "and hold are durations)",
			    d->name, key, val);
	}
	return 0;
}

/* "RATE [burst N]" or "SIZE/UNIT [burst SIZE]" or "unlimited". */
static int
set_bucket(const struct directive *d, struct policy *p, char **argv, int argc,
           char *msg, size_t msglen)
{
	struct bucket_cfg *b = (struct bucket_cfg *)((char *)p + d->offset);
	bool bytes = d->bytes;
	struct rate r;
	uint64_t burst;

	if (want_args(d, argc, 1, 3, msg, msglen) != 0)
		return -1;
	if (argc == 1 && strcmp(argv[0], "unlimited") == 0) {
		*b = (struct bucket_cfg){0, 1000, 0};
		return 0;
	}
	if ((bytes ? parse_byte_rate(argv[0], &r) : parse_rate(argv[0], &r)) !=
	        0 ||
	    r.count == 0)
		return errmsg(msg, msglen,
		              bytes
		                  ? "'%s': '%s' is not SIZE/UNIT (e.g. 1m/s) "
		                    "or unlimited"
		                  : "'%s': '%s' is not COUNT/UNIT (e.g. 100/s) "
		                    "or unlimited",
		              d->name, argv[0]);
	/* Counts are bounded like an explicit burst; an implicit burst (the
	 * rate itself) must not exceed what "burst N" may say. */
	if (!bytes && r.count > UINT32_MAX)
		return errmsg(msg, msglen,
		              "'%s': '%s' is more than %u per unit", d->name,
		              argv[0], UINT32_MAX);
	burst = r.count;
	if (argc == 2 || (argc == 3 && strcmp(argv[1], "burst") != 0))
		return errmsg(msg, msglen,
		              "'%s': expected 'burst N' after the "
		              "rate",
		              d->name);
	if (argc == 3 &&
	    ((bytes ? parse_size(argv[2], &burst)
	            : parse_uint(argv[2], UINT32_MAX, &burst)) != 0 ||
	     burst == 0))
		return errmsg(msg, msglen,
		              "'%s': burst '%s' is not a %s above 0", d->name,
		              argv[2], bytes ? "size" : "count");
	*b = (struct bucket_cfg){r.count, r.period_ms, burst};
	return 0;
}

/* "SIZE/UNIT" (at least SIZE bytes in every UNIT) or "off". */
static int
set_min_rate(const struct directive *d, struct policy *p, char **argv, int argc,
             char *msg, size_t msglen)
{
	struct rate r;

	if (want_args(d, argc, 1, 1, msg, msglen) != 0)
		return -1;
	if (strcmp(argv[0], "off") == 0) {
		p->tcp_min_rate = (struct bucket_cfg){0, 1000, 0};
		return 0;
	}
	if (parse_byte_rate(argv[0], &r) != 0 || r.count == 0)
		return errmsg(msg, msglen,
		              "'%s': '%s' is not SIZE/UNIT (e.g. 32/m) or off",
		              d->name, argv[0]);
	p->tcp_min_rate = (struct bucket_cfg){r.count, r.period_ms, r.count};
	return 0;
}

/* A duration or size that may be "off" (stored as 0). */
static int
set_optional(const struct directive *d, struct policy *p, char **argv, int argc,
             char *msg, size_t msglen)
{
	if (argc == 1 && strcmp(argv[0], "off") == 0) {
		*(uint64_t *)((char *)p + d->offset) = 0;
		return 0;
	}
	if (d->bytes)
		return set_size(d, p, argv, argc, msg, msglen);
	return set_duration(d, p, argv, argc, msg, msglen);
}

/* "log stderr" or "log syslog [PATH]": PATH an absolute socket path. */
static int
set_log(const struct directive *d, struct policy *p, char **argv, int argc,
        char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, 2, msg, msglen) != 0)
		return -1;
	if (strcmp(argv[0], "stderr") == 0 && argc == 1) {
		p->log_syslog = false;
		return 0;
	}
	if (strcmp(argv[0], "syslog") != 0)
		return errmsg(msg, msglen,
		              "'%s': expected stderr or syslog [PATH]",
		              d->name);
	if (argc == 2 &&
	    (argv[1][0] != '/' || strlen(argv[1]) >= 108 /* sun_path */))
		return errmsg(msg, msglen,
		              "'%s': '%s' is not an absolute socket path "
		              "under 108 bytes",
		              d->name, argv[1]);
	p->log_syslog = true;
	snprintf(p->syslog_path, sizeof(p->syslog_path), "%s",
	         argc == 2 ? argv[1] : "/dev/log");
	return 0;
}

static int
set_log_format(const struct directive *d, struct policy *p, char **argv,
               int argc, char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, 1, msg, msglen) != 0)
		return -1;
	return set_on_off(d, argv[0], &p->log_json, "json", "logfmt", msg,
	                  msglen);
}

/* "metrics off" or "metrics ADDR:PORT" (a port is required: no default
 * would suit everyone, and none may collide with the echo port). */
static int
set_metrics(const struct directive *d, struct policy *p, char **argv, int argc,
            char *msg, size_t msglen)
{
	if (want_args(d, argc, 1, 1, msg, msglen) != 0)
		return -1;
	if (strcmp(argv[0], "off") == 0) {
		p->metrics_on = false;
		return 0;
	}
	if (parse_endpoint(argv[0], &p->metrics) != 0 || !p->metrics.has_port)
		return errmsg(msg, msglen,
		              "'%s': '%s' is not off, ADDR:PORT or [V6]:PORT "
		              "with a numeric address",
		              d->name, argv[0]);
	p->metrics_on = true;
	return 0;
}

/* Loopback: 127.0.0.0/8 or ::1. */
static bool
is_loopback(const struct endpoint *ep)
{
	struct ipaddr a;

	ipaddr_from_sockaddr((const struct sockaddr *)&ep->ss, &a, NULL);
	if (a.family == AF_INET)
		return a.bytes[0] == 127;
	for (int i = 0; i < 15; i++)
		if (a.bytes[i] != 0)
			return false;
	return a.bytes[15] == 1;
}

#define FIELD(f) offsetof(struct policy, f)

/* set_levels finds each list's count right after its array. */
_Static_assert(FIELD(tcp_levels_v4) ==
                   FIELD(tcp_prefix_v4) + sizeof(unsigned) * POLICY_MAX_LEVELS,
               "tcp_levels_v4 follows tcp_prefix_v4");
_Static_assert(FIELD(tcp_levels_v6) ==
                   FIELD(tcp_prefix_v6) + sizeof(unsigned) * POLICY_MAX_LEVELS,
               "tcp_levels_v6 follows tcp_prefix_v6");

static const struct directive directives[] = {
    {"listen", set_listen, 0, 0, 0, true, false},
    {"protocols", set_protocols, 0, 0, 0, false, false},
    {"workers", set_workers, FIELD(workers), 1, 256, false, false},
    {"user", set_user, 0, 0, 0, false, false},
    {"worker-restart-limit", set_bucket, FIELD(worker_restarts), 0, 0, false,
     false},
    {"tcp-max-connections", set_uint, FIELD(tcp_max_connections), 1, 100000,
     false, false},
    {"tcp-idle-timeout", set_duration, FIELD(tcp_idle_timeout_ms), 100,
     24 * 3600 * 1000, false, false},
    {"tcp-buffer", set_size, FIELD(tcp_buffer), 512, 16 * 1024 * 1024, false,
     false},
    {"tcp-splice-pipes", set_uint, FIELD(tcp_splice_pipes), 0, 1024, false,
     false},
    {"udp-max-datagram", set_size, FIELD(udp_max_datagram), 0, 65535, false,
     false},
    {"udp-receive-buffer", set_size, FIELD(udp_receive_buffer), 64 * 1024,
     256 * 1024 * 1024, false, false},
    {"log-level", set_log_level, 0, 0, 0, false, false},
    {"log", set_log, 0, 0, 0, false, false},
    {"log-format", set_log_format, 0, 0, 0, false, false},
    {"metrics", set_metrics, 0, 0, 0, false, false},
    {"metrics-allow", set_cidrs, 0, 0, 0, true, false},
    {"chroot", set_chroot, 0, 0, 0, false, false},
    {"sandbox-violation", set_sandbox_violation, 0, 0, 0, false, false},
    {"landlock", set_landlock, 0, 0, 0, false, false},
    {"allow-downgrade", set_allow_downgrade, 0, 0, 0, false, false},
    {"xdp-prefilter", set_xdp_prefilter, 0, 0, 0, false, false},
    {"enforce", set_enforce, 0, 0, 0, false, false},
    {"allow", set_cidrs, 0, 0, 0, true, false},
    {"deny", set_cidrs, 0, 0, 0, true, false},
    {"rate-exempt", set_cidrs, 0, 0, 0, true, false},
    {"udp-deny-source-ports", set_ports, 0, 0, 0, true, false},
    {"rate-prefix-v4", set_uint, FIELD(rate_prefix_v4), 8, 32, false, false},
    {"rate-prefix-v6", set_uint, FIELD(rate_prefix_v6), 16, 128, false, false},
    {"rate-table-size", set_uint, FIELD(rate_table_size), 64, 16777216, false,
     false},
    {"udp-loop-guard", set_loop_guard, 0, 0, 0, false, false},
    {"udp-rate", set_bucket, FIELD(udp_rate), 0, 0, false, false},
    {"udp-byte-rate", set_bucket, FIELD(udp_byte_rate), 0, 0, false, true},
    {"udp-global-rate", set_bucket, FIELD(udp_global_rate), 0, 0, false, false},
    {"udp-aggregate-prefix-v4", set_uint, FIELD(udp_aggregate_prefix_v4), 8, 32,
     false, false},
    {"udp-aggregate-prefix-v6", set_uint, FIELD(udp_aggregate_prefix_v6), 16,
     128, false, false},
    {"udp-aggregate-rate", set_bucket, FIELD(udp_aggregate_rate), 0, 0, false,
     false},
    {"embedded-ipv4", set_embedded_ipv4, 0, 0, 0, false, false},
    {"tcp-prefix-v4", set_levels, FIELD(tcp_prefix_v4), 8, 32, false, false},
    {"tcp-prefix-v6", set_levels, FIELD(tcp_prefix_v6), 16, 128, false, false},
    {"tcp-max-connections-per-source", set_uint, FIELD(tcp_max_per_source), 1,
     100000, false, false},
    {"tcp-max-connections-per-aggregate", set_uint,
     FIELD(tcp_max_per_aggregate), 1, 100000, false, false},
    {"tcp-connect-rate", set_bucket, FIELD(tcp_connect_rate), 0, 0, false,
     false},
    {"tcp-aggregate-connect-rate", set_bucket,
     FIELD(tcp_aggregate_connect_rate), 0, 0, false, false},
    {"tcp-byte-rate", set_bucket, FIELD(tcp_byte_rate), 0, 0, false, true},
    {"tcp-min-rate", set_min_rate, 0, 0, 0, false, true},
    {"tcp-max-lifetime", set_optional, FIELD(tcp_max_lifetime_ms), 1000,
     UINT64_C(30) * 24 * 3600 * 1000, false, false},
    {"tcp-max-bytes", set_optional, FIELD(tcp_max_bytes), 1, UINT64_C(1) << 40,
     false, true},
};

#define NDIRECTIVES (sizeof(directives) / sizeof(directives[0]))

/* What a scalar directive was first set to, to tell repeats from conflicts. */
struct seen {
	unsigned line;
	char text[SEEN_TEXT_MAX];
};

static void
join_args(char **argv, int argc, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (int i = 0; i < argc && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s",
		                         i ? " " : "", argv[i]);
}

static const struct directive *
find_directive(const char *name)
{
	for (size_t i = 0; i < NDIRECTIVES; i++)
		if (strcmp(directives[i].name, name) == 0)
			return &directives[i];
	return NULL;
}

/* Clear a list the first time this file names it, so files replace lists.
 * allow and deny share one list: it is cleared once, by whichever is first. */
static void
reset_list(const struct directive *d, struct policy *p, const struct seen *seen)
{
	if (d->apply == set_listen)
		p->nlisten = 0;
	else if (d == find_directive("metrics-allow"))
		memset(&p->metrics_allow, 0, sizeof(p->metrics_allow));
	else if (d == find_directive("rate-exempt"))
		memset(&p->rate_exempt, 0, sizeof(p->rate_exempt));
	else if (d->apply == set_ports)
		memset(&p->udp_deny_ports, 0, sizeof(p->udp_deny_ports));

	else if (d->apply == set_cidrs &&
	         seen[find_directive("allow") - directives].line == 0 &&
	         seen[find_directive("deny") - directives].line == 0)
		memset(&p->acl, 0, sizeof(p->acl));
}

/* Split a line in place into whitespace-separated words; # starts a comment.
 */
static int
split_words(char *line, char **argv, int max)
{
	int argc = 0;
	char *s = line;

	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\r')
			s++;
		if (*s == '\0' || *s == '#')
			return argc;
		if (argc == max)
			return -1;
		argv[argc++] = s;
		while (*s && *s != ' ' && *s != '\t' && *s != '\r' && *s != '#')
			s++;
		if (*s == '#') {
			*s = '\0';
			return argc;
		}
		if (*s)
			*s++ = '\0';
	}
}

static int
parse_line(char *line, unsigned lineno, struct policy *p, struct seen *seen,
           struct policy_error *err)
{
	char *argv[MAX_ARGS];
	char text[SEEN_TEXT_MAX];
	const struct directive *d;
	struct seen *s;
	int argc;

	for (char *c = line; *c; c++)
		if (iscntrl((unsigned char)*c) && *c != '\t' && *c != '\r')
			return errmsg(err->msg, sizeof(err->msg),
			              "control character 0x%02x in line",
			              (unsigned char)*c);
	argc = split_words(line, argv, MAX_ARGS);
	if (argc < 0)
		return errmsg(err->msg, sizeof(err->msg),
		              "too many words on one line (at most %d after "
		              "the keyword)",
		              MAX_ARGS - 1);
	if (argc == 0)
		return 0;
	d = find_directive(argv[0]);
	if (d == NULL)
		return errmsg(err->msg, sizeof(err->msg),
		              "unknown keyword '%.64s'", argv[0]);
	s = &seen[d - directives];
	join_args(argv + 1, argc - 1, text, sizeof(text));
	if (s->line != 0 && !d->list) {
		if (strcmp(s->text, text) != 0)
			return errmsg(err->msg, sizeof(err->msg),
			              "'%s' conflicts with line %u ('%s %s')",
			              d->name, s->line, d->name, s->text);
		return 0;
	}
	if (s->line == 0) {
		reset_list(d, p, seen);
		s->line = lineno;
		snprintf(s->text, sizeof(s->text), "%s", text);
	}
	return d->apply(d, p, argv + 1, argc - 1, err->msg, sizeof(err->msg));
}

/* The endpoint serves counters to whoever may connect: on an address other
 * than loopback it needs an explicit list of who may. */
static int
check_metrics(const struct policy *p, const struct seen *seen,
              struct policy_error *err)
{
	if (!p->metrics_on || is_loopback(&p->metrics) ||
	    p->metrics_allow.n > 0)
		return 0;
	err->line = seen[find_directive("metrics") - directives].line;
	return errmsg(err->msg, sizeof(err->msg),
	              "'metrics' on an address other than loopback needs "
	              "'metrics-allow' (the prefixes that may scrape)");
}

int
policy_parse(const char *buf, size_t len, struct policy *p,
             struct policy_error *err)
{
	struct seen seen[NDIRECTIVES];
	char line[POLICY_MAX_LINE + 1];
	unsigned lineno = 0;
	size_t pos = 0;

	memset(seen, 0, sizeof(seen));
	memset(err, 0, sizeof(*err));
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;

		lineno++;
		err->line = lineno;
		if (n > POLICY_MAX_LINE)
			return errmsg(err->msg, sizeof(err->msg),
			              "line longer than %d bytes",
			              POLICY_MAX_LINE);
		if (memchr(buf + pos, '\0', n) != NULL)
			return errmsg(err->msg, sizeof(err->msg),
			              "NUL byte in line");
		memcpy(line, buf + pos, n);
		line[n] = '\0';
		if (parse_line(line, lineno, p, seen, err) != 0)
			return -1;
		pos += n + 1;
	}
	err->line = 0;
	return check_metrics(p, seen, err);
}

int
policy_defaults(struct policy *p, struct policy_error *err)
{
	struct policy_error ignored;

	memset(p, 0, sizeof(*p));
	/* The test suite parses the text at build time: only a broken build
	 * fails here, and the caller says so. */
	return policy_parse(policy_default_text, strlen(policy_default_text), p,
	                    err != NULL ? err : &ignored);
}

int
policy_load_file(const char *path, struct policy *p, struct policy_error *err)
{
	static char buf[POLICY_MAX_FILE];
	size_t len;

	if (policy_read_at(AT_FDCWD, path, buf, sizeof(buf), &len, err) != 0)
		return -1;
	return policy_parse(buf, len, p, err);
}

/*
 * -T: the policy as policy-file text. One printer per setter, so a new
 * keyword that reuses a setter prints with no more code; each prints
 * what its setter parses back to the same value.
 */
struct out {
	char *buf;
	size_t len, used;
	size_t line_start; /* of the current list line */
	bool overflow;
};

static void __attribute__((format(printf, 2, 3)))
emit(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->used) {
		o->overflow = true;
		o->buf[o->used] = '\0';
		return;
	}
	o->used += (size_t)n;
}

#define LIST_LINE 72 /* wrap list lines here: far below POLICY_MAX_LINE */

/* One word of a list keyword's value: a new line when this one is full. */
static void
list_word(struct out *o, const char *keyword, const char *word, bool *open)
{
	if (*open && o->used - o->line_start + strlen(word) + 1 > LIST_LINE) {
		emit(o, "\n");
		*open = false;
	}
	if (!*open) {
		o->line_start = o->used;
		emit(o, "%s", keyword);
		*open = true;
	}
	emit(o, " %s", word);
}

static void
list_end(struct out *o, const char *keyword, bool open)
{
	if (open)
		emit(o, "\n");
	else
		emit(o, "# %s: none\n", keyword);
}

static void
format_size(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "gmk";

	for (int i = 0; i < 3; i++) {
		uint64_t mult = UINT64_C(1) << (10 * (3 - i));
		if (v != 0 && v % mult == 0) {
			snprintf(buf, len, "%llu%c",
			         (unsigned long long)(v / mult), units[i]);
			return;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* COUNT/UNIT or SIZE/UNIT: the period is one unit (s, m or h). */
static void
format_per(uint64_t amount, uint64_t period_ms, bool bytes, char *buf,
           size_t len)
{
	char a[32], unit[24];

	if (bytes)
		format_size(amount, a, sizeof(a));
	else
		snprintf(a, sizeof(a), "%llu", (unsigned long long)amount);
	format_duration(period_ms, unit, sizeof(unit));
	snprintf(buf, len, "%s/%s", a, unit[0] == '1' ? unit + 1 : unit);
}

static void
format_endpoint(const struct endpoint *ep, char *buf, size_t len)
{
	struct ipaddr a;
	char host[ADDR_STRLEN];

	/* A port the flags filled in (-p, or 7) is part of the effect. */
	if (ep->has_port || endpoint_port(ep) != 0) {
		format_sockaddr((const struct sockaddr *)&ep->ss, buf, len);
		return;
	}
	ipaddr_from_sockaddr((const struct sockaddr *)&ep->ss, &a, NULL);
	format_ipaddr(&a, host, sizeof(host));
	snprintf(buf, len, "%s", host);
}

static void
format_cidr(const struct cidr *c, char *buf, size_t len)
{
	char host[ADDR_STRLEN];

	format_ipaddr(&c->addr, host, sizeof(host));
	snprintf(buf, len, "%s/%u", host, c->prefix);
}

static void
print_cidrs(struct out *o, const char *keyword, const struct acl *a, bool allow)
{
	char word[ADDR_STRLEN + 8];
	bool open = false;

	for (size_t i = 0; i < a->n; i++) {
		if (a->rules[i].allow != allow)
			continue;
		format_cidr(&a->rules[i].net, word, sizeof(word));
		list_word(o, keyword, word, &open);
	}
	list_end(o, keyword, open);
}

static void
print_ports(struct out *o, const char *keyword, const struct portset *ps)
{
	char word[16];
	bool open = false;

	for (unsigned lo = 0; lo < 65536; lo++) {
		unsigned hi = lo;
		if (!portset_has(ps, (uint16_t)lo))
			continue;
		while (hi < 65535 && portset_has(ps, (uint16_t)(hi + 1)))
			hi++;
		if (hi == lo)
			snprintf(word, sizeof(word), "%u", lo);
		else
			snprintf(word, sizeof(word), "%u-%u", lo, hi);
		list_word(o, keyword, word, &open);
		lo = hi;
	}
	if (!open)
		emit(o, "%s none\n", keyword);
	else
		emit(o, "\n");
}

static void
print_bucket(struct out *o, const char *keyword, const struct bucket_cfg *b,
             bool bytes)
{
	char rate[48], burst[32];

	if (b->rate == 0) {
		emit(o, "%s unlimited\n", keyword);
		return;
	}
	format_per(b->rate, b->period_ms, bytes, rate, sizeof(rate));
	if (bytes)
		format_size(b->burst, burst, sizeof(burst));
	else
		snprintf(burst, sizeof(burst), "%llu",
		         (unsigned long long)b->burst);
	emit(o, "%s %s burst %s\n", keyword, rate, burst);
}

static void
print_xdp(struct out *o, const char *keyword, const struct policy *p)
{
	if (p->nxdp == 0) {
		emit(o, "# %s: off\n", keyword);
		return;
	}
	emit(o, "%s", keyword);
	for (size_t i = 0; i < p->nxdp; i++)
		emit(o, " %s", p->xdp_ifaces[i]);
	emit(o, " mode %s\n", xdp_mode_name(p->xdp_mode));
}

static void
print_downgrades(struct out *o, const char *keyword, const struct policy *p)
{
	if (!p->allow_big_stderr && !p->allow_no_xdp)
		emit(o, "%s none\n", keyword);
	else
		emit(o, "%s%s%s\n", keyword,
		     p->allow_big_stderr ? " fsize-limit" : "",
		     p->allow_no_xdp ? " xdp-prefilter" : "");
}

static void
print_listen(struct out *o, const char *keyword, const struct policy *p)
{
	char word[ADDR_STRLEN + 8];
	bool open = false;

	for (size_t i = 0; i < p->nlisten; i++) {
		format_endpoint(&p->listen[i], word, sizeof(word));
		list_word(o, keyword, word, &open);
	}
	list_end(o, keyword, open);
}

static const char *
on_off(bool on, const char *yes, const char *no)
{
	return on ? yes : no;
}

/* The keyword's line (or lines): what its setter would parse back. */
static void
print_directive(const struct directive *d, const struct policy *p,
                struct out *o)
{
	const void *field = (const char *)p + d->offset;
	const char *k = d->name;
	char v[64], w[64];

	if (d->apply == set_uint) {
		emit(o, "%s %u\n", k, *(const unsigned *)field);
	} else if (d->apply == set_workers) {
		if (p->workers == 0)
			emit(o, "%s auto\n", k);
		else
			emit(o, "%s %u\n", k, p->workers);
	} else if (d->apply == set_duration ||
	           (d->apply == set_optional && !d->bytes)) {
		uint64_t ms = *(const uint64_t *)field;
		format_duration(ms, v, sizeof(v));
		emit(o, "%s %s\n", k,
		     ms == 0 && d->apply == set_optional ? "off" : v);
	} else if (d->apply == set_size || d->apply == set_optional) {
		uint64_t n = *(const uint64_t *)field;
		format_size(n, v, sizeof(v));
		emit(o, "%s %s\n", k,
		     n == 0 && d->apply == set_optional ? "off" : v);
	} else if (d->apply == set_bucket) {
		print_bucket(o, k, field, d->bytes);
	} else if (d->apply == set_min_rate) {
		if (p->tcp_min_rate.rate == 0) {
			emit(o, "%s off\n", k);
		} else {
			format_per(p->tcp_min_rate.rate,
			           p->tcp_min_rate.period_ms, true, v,
			           sizeof(v));
			emit(o, "%s %s\n", k, v);
		}
	} else if (d->apply == set_listen) {
		print_listen(o, k, p);
	} else if (d->apply == set_protocols) {
		emit(o, "%s%s%s\n", k, p->tcp ? " tcp" : "",
		     p->udp ? " udp" : "");
	} else if (d->apply == set_user) {
		if (p->user[0] == '\0')
			emit(o,
			     "# %s: unset (echod if it exists, else nobody)\n",
			     k);
		else
			emit(o, "%s %s\n", k, p->user);
	} else if (d->apply == set_log_level) {
		emit(o, "%s %s\n", k, log_level_name(p->log_level));
	} else if (d->apply == set_log) {
		if (p->log_syslog)
			emit(o, "%s syslog %s\n", k, p->syslog_path);
		else
			emit(o, "%s stderr\n", k);
	} else if (d->apply == set_log_format) {
		emit(o, "%s %s\n", k, on_off(p->log_json, "json", "logfmt"));
	} else if (d->apply == set_metrics) {
		format_endpoint(&p->metrics, w, sizeof(w));
		emit(o, "%s %s\n", k, p->metrics_on ? w : "off");
	} else if (d->apply == set_cidrs) {
		bool metrics = strcmp(k, "metrics-allow") == 0;
		bool exempt = strcmp(k, "rate-exempt") == 0;
		print_cidrs(o, k,
		            metrics  ? &p->metrics_allow
		            : exempt ? &p->rate_exempt
		                     : &p->acl,
		            metrics || exempt || strcmp(k, "allow") == 0);
	} else if (d->apply == set_ports) {
		print_ports(o, k, &p->udp_deny_ports);
	} else if (d->apply == set_chroot) {
		emit(o, "%s %s\n", k, p->chroot_dir);
	} else if (d->apply == set_sandbox_violation) {
		emit(o, "%s %s\n", k, on_off(p->sandbox_log, "log", "kill"));
	} else if (d->apply == set_landlock) {
		emit(o, "%s %s\n", k,
		     on_off(p->landlock_required, "required", "optional"));
	} else if (d->apply == set_allow_downgrade) {
		print_downgrades(o, k, p);
	} else if (d->apply == set_xdp_prefilter) {
		print_xdp(o, k, p);
	} else if (d->apply == set_enforce) {
		emit(o, "%s %s\n", k, on_off(p->enforce, "on", "log-only"));
	} else if (d->apply == set_levels) {
		const unsigned *level = field;
		emit(o, "%s", k);
		for (unsigned i = 0; i < level[POLICY_MAX_LEVELS]; i++)
			emit(o, " %u", level[i]);
		emit(o, "\n");
	} else if (d->apply == set_embedded_ipv4) {
		emit(o, "%s %s\n", k,
		     on_off(p->embedded_ipv4_judge, "judge", "drop"));
	} else if (d->apply == set_loop_guard) {
		format_duration(p->loop_window_ms, v, sizeof(v));
		format_duration(p->loop_hold_ms, w, sizeof(w));
		emit(o, "%s %s repeats %u window %s hold %s\n", k,
		     on_off(p->loop_guard, "on", "off"), p->loop_repeats, v, w);
	} else {
		o->overflow = true; /* no printer: -T fails, and test_policy */
	}
}

/* One keyword's text into buf[POLICY_PRINT_MAX], which holds any. */
static void
print_one(const struct directive *d, const struct policy *p, char *buf)
{
	struct out o = {.buf = buf, .len = POLICY_PRINT_MAX};

	buf[0] = '\0';
	print_directive(d, p, &o);
}

int
policy_print(const struct policy *p, char *buf, size_t len)
{
	struct out o = {.buf = buf, .len = len};

	if (len == 0)
		return -1;
	buf[0] = '\0';
	emit(&o, "# The effective policy (echod -T): every keyword, in the "
	         "policy file's\n# syntax; echod -c FILE -t accepts it as "
	         "it is.\n");
	for (size_t i = 0; i < NDIRECTIVES; i++)
		print_directive(&directives[i], p, &o);
	return o.overflow ? -1 : (int)o.used;
}

int
policy_changed_keywords(const struct policy *a, const struct policy *b,
                        char *buf, size_t len)
{
	static char one[POLICY_PRINT_MAX], two[POLICY_PRINT_MAX];
	struct out o = {.buf = buf, .len = len};
	int n = 0;

	if (len == 0)
		return -1;
	buf[0] = '\0';
	for (size_t i = 0; i < NDIRECTIVES; i++) {
		print_one(&directives[i], a, one);
		print_one(&directives[i], b, two);
		if (strcmp(one, two) == 0)
			continue;
		emit(&o, "%s%s", n > 0 ? "," : "", directives[i].name);
		n++;
	}
	return o.overflow ? -1 : n;
}

/* The CA-1996-01 ports: an echo (7), daytime (13), qotd (17), chargen
 * (19) or time (37) service answers anything, and port 0 is no client's. */
static const uint16_t loop_ports[] = {0, 7, 13, 17, 19, 37};

int
policy_lost_defaults(const struct policy *p, char *buf, size_t len)
{
	struct out o = {.buf = buf, .len = len};
	int n = 0;

	if (len == 0)
		return -1;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(loop_ports) / sizeof(loop_ports[0]); i++)
		if (!portset_has(&p->udp_deny_ports, loop_ports[i]))
			emit(&o, "%s%u", n++ > 0 ? "," : "", loop_ports[i]);
	return o.overflow ? -1 : n;
}

int
policy_read_at(int dir_fd, const char *name, char *buf, size_t cap, size_t *len,
               struct policy_error *err)
{
	struct stat st;
	ssize_t n = 0;
	int fd;

	memset(err, 0, sizeof(*err));
	*len = 0;
	/* O_NONBLOCK: a FIFO with no writer must not hang us (-t included). */
	fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return errmsg(err->msg, sizeof(err->msg), "cannot open: %s",
		              strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return errmsg(err->msg, sizeof(err->msg), "not a regular file");
	}
	while (*len < cap && (n = read(fd, buf + *len, cap - *len)) > 0)
		*len += (size_t)n;
	close(fd);
	if (n < 0)
		return errmsg(err->msg, sizeof(err->msg), "cannot read: %s",
		              strerror(errno));
	if (*len == cap)
		return errmsg(err->msg, sizeof(err->msg),
		              "larger than %zu bytes", cap);
	return 0;
}
