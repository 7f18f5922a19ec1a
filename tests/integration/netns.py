"""Network namespaces, veth pairs and raw spoofed UDP for echod's abuse tests.

Everything here runs as root and touches only namespaces it creates itself
(names start with "echod-t-<pid>-" so a run never meets another run's), and
only addresses from the documentation/benchmark ranges 198.18.0.0/15 and
2001:db8::/32. Sockets are opened *inside* a namespace by switching the
calling thread into it with setns(2) for the socket() call only: a socket
stays in the namespace it was created in, so the test then uses it from
the host namespace like any other socket.

Cleanup is by name (ip netns del) and never by pattern; a namespace is only
really gone once the last process and socket in it are gone, so the caller
kills its processes (by pid) and closes its sockets first.
"""

import contextlib
import ctypes
import ipaddress
import itertools
import os
import socket
import struct
import subprocess
import threading
import time

CLONE_NEWNET = 0x40000000
ALLOWED_NETS = [ipaddress.ip_network("198.18.0.0/15"),
                ipaddress.ip_network("2001:db8::/32")]

_libc = ctypes.CDLL(None, use_errno=True)
_setns_lock = threading.Lock()
_counter = itertools.count()


class NetnsUnavailable(Exception):
    """Namespaces cannot be used here (not root, no CAP_SYS_ADMIN, ...)."""


def check_address(addr):
    """Refuse any address outside the two ranges these tests may use."""
    a = ipaddress.ip_address(addr.split("%")[0])
    if not any(a in n for n in ALLOWED_NETS):
        raise ValueError(f"{addr} is outside 198.18.0.0/15 and 2001:db8::/32")
    return addr


def unique_name(tag):
    return f"echod-t-{os.getpid()}-{next(_counter)}-{tag}"


def _run(argv, check=True):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): "
                           f"{r.stderr.strip()}")
    return r


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


class Netns:
    """One named network namespace (created in __init__, gone after delete)."""

    def __init__(self, tag, name=None):
        """`name` replaces the generated one (the lab names its own)."""
        if os.geteuid() != 0:
            raise NetnsUnavailable("not root: network namespaces need "
                                   "CAP_SYS_ADMIN")
        self.name = name or unique_name(tag)
        r = _run(["ip", "netns", "add", self.name], check=False)
        if r.returncode != 0:
            raise NetnsUnavailable(f"ip netns add failed: {r.stderr.strip()}")
        self.deleted = False
        try:
            self.ip("link", "set", "lo", "up")
        except Exception:
            self.delete()
            raise

    def __repr__(self):
        return f"Netns({self.name})"

    def ip(self, *args, check=True):
        return _run(["ip", "-n", self.name] + [str(a) for a in args], check)

    def exec_argv(self, argv):
        """argv that runs `argv` inside this namespace (ip netns exec does
        setns then execvp: the pid is the program's own)."""
        return ["ip", "netns", "exec", self.name] + [str(a) for a in argv]

    @contextlib.contextmanager
    def entered(self):
        """The calling thread in this namespace for the with-block. Other
        threads are unaffected; only one thread switches at a time."""
        with _setns_lock:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
            try:
                _setns(target)
                try:
                    yield
                finally:
                    _setns(home)
            finally:
                os.close(target)
                os.close(home)

    def socket(self, family=socket.AF_INET, kind=socket.SOCK_DGRAM, proto=0):
        with self.entered():
            return socket.socket(family, kind, proto)

    def sysctl(self, key, value):
        """Write net.* sysctl `key` (dotted) in this namespace."""
        path = "/proc/sys/" + key.replace(".", "/")
        with self.entered():
            # /proc/thread-self/... would do too: /proc/sys/net follows the
            # opener's namespace at open time.
            with open(path, "w") as f:
                f.write(str(value))

    def read_sysctl(self, key):
        with self.entered():
            with open("/proc/sys/" + key.replace(".", "/")) as f:
                return f.read().strip()

    def snmp(self, proto="Udp"):
        """/proc/net/snmp's counters of `proto` in this namespace."""
        with self.entered():
            with open("/proc/thread-self/net/snmp") as f:
                lines = [l.split() for l in f if l.startswith(proto + ":")]
        head, vals = lines[0], lines[1]
        return {k: int(v) for k, v in zip(head[1:], vals[1:])}

    def delete(self):
        if not self.deleted:
            _run(["ip", "netns", "del", self.name], check=False)
            self.deleted = True


