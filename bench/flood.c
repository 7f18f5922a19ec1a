/* bench/flood: spoofed sources, benchmark range only. */
#include "modes.h"
#include "common.h"
#include "net.h"
#include "options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static bool
in_bench_range(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

	return ss->ss_family == AF_INET &&
	       (ntohl(a->sin_addr.s_addr) & 0xfffe0000u) == 0xc6120000u;
}

struct flood_pkt {
	unsigned char pad[2];    /* so that ip is aligned */
	struct ether_header eth; /* sent only through AF_PACKET (-i) */
	struct iphdr ip;
	struct udphdr udp;
	unsigned char body[1400];
};

/* The IPv4 header checksum (RFC 1071): AF_PACKET frames get no help. */
static uint16_t
ip_checksum(const struct iphdr *ip)
{
	uint16_t w[sizeof(*ip) / 2];
	uint32_t sum = 0;

	memcpy(w, ip, sizeof(w));
	for (size_t i = 0; i < sizeof(*ip) / 2; i++)
		sum += w[i];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The flood's socket: an IP raw socket (the kernel routes each datagram
 * and fills in the IP checksum, id and length), or with -i an AF_PACKET
 * socket bound to that interface that bypasses its qdisc. */
static int
flood_socket(struct sockaddr_ll *ll)
{
	int fd, one = 1;

	if (!opt.iface) {
		fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
		if (fd < 0)
			die(EXIT_NETWORK, "raw socket (needs CAP_NET_RAW)");
		return fd;
	}
	if (!opt.have_mac)
		die(EXIT_USAGE, "-i needs -m (the target's MAC on it)");
	*ll =
	    (struct sockaddr_ll){.sll_family = AF_PACKET,
	                         .sll_protocol = htons(ETH_P_IP),
	                         .sll_ifindex = (int)if_nametoindex(opt.iface),
	                         .sll_halen = ETH_ALEN};
	if (ll->sll_ifindex == 0)
		die(EXIT_NETWORK, "-i %s", opt.iface);
	memcpy(ll->sll_addr, opt.dst_mac, ETH_ALEN);
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die(EXIT_NETWORK, "packet socket (needs CAP_NET_RAW)");
	if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one,
	               sizeof(one)) != 0)
		die(EXIT_NETWORK, "PACKET_QDISC_BYPASS");
	return fd;
}

/* This interface's own MAC, the frames' source. */
static void
iface_mac(int fd, unsigned char mac[ETH_ALEN])
{
	struct ifreq ifr = {0};

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", opt.iface);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0)
		die(EXIT_NETWORK, "SIOCGIFHWADDR %s", opt.iface);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
}

int
run_flood(void)
{
	static struct flood_pkt pkt[UDP_BATCH];
	struct mmsghdr m[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	struct sockaddr_ll ll;
	unsigned char src_mac[ETH_ALEN] = {0};
	size_t body = opt.size ? opt.size : 64;
	uint32_t first =
	    ntohl(((struct sockaddr_in *)&opt.first_source)->sin_addr.s_addr);
	struct sockaddr_storage last = opt.first_source;
	uint64_t limit = opt.count ? opt.count : 1000000, sent = 0;
	double start = now_s(), t;
	int fd;

	((struct sockaddr_in *)&last)->sin_addr.s_addr =
	    htonl(first + opt.sources - 1);
	if (!in_bench_range(&opt.target) ||
	    !in_bench_range(&opt.first_source) || !in_bench_range(&last))
		die(EXIT_USAGE, "flood: target and every source must be in "
		                "198.18.0.0/15");
	if (body > sizeof(pkt[0].body))
		die(EXIT_USAGE, "-s: at most %zu for flood",
		    sizeof(pkt[0].body));
	fd = flood_socket(&ll);
	if (opt.iface)
		iface_mac(fd, src_mac);
	while (sent < limit && (t = now_s()) - start < opt.seconds) {
		uint64_t n = limit - sent;
		if (opt.rate > 0) {
			double allowed = opt.rate * (t - start) - (double)sent;
			if (allowed < 1) {
				struct timespec ts = {0, 200000};
				nanosleep(&ts, NULL);
				continue;
			}
			if ((double)n > allowed)
				n = (uint64_t)allowed;
		}
		if (n > UDP_BATCH)
			n = UDP_BATCH;
		for (unsigned i = 0; i < n; i++) {
			uint64_t k = sent + i;
			struct flood_pkt *p = &pkt[i];
			/* The kernel fills in the checksum, id and length. */
			p->ip = (struct iphdr){
			    .version = 4,
			    .ihl = 5,
			    .ttl = 64,
			    .protocol = IPPROTO_UDP,
			    .saddr = htonl(first + (uint32_t)(k % opt.sources)),
			    .daddr = ((struct sockaddr_in *)&opt.target)
			                 ->sin_addr.s_addr,
			};
			p->udp = (struct udphdr){
			    .source = htons(
			        opt.sport ? (uint16_t)opt.sport
			                  : (uint16_t)(40000 + k % 20000)),
			    .dest =
			        ((struct sockaddr_in *)&opt.target)->sin_port,
			    .len = htons((uint16_t)(sizeof(p->udp) + body)),
			};
			memcpy(p->body, dgram_body(k), body);
			iov[i] = (struct iovec){
			    &p->ip, sizeof(p->ip) + sizeof(p->udp) + body};
			m[i] = (struct mmsghdr){
			    .msg_hdr = {.msg_name = &opt.target,
			                .msg_namelen = opt.target_len,
			                .msg_iov = &iov[i],
			                .msg_iovlen = 1}};
			if (opt.iface) {
				memcpy(p->eth.ether_dhost, opt.dst_mac,
				       ETH_ALEN);
				memcpy(p->eth.ether_shost, src_mac, ETH_ALEN);
				p->eth.ether_type = htons(ETHERTYPE_IP);
				p->ip.tot_len =
				    htons((uint16_t)(iov[i].iov_len));
				p->ip.id = htons((uint16_t)k);
				p->ip.check = ip_checksum(&p->ip);
				iov[i].iov_base = &p->eth;
				iov[i].iov_len += sizeof(p->eth);
				m[i].msg_hdr.msg_name = &ll;
				m[i].msg_hdr.msg_namelen = sizeof(ll);
			}
		}
		int r = sendmmsg(fd, m, (unsigned)n, 0);
		if (r < 0 && errno != ENOBUFS && errno != EAGAIN)
			die(EXIT_NETWORK, "flood sendmmsg");
		if (r > 0)
			sent += (uint64_t)r;
	}
	t = now_s() - start;
	printf("mode=flood sources=%u sent=%llu seconds=%.3f per_s=%.0f\n",
	       opt.sources, (unsigned long long)sent, t, (double)sent / t);
	return 0;
}
