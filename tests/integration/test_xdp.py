"""The XDP prefilter (xdp-prefilter), end to end, over a veth pair between
two namespaces this test creates (198.18.0.0/15 and 2001:db8::/32 only).

What it drops, echod's socket never sees: each stateless reason is sent,
the program's counter (stage=xdp, folded into SIGUSR1's line) must equal
what was sent, and udp_received and the kernel's own UDP counters must not
move. What it passes is echoed byte for byte. The same packet mix gets the
same echoes with and without it. It is gone from the interface when echod
exits, however it exits. Failing to load or attach is a refusal (exit 71,
naming the step) unless the policy allows the downgrade.

Needs root (namespaces, raw sockets, XDP); skipped with the reason otherwise.
"""

import collections
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess

import pytest

import netns
from conftest import fd_targets
from conftest import (ECHOD_BIN, EXIT_OSERR, Echod, parse_logfmt, recv_exact,
                      run_echod, wait_until)
from test_abuse import (CLI4, CLI6, EPHEMERAL, PORT, SRV4, SRV6, SRV_BCAST,
                        expect_echo, net, nsd, socks, udp_in)

DENIED4, DENIED6 = "198.18.64.2", "2001:db8:64::2"
DENY = "deny 198.18.64.0/24 2001:db8:64::/48\n"
PREFILTER = "xdp-prefilter vsrv\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: network namespaces, "
                                       "raw sockets, XDP")

_fixtures = (net, nsd, socks)  # imported for pytest, used by name


# ---------------------------------------------------------------- helpers


def xdp_counts(c):
    return {k: v for k, v in c.items() if k.startswith("xdp_") and v}


def socket_drops(c):
    return {k: v for k, v in c.items()
            if (k.startswith("udp_drop_") or k.startswith("tcp_refused")
                or k.endswith("would_drop")) and not k.startswith("xdp_")
            and v}


def attached(ns, ifname=netns.Pair.SRV_IF):
    """The XDP program id on ifname (any mode), or None."""
    info = json.loads(ns.ip("-j", "-d", "link", "show", "dev", ifname).stdout)
    xdp = info[0].get("xdp")
    if not xdp:
        return None
    return xdp.get("prog", {}).get("id") or xdp.get("attached", [{}])[0].get(
        "prog", {}).get("id") or True


def bpf_fds(pid):
    """Kinds of the bpf objects pid holds: ["bpf_link", "bpf-map", ...]."""
    return sorted(target.split(":", 1)[1].strip("[]")
                  for target in fd_targets(pid).values()
                  if target.startswith("anon_inode:bpf") or "bpf" in target)


def udp_in_datagrams(ns):
    """Datagrams the kernel delivered to UDP sockets in ns: (v4, v6)."""
    v4 = ns.snmp()["InDatagrams"]
    with ns.entered():
        with open("/proc/thread-self/net/snmp6") as f:
            v6 = dict(l.split() for l in f if l.strip())["Udp6InDatagrams"]
    return v4, int(v6)


def start_raw(p, policy, wait=True, wrap=()):
    """echod in p.srv with `policy`, possibly under a wrapper (setpriv);
    not waited for unless wait. The caller kills it (kill_all)."""
    path = f"/tmp/echod-xdp-{os.getpid()}-{random.randrange(1 << 30)}.conf"
    with open(path, "w") as f:
        f.write("log-level info\n" + policy)
    argv = list(wrap) + [ECHOD_BIN, "-c", path, "-l", "0.0.0.0", "-l",
                         "[::]", "-p", PORT, "-w", 1]
    d = Echod(p.srv.exec_argv(argv), PORT, path)
    if wait:
        d.wait_ready()
    return d


def refusal(d):
    rc = d.proc.wait(10)
    d.kill_all()
    os.unlink(d.policy_path)
    lines = [parse_logfmt(l) for l in d.log_lines()]
    failed = [f for f in lines if f.get("event") == "hardening_failed"]
    return rc, failed[0] if failed else {}, d.log_text()


# ---------------------------------------------------------------- 1. reasons

DENIED_PORTS = [7, 19, 53, 123, 1900, 11211, 27015]
BAD_SOURCES = [("0.0.0.0", "255.255.255.255"), ("224.0.0.9", SRV4),
               ("255.255.255.255", SRV4), (SRV_BCAST, SRV4),
               ("127.0.0.1", SRV4), ("240.0.0.1", SRV4), ("::", SRV6),
               ("ff02::1", SRV6), ("::1", SRV6),
               (SRV4, SRV4), (SRV6, SRV6)]  # echod's own, from outside