class Pair:
    """Two namespaces joined by a veth pair: `srv` (interface vsrv) and
    `cli` (interface vcli), both ends up, with the addresses given.

    srv_addrs/cli_addrs: "ADDR/LEN" strings; IPv4 ones get `brd +` (a
    directed broadcast, as DHCP or ifupdown configure it), IPv6 `nodad`.
    In srv, 198.18.0.0/15 is routed via cli's first IPv4 address so that
    spoofed sources anywhere in it are routable, and reverse path filtering
    is off so that srv accepts them."""

    SRV_IF = "vsrv"
    CLI_IF = "vcli"

    def __init__(self, srv_addrs, cli_addrs, brd=True, route_via=None):
        for a in list(srv_addrs) + list(cli_addrs):
            check_address(a.split("/")[0])
        self.srv = Netns("srv")
        try:
            self.cli = Netns("cli")
        except Exception:
            self.srv.delete()
            raise
        try:
            self._setup(srv_addrs, cli_addrs, brd, route_via)
        except Exception:
            self.delete()
            raise

    def _setup(self, srv_addrs, cli_addrs, brd, route_via):
        self.srv.ip("link", "add", self.SRV_IF, "type", "veth", "peer",
                    "name", self.CLI_IF, "netns", self.cli.name)
        for ns, ifname, addrs in ((self.srv, self.SRV_IF, srv_addrs),
                                  (self.cli, self.CLI_IF, cli_addrs)):
            for a in addrs:
                if ":" in a:
                    ns.ip("addr", "add", a, "dev", ifname, "nodad")
                elif brd:
                    ns.ip("addr", "add", a, "brd", "+", "dev", ifname)
                else:
                    ns.ip("addr", "add", a, "dev", ifname)
            ns.ip("link", "set", ifname, "up")
            for conf in ("all", "default", ifname):
                ns.sysctl(f"net.ipv4.conf.{conf}.rp_filter", 0)
        v4_cli = [a.split("/")[0] for a in cli_addrs if ":" not in a]
        via = route_via or (v4_cli[0] if v4_cli else None)
        if via:
            self.srv.ip("route", "add", "198.18.0.0/15", "via", via,
                        "dev", self.SRV_IF)
        v4_srv = [a.split("/")[0] for a in srv_addrs if ":" not in a]
        if v4_srv:
            self.cli.ip("route", "add", "198.18.0.0/15", "via", v4_srv[0],
                        "dev", self.CLI_IF)
        v6_srv = [a.split("/")[0] for a in srv_addrs if ":" in a]
        if v6_srv:
            self.cli.ip("-6", "route", "add", "2001:db8::/32", "via",
                        v6_srv[0], "dev", self.CLI_IF)

    def ifindex(self, ns, ifname):
        with ns.entered():
            return socket.if_nametoindex(ifname)

    def delete(self):
        for ns in (getattr(self, "cli", None), self.srv):
            if ns is not None:
                ns.delete()


# ---------------------------------------------------------------- packets


