"""UDP GRO and GSO: a client's GSO write reaches echod as one GRO buffer
(loopback keeps it whole for a socket with UDP_GRO); every datagram in it
is decided and counted on its own and comes back as a datagram of its own."""

import socket
import struct

import pytest

import netns
from conftest import ECHOD_BIN, Echod, udp_socket

UDP_SEGMENT = 103
HOSTS = ["127.0.0.1", "::1"]


def gso_write(s, host, port, payloads):
    """One sendmsg of the payloads, all but the last as long as the first,
    as one GSO write the kernel splits into datagrams."""
    cmsg = (socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", len(payloads[0])))
    s.sendmsg([b"".join(payloads)], [cmsg], 0, (host, port))


def distinct_payloads(n, size):
    return [struct.pack("!I", i) * (size // 4) for i in range(n)]


def receive(s, n, timeout=3.0):
    s.settimeout(timeout)
    return [s.recvfrom(65536) for _ in range(n)]


def assert_nothing_more(s):
    s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        s.recvfrom(65536)


@pytest.mark.parametrize("host", HOSTS)
def test_every_segment_echoed_and_counted(echod, host):
    d = echod()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # 40 segments of 64 bytes and a short 13-byte last one.
    payloads = distinct_payloads(40, 64) + [b"the short one"]
    before = d.counters()
    with udp_socket(family) as s:
        gso_write(s, host, d.port, payloads)
        got = receive(s, len(payloads))
        assert [data for data, _ in got] == payloads
        assert {addr[:2] for _, addr in got} == {(host, d.port)}
        assert_nothing_more(s)
    c = d.counters_when(lambda c: c["udp_echoed"] - before["udp_echoed"]
                        >= len(payloads))
    assert c["udp_received"] - before["udp_received"] == len(payloads)
    assert c["udp_echoed"] - before["udp_echoed"] == len(payloads)
    assert c["udp_bytes_in"] - before["udp_bytes_in"] == 40 * 64 + 13
    assert c["udp_bytes_out"] - before["udp_bytes_out"] == 40 * 64 + 13
    # It came as one GRO buffer (without UDP_GRO the kernel would have
    # split it into 41 plain datagrams before the socket).
    assert c["udp_gro_buffers"] - before["udp_gro_buffers"] >= 1
    assert c["udp_gso_fallbacks"] == 0


@pytest.mark.parametrize("host", HOSTS)
def test_rate_limit_counts_segments(echod, host):
    """A 40-datagram write under a 10-datagram burst: 10 echoes (the first
    10, in order) and 30 rate drops, not one buffer let through whole."""
    d = echod(policy_text="udp-rate 10/s burst 10\n")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    payloads = distinct_payloads(40, 64)
    with udp_socket(family) as s:
        gso_write(s, host, d.port, payloads)
        got = receive(s, 10)
        assert [data for data, _ in got] == payloads[:10]
        c = d.counters_when(lambda c: c["udp_drop_rate"] >= 30)
        assert_nothing_more(s)
    assert c["udp_received"] == 40
    assert c["udp_echoed"] == 10
    assert c["udp_drop_rate"] == 30
    assert c["udp_gro_buffers"] >= 1


def test_refused_segments_leave_no_gap(echod):
    """The loop guard holds a payload from its 5th repeat on: those two
    go, the others come back in their order, the short last one last."""
    d = echod()
    payloads = distinct_payloads(20, 64) + [b"short"]
    for i in (1, 4, 7, 10, 13, 16):
        payloads[i] = b"L" * 64
    with udp_socket() as s:
        gso_write(s, "127.0.0.1", d.port, payloads)
        want = payloads[:13] + payloads[14:16] + payloads[17:]
        assert [data for data, _ in receive(s, len(want))] == want
        c = d.counters_when(lambda c: c["udp_drop_loop"] >= 2)
        assert_nothing_more(s)
    assert c["udp_drop_loop"] == 2
    assert c["udp_echoed"] == 19


def test_segment_above_max_datagram_is_oversize(echod):
    d = echod(policy_text="udp-max-datagram 512\n")
    with udp_socket() as s:
        gso_write(s, "127.0.0.1", d.port, distinct_payloads(3, 516))
        fits = distinct_payloads(3, 512)
        gso_write(s, "127.0.0.1", d.port, fits)
        assert [data for data, _ in receive(s, 3)] == fits
        c = d.counters_when(lambda c: c["udp_echoed"] >= 3)
        assert_nothing_more(s)
    assert c["udp_drop_oversize"] == 3
    assert c["udp_received"] == 6
    assert c["udp_echoed"] == 3
    assert c["udp_gro_buffers"] >= 2


def test_gso_refused_echoed_one_by_one():
    """The route back has a smaller MTU than the segments (mtu lock 1280
    on the client's address, in a namespace of the test's own): the kernel
    refuses the GSO echo (EMSGSIZE) and every datagram still comes back,
    sent alone (and fragmented)."""
    try:
        ns = netns.Netns("gro")
    except netns.NetnsUnavailable as e:
        pytest.skip(f"network namespaces unavailable: {e}")
    d = cli = None
    try:
        ns.ip("link", "set", "lo", "up")
        for a in ("198.18.0.1/32", "198.18.0.2/32"):
            ns.ip("addr", "add", a, "dev", "lo")
        ns.ip("route", "replace", "local", "198.18.0.2", "dev", "lo",
              "table", "local", "mtu", "lock", "1280")
        d = Echod(ns.exec_argv([ECHOD_BIN, "-l", "198.18.0.1", "-p", 20007,
                                "-w", 1]), 20007, None)
        d.wait_ready()
        cli = ns.socket()
        cli.bind(("198.18.0.2", 40000))
        payloads = distinct_payloads(3, 1400)
        gso_write(cli, "198.18.0.1", 20007, payloads)
        assert [data for data, _ in receive(cli, 3)] == payloads
        c = d.counters_when(lambda c: c["udp_echoed"] >= 3)
        assert c["udp_gro_buffers"] == 1
        assert c["udp_gso_fallbacks"] == 1
        assert c["udp_echoed"] == 3
        assert c["udp_send_errors"] == 0
    finally:
        if d is not None:
            d.kill_all()
        if cli is not None:
            cli.close()
        ns.delete()