@pytest.mark.asan
def test_each_stateless_reason_dropped_before_the_socket(net, nsd, socks):
    p = net(cli=(CLI4 + "/24", CLI6 + "/64", DENIED4 + "/32",
                 DENIED6 + "/128"))
    d = nsd(p.srv, PREFILTER + DENY, listen=("0.0.0.0", "[::]"))
    att = parse_logfmt(d.wait_event("xdp_attached"))
    assert att["iface"] == "vsrv" and att["mode"] in ("native", "generic")
    c0, delivered0 = d.counters(), udp_in_datagrams(p.srv)
    assert xdp_counts(c0) == {}

    # port: every denied port, both families
    for host, dst in ((CLI4, (SRV4, PORT)), (CLI6, (SRV6, PORT))):
        for port in DENIED_PORTS:
            udp_in(p.cli, socks, host, port).sendto(b"from %d" % port, dst)
    # bad_source: forged on the wire, martians for the kernel included
    srv_mac = netns.mac_of(p.srv, p.SRV_IF)
    pkt = netns.PacketSender(p.cli, p.CLI_IF)
    socks.append(pkt)
    for i, (src, dst) in enumerate(BAD_SOURCES):
        if ":" in src:
            pkt.send(netns.ipv6_udp(src, dst, EPHEMERAL, PORT, b"bad %d" % i),
                     srv_mac, netns.ETH_P_IPV6)
        else:
            mac = netns.BROADCAST_MAC if dst.endswith("255") else srv_mac
            pkt.send(netns.ipv4_udp(src, dst, EPHEMERAL, PORT, b"bad %d" % i),
                     mac)
    # bad_dest: broadcast and multicast, both families
    s4 = p.cli.socket(socket.AF_INET, socket.SOCK_DGRAM)
    socks.append(s4)
    s4.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s4.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                  p.CLI_IF.encode())
    s4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                  socket.inet_aton(CLI4))
    s4.bind((CLI4, EPHEMERAL))
    for dst in (SRV_BCAST, "255.255.255.255", "224.0.0.1"):
        s4.sendto(b"to many", (dst, PORT))
    s6 = udp_in(p.cli, socks, CLI6, EPHEMERAL)
    ifindex = p.ifindex(p.cli, p.CLI_IF)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    s6.sendto(b"to all nodes", ("ff02::1", PORT, 0, ifindex))
    # deny: UDP from both families, and a TCP handshake that never starts
    for host, dst in ((DENIED4, (SRV4, PORT)), (DENIED6, (SRV6, PORT))):
        s = udp_in(p.cli, socks, host, EPHEMERAL)
        for i in range(3):
            s.sendto(b"denied %d" % i, dst)
    t = p.cli.socket(socket.AF_INET, socket.SOCK_STREAM)
    socks.append(t)
    t.bind((DENIED4, 0))
    t.settimeout(0.3)
    with pytest.raises(OSError):
        t.connect((SRV4, PORT))

    # The markers are echoed, so everything sent before them was judged.
    expect_echo(s4, b"marker v4", (SRV4, PORT))
    expect_echo(s6, b"marker v6", (SRV6, PORT))
    c = d.counters_when(lambda c: c["udp_echoed"] >= 2)
    delivered = udp_in_datagrams(p.srv)
    got = xdp_counts(c)
    assert got.pop("xdp_tcp_drop_deny", 0) >= 1  # the SYN, maybe resent
    assert got == {"xdp_udp_drop_port": 2 * len(DENIED_PORTS),
                   "xdp_udp_drop_bad_source": len(BAD_SOURCES),
                   "xdp_udp_drop_bad_dest": 4,
                   "xdp_udp_drop_deny": 6}, c
    # The socket saw only the markers; the kernel delivered nothing else.
    assert c["udp_received"] == 2 and c["udp_echoed"] == 2
    assert c["tcp_accepted"] == 0
    assert socket_drops(c) == {}
    assert (delivered[0] - delivered0[0], delivered[1] - delivered0[1]) == \
        (1, 1)