def _csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4_udp(src, dst, sport, dport, payload, ident=0, ttl=64,
             checksum=False, ip_checksum=True):
    """An IPv4 header (checksummed: a packet socket sends it as is) and a
    UDP datagram; the UDP checksum is 0 (none) unless asked for."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    ulen = 8 + len(payload)
    ucsum = 0
    if checksum:
        pseudo = s + d + struct.pack("!BBH", 0, socket.IPPROTO_UDP, ulen)
        ucsum = _csum(pseudo + struct.pack("!HHHH", sport, dport, ulen, 0)
                      + payload) or 0xFFFF
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, ident & 0xFFFF,
                     0, ttl, socket.IPPROTO_UDP, 0, s, d)
    if ip_checksum:  # a raw IP_HDRINCL socket computes it anyway
        ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return ip + struct.pack("!HHHH", sport, dport, ulen, ucsum) + payload


def ipv6_udp(src, dst, sport, dport, payload, hop=64):
    """An IPv6 header and a UDP datagram (checksum mandatory in IPv6)."""
    s = socket.inet_pton(socket.AF_INET6, src)
    d = socket.inet_pton(socket.AF_INET6, dst)
    ulen = 8 + len(payload)
    pseudo = s + d + struct.pack("!I3xB", ulen, socket.IPPROTO_UDP)
    ucsum = _csum(pseudo + struct.pack("!HHHH", sport, dport, ulen, 0)
                  + payload) or 0xFFFF
    ip = struct.pack("!IHBB16s16s", 6 << 28, ulen, socket.IPPROTO_UDP, hop,
                     s, d)
    return ip + struct.pack("!HHHH", sport, dport, ulen, ucsum) + payload


class RawSender:
    """A raw socket in `ns` that sends hand-made IP packets (any source)."""

    def __init__(self, ns, family=socket.AF_INET):
        self.family = family
        self.sock = ns.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
        if family == socket.AF_INET:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)

    def send(self, packet, dst):
        addr = (dst, 0) if self.family == socket.AF_INET else (dst, 0, 0, 0)
        return self.sock.sendto(packet, addr)

    def flood(self, packets, dst, pps=None, max_seconds=5.0):
        """Send each packet once, at most `pps` a second (None: as fast as
        possible), stopping at `max_seconds` whatever is left. Returns
        (sent, elapsed seconds). ENOBUFS is retried after a short pause."""
        addr = (dst, 0) if self.family == socket.AF_INET else (dst, 0, 0, 0)
        send = self.sock.sendto
        t0 = time.monotonic()
        deadline = t0 + max_seconds
        sent = 0
        chunk = 64
        n = len(packets)
        while sent < n:
            now = time.monotonic()
            if now >= deadline:
                break
            if pps is not None:
                due = t0 + sent / pps
                if due > now:
                    time.sleep(min(due - now, deadline - now))
                    continue
            for p in packets[sent:sent + chunk]:
                try:
                    send(p, addr)
                except OSError as e:
                    if e.errno != 105:  # ENOBUFS: queue full, back off
                        raise
                    time.sleep(0.001)
                    break
                sent += 1
        return sent, time.monotonic() - t0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
BROADCAST_MAC = b"\xff" * 6


class PacketSender:
    """A packet socket on `ifname` in `ns`: sends IP packets exactly as
    built (a raw IP socket would replace a 0.0.0.0 source with its own
    address), framed by the kernel for the given destination MAC."""

    def __init__(self, ns, ifname):
        self.ifname = ifname
        self.sock = ns.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)

    def send(self, packet, dst_mac, ethertype=ETH_P_IP):
        return self.sock.sendto(packet, (self.ifname, ethertype, 0, 0,
                                         dst_mac))

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def mac_of(ns, ifname):
    """The hardware address of `ifname` in `ns`, as 6 bytes."""
    import json
    info = json.loads(ns.ip("-j", "link", "show", "dev", ifname).stdout)
    return bytes.fromhex(info[0]["address"].replace(":", ""))


def drain(socks, timeout, until=None):
    """Receive from every socket in `socks` until `timeout` seconds pass
    with nothing arriving (or `until(count)` is true); [(sock, data, addr)]."""
    import selectors
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    got = []
    try:
        while True:
            if until is not None and until(len(got)):
                break
            ready = sel.select(timeout)
            if not ready:
                break
            for key, _ in ready:
                while True:
                    try:
                        data, addr = key.fileobj.recvfrom(65536)
                    except BlockingIOError:
                        break
                    got.append((key.fileobj, data, addr))
    finally:
        sel.close()
    return got
