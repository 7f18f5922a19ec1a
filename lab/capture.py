#!/usr/bin/python3
"""The lab's bounded capture: what reaches (and leaves) one interface.

Run inside the victim's namespace (ip netns exec NS capture.py ...). It
reads every frame of IFACE with a packet socket and counts the UDP and TCP
packets exchanged with the servers' networks (--peer CIDR, repeatable):
"in" is what the servers sent here, "out" what this host sent them. It
stops at EOF on stdin, SIGTERM/SIGINT, --max-seconds or --max-packets,
whichever comes first, then prints one JSON object on stdout:

  in, out       {"packets", "bytes" (IP length), "ports" {port: packets},
                 "addresses" (distinct local addresses hit)}
  bins_in, bins_out   packets per --bin seconds since --t0 (CLOCK_MONOTONIC),
                by the kernel's time of arrival
  seconds       from --t0 to the end of the capture
  other         packets on the wire not counted above (ARP, ICMP, ...)
  kernel_drops  frames the kernel dropped before this capture read them
  stopped       why it stopped

  pcap          with --pcap: {"path", "packets" written, "seen" (IP
                packets on the wire), "bound" (bytes the file can reach)}

With --pcap FILE it also keeps a bounded sample of the IP packets on the
interface (both directions, any protocol, not only the peers'), readable
by tcpdump -r and Wireshark: the first --pcap-first packets whole, then
one in --pcap-every of the rest, at most --pcap-max packets of at most
--snaplen bytes each, so the file never exceeds 24 + max * (16 + snaplen)
bytes (LINKTYPE_RAW: IP packets without their Ethernet header; nanosecond
timestamps, the kernel's time of arrival).

It prints "ready" on stderr once the socket is open.
"""

import argparse
import ctypes
import ipaddress
import json
import selectors
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
PR_SET_PDEATHSIG = 1
SO_TIMESTAMPNS = 35  # also the cmsg type (SCM_TIMESTAMPNS)


PCAP_MAGIC_NS = 0xA1B23C4D  # nanosecond timestamps
LINKTYPE_RAW = 101
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD


class Pcap:
    """A bounded sample of the IP packets seen: the first `first`, then one
    in `every` of the rest, at most `most` in all, each cut to `snaplen`."""

    def __init__(self, path, first, every, most, snaplen):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0,
                                 snaplen, LINKTYPE_RAW))
        self.path, self.first, self.every = path, first, every
        self.most, self.snaplen = most, snaplen
        self.seen = self.written = 0

    def bound(self):
        return 24 + self.most * (16 + self.snaplen)

    def add(self, frame, realtime_ns):
        self.seen += 1
        if self.written >= self.most or (
                self.seen > self.first and
                (self.seen - self.first) % self.every != 0):
            return
        data = frame[:self.snaplen]
        sec, nsec = divmod(realtime_ns, 10 ** 9)
        self.f.write(struct.pack("<IIII", sec, nsec, len(data), len(frame)))
        self.f.write(data)
        self.written += 1

    def close(self):
        self.f.close()
        return {"path": str(self.path), "packets": self.written,
                "seen": self.seen, "bound": self.bound()}


class Side:
    def __init__(self):
        self.packets = self.bytes = 0
        self.ports = {}
        self.addresses = set()

    def add(self, length, port, addr, max_addresses):
        self.packets += 1
        self.bytes += length
        self.ports[port] = self.ports.get(port, 0) + 1
        if len(self.addresses) < max_addresses:
            self.addresses.add(addr)

    def summary(self):
        return {"packets": self.packets, "bytes": self.bytes,
                "ports": {str(k): v for k, v in sorted(self.ports.items())},
                "addresses": len(self.addresses)}


