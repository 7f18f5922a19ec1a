/*
 * xdp: the optional XDP prefilter (src/bpf/prefilter.bpf.c): load it with
 * the policy's settings, attach it, then keep only the links and a
 * read-only view of its counters, so that no bpf() call is ever needed
 * again. Every function that can fail returns 0, or -1 with what failed
 * and what to do in err.
 * Map: packet-path layer; calls addr, counters, errmsg, facts, listener, log,
 * policy.
 */
#ifndef ECHOD_XDP_H
#define ECHOD_XDP_H

#include "addr.h"
#include "counters.h"
#include "facts.h"
#include "listener.h"
#include "policy.h"

#include <stddef.h>
#include <stdint.h>

#define XDP_MAX_LISTEN 64

/* One socket the program must recognise as echod's. */
struct xdp_listener {
	int proto;          /* IPPROTO_TCP or IPPROTO_UDP */
	struct ipaddr addr; /* all zero bytes: a wildcard socket */
	uint16_t port;
};

struct xdp_prefilter;

/* The sockets of s, deduplicated (workers share addresses), from
 * getsockname(): bound here or passed by systemd alike. The count. */
size_t xdp_listeners_of(const struct listen_set *s, struct xdp_listener *out,
                        size_t max);

/* echod -t: every interface the policy names exists (loading is left to
 * the start). -1 with the missing one in err. */
int xdp_check_interfaces(const struct policy *p, char *err, size_t errlen);

/*
 * The start-up's step 3b, while the capabilities to load it are held:
 * load, attach to every interface the policy names, seal; each attachment
 * is logged (xdp_attached). Afterwards only the links and a read-only view
 * of the counters are left: no process needs bpf() again. -1 with the step
 * that failed ("xdp_load", "xdp_attach", "xdp_seal") and why; nothing
 * stays attached.
 */
int xdp_start(const struct policy *p, const struct facts *f,
              const struct listen_set *s, const char **step, char *err,
              size_t errlen);

/* Load the program with the policy's guards and the host's facts and fill
 * its maps (step "xdp_load"). Needs CAP_BPF and CAP_NET_ADMIN. */
struct xdp_prefilter *xdp_load(const struct policy *p, const struct facts *f,
                               const struct xdp_listener *l, size_t nl,
                               char *err, size_t errlen);

/* The loaded program, for BPF_PROG_TEST_RUN in the tests. */
int xdp_prog_fd(const struct xdp_prefilter *x);

/* Attach to ifname by a bpf_link (step "xdp_attach"): auto tries native,
 * then generic. *attached: the mode in force. */
int xdp_attach(struct xdp_prefilter *x, const char *ifname, enum xdp_mode mode,
               enum xdp_mode *attached, char *err, size_t errlen);

/* Step "xdp_seal": map the counters read-only, freeze every map the
 * program only reads, and close the program, the maps and libbpf's object:
 * what remains is the links and the mapping. Frees x. */
int xdp_seal(struct xdp_prefilter *x, char *err, size_t errlen);

/* Unload without sealing (a refusal, or the tests); links are closed. */
void xdp_unload(struct xdp_prefilter *x);

/* In a worker: close its copies of the link fds (the supervisor's keep the
 * program attached; it must go when the supervisor goes). */
void xdp_forget_links(void);

/* Copy the program's counters into c's xdp_* fields (untouched without
 * one): the supervisor does it to its own counters before each report
 * (SIGUSR1, a metrics scrape), so gather_total() includes them. */
void xdp_fold_counters(struct counters *c);

/* The program's counters by reason (src/bpf/prefilter.h), for the tests. */
int xdp_read_counters(const struct xdp_prefilter *x, uint64_t *out, size_t n);

#endif
