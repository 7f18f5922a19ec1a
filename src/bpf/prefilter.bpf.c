/*
 * prefilter: echod's optional XDP program. It drops, before the kernel
 * builds a socket buffer, only what echod's guards would drop on the socket
 * path, judged from the same policy in the same order (src/guard.c):
 *   UDP: denied source port, bad source (the host's own addresses from
 *        outside included), bad destination, deny list, and a
 *        per-prefix and a per-aggregate bucket twice as generous as the
 *        guard's (which rate-exempt sources skip, as they skip the
 *        guard's rates);
 *   TCP: bad source (embedded IPv4 forms only, as the guard), the deny
 *        list.
 * An IPv6 source that carries an IPv4 address (addr.h) is a bad source,
 * or judged as that address (embedded-ipv4), as the guards do.
 * It looks only at UDP and TCP to echod's own listening sockets. Anything
 * else, and anything it cannot parse for certain (fragments, unknown or
 * truncated headers, IPv4-mapped IPv6 addresses), passes untouched: the
 * guards stay the authority. It never writes to the packet.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <stdbool.h>

#include "prefilter.h"

#define IP_MF     0x2000
#define IP_OFFSET 0x1fff
#define MAX_EXT   8 /* IPv6 extension headers walked before giving up */

const volatile struct pf_config cfg;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64); /* set by the loader */
	__type(key, struct pf_listen);
	__type(value, __u8);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512); /* set by the loader */
	__type(key, struct pf_addr);
	__type(value, __u8);
} addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 512);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pf_lpm4);
	__type(value, __u8); /* 1 allow, 0 deny */
} acl4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 512);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pf_lpm6);
	__type(value, __u8);
} acl6 SEC(".maps");

/* rate-exempt prefixes (value 1): they skip the bucket, as the guard's
 * rate limits. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 512);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pf_lpm4);
	__type(value, __u8);
} exempt4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 512);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pf_lpm6);
	__type(value, __u8);
} exempt6 SEC(".maps");

/* Per source prefix: the theoretical arrival time of the next packet. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* rate-table-size, set by the loader */
	__type(key, struct pf_addr);
	__type(value, __u64);
} buckets SEC(".maps");

/* Per aggregate prefix, the same (udp-aggregate-rate). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* rate-table-size, set by the loader */
	__type(key, struct pf_addr);
	__type(value, __u64);
} aggregates SEC(".maps");

/* Mapped read-only by echod's supervisor: no bpf() call to read them.
 * PF_SLOT entries per possible CPU (the loader sets the size). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PF_SLOT);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* What the checks need from one packet. */
struct pkt {
	struct pf_addr src, dst;
	__u32 ifindex; /* the interface it arrived on */
	__u8 proto;
	__u16 sport, dport; /* network order */
	__u32 payload;      /* UDP payload length */
};

static __always_inline int
verdict(enum pf_reason r)
{
	__u32 key = bpf_get_smp_processor_id() * PF_SLOT +
	            (cfg.enforce ? (__u32)r : PF_would_drop);
	__u64 *n = bpf_map_lookup_elem(&counters, &key);

	/* Only this CPU writes its slot, and XDP is not preempted. */
	if (n)
		*n += 1;
	return cfg.enforce ? XDP_DROP : XDP_PASS;
}

/*
 * Headers past a variable offset (IPv4 options, IPv6 extension headers)
 * are copied with bpf_xdp_load_bytes() rather than reached by pointer
 * arithmetic: the verifier allows variable packet offsets only with
 * CAP_PERFMON, and echod asks for CAP_BPF and CAP_NET_ADMIN alone.
 */

/* The transport header at off: 0 if it is UDP or TCP and whole. */
static __always_inline int
parse_l4(struct xdp_md *ctx, struct pkt *p, __u32 off)
{
	if (p->proto == IPPROTO_UDP) {
		struct udphdr u;
		if (bpf_xdp_load_bytes(ctx, off, &u, sizeof(u)) != 0)
			return -1;
		if (bpf_ntohs(u.len) < sizeof(u))
			return -1;
		p->sport = u.source;
		p->dport = u.dest;
		p->payload = bpf_ntohs(u.len) - sizeof(u);
		return 0;
	}
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr t;
		if (bpf_xdp_load_bytes(ctx, off, &t, sizeof(t)) != 0)
			return -1;
		p->sport = t.source;
		p->dport = t.dest;
		return 0;
	}
	return -1;
}

