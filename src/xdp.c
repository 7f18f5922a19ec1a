/* xdp: libbpf for loading and attaching; after xdp_seal, only the link fds
 * and a read-only mapping of the counters are left. */
#include "xdp.h"
#include "errmsg.h"
#include "log.h"

#include "bpf/prefilter.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <bpf/libbpf_version.h>
#include <dlfcn.h>
#include <errno.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* The program allows twice the guard's per-prefix rate and burst, so that
 * where the two count differently (datagrams the guard drops for a loop or
 * its byte rate, datagrams the socket buffer lost) the guard is still the
 * one that limits; the program only stops what is far over. */
#define RATE_MARGIN 2

#define LIBBPF_LOG_LINES 40

/*
 * libbpf (and libelf and libz with it) is opened only when the policy
 * asks for the prefilter: a process without one maps none of them, and
 * none of their code sits in a sandbox that never calls it. Each libbpf
 * function used here or by the skeleton is called through this table,
 * filled by open_libbpf(); the names are redirected below, after it.
 */
#define LIBBPF_CALLS(X)                                                        \
	X(bpf_link_create)                                                     \
	X(bpf_map__fd)                                                         \
	X(bpf_map__lookup_elem)                                                \
	X(bpf_map__name)                                                       \
	X(bpf_map__set_max_entries)                                            \
	X(bpf_map__update_elem)                                                \
	X(bpf_map_freeze)                                                      \
	X(bpf_object__attach_skeleton)                                         \
	X(bpf_object__destroy_skeleton)                                        \
	X(bpf_object__detach_skeleton)                                         \
	X(bpf_object__load_skeleton)                                           \
	X(bpf_object__open_skeleton)                                           \
	X(bpf_program__fd)                                                     \
	X(libbpf_num_possible_cpus)                                            \
	X(libbpf_set_print)

#define STR(x)        #x
#define SONAME(major) "libbpf.so." STR(major)
#define LIBBPF_SONAME SONAME(LIBBPF_MAJOR_VERSION)

#define LIBBPF_FIELD(f) __typeof__(f) *f;
static struct {
	LIBBPF_CALLS(LIBBPF_FIELD)
} libbpf;
#undef LIBBPF_FIELD

/* Once, as root before the sandbox: dlopen with the search rules of the
 * link, every function found or none used. */
