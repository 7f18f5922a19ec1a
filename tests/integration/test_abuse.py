"""echod's abuse controls, end to end, in network namespaces of their own.

Each test builds a namespace "srv" (echod, 198.18.0.1/24, 2001:db8::1/64 on
veth vsrv) and a namespace "cli" (clients, attackers and victims,
198.18.0.2/24 and more, 2001:db8::2/64 on veth vcli), spoofs what it needs
with raw or packet sockets in cli, and judges echod by what comes back and
by its counters (SIGUSR1). Every address is in 198.18.0.0/15 or
2001:db8::/32, except the martian sources the bad-source test is about;
every flood is bounded in count and time; namespaces and processes go at
teardown, by name and by pid.

Needs root (namespaces, raw sockets); skipped with the reason otherwise.
"""

import os
import random
import socket
import struct
import subprocess
import threading
import time

import pytest

import netns
from conftest import (ECHOD_BIN, Echod, echoes, parse_logfmt, rss_kib,
                      wait_until, workers_of)

SRV4, CLI4, VICTIM4, LEGIT4 = "198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4"
OTHER4 = "198.18.1.2"  # cli, in another /24 than CLI4
SRV6, CLI6 = "2001:db8::1", "2001:db8::2"
SRV_BCAST = "198.18.0.255"
PORT = 20007
EPHEMERAL = 40000

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: network namespaces, "
                                       "raw sockets, ports below 1024")


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def net():
    """Factory: net(srv_addrs, cli_addrs, brd=True) -> netns.Pair; every
    pair is deleted at teardown (after the echods and sockets using it)."""
    pairs = []

    def make(srv=(SRV4 + "/24", SRV6 + "/64"),
             cli=(CLI4 + "/24", CLI6 + "/64"), brd=True):
        try:
            p = netns.Pair(srv, cli, brd=brd)
        except netns.NetnsUnavailable as e:
            pytest.skip(f"network namespaces unavailable: {e}")
        pairs.append(p)
        return p

    yield make
    for p in pairs:
        p.delete()


@pytest.fixture
def socks(net):
    """A list the test appends its sockets to; all closed at teardown."""
    opened = []
    yield opened
    for s in opened:
        s.close()


@pytest.fixture
def nsd(net, tmp_path):
    """Factory: nsd(ns, policy="", listen=(SRV4,), port=PORT, workers=1)
    -> Echod running inside namespace `ns` (ip netns exec NS echod ...),
    ready; killed by pid at teardown, before the namespaces go."""
    started = []

    def start(ns, policy="", listen=(SRV4,), port=PORT, workers=1):
        path = tmp_path / f"policy-{len(started)}.conf"
        path.write_text("log-level info\n" + policy)
        argv = [ECHOD_BIN, "-c", path]
        for a in listen:
            argv += ["-l", a]
        argv += ["-p", port, "-w", workers]
        d = Echod(ns.exec_argv(argv), port, path)
        started.append(d)
        d.wait_ready()
        # ip netns exec setns()es and execvp()s: the pid is echod itself, so
        # SIGUSR1, SIGTERM and children_of() reach the supervisor.
        assert os.path.realpath(f"/proc/{d.pid}/exe") == \
            os.path.realpath(ECHOD_BIN)
        assert len(d.workers()) == workers
        return d

    yield start
    for d in started:
        d.kill_all()


# ---------------------------------------------------------------- helpers


def udp_in(ns, socks, host, port, family=None):
    family = family or (socket.AF_INET6 if ":" in host else socket.AF_INET)
    s = ns.socket(family, socket.SOCK_DGRAM)
    socks.append(s)
    s.bind((host, port))
    return s


def expect_echo(s, payload, dst, timeout=2.0):
    """Send payload to dst, return the echo (skipping nothing else: the
    socket must get exactly that back first)."""
    s.settimeout(timeout)
    s.sendto(payload, dst)
    data, addr = s.recvfrom(65536)
    assert data == payload, f"expected the echo of {payload!r}, got {data!r}"
    return addr


def nothing_arrives(s, timeout=0.3):
    s.settimeout(timeout)
    try:
        data, addr = s.recvfrom(65536)
    except socket.timeout:
        return
    raise AssertionError(f"unexpected reply {data!r} from {addr}")