/* IPv4: options are skipped by their length; fragments pass. */
static __always_inline int
parse_v4(struct xdp_md *ctx, struct pkt *p, void *l3, void *end)
{
	struct iphdr *ip = l3;
	__u32 hlen;

	if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
		return -1;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return -1;
	hlen = ip->ihl * 4;
	if (bpf_ntohs(ip->tot_len) < hlen)
		return -1;
	p->src.family = p->dst.family = PF_AF_INET;
	__builtin_memcpy(p->src.bytes, &ip->saddr, 4);
	__builtin_memcpy(p->dst.bytes, &ip->daddr, 4);
	p->proto = ip->protocol;
	return parse_l4(ctx, p, sizeof(struct ethhdr) + hlen);
}

static __always_inline bool
v4_mapped(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;

	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
}

/* IPv6: hop-by-hop, destination and routing headers (with no segments
 * left) are walked; fragments, AH, ESP and anything unknown pass. */
static __always_inline int
parse_v6(struct xdp_md *ctx, struct pkt *p, void *l3, void *end)
{
	struct ipv6hdr *ip = l3;
	__u32 off = sizeof(struct ethhdr) + sizeof(*ip);
	__u8 next;

	if ((void *)(ip + 1) > end || ip->version != 6)
		return -1;
	p->src.family = p->dst.family = PF_AF_INET6;
	__builtin_memcpy(p->src.bytes, &ip->saddr, 16);
	__builtin_memcpy(p->dst.bytes, &ip->daddr, 16);
	/* The guards judge these as IPv4: leave them to the guards. */
	if (v4_mapped(p->src.bytes) || v4_mapped(p->dst.bytes))
		return -1;
	next = ip->nexthdr;
	for (int i = 0; i < MAX_EXT; i++) {
		__u8 e[8]; /* next header, length in 8 octets - 1, ... */
		if (next == IPPROTO_UDP || next == IPPROTO_TCP) {
			p->proto = next;
			return parse_l4(ctx, p, off);
		}
		if (next != IPPROTO_HOPOPTS && next != IPPROTO_DSTOPTS &&
		    next != IPPROTO_ROUTING)
			return -1;
		if (bpf_xdp_load_bytes(ctx, off, e, sizeof(e)) != 0)
			return -1;
		/* Segments left: the packet is not for this host yet. */
		if (next == IPPROTO_ROUTING && e[3] != 0)
			return -1;
		next = e[0];
		off += (e[1] + 1) * 8;
	}
	return -1;
}

/* Is the packet for one of echod's sockets (its address, or a wildcard)? */
static __always_inline bool
for_echod(const struct pkt *p)
{
	struct pf_listen k = {
	    .proto = p->proto, .family = p->dst.family, .port = p->dport};

	if (bpf_map_lookup_elem(&listeners, &k))
		return true;
	__builtin_memcpy(k.addr, p->dst.bytes, 16);
	return bpf_map_lookup_elem(&listeners, &k) != NULL;
}

static __always_inline __u8
addr_flags(const struct pf_addr *a)
{
	__u8 *f = bpf_map_lookup_elem(&addrs, a);

	return f ? *f : 0;
}

static __always_inline bool
all_zero(const __u8 *b)
{
	const __u32 *w = (const __u32 *)b;

	return (w[0] | w[1] | w[2] | w[3]) == 0;
}

static __always_inline bool
is_loopback(const struct pf_addr *a)
{
	const __u32 *w = (const __u32 *)a->bytes;

	if (a->family == PF_AF_INET)
		return a->bytes[0] == 127;
	return w[0] == 0 && w[1] == 0 && w[2] == 0 && w[3] == bpf_htonl(1);
}

static __always_inline bool
is_multicast(const struct pf_addr *a)
{
	if (a->family == PF_AF_INET)
		return (a->bytes[0] & 0xf0) == 224;
	return a->bytes[0] == 0xff;
}

/* Unspecified: 0.0.0.0/8 ("this network") or ::. */
static __always_inline bool
is_unspecified(const struct pf_addr *a)
{
	if (a->family == PF_AF_INET)
		return a->bytes[0] == 0;
	return all_zero(a->bytes);
}