static int
open_libbpf(char *err, size_t errlen)
{
	static void *lib;
	const char *missing = NULL;

	if (lib != NULL)
		return 0;
	lib = dlopen(LIBBPF_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL)
		return errmsg(err, errlen,
		              "cannot load %s (install libbpf, or set "
		              "'allow-downgrade xdp-prefilter'): %s",
		              LIBBPF_SONAME, dlerror());
#define LIBBPF_RESOLVE(f)                                                      \
	if (missing == NULL && (*(void **)&libbpf.f = dlsym(lib, #f)) == NULL) \
		missing = #f;
	LIBBPF_CALLS(LIBBPF_RESOLVE)
#undef LIBBPF_RESOLVE
	if (missing != NULL) {
		dlclose(lib);
		lib = NULL;
		return errmsg(err, errlen,
		              "%s has no %s: libbpf %d or later "
		              "is needed",
		              LIBBPF_SONAME, missing, LIBBPF_MAJOR_VERSION);
	}
	return 0;
}

#define bpf_link_create              libbpf.bpf_link_create
#define bpf_map__fd                  libbpf.bpf_map__fd
#define bpf_map__lookup_elem         libbpf.bpf_map__lookup_elem
#define bpf_map__name                libbpf.bpf_map__name
#define bpf_map__set_max_entries     libbpf.bpf_map__set_max_entries
#define bpf_map__update_elem         libbpf.bpf_map__update_elem
#define bpf_map_freeze               libbpf.bpf_map_freeze
#define bpf_object__attach_skeleton  libbpf.bpf_object__attach_skeleton
#define bpf_object__destroy_skeleton libbpf.bpf_object__destroy_skeleton
#define bpf_object__detach_skeleton  libbpf.bpf_object__detach_skeleton
#define bpf_object__load_skeleton    libbpf.bpf_object__load_skeleton
#define bpf_object__open_skeleton    libbpf.bpf_object__open_skeleton
#define bpf_program__fd              libbpf.bpf_program__fd
#define libbpf_num_possible_cpus     libbpf.libbpf_num_possible_cpus
#define libbpf_set_print             libbpf.libbpf_set_print

/* The object, embedded by bpftool gen skeleton (build/gen): its inline
 * functions call libbpf through the names above. */
#include "prefilter.skel.h"

struct xdp_prefilter {
	struct prefilter *skel;
	unsigned ncpus;
};

/* Process-wide: what stays after xdp_seal (the "counters" of this module). */
static int links[POLICY_MAX_XDP];
static size_t nlinks;
static const uint64_t *mapped; /* the counters map, PROT_READ */
static unsigned ncpus;         /* its PF_SLOT-counter slots */

static char libbpf_last[200]; /* libbpf's last warning, for err */

/* libbpf's messages go to the log at debug level, one line each (of a
 * verifier log, the last lines: they say why); the last warning is kept
 * to explain a failure. */
static int libbpf_print(enum libbpf_print_level level, const char *fmt,
                        va_list ap) __attribute__((format(printf, 2, 0)));

static int
libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char *buf = NULL, *line, *save = NULL;
	size_t nlines = 0, skip;

	if (vasprintf(&buf, fmt, ap) < 0)
		return 0;
	for (char *c = buf; *c; c++) {
		nlines += *c == '\n';
		if (*c == '"' || *c == '\\' || (*c != '\n' && *c < 32))
			*c = '?';
	}
	skip = nlines > LIBBPF_LOG_LINES ? nlines - LIBBPF_LOG_LINES : 0;
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (level == LIBBPF_WARN)
			snprintf(libbpf_last, sizeof(libbpf_last), "%s", line);
		if (skip > 0)
			skip--;
		else
			log_event(LOG_DEBUG, "libbpf", "msg=\"%.900s\"", line);
	}
	free(buf);
	return 0;
}

size_t
xdp_listeners_of(const struct listen_set *s, struct xdp_listener *out,
                 size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct xdp_listener l = {0};
		int v6only = 1;
		socklen_t optlen = sizeof(v6only);
		bool dup = false;

		if (getsockname(s->l[i].fd, (struct sockaddr *)&ss, &len) != 0)
			continue;
		l.proto =
		    s->l[i].type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
		ipaddr_from_sockaddr((struct sockaddr *)&ss, &l.addr, &l.port);
		for (size_t k = 0; k < n; k++)
			dup |= memcmp(&out[k], &l, sizeof(l)) == 0;
		if (!dup && n < max)
			out[n++] = l;
		/* A dual-stack socket (passed by systemd) takes IPv4 too. */
		if (ss.ss_family == AF_INET6 && l.addr.family == AF_INET6 &&
		    getsockopt(s->l[i].fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
		               &optlen) == 0 &&
		    !v6only && n < max) {
			memset(l.addr.bytes, 0, sizeof(l.addr.bytes));
			l.addr.family = AF_INET;
			out[n++] = l;
		}
	}
	return n;
}

static void
mask_bytes(unsigned bits, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned b = bits > 8 * i ? bits - 8 * (unsigned)i : 0;
		out[i] = b >= 8 ? 0xff : (uint8_t)(0xff << (8 - b));
	}
}

/* A guard's rate as a GCRA interval and tolerance, RATE_MARGIN times as
 * generous; off (0) when unlimited or too fast to matter. */
static uint8_t
set_rate(const struct bucket_cfg *b, __u64 *interval_ns, __u64 *tolerance_ns)
{
	uint64_t burst = b->burst * RATE_MARGIN;

	if (b->rate == 0)
		return 0;
	*interval_ns = b->period_ms * 1000000 / (b->rate * RATE_MARGIN);
	if (*interval_ns == 0)
		return 0;
	*tolerance_ns = burst - 1 > UINT64_MAX / 2 / *interval_ns
	                    ? UINT64_MAX / 2
	                    : (burst - 1) * *interval_ns;
	return 1;
}