def test_bench_flood_from_a_denied_port_is_counted_exactly(net, nsd):
    """make bench's flood (echo-bench flood -P 19): every datagram is one
    xdp_udp_drop_port, none reaches the socket; a metrics scrape (in srv's
    namespace) shows the same count."""
    bench = os.path.join(os.path.dirname(ECHOD_BIN), "echo-bench")
    p = net()
    d = nsd(p.srv, PREFILTER + "metrics 127.0.0.1:9107\n", listen=(SRV4,))
    d.wait_event("xdp_attached")
    r = subprocess.run(p.cli.exec_argv(
        [bench, "flood", "-S", 1000, "-F", "198.18.4.0", "-n", 500, "-d", 5,
         "-P", 19, SRV4, PORT]), capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert parse_logfmt(r.stdout)["sent"] == "500"
    # The scrape first: it must see the program's count by itself.
    line = 'echod_xdp_dropped_total{proto="udp",reason="source_port"} 500'

    def scraped():
        r = subprocess.run(p.srv.exec_argv(
            ["curl", "-sS", "--max-time", "5",
             "http://127.0.0.1:9107/metrics"]),
            capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        return line in r.stdout.splitlines()

    wait_until(scraped, 3.0, interval=0.1, what=line)
    c = d.counters()
    assert xdp_counts(c) == {"xdp_udp_drop_port": 500}
    assert c["udp_received"] == 0


# ---------------------------------------------------------------- 2. legit


def test_legitimate_traffic_untouched_byte_for_byte(net, nsd, socks):
    """In generic mode (the native one is test 1's): the kernel's own XDP
    hook, after the socket buffer is built."""
    p = net()
    d = nsd(p.srv, "xdp-prefilter vsrv mode generic\n" + DENY,
            listen=("0.0.0.0", "[::]"))
    assert parse_logfmt(d.wait_event("xdp_attached"))["mode"] == "generic"
    link = json.loads(p.srv.ip("-j", "-d", "link", "show", "dev",
                               p.SRV_IF).stdout)[0]
    assert link["xdp"]["mode"] == 2, link["xdp"]  # XDP_ATTACHED_SKB
    rng = random.Random(14)
    sizes = [1, 7, 100, 1400, 1472, 4000, 9000]  # the last two: fragments
    n = 0
    for host, dst in ((CLI4, (SRV4, PORT)), (CLI6, (SRV6, PORT))):
        s = udp_in(p.cli, socks, host, EPHEMERAL)
        for size in sizes:
            expect_echo(s, rng.randbytes(size), dst)
            n += 1
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        t = p.cli.socket(fam, socket.SOCK_STREAM)
        socks.append(t)
        t.settimeout(5)
        t.connect(dst)
        data = rng.randbytes(200_000)
        t.sendall(data)
        assert recv_exact(t, len(data)) == data
        t.close()
    c = d.counters_when(lambda c: c["udp_echoed"] >= n)
    assert c["udp_echoed"] == n and c["tcp_accepted"] == 2
    assert xdp_counts(c) == {}
    assert socket_drops(c) == {}


# ---------------------------------------------------------------- 3. same echoes


def _mix(rng):
    """(ethertype, dst MAC kind, packet, payload) for every kind of datagram
    the guards judge, each payload unique; no rate limit is reached."""
    out = []

    def add(src, dst, sport, payload, bcast=False):
        if ":" in src:
            out.append((netns.ETH_P_IPV6, bcast,
                        netns.ipv6_udp(src, dst, sport, PORT, payload)))
        else:
            out.append((netns.ETH_P_IP, bcast,
                        netns.ipv4_udp(src, dst, sport, PORT, payload)))

    for i in range(20):
        add(f"198.18.{2 + i % 5}.{10 + i}", SRV4, EPHEMERAL + i, b"ok4 %d" % i)
        add(f"2001:db8:{2 + i % 5}::{10 + i:x}", SRV6, EPHEMERAL + i,
            b"ok6 %d" % i)
    for i, port in enumerate(DENIED_PORTS):
        add(f"198.18.7.{i + 1}", SRV4, port, b"port4 %d" % i)
        add(f"2001:db8:7::{i + 1:x}", SRV6, port, b"port6 %d" % i)
    for i in range(5):
        add(SRV_BCAST, SRV4, EPHEMERAL + i, b"bcast-src %d" % i)
        add(f"198.18.8.{i + 1}", SRV_BCAST, EPHEMERAL, b"bcast-dst %d" % i,
            bcast=True)
        add(f"198.18.64.{i + 1}", SRV4, EPHEMERAL, b"denied4 %d" % i)
        add(f"2001:db8:64::{i + 1:x}", SRV6, EPHEMERAL, b"denied6 %d" % i)
        add(SRV4, SRV4, EPHEMERAL + i, b"own-src %d" % i)
    # a loop: the same payload from the same port, again and again
    for i in range(7):
        add("198.18.9.9", SRV4, 40999, b"loop")
    rng.shuffle(out)
    return out


def _echoes(p, policy, mix):
    """Send the mix to a fresh echod; the echoes seen on the wire, as a
    Counter of (destination, port, payload), and echod's counters."""
    d = start_raw(p, policy)
    srv_mac = netns.mac_of(p.srv, p.SRV_IF)
    sniff = p.cli.socket(socket.AF_PACKET, socket.SOCK_DGRAM,
                         socket.htons(0x0003))
    sniff.bind((p.CLI_IF, 0))
    sniff.settimeout(0.2)
    marker = p.cli.socket(socket.AF_INET, socket.SOCK_DGRAM)
    marker.bind((CLI4, EPHEMERAL + 999))
    try:
        with netns.PacketSender(p.cli, p.CLI_IF) as pkt:
            for ethertype, bcast, packet in mix:
                pkt.send(packet, netns.BROADCAST_MAC if bcast else srv_mac,
                         ethertype)
        expect_echo(marker, b"marker", (SRV4, PORT))
        seen = collections.Counter()
        while True:
            try:
                frame, addr = sniff.recvfrom(70000)
            except socket.timeout:
                break
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            seen.update(_udp_from_port(frame, addr[1]))
        del seen[(CLI4, EPHEMERAL + 999, b"marker")]
        c = d.counters()
    finally:
        sniff.close()
        marker.close()
        d.kill_all()
        os.unlink(d.policy_path)
    return seen, c


def _udp_from_port(frame, ethertype):
    if ethertype == netns.ETH_P_IP:
        ihl = (frame[0] & 15) * 4
        if frame[9] != 17:
                return []
        dst, udp = socket.inet_ntoa(frame[16:20]), frame[ihl:]
    elif ethertype == netns.ETH_P_IPV6:
        if frame[6] != 17:
            return []
        dst, udp = socket.inet_ntop(socket.AF_INET6, frame[24:40]), frame[40:]
    else:
        return []
    sport, dport = struct.unpack("!HH", udp[:4])
    return [(dst, dport, bytes(udp[8:]))] if sport == PORT else []


def test_same_echoes_with_and_without_the_prefilter(net):
    p = net()
    # Forged 198.18.0.255 sources must reach the socket path too, and
    # echoes to 2001:db8:N:: go back through cli.
    for conf in ("all", p.SRV_IF):
        p.srv.sysctl(f"net.ipv4.conf.{conf}.route_localnet", 1)
        p.srv.sysctl(f"net.ipv4.conf.{conf}.accept_local", 1)
    p.srv.ip("-6", "route", "add", "2001:db8::/32", "via", CLI6, "dev",
             p.SRV_IF)
    mix = _mix(random.Random(862))
    without, c0 = _echoes(p, DENY, mix)
    with_, c1 = _echoes(p, PREFILTER + DENY, mix)
    print(f"echoes: {sum(without.values())} without, "
          f"{sum(with_.values())} with; xdp "
          f"{xdp_counts(c1)}; socket without {socket_drops(c0)}, with "
          f"{socket_drops(c1)}")
    # The good ones, and the loop's payload until the loop guard stops it.
    assert sum(without.values()) == 40 + 4, without
    assert with_ == without
    # Every datagram is dropped for the same reason at one stage or other.
    for reason in ("port", "bad_source", "bad_dest", "deny", "loop"):
        assert (c1.get(f"xdp_udp_drop_{reason}", 0) + c1[f"udp_drop_{reason}"]
                == c0[f"udp_drop_{reason}"]), reason
    assert c1["xdp_udp_drop_port"] == 2 * len(DENIED_PORTS)
    assert c1["udp_drop_port"] == 0 and c1["udp_drop_deny"] == 0
    assert c1["udp_received"] < c0["udp_received"]


# ---------------------------------------------------------------- 4. exit


def test_detached_when_echod_exits_even_by_sigkill(net, nsd):
    p = net()
    d = nsd(p.srv, PREFILTER, listen=(SRV4,), workers=2)
    d.wait_event("xdp_attached")
    assert attached(p.srv)
    # Only the supervisor holds the link; no program or map fd anywhere,
    # and the counters are a read-only shared mapping.
    assert bpf_fds(d.pid) == ["bpf_link"]
    for w in d.workers():
        assert bpf_fds(w) == []
    with open(f"/proc/{d.pid}/maps") as f:
        maps = [l.split() for l in f if "bpf-map" in l]
    assert [m[1] for m in maps] == ["r--s"], maps
    # A link cannot be replaced or removed behind echod's back by netlink.
    prog = attached(p.srv)
    assert p.srv.ip("link", "set", "dev", p.SRV_IF, "xdp", "off",
                    check=False).returncode != 0
    for mode in ("xdpgeneric", "xdpdrv"):
        p.srv.ip("link", "set", "dev", p.SRV_IF, mode, "off", check=False)
        assert attached(p.srv) == prog
    assert d.stop() == 0
    wait_until(lambda: not attached(p.srv), 2.0, what="program detached")

    d = nsd(p.srv, PREFILTER, listen=(SRV4,), workers=2)
    d.wait_event("xdp_attached")
    assert attached(p.srv)
    os.kill(d.pid, signal.SIGKILL)
    d.proc.wait(5)
    # Nothing pinned; the workers follow their supervisor (PDEATHSIG), and
    # held no link anyway.
    wait_until(lambda: not attached(p.srv), 3.0, what="program detached")


# ---------------------------------------------------------------- 5. refusals


def test_refusals_name_the_step(net):
    p = net()
    rc, f, log = refusal(start_raw(p, "xdp-prefilter nosuch0\n", wait=False))
    assert rc == EXIT_OSERR, log
    assert f["step"] == "xdp_attach" and "no interface 'nosuch0'" in f["msg"]
    # lo has no native (driver) XDP; auto falls back to generic there.
    rc, f, log = refusal(start_raw(p, "xdp-prefilter vsrv lo mode native\n",
                                   wait=False))
    assert rc == EXIT_OSERR, log
    assert f["step"] == "xdp_attach" and "lo has no native" in f["msg"], log
    assert not attached(p.srv)  # vsrv, attached first, went too
    d = start_raw(p, "xdp-prefilter lo mode auto\n")
    try:
        att = parse_logfmt(d.wait_event("xdp_attached"))
        assert (att["iface"], att["mode"]) == ("lo", "generic"), att
    finally:
        d.kill_all()
        os.unlink(d.policy_path)
    # Without CAP_BPF (nor CAP_SYS_ADMIN, which implies it) the kernel
    # refuses the program: the step and the missing capability are named.
    nocap = ("setpriv", "--bounding-set=-bpf,-sys_admin,-perfmon",
             "--inh-caps=-all")
    rc, f, log = refusal(start_raw(p, PREFILTER, wait=False, wrap=nocap))
    assert rc == EXIT_OSERR, log
    assert f["step"] == "xdp_load" and "CAP_BPF" in f["msg"], log
    assert not attached(p.srv)


def test_check_only_names_a_missing_interface(tmp_path):
    """-t checks that the interfaces exist (unless downgrading is allowed);
    loading and attaching are left to the real start."""
    for text, rc in (("xdp-prefilter lo nosuch0\n", EXIT_OSERR),
                     ("xdp-prefilter lo\n", 0),
                     ("xdp-prefilter nosuch0\nallow-downgrade xdp-prefilter\n",
                      0)):
        path = tmp_path / "p.conf"
        path.write_text(text)
        r = run_echod(["-c", path, "-t"])
        assert r.returncode == rc, r.stderr
        if rc:
            assert b"step=xdp_attach" in r.stderr
            assert b"no interface 'nosuch0'" in r.stderr
        else:
            assert r.stdout == b"ok\n"


def test_one_program_per_interface_and_downgrade(net, nsd, socks):
    p = net()
    first = nsd(p.srv, PREFILTER, listen=(SRV4,), port=PORT + 1)
    first.wait_event("xdp_attached")
    prog = attached(p.srv)
    # A second echod must not replace the first one's program ...
    rc, f, log = refusal(start_raw(p, PREFILTER, wait=False))
    assert rc == EXIT_OSERR, log
    assert f["step"] == "xdp_attach" and "already has" in f["msg"], log
    assert attached(p.srv) == prog
    # ... unless the policy allows it to serve without one.
    d = start_raw(p, PREFILTER + "allow-downgrade xdp-prefilter\n")
    try:
        why = parse_logfmt(d.wait_event("xdp_unavailable"))
        assert why["step"] == "xdp_attach" and "already has" in why["msg"]
        skipped = parse_logfmt(d.wait_event("hardening_skipped"))
        assert "xdp_prefilter" in skipped["steps"].split(","), skipped
        assert "allow-downgrade" in skipped["reason"], skipped
        assert not any("event=xdp_attached" in l for l in d.log_lines())
        assert bpf_fds(d.pid) == []
        s = udp_in(p.cli, socks, CLI4, EPHEMERAL)
        expect_echo(s, b"served anyway", (SRV4, PORT))
    finally:
        d.kill_all()
        os.unlink(d.policy_path)
    assert attached(p.srv) == prog


def test_needs_cap_bpf_and_net_admin_only_with_the_directive(net, socks):
    """CAP_BPF and CAP_NET_ADMIN are enough (no CAP_SYS_ADMIN, no
    CAP_PERFMON); without the directive, neither is needed."""
    p = net()
    for policy, drop in ((PREFILTER, "-sys_admin,-perfmon"),
                         ("", "-sys_admin,-perfmon,-bpf,-net_admin")):
        wrap = ("setpriv", f"--bounding-set={drop}", "--inh-caps=-all")
        d = start_raw(p, policy, wrap=wrap)
        try:
            assert any("event=xdp_attached" in l
                       for l in d.log_lines()) == bool(policy)
            s = udp_in(p.cli, socks, CLI4, EPHEMERAL + len(socks))
            expect_echo(s, b"hello", (SRV4, PORT))
            assert d.stop() == 0
        finally:
            d.kill_all()
            os.unlink(d.policy_path)
        assert not attached(p.srv)


BPF_LIBS = ("/libbpf.so", "/libelf", "/libz.so")


def mapped_bpf_libs(pid):
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    return [lib for lib in BPF_LIBS if lib in maps]


def test_libbpf_is_opened_only_with_the_directive(net):
    """libbpf (and libelf and libz with it) is opened for the prefilter
    only: without the directive no echod process maps any of them."""
    p = net()
    for policy in (PREFILTER, ""):
        d = start_raw(p, policy)
        try:
            pids = [d.pid] + d.workers()
            assert len(pids) == 2, pids
            assert mapped_bpf_libs(d.pid) == (list(BPF_LIBS) if policy
                                              else []), d.pid
            for pid in pids[1:]:
                assert mapped_bpf_libs(pid) == (list(BPF_LIBS) if policy
                                                else []), pid
            assert d.stop() == 0
        finally:
            d.kill_all()
            os.unlink(d.policy_path)


def test_libbpf_that_cannot_be_used_is_a_refusal(net, tmp_path, socks):
    """A libbpf.so.1 without the functions echod calls: the start is
    refused at step xdp_load, naming the missing function, unless the
    policy allows the downgrade."""
    cc = shutil.which("cc") or pytest.skip("no C compiler")
    os.chmod(tmp_path, 0o755)
    src = tmp_path / "fake.c"
    src.write_text("int not_libbpf;\n")
    subprocess.run([cc, "-shared", "-fPIC", "-Wl,-soname,libbpf.so.1", "-o",
                    str(tmp_path / "libbpf.so.1"), str(src)], check=True,
                   timeout=60)
    p = net()
    wrap = ("env", f"LD_LIBRARY_PATH={tmp_path}")
    rc, f, log = refusal(start_raw(p, PREFILTER, wait=False, wrap=wrap))
    assert rc == EXIT_OSERR, log
    assert f["step"] == "xdp_load", log
    assert "libbpf.so.1 has no bpf_link_create" in f["msg"], log
    d = start_raw(p, PREFILTER + "allow-downgrade xdp-prefilter\n",
                  wrap=wrap)
    try:
        why = parse_logfmt(d.wait_event("xdp_unavailable"))
        assert why["step"] == "xdp_load", why
        s = udp_in(p.cli, socks, CLI4, EPHEMERAL)
        expect_echo(s, b"served anyway", (SRV4, PORT))
    finally:
        d.kill_all()
        os.unlink(d.policy_path)
    assert not attached(p.srv)


# ---------------------------------------------------------------- 6. sandbox


def test_bpf_is_in_no_seccomp_allowlist():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "policy")
    for name in ("seccomp-worker.list", "seccomp-supervisor.list"):
        with open(os.path.join(root, name)) as f:
            words = [l.split("--")[0].split("#")[0].split()
                     for l in f.read().splitlines()]
        assert "bpf" not in [w[0] for w in words if w], name