static __always_inline bool
is_broadcast(const struct pf_addr *a, __u8 flags)
{
	const __u32 *w = (const __u32 *)a->bytes;

	return a->family == PF_AF_INET && (w[0] == 0xffffffff || flags);
}

static __always_inline bool
on_loopback(__u32 ifindex)
{
	for (int i = 0; i < PF_MAX_LOOPBACK; i++)
		if (cfg.loopbacks[i] != 0 && cfg.loopbacks[i] == ifindex)
			return true;
	return false;
}

/* guard_bad_source(): 240/4 holds 255.255.255.255 as well. */
static __always_inline bool
bad_source(const struct pkt *p)
{
	const struct pf_addr *s = &p->src;
	__u8 flags;

	if (is_unspecified(s) || is_multicast(s) ||
	    (s->family == PF_AF_INET && (s->bytes[0] & 0xf0) == 240))
		return true;
	flags = addr_flags(s);
	if (is_broadcast(s, flags & PF_BAD_SOURCE))
		return true;
	if (is_loopback(s) && !is_loopback(&p->dst))
		return true;
	/* The host's own address from outside is forged: the echo would go
	 * to the host itself. On a loopback interface it is the host. */
	return (flags & PF_OWN) && !on_loopback(p->ifindex);
}

/* guard_bad_dest() */
static __always_inline bool
bad_dest(const struct pkt *p)
{
	const struct pf_addr *d = &p->dst;

	return is_multicast(d) || is_unspecified(d) ||
	       is_broadcast(d, addr_flags(d) & PF_BAD_DEST);
}

/* acl_allows(): the longest matching prefix decides; no match allows. */
static __always_inline bool
denied(const struct pf_addr *a)
{
	__u8 *allow;

	if (!cfg.acl)
		return false;
	if (a->family == PF_AF_INET) {
		struct pf_lpm4 k = {.prefixlen = 32};
		__builtin_memcpy(k.addr, a->bytes, 4);
		allow = bpf_map_lookup_elem(&acl4, &k);
	} else {
		struct pf_lpm6 k = {.prefixlen = 128};
		__builtin_memcpy(k.addr, a->bytes, 16);
		allow = bpf_map_lookup_elem(&acl6, &k);
	}
	return allow != NULL && *allow == 0;
}

/* guard_rate_exempt(): in a rate-exempt prefix. */
static __always_inline bool
rate_exempt(const struct pf_addr *a)
{
	if (!cfg.exempt)
		return false;
	if (a->family == PF_AF_INET) {
		struct pf_lpm4 k = {.prefixlen = 32};
		__builtin_memcpy(k.addr, a->bytes, 4);
		return bpf_map_lookup_elem(&exempt4, &k) != NULL;
	}
	struct pf_lpm6 k = {.prefixlen = 128};
	__builtin_memcpy(k.addr, a->bytes, 16);
	return bpf_map_lookup_elem(&exempt6, &k) != NULL;
}

static __always_inline bool
port_denied(__u16 sport_be)
{
	__u16 port = bpf_ntohs(sport_be);

	return (cfg.deny_ports[port / 64] >> (port % 64)) & 1;
}

/*
 * A prefix's bucket, kept as the time its next packet is due (GCRA): over
 * the tolerance, the prefix has spent its burst. Concurrent CPUs may both
 * spend one slot; that only lets more through. A new or evicted prefix
 * starts with a whole burst.
 */
static __always_inline bool
over_bucket(void *map, const struct pf_addr *src, __u32 v4_mask,
            const volatile __u32 *v6_mask, __u64 interval, __u64 tolerance)
{
	struct pf_addr k = {.family = src->family};
	__u32 *kw = (__u32 *)k.bytes;
	const __u32 *sw = (const __u32 *)src->bytes;
	__u64 now = bpf_ktime_get_ns(), tat, *slot;

	if (src->family == PF_AF_INET) {
		kw[0] = sw[0] & v4_mask;
	} else {
		kw[0] = sw[0] & v6_mask[0];
		kw[1] = sw[1] & v6_mask[1];
		kw[2] = sw[2] & v6_mask[2];
		kw[3] = sw[3] & v6_mask[3];
	}
	slot = bpf_map_lookup_elem(map, &k);
	if (!slot) {
		tat = now + interval;
		bpf_map_update_elem(map, &k, &tat, BPF_ANY);
		return false;
	}
	tat = *slot;
	if (tat < now)
		tat = now;
	if (tat - now > tolerance)
		return true;
	*slot = tat + interval;
	return false;
}