static void
configure(struct pf_config *c, const struct policy *p, const struct facts *f)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < f->nloopback && i < PF_MAX_LOOPBACK; i++)
		c->loopbacks[i] = (uint32_t)f->loopback_ifindex[i];
	c->enforce = p->enforce;
	c->acl = p->acl.n > 0;
	c->exempt = p->rate_exempt.n > 0;
	mask_bytes(p->rate_prefix_v4, (uint8_t *)&c->v4_mask, 4);
	mask_bytes(p->rate_prefix_v6, (uint8_t *)c->v6_mask, 16);
	c->rate = set_rate(&p->udp_rate, &c->interval_ns, &c->tolerance_ns);
	mask_bytes(p->udp_aggregate_prefix_v4, (uint8_t *)&c->agg_v4_mask, 4);
	mask_bytes(p->udp_aggregate_prefix_v6, (uint8_t *)c->agg_v6_mask, 16);
	c->aggregate = set_rate(&p->udp_aggregate_rate, &c->agg_interval_ns,
	                        &c->agg_tolerance_ns);
	c->embedded_judge = p->embedded_ipv4_judge;
	c->max_payload = p->udp_max_datagram;
	memcpy(c->deny_ports, p->udp_deny_ports.bits, sizeof(c->deny_ports));
}

static int
put(struct bpf_map *m, const void *key, size_t klen, uint8_t value, char *err,
    size_t errlen)
{
	if (bpf_map__update_elem(m, key, klen, &value, 1, BPF_ANY) != 0)
		return errmsg(err, errlen, "filling map %s: %s",
		              bpf_map__name(m), strerror(errno));
	return 0;
}

/* The addrs map: directed broadcasts (neither a source nor a destination)
 * and the host's own addresses (a source only on loopback), one entry
 * each with every flag that applies. */
static int
fill_addrs(struct prefilter *k, const struct facts *f, char *err, size_t errlen)
{
	const struct {
		const struct ipaddr *a;
		size_t n;
		uint8_t flags;
	} sets[] = {{f->broadcast, f->nbroadcast, PF_BAD_SOURCE | PF_BAD_DEST},
	            {f->local, f->nlocal, PF_OWN}};

	for (size_t s = 0; s < 2; s++)
		for (size_t i = 0; i < sets[s].n; i++) {
			struct pf_addr key = {.family = sets[s].a[i].family};
			uint8_t flags = sets[s].flags, old;
			memcpy(key.bytes, sets[s].a[i].bytes, 16);
			if (bpf_map__lookup_elem(k->maps.addrs, &key,
			                         sizeof(key), &old, 1, 0) == 0)
				flags |= old;
			if (put(k->maps.addrs, &key, sizeof(key), flags, err,
			        errlen))
				return -1;
		}
	return 0;
}

/* An acl's rules into an IPv4 and an IPv6 LPM trie, valued by verdict. */
static int
fill_tries(struct bpf_map *m4, struct bpf_map *m6, const struct acl *a,
           char *err, size_t errlen)
{
	for (size_t i = 0; i < a->n; i++) {
		const struct acl_rule *r = &a->rules[i];
		int rc;
		if (r->net.addr.family == AF_INET) {
			struct pf_lpm4 key = {.prefixlen = r->net.prefix};
			memcpy(key.addr, r->net.addr.bytes, 4);
			rc = put(m4, &key, sizeof(key), r->allow, err, errlen);
		} else {
			struct pf_lpm6 key = {.prefixlen = r->net.prefix};
			memcpy(key.addr, r->net.addr.bytes, 16);
			rc = put(m6, &key, sizeof(key), r->allow, err, errlen);
		}
		if (rc != 0)
			return -1;
	}
	return 0;
}

