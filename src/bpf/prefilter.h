/* prefilter: what the XDP program and its loader (src/xdp.c) share: the
 * drop reasons, the map keys and the read-only configuration. */
#ifndef ECHOD_BPF_PREFILTER_H
#define ECHOD_BPF_PREFILTER_H

#include <linux/types.h>

/* Why the program dropped a packet; each is a guard's reason of the same
 * name (UDP: guard.h, TCP: the deny list), checked in the guards' order.
 * would_drop: enforce log-only, the packet passed. */
#define PF_REASONS(X)                                                          \
	X(udp_drop_port)                                                       \
	X(udp_drop_bad_source)                                                 \
	X(udp_drop_bad_dest)                                                   \
	X(udp_drop_deny)                                                       \
	X(udp_drop_rate)                                                       \
	X(tcp_drop_deny)                                                       \
	X(would_drop)                                                          \
	X(udp_drop_aggregate_rate)                                             \
	X(tcp_drop_bad_source)

enum pf_reason {
#define PF_ENUM(name) PF_##name,
	PF_REASONS(PF_ENUM)
#undef PF_ENUM
	    PF_NREASONS
};

/* The counters map holds two cache lines of PF_SLOT counters per CPU, so
 * that CPUs dropping a flood together never share a line: counter r of
 * CPU c is entry c * PF_SLOT + r. */
#define PF_SLOT 16
_Static_assert(PF_NREASONS <= PF_SLOT, "a CPU's counters fit its slot");

#define PF_AF_INET  2  /* AF_INET, without libc headers in the BPF build */
#define PF_AF_INET6 10 /* AF_INET6 */

/* An address, as struct ipaddr holds it: IPv4 in bytes[0..3], rest 0. */
struct pf_addr {
	__u8 family;
	__u8 pad[3];
	__u8 bytes[16];
};

/* A listening socket: protocol, family, port (network order), address
 * (all zero for a wildcard socket). */
struct pf_listen {
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;
	__u16 port;
	__u8 addr[16];
};

/* Keys of the deny/allow and rate-exempt tries (BPF_MAP_TYPE_LPM_TRIE). */
struct pf_lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};
struct pf_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Flags of an address in the `addrs` map (the host's own facts). */
#define PF_BAD_SOURCE 1 /* a directed broadcast */
#define PF_BAD_DEST   2
#define PF_OWN        4 /* the host's own: a bad source but on loopback */

#define PF_MAX_LOOPBACK 8 /* FACTS_MAX_LOOPBACK */

/* Set once before the program is loaded; the verifier sees constants. */
struct pf_config {
	__u8 enforce;        /* 0: log-only, count would_drop and pass */
	__u8 acl;            /* the deny/allow tries hold rules */
	__u8 rate;           /* the per-prefix bucket is on */
	__u8 exempt;         /* the rate-exempt tries hold prefixes */
	__u8 embedded_judge; /* embedded-ipv4 judge: else a bad source */
	__u8 aggregate;      /* the per-aggregate bucket is on */
	__u8 pad[2];
	__u32 v4_mask;      /* rate-prefix-v4 as a mask, network order */
	__u32 v6_mask[4];   /* rate-prefix-v6 as four masks, network order */
	__u64 interval_ns;  /* the bucket: one packet per interval ... */
	__u64 tolerance_ns; /* ... and a burst of tolerance/interval + 1 */
	__u32 agg_v4_mask;  /* udp-aggregate-prefix-v4, -v6, as above */
	__u32 agg_v6_mask[4];
	__u64 agg_interval_ns; /* the aggregate's bucket, as above */
	__u64 agg_tolerance_ns;
	__u64 max_payload; /* larger datagrams go to udp_drop_oversize */
	__u32 loopbacks[PF_MAX_LOOPBACK]; /* loopback ifindexes, 0: none */
	__u64 deny_ports[65536 / 64]; /* udp-deny-source-ports, host order */
};

#endif