def parse_ip(frame):
    """(proto, src, dst, sport, dport, length) of an IPv4/IPv6 packet with
    UDP or TCP, else None."""
    if len(frame) < 20:
        return None
    version = frame[0] >> 4
    if version == 4:
        ihl = (frame[0] & 15) * 4
        proto, length = frame[9], struct.unpack_from("!H", frame, 2)[0]
        src, dst = frame[12:16], frame[16:20]
        off = ihl
    elif version == 6 and len(frame) >= 40:
        proto = frame[6]
        length = 40 + struct.unpack_from("!H", frame, 4)[0]
        src, dst = frame[8:24], frame[24:40]
        off = 40
    else:
        return None
    if proto not in (socket.IPPROTO_UDP, socket.IPPROTO_TCP) or \
            len(frame) < off + 4:
        return None
    sport, dport = struct.unpack_from("!HH", frame, off)
    return proto, src, dst, sport, dport, length


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--peer", action="append", required=True)
    ap.add_argument("--t0", type=float, required=True)
    ap.add_argument("--bin", type=float, default=0.05)
    ap.add_argument("--max-seconds", type=float, default=30.0)
    ap.add_argument("--max-packets", type=int, default=2_000_000)
    ap.add_argument("--pcap", help="also keep a bounded sample here")
    ap.add_argument("--pcap-first", type=int, default=500)
    ap.add_argument("--pcap-every", type=int, default=100)
    ap.add_argument("--pcap-max", type=int, default=1000)
    ap.add_argument("--snaplen", type=int, default=192)
    args = ap.parse_args()
    pcap = Pcap(args.pcap, args.pcap_first, args.pcap_every, args.pcap_max,
                args.snaplen) if args.pcap else None

    # Die with the lab driver, whatever happens to it.
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    peers = [ipaddress.ip_network(p) for p in args.peer]
    peer4 = [(int(n.network_address), int(n.netmask)) for n in peers
             if n.version == 4]
    peer6 = [(int(n.network_address), int(n.netmask)) for n in peers
             if n.version == 6]

    def is_peer(raw):
        v = int.from_bytes(raw, "big")
        for net, mask in (peer4 if len(raw) == 4 else peer6):
            if v & mask == net:
                return True
        return False

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM,
                         socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE
    sock.bind((args.iface, ETH_P_ALL))
    # Bin by the kernel's arrival time, not by when this process got to the
    # frame: under load the capture may read a loop's packets late.
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    realtime_minus_monotonic = time.time() - time.monotonic()
    sock.setblocking(False)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append("signal"))
    signal.signal(signal.SIGINT, lambda *_: stop.append("signal"))
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    sel.register(sys.stdin, selectors.EVENT_READ)
    print("ready", file=sys.stderr, flush=True)

    sides = {"in": Side(), "out": Side()}
    bins = {"in": [], "out": []}
    other = 0
    total = 0
    deadline = time.monotonic() + args.max_seconds
    max_addresses = args.max_packets
    recv = sock.recvmsg
    cmsg_space = socket.CMSG_SPACE(16)
    while not stop:
        now = time.monotonic()
        if now >= deadline:
            stop.append("max-seconds")
            break
        for key, _ in sel.select(min(0.2, deadline - now)):
            if key.fileobj is sys.stdin:
                if not sys.stdin.buffer.read1(4096):
                    stop.append("stdin closed")
                continue
            while total < args.max_packets:
                try:
                    frame, anc, _, addr = recv(65536, cmsg_space)
                except BlockingIOError:
                    break
                total += 1
                stamp = None
                for level, kind, data in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", data[:16])
                        stamp = sec * 10 ** 9 + nsec
                if pcap is not None and addr[1] in (ETH_P_IP, ETH_P_IPV6):
                    pcap.add(frame, stamp if stamp is not None
                             else time.time_ns())
                p = parse_ip(frame)
                if p is None:
                    other += 1
                    continue
                proto, src, dst, sport, dport, length = p
                if addr[2] == PACKET_OUTGOING and is_peer(dst):
                    d, port, local = "out", sport, src
                elif addr[2] != PACKET_OUTGOING and is_peer(src):
                    d, port, local = "in", dport, dst
                else:
                    other += 1
                    continue
                sides[d].add(length, port, local, max_addresses)
                t = time.monotonic() if stamp is None else \
                    stamp / 1e9 - realtime_minus_monotonic
                b = int((t - args.t0) / args.bin)
                if b >= 0:
                    row = bins[d]
                    if b >= len(row):
                        row.extend([0] * (b + 1 - len(row)))
                    row[b] += 1
            if total >= args.max_packets:
                stop.append("max-packets")
    stats = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    _, drops = struct.unpack("II", stats)
    json.dump({"in": sides["in"].summary(), "out": sides["out"].summary(),
               "bins_in": bins["in"], "bins_out": bins["out"],
               "bin": args.bin, "seconds": round(time.monotonic() - args.t0, 3),
               "other": other, "kernel_drops": drops,
               "stopped": stop[0],
               "pcap": pcap.close() if pcap is not None else None},
              sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