static int
fill_maps(struct prefilter *k, const struct policy *p, const struct facts *f,
          const struct xdp_listener *l, size_t nl, char *err, size_t errlen)
{
	for (size_t i = 0; i < nl; i++) {
		struct pf_listen key = {.proto = (uint8_t)l[i].proto,
		                        .family = l[i].addr.family,
		                        .port = htons(l[i].port)};
		memcpy(key.addr, l[i].addr.bytes, 16);
		if (put(k->maps.listeners, &key, sizeof(key), 1, err, errlen))
			return -1;
	}
	if (fill_addrs(k, f, err, errlen) != 0)
		return -1;
	if (fill_tries(k->maps.acl4, k->maps.acl6, &p->acl, err, errlen) != 0)
		return -1;
	return fill_tries(k->maps.exempt4, k->maps.exempt6, &p->rate_exempt,
	                  err, errlen);
}

static int
possible_cpus(unsigned *n)
{
	int k = libbpf_num_possible_cpus();

	if (k <= 0)
		return -1;
	*n = (unsigned)k;
	return 0;
}

static uint32_t
at_least_one(size_t n)
{
	return n > 0 ? (uint32_t)n : 1;
}

/* The trie sizes an acl needs: its IPv4 and IPv6 rules, at least 1 each. */
static void
count_families(const struct acl *a, uint32_t *n4, uint32_t *n6)
{
	size_t v4 = 0;

	for (size_t i = 0; i < a->n; i++)
		v4 += a->rules[i].net.addr.family == AF_INET;
	*n4 = at_least_one(v4);
	*n6 = at_least_one(a->n - v4);
}

static int
load_failed(const char *what, int e, char *err, size_t errlen)
{
	if (e == EPERM || e == EACCES)
		return errmsg(err, errlen,
		              "%s: %s: loading XDP needs CAP_BPF and "
		              "CAP_NET_ADMIN (or root)%s%s",
		              what, strerror(e),
		              libbpf_last[0] ? "; libbpf: " : "", libbpf_last);
	return errmsg(err, errlen, "%s: %s%s%s", what, strerror(e),
	              libbpf_last[0] ? "; libbpf: " : "", libbpf_last);
}

struct xdp_prefilter *
xdp_load(const struct policy *p, const struct facts *f,
         const struct xdp_listener *l, size_t nl, char *err, size_t errlen)
{
	struct xdp_prefilter *x = calloc(1, sizeof(*x));
	uint32_t n4, n6, e4, e6;
	int rc;

	if (x == NULL) {
		errmsg(err, errlen, "out of memory");
		return NULL;
	}
	if (open_libbpf(err, errlen) != 0) {
		free(x);
		return NULL;
	}
	libbpf_set_print(libbpf_print);
	libbpf_last[0] = '\0';
	x->skel = prefilter__open();
	if (x->skel == NULL) {
		load_failed("opening the program", errno, err, errlen);
		free(x);
		return NULL;
	}
	configure(&x->skel->rodata->cfg, p, f);
	count_families(&p->acl, &n4, &n6);
	count_families(&p->rate_exempt, &e4, &e6);
	rc =
	    bpf_map__set_max_entries(x->skel->maps.listeners, at_least_one(nl));
	rc |= bpf_map__set_max_entries(x->skel->maps.addrs,
	                               at_least_one(f->nbroadcast + f->nlocal));
	rc |= bpf_map__set_max_entries(x->skel->maps.acl4, n4);
	rc |= bpf_map__set_max_entries(x->skel->maps.acl6, n6);
	rc |= bpf_map__set_max_entries(x->skel->maps.exempt4, e4);
	rc |= bpf_map__set_max_entries(x->skel->maps.exempt6, e6);
	rc |=
	    bpf_map__set_max_entries(x->skel->maps.buckets, p->rate_table_size);
	rc |= bpf_map__set_max_entries(x->skel->maps.aggregates,
	                               p->rate_table_size);
	rc |= possible_cpus(&x->ncpus);
	rc |= bpf_map__set_max_entries(x->skel->maps.counters,
	                               x->ncpus * PF_SLOT);
	if (rc != 0) {
		errmsg(err, errlen, "sizing the maps failed");
		xdp_unload(x);
		return NULL;
	}
	if (prefilter__load(x->skel) != 0) {
		load_failed("the kernel refused the program", errno, err,
		            errlen);
		xdp_unload(x);
		return NULL;
	}
	if (fill_maps(x->skel, p, f, l, nl, err, errlen) != 0) {
		xdp_unload(x);
		return NULL;
	}
	return x;
}