static __always_inline bool
over_rate(const struct pf_addr *src)
{
	return cfg.rate && over_bucket(&buckets, src, cfg.v4_mask, cfg.v6_mask,
	                               cfg.interval_ns, cfg.tolerance_ns);
}

static __always_inline bool
over_aggregate(const struct pf_addr *src)
{
	return cfg.aggregate &&
	       over_bucket(&aggregates, src, cfg.agg_v4_mask, cfg.agg_v6_mask,
	                   cfg.agg_interval_ns, cfg.agg_tolerance_ns);
}

/*
 * addr.c's ipaddr_embedded_v4(): is a (IPv6) one of the forms that carry
 * an IPv4 address (NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4
 * 2002::/16, Teredo 2001::/32, IPv4-compatible ::/96 but :: and ::1)?
 * Then *v4 is that address.
 */
static __always_inline bool
embedded_v4(const struct pf_addr *a, struct pf_addr *v4)
{
	const __u8 *b = a->bytes;
	const __u32 *w = (const __u32 *)b;
	__u32 carried;

	if (w[0] == bpf_htonl(0x0064ff9b) && w[1] == 0 && w[2] == 0)
		carried = w[3];
	else if (w[0] == bpf_htonl(0x0064ff9b) && b[4] == 0 && b[5] == 1)
		carried = w[3];
	else if (b[0] == 0x20 && b[1] == 0x02)
		__builtin_memcpy(&carried, b + 2, 4);
	else if (w[0] == bpf_htonl(0x20010000))
		carried = ~w[3];
	else if (w[0] == 0 && w[1] == 0 && w[2] == 0 && bpf_ntohl(w[3]) > 1)
		carried = w[3];
	else
		return false;
	__builtin_memset(v4, 0, sizeof(*v4));
	v4->family = PF_AF_INET;
	__builtin_memcpy(v4->bytes, &carried, 4);
	return true;
}

/* How the guards see the source (guard_judged_source): p->src becomes
 * the IPv4 address it carries, if any. false: embedded-ipv4 drop. */
static __always_inline bool
judge_source(struct pkt *p, bool *embedded)
{
	struct pf_addr v4;

	*embedded = p->src.family == PF_AF_INET6 && embedded_v4(&p->src, &v4);
	if (!*embedded)
		return true;
	if (!cfg.embedded_judge)
		return false;
	p->src = v4;
	return true;
}

SEC("xdp")
int
echod_prefilter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct pkt p = {.ifindex = ctx->ingress_ifindex};
	int r;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		r = parse_v4(ctx, &p, eth + 1, end);
	else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		r = parse_v6(ctx, &p, eth + 1, end);
	else
		return XDP_PASS;
	if (r != 0 || !for_echod(&p))
		return XDP_PASS;
	if (p.proto == IPPROTO_TCP) {
		/* tcp_guard_admit: an embedded form's address is judged
		 * as if it came from no interface to no address. */
		struct pkt judged = {.src = p.src};
		bool embedded;

		if (!judge_source(&judged, &embedded) ||
		    (embedded && bad_source(&judged)))
			return verdict(PF_tcp_drop_bad_source);
		return denied(&judged.src) ? verdict(PF_tcp_drop_deny)
		                           : XDP_PASS;
	}
	/* udp.c drops an oversize datagram before any guard: leave it. */
	if (p.payload > cfg.max_payload)
		return XDP_PASS;
	if (port_denied(p.sport))
		return verdict(PF_udp_drop_port);
	bool embedded;
	if (!judge_source(&p, &embedded) || bad_source(&p))
		return verdict(PF_udp_drop_bad_source);
	if (bad_dest(&p))
		return verdict(PF_udp_drop_bad_dest);
	if (denied(&p.src))
		return verdict(PF_udp_drop_deny);
	/* The guard spends no rate on these: neither may the bucket. */
	if (rate_exempt(&p.src))
		return XDP_PASS;
	if (over_rate(&p.src))
		return verdict(PF_udp_drop_rate);
	if (over_aggregate(&p.src))
		return verdict(PF_udp_drop_aggregate_rate);
	return XDP_PASS;
}

/* No GPL-only helper is used; the string only has to be one the kernel
 * knows. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
