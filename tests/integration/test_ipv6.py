"""IPv6: echo over ::1, and v4 and v6 on separate (IPV6_V6ONLY) sockets."""

import os
import socket

import pytest

from conftest import tcp_connect, tcp_echo, udp_echo

TCP_LISTEN = "0A"


def _listening(path, port, state=TCP_LISTEN):
    """Local addresses (hex, as in /proc/net/*) bound on `port`."""
    found = []
    with open(path) as f:
        next(f)
        for line in f:
            fields = line.split()
            addr, hexport = fields[1].split(":")
            if int(hexport, 16) == port and (state is None or fields[3] == state):
                found.append(addr)
    return found


def test_tcp_over_ipv6(echod):
    d = echod()
    data = os.urandom(100_000)
    assert tcp_echo("::1", d.port, data) == data


def test_udp_over_ipv6(echod):
    d = echod()
    data, addr = udp_echo("::1", d.port, b"over six")
    assert data == b"over six"
    assert addr == ("::1", d.port)


def test_both_families_separate_sockets(echod):
    """0.0.0.0 and [::] on one port at once: only possible with separate,
    v6-only IPv6 sockets (a dual-stack [::] would collide with 0.0.0.0)."""
    d = echod(listen=["0.0.0.0", "[::]"])
    assert _listening("/proc/net/tcp", d.port) == ["00000000"]
    assert _listening("/proc/net/tcp6", d.port) == ["0" * 32]
    assert _listening("/proc/net/udp", d.port, state=None) == ["00000000"]
    assert _listening("/proc/net/udp6", d.port, state=None) == ["0" * 32]
    assert tcp_echo("127.0.0.1", d.port, b"four") == b"four"
    assert tcp_echo("::1", d.port, b"six") == b"six"
    assert udp_echo("127.0.0.1", d.port, b"four")[0] == b"four"
    assert udp_echo("::1", d.port, b"six")[0] == b"six"


def _assert_v4_refused(port):
    with pytest.raises(ConnectionRefusedError):
        tcp_connect("127.0.0.1", port, timeout=3).close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        s.send(b"anyone?")
        # ICMP port unreachable comes back as ECONNREFUSED, not an echo.
        with pytest.raises(ConnectionRefusedError):
            s.recv(100)


def test_v6_loopback_only_refuses_v4(echod):
    d = echod(listen=["[::1]"])
    assert tcp_echo("::1", d.port, b"six") == b"six"
    _assert_v4_refused(d.port)


def test_v6_wildcard_does_not_take_v4(echod):
    """[::] alone is v6-only: IPv4 peers are not served as mapped addresses."""
    d = echod(listen=["[::]"])
    assert tcp_echo("::1", d.port, b"six") == b"six"
    assert udp_echo("::1", d.port, b"six")[0] == b"six"
    _assert_v4_refused(d.port)