int
xdp_prog_fd(const struct xdp_prefilter *x)
{
	return bpf_program__fd(x->skel->progs.echod_prefilter);
}

static int
link_create(int prog, unsigned ifindex, enum xdp_mode mode)
{
	LIBBPF_OPTS(bpf_link_create_opts, o);

	o.flags =
	    mode == XDP_MODE_NATIVE ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
	return bpf_link_create(prog, (int)ifindex, BPF_XDP, &o);
}

int
xdp_attach(struct xdp_prefilter *x, const char *ifname, enum xdp_mode mode,
           enum xdp_mode *attached, char *err, size_t errlen)
{
	unsigned ifindex = if_nametoindex(ifname);
	int fd = -1, e = 0;

	if (ifindex == 0)
		return errmsg(err, errlen,
		              "no interface '%s' in echod's network namespace",
		              ifname);
	if (nlinks == POLICY_MAX_XDP)
		return errmsg(err, errlen, "more than %d links",
		              POLICY_MAX_XDP);
	*attached =
	    mode == XDP_MODE_GENERIC ? XDP_MODE_GENERIC : XDP_MODE_NATIVE;
	fd = link_create(xdp_prog_fd(x), ifindex, *attached);
	if (fd < 0 && mode == XDP_MODE_AUTO && errno != EBUSY &&
	    errno != EEXIST) {
		*attached = XDP_MODE_GENERIC;
		fd = link_create(xdp_prog_fd(x), ifindex, *attached);
	}
	if (fd >= 0) {
		links[nlinks++] = fd;
		return 0;
	}
	e = errno;
	if (e == EBUSY || e == EEXIST)
		return errmsg(err, errlen,
		              "%s already has an XDP program: echod does not "
		              "replace it",
		              ifname);
	if (e == EPERM || e == EACCES)
		return errmsg(err, errlen,
		              "attaching to %s: %s: needs CAP_NET_ADMIN",
		              ifname, strerror(e));
	if (mode == XDP_MODE_NATIVE && (e == EOPNOTSUPP || e == EINVAL))
		return errmsg(err, errlen,
		              "%s has no native (driver) XDP: %s; use mode "
		              "generic or auto",
		              ifname, strerror(e));
	return errmsg(err, errlen, "attaching to %s (%s mode): %s", ifname,
	              xdp_mode_name(*attached), strerror(e));
}

int
xdp_seal(struct xdp_prefilter *x, char *err, size_t errlen)
{
	struct bpf_map *frozen[] = {
	    x->skel->maps.listeners, x->skel->maps.addrs,
	    x->skel->maps.acl4,      x->skel->maps.acl6,
	    x->skel->maps.exempt4,   x->skel->maps.exempt6,
	    x->skel->maps.buckets,   x->skel->maps.aggregates,
	    x->skel->maps.counters};
	int cfd = bpf_map__fd(x->skel->maps.counters);
	long page = sysconf(_SC_PAGESIZE);
	size_t len =
	    (x->ncpus * PF_SLOT * sizeof(uint64_t) + (size_t)page - 1) /
	    (size_t)page * (size_t)page;
	void *m;

	/* The kernel clears VM_MAYWRITE on a read-only mapping of a BPF map:
	 * not even mprotect() can make it writable later. */
	m = mmap(NULL, len, PROT_READ, MAP_SHARED, cfd, 0);
	if (m == MAP_FAILED) {
		errmsg(err, errlen, "mapping the counters: %s",
		       strerror(errno));
		xdp_unload(x);
		return -1;
	}
	/* Frozen: no bpf() caller, even root, can change the policy the
	 * program enforces or write the counters echod reports; only the
	 * program itself writes its buckets and counters. */
	for (size_t i = 0; i < sizeof(frozen) / sizeof(*frozen); i++)
		if (bpf_map_freeze(bpf_map__fd(frozen[i])) != 0) {
			errmsg(err, errlen, "freezing map %s: %s",
			       bpf_map__name(frozen[i]), strerror(errno));
			munmap(m, len);
			xdp_unload(x);
			return -1;
		}
	mapped = m;
	ncpus = x->ncpus;
	/* The links hold the program, the program its maps. */
	prefilter__destroy(x->skel);
	free(x);
	return 0;
}