def settled(daemons, quiet=0.3, timeout=8.0):
    """Counters of each daemon once none has changed for `quiet` seconds
    (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    last = [d.counters() for d in daemons]
    changed = time.monotonic()
    while True:
        time.sleep(0.05)
        now = [d.counters() for d in daemons]
        t = time.monotonic()
        if now != last:
            last, changed = now, t
        elif t - changed >= quiet:
            return now
        if t >= deadline:
            raise AssertionError(f"counters still changing after {timeout}s: "
                                 f"{last}")


def drops(c):
    return {k: v for k, v in c.items()
            if (k.startswith("udp_drop_") or k == "udp_would_drop") and v}


def total_rss_kib(d):
    """(supervisor, sum over workers) VmRSS in KiB."""
    return rss_kib(d.pid), sum(rss_kib(w) for w in workers_of(d.pid))


# ---------------------------------------------------------------- 1. ports

DENIED_SAMPLE = [7, 19, 53, 123, 1900, 11211, 27015]


def test_denied_source_ports_get_no_reply(net, nsd, socks):
    p = net()
    d = nsd(p.srv, listen=(SRV4, f"[{SRV6}]"))
    for host, dst in ((CLI4, (SRV4, PORT)), (CLI6, (SRV6, PORT))):
        denied = [udp_in(p.cli, socks, host, port) for port in DENIED_SAMPLE]
        good = udp_in(p.cli, socks, host, EPHEMERAL)
        for i, s in enumerate(denied):
            s.sendto(b"from a service port %d" % i, dst)
        # One worker, one socket per family: once the later datagram from
        # the ephemeral port is echoed, every denied one has been judged.
        expect_echo(good, b"from an ephemeral port", dst)
        for s in denied:
            nothing_arrives(s, 0.05)
    c = d.counters_when(lambda c: c["udp_echoed"] >= 2)
    n = 2 * len(DENIED_SAMPLE)
    assert c["udp_drop_port"] == n
    assert c["udp_received"] == n + 2
    assert c["udp_echoed"] == 2
    assert drops(c) == {"udp_drop_port": n}


# ---------------------------------------------------------------- 2. sources

# (source, destination, must the kernel let it through to echod?)
BAD_SOURCES = [
    ("0.0.0.0", SRV4, False),            # martian for the kernel
    ("0.0.0.0", "255.255.255.255", True),  # the kernel's one exception (DHCP)
    ("224.0.0.9", SRV4, False),          # multicast source: kernel martian
    ("255.255.255.255", SRV4, False),    # limited broadcast: kernel martian
    (SRV_BCAST, SRV4, True),             # srv's directed broadcast
    ("127.0.0.1", SRV4, True),           # loopback on veth (route_localnet)
    (SRV4, SRV4, True),                  # srv's own address (accept_local)
    (SRV4, "198.18.0.9", True),          # ...to another of its addresses
    (SRV6, SRV6, True),                  # srv's own IPv6 address
    ("::", SRV6, True),                  # IPv6 unspecified
    ("ff02::1", SRV6, False),            # IPv6 multicast source: kernel drops
]


def test_bad_sources_get_no_echo(net, nsd, socks):
    p = net()
    # Let forged loopback and local-looking sources reach echod: the guard,
    # not the kernel, is under test.
    for conf in ("all", p.SRV_IF):
        p.srv.sysctl(f"net.ipv4.conf.{conf}.route_localnet", 1)
        p.srv.sysctl(f"net.ipv4.conf.{conf}.accept_local", 1)
    p.srv.ip("addr", "add", "198.18.0.9/32", "dev", p.SRV_IF)
    d = nsd(p.srv, listen=("0.0.0.0", "[::]"))
    srv_mac = netns.mac_of(p.srv, p.SRV_IF)
    marker = {socket.AF_INET: udp_in(p.cli, socks, CLI4, EPHEMERAL),
              socket.AF_INET6: udp_in(p.cli, socks, CLI6, EPHEMERAL)}
    pkt = netns.PacketSender(p.cli, p.CLI_IF)
    socks.append(pkt)
    c0 = d.counters()
    arrived = {}
    for i, (src, dst, _) in enumerate(BAD_SOURCES):
        payload = b"forged %d" % i
        if ":" in src:
            pkt.send(netns.ipv6_udp(src, dst, EPHEMERAL, PORT, payload),
                     srv_mac, netns.ETH_P_IPV6)
            fam, mdst = socket.AF_INET6, (SRV6, PORT)
        else:
            mac = netns.BROADCAST_MAC if dst.endswith(".255") else srv_mac
            pkt.send(netns.ipv4_udp(src, dst, EPHEMERAL, PORT, payload), mac)
            fam, mdst = socket.AF_INET, (SRV4, PORT)
        # The marker, echoed, shows the forged datagram (same socket, one
        # worker) has been judged if it arrived at all.
        expect_echo(marker[fam], b"marker %d" % i, mdst)
        c1 = d.counters_when(
            lambda c, e=c0["udp_echoed"] + 1: c["udp_echoed"] >= e)
        got = c1["udp_received"] - c0["udp_received"] - 1
        bad = c1["udp_drop_bad_source"] - c0["udp_drop_bad_source"]
        assert c1["udp_echoed"] - c0["udp_echoed"] == 1, \
            f"{src} -> {dst} was echoed"
        assert got in (0, 1)
        assert bad == got, f"{src} -> {dst}: received {got}, bad_source {bad}"
        arrived[(src, dst)] = got
        c0 = c1
    print("bad sources reaching echod: " + ", ".join(
        f"{s}->{t}:{'yes' if v else 'no (kernel)'}"
        for (s, t), v in arrived.items()))
    must = {(s, t) for s, t, m in BAD_SOURCES if m}
    assert {k for k, v in arrived.items() if v} >= must, arrived
    c = d.counters()
    assert c["udp_drop_bad_source"] == sum(arrived.values())
    assert drops(c) == {"udp_drop_bad_source": sum(arrived.values())}


# ---------------------------------------------------------------- 3. dests


def test_broadcast_and_multicast_destinations(net, nsd, socks):
    p = net()
    d = nsd(p.srv, listen=("0.0.0.0", "[::]"))
    s4 = p.cli.socket(socket.AF_INET, socket.SOCK_DGRAM)
    socks.append(s4)
    s4.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s4.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                  p.CLI_IF.encode())
    s4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                  socket.inet_aton(CLI4))
    s4.bind((CLI4, EPHEMERAL))
    s6 = udp_in(p.cli, socks, CLI6, EPHEMERAL)
    ifindex = p.ifindex(p.cli, p.CLI_IF)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)

    for i, dst in enumerate([SRV_BCAST, "255.255.255.255", "224.0.0.1"]):
        s4.sendto(b"to many %d" % i, (dst, PORT))
    s6.sendto(b"to all v6 nodes", ("ff02::1", PORT, 0, ifindex))
    # Unicast after them: its echo comes only after they were judged.
    expect_echo(s4, b"unicast v4", (SRV4, PORT))
    expect_echo(s6, b"unicast v6", (SRV6, PORT))
    nothing_arrives(s4, 0.2)
    nothing_arrives(s6, 0.05)
    c = d.counters_when(lambda c: c["udp_echoed"] >= 2)
    assert c["udp_received"] == 6
    assert c["udp_drop_bad_dest"] == 4
    assert c["udp_echoed"] == 2
    assert drops(c) == {"udp_drop_bad_dest": 4}


def test_directed_broadcast_without_brd_attribute(net, nsd, socks):
    p = net(brd=False)
    d = nsd(p.srv, listen=("0.0.0.0",))
    s = udp_in(p.cli, socks, CLI4, EPHEMERAL)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.sendto(b"to the subnet", (SRV_BCAST, PORT))
    expect_echo(s, b"to the host", (SRV4, PORT), timeout=0.5)
    nothing_arrives(s, 0.2)
    c = d.counters_when(lambda c: c["udp_echoed"] >= 1, timeout=1.0)
    assert c["udp_received"] == 2
    assert c["udp_drop_bad_dest"] == 1
    assert c["udp_echoed"] == 1


# ---------------------------------------------------------------- 4. loop


def _two_instance_loop(net, nsd, socks, guard):
    """echod A in srv (SRV4:20007), echod B in cli (CLI4:20008); one forged
    datagram to A from B's address and port. Returns (A, B) counters once
    the exchange has died out."""
    p = net()
    a = nsd(p.srv, guard, listen=(SRV4,), port=20007)
    b = nsd(p.cli, guard, listen=(CLI4,), port=20008)
    with netns.RawSender(p.cli) as raw:
        raw.send(netns.ipv4_udp(CLI4, SRV4, 20008, 20007,
                                b"CA-1996-01 ping-pong"), SRV4)
    return settled([a, b], quiet=0.3, timeout=8.0)


def test_two_instance_loop_dies_with_loop_guard(net, nsd, socks):
    """The default policy: the loop dies in fewer than 10 packets on the
    wire (the forged one and the echoes)."""
    ca, cb = _two_instance_loop(net, nsd, socks, "")
    echoed = ca["udp_echoed"] + cb["udp_echoed"]
    print(f"loop guard on (default): A echoed {ca['udp_echoed']}, B echoed "
          f"{cb['udp_echoed']}, drop_loop {ca['udp_drop_loop']}+"
          f"{cb['udp_drop_loop']}, {1 + echoed} packets on the wire")
    assert 4 <= echoed and 1 + echoed < 10, (ca, cb)  # it looped, briefly
    assert ca["udp_drop_loop"] + cb["udp_drop_loop"] >= 1
    assert ca["udp_drop_rate"] + cb["udp_drop_rate"] == 0


def test_forged_loop_holds_only_that_source_port_and_payload(net, nsd,
                                                             socks):
    """Five identical datagrams forged from VICTIM4:EPHEMERAL, at a loop's
    pace, trip the hold; the victim's other ports and payloads and every
    neighbour of its /24 are still answered."""
    p = net()
    p.cli.ip("addr", "add", VICTIM4 + "/32", "dev", p.CLI_IF)
    p.cli.ip("addr", "add", LEGIT4 + "/32", "dev", p.CLI_IF)
    d = nsd(p.srv)
    with netns.RawSender(p.cli) as raw:
        for _ in range(5):
            raw.send(netns.ipv4_udp(VICTIM4, SRV4, EPHEMERAL, PORT,
                                    b"forged loop"), SRV4)
    c = d.counters_when(lambda c: c["udp_received"] >= 5)
    assert c["udp_drop_loop"] == 1 and c["udp_echoed"] == 4
    neighbour = udp_in(p.cli, socks, LEGIT4, EPHEMERAL)
    expect_echo(neighbour, b"forged loop", (SRV4, PORT))
    other_port = udp_in(p.cli, socks, VICTIM4, EPHEMERAL + 1)
    expect_echo(other_port, b"forged loop", (SRV4, PORT))
    victim = udp_in(p.cli, socks, VICTIM4, EPHEMERAL)
    for _ in range(4):  # the 4 forged echoes, sent before it was bound
        nothing_arrives(victim, 0.01)
    expect_echo(victim, b"another payload", (SRV4, PORT))
    # The held payload itself stays held for that source and port.
    victim.sendto(b"forged loop", (SRV4, PORT))
    nothing_arrives(victim, 0.3)
    c = d.counters()
    assert c["udp_drop_loop"] == 2
    assert c["udp_echoed"] == 4 + 3


def _proberechoes(d, p, argv):
    """Run a prober (argv, inside cli); udp_echoed and udp_drop_loop it
    caused."""
    c0 = d.counters()
    r = subprocess.run(p.cli.exec_argv(argv), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    c = settled([d])[0]
    return (c["udp_received"] - c0["udp_received"],
            c["udp_echoed"] - c0["udp_echoed"],
            c["udp_drop_loop"] - c0["udp_drop_loop"], r.stdout)


@pytest.mark.parametrize("rate", [10, 20])
def test_monitoring_probe_is_never_held_nping(net, nsd, socks, rate):
    p = net()
    d = nsd(p.srv)
    n = 2 * rate
    got, echoed, held, out = _proberechoes(d, p, [
        "nping", "--udp", "-p", PORT, "-g", EPHEMERAL, "--rate", rate,
        "-c", n, "--data-string", "monitor", SRV4])
    print(f"nping --rate {rate} -c {n}: received {got}, echoed {echoed}, "
          f"held {held}")
    assert got == n and echoed == n and held == 0
    assert f"Rcvd: {n} " in out, out


def test_monitoring_probe_is_never_held_hping3(net, nsd, socks):
    p = net()
    d = nsd(p.srv)
    got, echoed, held, _ = _proberechoes(d, p, [
        "hping3", "--udp", "-p", PORT, "-s", EPHEMERAL, "-k", "-d", 16,
        "-i", "u50000", "-c", 40, "-q", SRV4])
    print(f"hping3 at 20/s, 40 probes: received {got}, echoed {echoed}, "
          f"held {held}")
    assert got == 40 and echoed == 40 and held == 0


def test_two_instance_loop_runs_without_loop_guard(net, nsd, socks):
    """The control: with the guard off the same exchange runs until the
    rate limit (burst 200 each side) ends it, so the guard is what stops
    it above; the rate limit also bounds this test."""
    ca, cb = _two_instance_loop(
        net, nsd, socks, "udp-loop-guard off\nudp-rate 200/s burst 200\n")
    echoed = ca["udp_echoed"] + cb["udp_echoed"]
    print(f"loop guard off: A echoed {ca['udp_echoed']}, B echoed "
          f"{cb['udp_echoed']}, drop_rate {ca['udp_drop_rate']}+"
          f"{cb['udp_drop_rate']}")
    assert echoed >= 100, (ca, cb)
    assert ca["udp_drop_loop"] + cb["udp_drop_loop"] == 0
    assert ca["udp_drop_rate"] + cb["udp_drop_rate"] >= 1


# ---------------------------------------------------------------- 5. reflection

REFLECT_N = 5000
REFLECT_PORTS = 16
REFLECT_PPS = 10000


def test_reflection_flood_at_victim_is_rate_limited(net, nsd, socks):
    """5000 forged datagrams "from" the victim, over 16 of its ports, to an
    echod with 4 workers: the steering program keeps the victim's /24 on
    one worker, so the victim gets one burst plus the rate, not four."""
    rate, burst = 100, 200
    p = net(cli=(CLI4 + "/24", VICTIM4 + "/24", CLI6 + "/64"))
    d = nsd(p.srv, f"udp-rate {rate}/s burst {burst}\n", workers=4)
    victim = [udp_in(p.cli, socks, VICTIM4, EPHEMERAL + i)
              for i in range(REFLECT_PORTS)]
    for s in victim:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    packets = [netns.ipv4_udp(VICTIM4, SRV4, EPHEMERAL + i % REFLECT_PORTS,
                              PORT, b"reflect me %06d" % i,
                              ip_checksum=False)
               for i in range(REFLECT_N)]
    snmp0 = p.srv.snmp()
    with netns.RawSender(p.cli) as raw:
        t0 = time.monotonic()
        # 10k/s for 0.5 s: fast, yet within what echod drains, so that
        # (nearly) every datagram is judged and the rate shows over time.
        sent, flood_s = raw.flood(packets, SRV4, pps=REFLECT_PPS,
                                  max_seconds=2.0)
    assert sent == REFLECT_N

    def all_judged():
        c = d.counters()
        lost = p.srv.snmp()["RcvbufErrors"] - snmp0["RcvbufErrors"]
        return c if c["udp_received"] + lost >= sent else None

    c = wait_until(all_judged, 5.0, interval=0.05,
                   what="every forged datagram judged")
    t1 = time.monotonic()
    got = netns.drain(victim, 0.3)
    c = d.counters_when(lambda c: c["udp_echoed"] >= len(got), 1.0)
    elapsed = t1 - t0
    bound = burst + rate * elapsed + 2
    lost = p.srv.snmp()["RcvbufErrors"] - snmp0["RcvbufErrors"]
    print(f"reflection: sent {sent} in {flood_s:.3f}s, echod received "
          f"{c['udp_received']} (socket overflow {lost}), victim got "
          f"{len(got)} in {elapsed:.3f}s (bound {bound:.0f}), drop_rate "
          f"{c['udp_drop_rate']}")
    assert c["udp_received"] + lost == sent
    assert len(got) == c["udp_echoed"]
    assert burst <= len(got) <= bound
    assert c["udp_drop_rate"] == c["udp_received"] - c["udp_echoed"]
    assert drops(c) == {"udp_drop_rate": c["udp_drop_rate"]}


# ---------------------------------------------------------------- 6. 100k sources

TABLE = 16384
ENTRY_MAX = 128  # bytes; a UDP source's table slot is 80 on x86-64
UDP_BUFS = 32 * 65507  # udp.c: BATCH slots of udp-max-datagram


def _spoofed_sources(n, rng):
    """n distinct addresses in 198.18.0.0/15 outside 198.18.0.0/24 (where
    the server, client, victim and legit client live)."""
    base = struct.unpack("!I", socket.inet_aton("198.18.1.0"))[0]
    span = (1 << 17) - 256
    return [base + k for k in rng.sample(range(span), n)]


def _flood_packets(addrs, tag):
    out = []
    dst = socket.inet_aton(SRV4)
    for i, a in enumerate(addrs):
        payload = b"%s %06d" % (tag, i)
        ulen = 8 + len(payload)
        out.append(struct.pack("!BBHHHBBH4s4sHHHH", 0x45, 0, 20 + ulen, 0, 0,
                               64, 17, 0, struct.pack("!I", a), dst,
                               EPHEMERAL, PORT, ulen, 0) + payload)
    return out


def _legit_client(sock, n, pps, result):
    """n probes at pps from a real client; counts distinct echoes."""
    sock.setblocking(False)
    seen = set()
    t0 = time.monotonic()
    sent = 0
    end = None
    while True:
        now = time.monotonic()
        if sent < n and now >= t0 + sent / pps:
            sock.sendto(b"legit %05d" % sent, (SRV4, PORT))
            sent += 1
            if sent == n:
                end = time.monotonic() + 1.0
        try:
            while True:
                data, _ = sock.recvfrom(2048)
                seen.add(data)
        except BlockingIOError:
            pass
        if end is not None and (time.monotonic() >= end or len(seen) >= n):
            break
        time.sleep(0.002)
    result["sent"], result["echoed"] = sent, len(seen)


def test_100k_spoofed_sources_flat_memory_and_legit_served(net, nsd, socks):
    workers = 2
    p = net(cli=(CLI4 + "/24", LEGIT4 + "/24", CLI6 + "/64"))
    # /32 prefixes: every spoofed address is its own table entry, so 100k
    # sources really overflow the 16384-entry table and evict.
    d = nsd(p.srv, f"rate-prefix-v4 32\nrate-table-size {TABLE}\n",
            workers=workers)
    legit = udp_in(p.cli, socks, LEGIT4, EPHEMERAL)
    expect_echo(legit, b"hello", (SRV4, PORT))
    sup0, w0 = total_rss_kib(d)

    rng = random.Random(0x198180)
    addrs = _spoofed_sources(120000, rng)
    warm = _flood_packets(addrs[:20000], b"warm")
    main = _flood_packets(addrs[20000:], b"main")
    snmp0 = p.srv.snmp()
    with netns.RawSender(p.cli) as raw:
        sent, secs = raw.flood(warm, SRV4, pps=25000, max_seconds=3.0)
        assert sent == len(warm)
        settled([d], quiet=0.2)
        sup1, w1 = total_rss_kib(d)

        result = {}
        t = threading.Thread(target=_legit_client,
                             args=(legit, 500, 100, result), daemon=True)
        t.start()
        sent2, secs2 = raw.flood(main, SRV4, pps=16000, max_seconds=12.0)
        t.join(15)
        assert not t.is_alive(), "legit client did not finish"
    c = settled([d], quiet=0.2)[0]
    sup2, w2 = total_rss_kib(d)
    lost = p.srv.snmp()["RcvbufErrors"] - snmp0["RcvbufErrors"]
    ok = result["echoed"] / result["sent"]
    table_kib = workers * 2 * TABLE * ENTRY_MAX // 1024  # UDP + TCP tables
    bound_kib = w0 + table_kib + workers * UDP_BUFS // 1024 + 4096
    print(f"100k sources: warm {sent} in {secs:.2f}s, main {sent2} in "
          f"{secs2:.2f}s; socket overflow {lost}; legit {result['echoed']}/"
          f"{result['sent']} ({100 * ok:.1f}%); RSS KiB supervisor "
          f"{sup0}/{sup1}/{sup2}, workers {w0} (start) / {w1} (after 20k) / "
          f"{w2} (after 100k), bound {bound_kib}; counters {drops(c)} "
          f"received {c['udp_received']} echoed {c['udp_echoed']}")
    assert sent2 == len(main)
    assert ok > 0.95
    assert c["udp_received"] + lost == 1 + len(warm) + len(main) + result["sent"]
    # Every spoofed source is new (or evicted and new again): its first
    # datagram fits its burst, nothing is refused for want of a slot.
    assert c["udp_drop_table"] == 0
    assert w2 < bound_kib
    assert sup2 + w2 < 64 * 1024
    assert w2 - w1 <= 2048, "worker memory grew with the number of sources"


# ---------------------------------------------------------------- 7. TCP


def _tcp_from(ns, socks, src, timeout=2.0):
    s = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
    socks.append(s)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect((SRV4, PORT))
    return s


def _tcpechoes(s, payload):
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        b = s.recv(4096)
        assert b, "closed instead of echoing"
        got += b
    assert got == payload


def _closed_promptly(s, timeout=2.0):
    s.settimeout(timeout)
    t0 = time.monotonic()
    try:
        data = s.recv(4096)
    except ConnectionResetError:
        data = b""
    assert data == b"", f"refused connection sent {data!r}"
    return time.monotonic() - t0


def test_tcp_connections_per_source_capped(net, nsd, socks):
    p = net()
    p.cli.ip("addr", "add", OTHER4 + "/24", "brd", "+", "dev", p.CLI_IF)
    d = nsd(p.srv, "tcp-max-connections-per-source 3\n")
    conns = [_tcp_from(p.cli, socks, CLI4) for _ in range(3)]
    for i, s in enumerate(conns):
        _tcpechoes(s, b"conn %d" % i)
    fourth = _tcp_from(p.cli, socks, CLI4)
    took = _closed_promptly(fourth)
    other = _tcp_from(p.cli, socks, OTHER4)
    _tcpechoes(other, b"another /24")
    c = d.counters()
    assert c["tcp_refused_per_source"] == 1
    assert c["tcp_accepted"] == 4
    assert c["tcp_refused_rate"] == c["tcp_refused_deny"] == 0
    # The cap counts open connections: one closed, one more is let in.
    conns[0].close()
    d.counters_when(lambda c: c["tcp_active"] == 3)
    again = _tcp_from(p.cli, socks, CLI4)
    _tcpechoes(again, b"after a close")
    for s in conns[1:]:
        _tcpechoes(s, b"still here")
    c = d.counters()
    assert c["tcp_refused_per_source"] == 1
    assert c["tcp_accepted"] == 5
    print(f"tcp per-source: 4th closed after {took * 1000:.1f} ms")


# ---------------------------------------------------------------- 8. log-only


def test_log_only_echoes_and_counts_would_drop(net, nsd, socks):
    p = net()
    d = nsd(p.srv, "enforce log-only\n")
    s = udp_in(p.cli, socks, CLI4, 1900)
    addr = expect_echo(s, b"M-SEARCH * HTTP/1.1", (SRV4, PORT))
    assert addr == (SRV4, PORT)
    c = d.counters_when(lambda c: c["udp_echoed"] >= 1)
    assert c["udp_would_drop"] == 1
    assert c["udp_drop_port"] == 0
    assert c["udp_echoed"] == c["udp_received"] == 1
    line = d.wait_event("udp_would_drop", 2.0)
    f = parse_logfmt(line)
    assert f["reason"] == "port"
    assert f["peer"] == f"{CLI4}:1900"


# ---------------------------------------------------------------- 9. accounting


def test_counters_match_the_mix_sent(net, nsd, socks):
    k, j = 10, 4
    denied_ports = [7, 53, 123, 1900, 11211]
    m = len(denied_ports)
    p = net()
    d = nsd(p.srv, "udp-max-datagram 512\n")
    ok = udp_in(p.cli, socks, CLI4, EPHEMERAL)
    denied = [udp_in(p.cli, socks, CLI4, port) for port in denied_ports]
    dst = (SRV4, PORT)
    for i in range(j):
        ok.sendto(os.urandom(513 + 100 * i), dst)
    for i, s in enumerate(denied):
        s.sendto(b"denied %d" % i, dst)
    for i in range(k):
        expect_echo(ok, b"ok %d" % i + os.urandom(i * 50), dst)
    for s in denied:
        nothing_arrives(s, 0.05)
    nothing_arrives(ok, 0.1)
    c = d.counters_when(lambda c: c["udp_echoed"] >= k)
    assert c["udp_received"] == k + m + j
    assert c["udp_echoed"] == k
    assert c["udp_drop_port"] == m
    assert c["udp_drop_oversize"] == j
    assert drops(c) == {"udp_drop_port": m, "udp_drop_oversize": j}


# ---------------------------------------------------------------- 9. prefixes

# Four IPv6 networks (one /48 each) and four IPv4 ones (one /24 each), in
# the client namespace: IPv4 by a local route (AnyIP: every address of
# 198.18.64.0/22 is the namespace's own), IPv6 by the addresses the test
# uses, on lo; the server routes them back via the client.
NET6 = {"legit": "2001:db8:aaaa", "attack": "2001:db8:bbbb",
        "other": "2001:db8:cccc", "fresh": "2001:db8:dddd"}
NET4 = {"legit": "198.18.64", "attack": "198.18.65", "other": "198.18.66",
        "fresh": "198.18.67"}


def _anyip_pair(net, tmp_path, v6_hosts):
    p = net()
    p.cli.ip("link", "set", "lo", "up")
    p.cli.ip("route", "add", "local", "198.18.64.0/22", "dev", "lo")
    batch = tmp_path / "addrs.batch"
    batch.write_text("".join(f"addr add {a}/128 dev lo nodad\n"
                             for a in v6_hosts))
    p.cli.ip("-batch", str(batch))
    p.srv.ip("-6", "route", "add", "2001:db8::/32", "via", CLI6, "dev",
             p.SRV_IF)
    # A route via a neighbour waits for the link-local addresses (the
    # neighbour discovery's) to finish duplicate address detection.
    for ns, ifname in ((p.srv, p.SRV_IF), (p.cli, p.CLI_IF)):
        wait_until(lambda: "tentative" not in ns.ip(
            "-6", "addr", "show", "dev", ifname).stdout, 5.0,
            what=f"{ifname}'s IPv6 addresses past DAD")
    return p


def _tcp_any(ns, socks, src, timeout=2.0):
    """A connection from src to echod (SRV4 or SRV6, src's family)."""
    v6 = ":" in src
    s = ns.socket(socket.AF_INET6 if v6 else socket.AF_INET,
                  socket.SOCK_STREAM)
    socks.append(s)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect((SRV6 if v6 else SRV4, PORT))
    return s


def _evicted_peers(d):
    return [parse_logfmt(l) for l in d.log_lines()
            if " event=tcp_evicted " in l]


def _prefix_attack(net, nsd, socks, tmp_path, nets, host, waves, policy=""):
    """Legitimate clients hold 2 connections in each of two networks
    (tcp-max-connections 8, one worker); an attacker connects from one
    address in each of `waves` counts of different /64s (IPv4: addresses)
    of a third network. The legitimate clients' state after each wave, and
    the daemon."""
    v6 = [host(nets[name], k) for name in ("legit", "other", "fresh")
          for k in (1, 2)] + [host(nets["attack"], k)
                              for k in range(1, sum(waves) + 1)]
    p = _anyip_pair(net, tmp_path, v6 if ":" in v6[0] else ())
    d = nsd(p.srv, "tcp-max-connections 8\ntcp-min-rate off\n" + policy,
            listen=(SRV4, SRV6))
    legit = []
    for name in ("legit", "other"):
        for k in (1, 2):
            legit.append(_tcp_any(p.cli, socks, host(nets[name], k)))
            assert echoes(legit[-1], b"legit %d" % len(legit))
    held, n = [], 0
    for wave in waves:
        for _ in range(wave):
            n += 1
            s = _tcp_any(p.cli, socks, host(nets["attack"], n))
            s.sendall(b"attack")  # counts as activity; never read back
        # Every attacker's connection is decided (accepted, then kept,
        # evicted or refused) before the legitimate clients are asked.
        d.counters_when(lambda c: c["tcp_accepted"] + c["tcp_refused_max"]
                        + c["tcp_refused_per_source"] >= 4 + n, 5.0)
        held.append([echoes(s, b"still %d" % i)
                     for i, s in enumerate(legit)])
    return p, d, held


def _v6_host(pre, k):
    return f"{pre}:{k:x}::7"  # one address in the k-th /64


def _v4_host(pre, k):
    return f"{pre}.{k}"


def _fresh_network_served(p, d, socks, nets, host, aggregate):
    """A client of a network that holds nothing connects: it is echoed
    within a second, and every connection closed so far (by the attack
    and by it) was the attacker's network's."""
    t0 = time.monotonic()
    fresh = _tcp_any(p.cli, socks, host(nets["fresh"], 1))
    assert echoes(fresh, b"fresh")
    took = time.monotonic() - t0
    c = d.counters_when(lambda c: c["tcp_evicted_largest"] >= 1)
    evicted = _evicted_peers(d)
    print(f"{aggregate} attack: {c['tcp_evicted_largest']} evicted, a "
          f"fresh network served in {took * 1000:.1f} ms")
    assert took < 1.0
    assert c["tcp_active"] == 8
    assert evicted and all(e["aggregate"] == aggregate for e in evicted)
    assert all(echoes(s, b"after") for s in socks[:4])


def test_one_48_cannot_evict_other_48s_tcp(net, nsd, socks, tmp_path):
    """16, then 256, /64s of one /48 against two other /48s that hold 2
    connections each: the attacker gets the free slots and then only
    displaces its own; a fresh client of a fourth /48 is served within a
    second, at the attacker's cost."""
    p, d, held = _prefix_attack(net, nsd, socks, tmp_path, NET6, _v6_host,
                                (16, 256))
    assert held == [[True] * 4, [True] * 4]
    _fresh_network_served(p, d, socks, NET6, _v6_host,
                          NET6["attack"] + "::/48")
    assert all(e["peer"].startswith("[" + NET6["attack"] + ":")
               for e in _evicted_peers(d))


def test_one_64_per_source_was_the_attack(net, nsd, socks, tmp_path):
    """The control: counted per /64 only (tcp-prefix-v6 64), the same 16
    /64s close legitimate connections of the other /48s."""
    _, d, held = _prefix_attack(net, nsd, socks, tmp_path, NET6, _v6_host,
                                (16,), "tcp-prefix-v6 64\n")
    evicted = _evicted_peers(d)
    print(f"/64 only: legit still served {held[0]}, {len(evicted)} evicted")
    assert not all(held[0])
    assert any(not e["peer"].startswith("[" + NET6["attack"] + ":")
               for e in evicted)


def test_one_24_cannot_evict_other_24s_tcp(net, nsd, socks, tmp_path):
    """64 addresses of one /24 against two other /24s: the same."""
    p, d, held = _prefix_attack(net, nsd, socks, tmp_path, NET4, _v4_host,
                                (64,))
    assert held == [[True] * 4]
    _fresh_network_served(p, d, socks, NET4, _v4_host,
                          NET4["attack"] + ".0/24")
    assert all(e["peer"].startswith(NET4["attack"] + ".")
               for e in _evicted_peers(d))


def test_reflection_over_a_48_is_held_to_its_aggregate(net, nsd, socks,
                                                       tmp_path):
    """1024 datagrams forged from 256 /56s of one /48 (4 each, well inside
    each /56's own burst of 200): the /48 as a whole gets the aggregate's
    burst (800) and rate, not 256 times udp-rate."""
    rate, burst = 400, 800
    p = _anyip_pair(net, tmp_path, ())
    d = nsd(p.srv, listen=(SRV6,))
    srv_mac = netns.mac_of(p.srv, p.SRV_IF)
    frames = [netns.ipv6_udp(f"2001:db8:eeee:{i:02x}00::1", SRV6,
                             EPHEMERAL + k, PORT, b"reflect %d %d" % (i, k))
              for k in range(4) for i in range(256)]
    pkt = netns.PacketSender(p.cli, p.CLI_IF)
    socks.append(pkt)
    t0 = time.monotonic()
    for f in frames:
        pkt.send(f, srv_mac, netns.ETH_P_IPV6)
    c = wait_until(lambda: (lambda c: c if c["udp_received"] >= len(frames)
                            else None)(d.counters()),
                   5.0, interval=0.05, what="every forged datagram judged")
    elapsed = time.monotonic() - t0
    bound = burst + rate * elapsed + 1
    print(f"reflection over a /48: {len(frames)} forged from 256 /56s, "
          f"{c['udp_echoed']} echoed in {elapsed:.3f}s (bound "
          f"{bound:.0f}), udp_drop_aggregate_rate "
          f"{c['udp_drop_aggregate_rate']}")
    assert c["udp_received"] == len(frames)
    assert burst <= c["udp_echoed"] <= bound
    assert drops(c) == {"udp_drop_aggregate_rate":
                        len(frames) - c["udp_echoed"]}