void
xdp_unload(struct xdp_prefilter *x)
{
	xdp_forget_links();
	if (x == NULL)
		return;
	prefilter__destroy(x->skel);
	free(x);
}

void
xdp_forget_links(void)
{
	for (size_t i = 0; i < nlinks; i++)
		close(links[i]);
	nlinks = 0;
}

/* Counter r summed over the CPUs' slots of `view`. */
static uint64_t
sum(const uint64_t *view, unsigned cpus, unsigned r)
{
	uint64_t total = 0;

	for (unsigned c = 0; c < cpus; c++)
		total +=
		    __atomic_load_n(&view[c * PF_SLOT + r], __ATOMIC_RELAXED);
	return total;
}

void
xdp_fold_counters(struct counters *c)
{
	if (mapped == NULL)
		return;
#define PF_FOLD(name) c->xdp_##name = sum(mapped, ncpus, PF_##name);
	PF_REASONS(PF_FOLD)
#undef PF_FOLD
}

int
xdp_read_counters(const struct xdp_prefilter *x, uint64_t *out, size_t n)
{
	for (uint32_t r = 0; r < n && r < PF_NREASONS; r++) {
		out[r] = 0;
		for (uint32_t c = 0; c < x->ncpus; c++) {
			uint32_t key = c * PF_SLOT + r;
			uint64_t v;
			if (bpf_map__lookup_elem(x->skel->maps.counters, &key,
			                         sizeof(key), &v, sizeof(v),
			                         0) != 0)
				return -1;
			out[r] += v;
		}
	}
	return 0;
}

int
xdp_check_interfaces(const struct policy *p, char *err, size_t errlen)
{
	for (size_t i = 0; i < p->nxdp; i++)
		if (if_nametoindex(p->xdp_ifaces[i]) == 0)
			return errmsg(err, errlen,
			              "no interface '%s' in echod's network "
			              "namespace",
			              p->xdp_ifaces[i]);
	return 0;
}

int
xdp_start(const struct policy *p, const struct facts *f,
          const struct listen_set *s, const char **step, char *err,
          size_t errlen)
{
	struct xdp_listener l[XDP_MAX_LISTEN];
	struct xdp_prefilter *x;
	enum xdp_mode got[POLICY_MAX_XDP];
	size_t nl, i;

	*step = "xdp_load";
	nl = xdp_listeners_of(s, l, XDP_MAX_LISTEN);
	x = xdp_load(p, f, l, nl, err, errlen);
	if (x == NULL)
		return -1;
	for (i = 0; i < p->nxdp; i++)
		if (xdp_attach(x, p->xdp_ifaces[i], p->xdp_mode, &got[i], err,
		               errlen) != 0) {
			*step = "xdp_attach";
			xdp_unload(x);
			return -1;
		}
	*step = "xdp_seal";
	if (xdp_seal(x, err, errlen) != 0)
		return -1;
	for (i = 0; i < p->nxdp; i++)
		log_always(LOG_INFO, "xdp_attached", "iface=%s mode=%s",
		           p->xdp_ifaces[i], xdp_mode_name(got[i]));
	return 0;
}
