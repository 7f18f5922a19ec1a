"""TCP abuse controls that loopback can show: per-connection byte budget and
lifetime, the per-source byte rate (reads pause), the connect rate, and the
deny list. Each test fails if its limit is removed."""

import os
import socket
import time

from conftest import (closed_promptly, echo_timed, recv_exact, tcp_connect,
                      tcp_echo, udp_echo)

HOST = "127.0.0.1"


def test_max_bytes_echoes_the_budget_then_closes(echod):
    d = echod(policy_text="tcp-max-bytes 1k\n")
    data = bytes(range(256)) * 16  # 4 KiB
    with tcp_connect(HOST, d.port) as s:
        s.sendall(data)
        got = recv_exact(s, len(data), timeout=5)
    # Exactly the budget comes back, in order, then EOF.
    assert got == data[:1024]
    c = d.counters_when(lambda c: c["tcp_max_bytes_closes"] == 1)
    assert c["tcp_max_bytes_closes"] == 1
    assert c["tcp_bytes_out"] == 1024


def test_max_lifetime_ends_a_busy_connection(echod):
    d = echod(policy_text="tcp-max-lifetime 1s\ntcp-idle-timeout 30s\n")
    with tcp_connect(HOST, d.port) as s:
        t0 = time.monotonic()
        closed = False
        # Busy: a byte and its echo every 50 ms, never idle.
        while time.monotonic() - t0 < 5:
            try:
                s.sendall(b"x")
                b = s.recv(1)
            except (ConnectionResetError, BrokenPipeError):
                b = b""
            if b == b"":
                closed = True
                break
            time.sleep(0.05)
        lived = time.monotonic() - t0
    assert closed, "connection outlived tcp-max-lifetime"
    assert 0.9 <= lived < 3.0, lived
    c = d.counters()
    assert c["tcp_lifetime_closes"] == 1
    assert c["tcp_idle_timeouts"] == 0


def test_byte_rate_paces_reads(echod):
    # 64 KiB/s with a 64 KiB burst: 192 KiB cannot come back in under
    # (192 - 64) / 64 = 2 s, however fast the machine.
    d = echod(policy_text="tcp-byte-rate 64k/s burst 64k\n")
    data = bytes(range(256)) * 768
    with tcp_connect(HOST, d.port) as s:
        got, took = echo_timed(s, data)
    assert got == data
    assert took >= 1.8, f"{len(data)} bytes in {took:.2f}s: not paced"
    assert d.counters()["tcp_throttled"] >= 1


def test_connect_rate_per_source(echod):
    d = echod(policy_text="tcp-connect-rate 2/m burst 2\n")
    assert tcp_echo(HOST, d.port, b"one") == b"one"
    assert tcp_echo(HOST, d.port, b"two") == b"two"
    with tcp_connect(HOST, d.port) as s:
        assert closed_promptly(s), "third connection in a minute served"
    # Another source prefix (::1 is its own /56) still connects.
    assert tcp_echo("::1", d.port, b"v6") == b"v6"
    c = d.counters_when(lambda c: c["tcp_refused_rate"] == 1)
    assert c["tcp_refused_rate"] == 1


def test_deny_list_refuses_tcp_and_udp(echod):
    d = echod(policy_text="deny 127.0.0.0/8\n")
    with tcp_connect(HOST, d.port) as s:
        assert closed_promptly(s), "denied source served over TCP"
    try:
        udp_echo(HOST, d.port, b"denied", timeout=0.5)
        raise AssertionError("denied source served over UDP")
    except socket.timeout:
        pass
    # IPv6 loopback is not in the list.
    assert tcp_echo("::1", d.port, b"ok") == b"ok"
    c = d.counters_when(lambda c: c["udp_drop_deny"] == 1
                        and c["tcp_refused_deny"] == 1)
    assert c["tcp_refused_deny"] == 1
    assert c["udp_drop_deny"] == 1


def test_max_bytes_reached_exactly_closes_at_once(echod):
    """A peer that sends exactly the budget and then waits (no FIN of its
    own) gets its echo and the FIN at once, not at the idle timeout."""
    d = echod(policy_text="tcp-max-bytes 128k\ntcp-idle-timeout 10s\n")
    data = os.urandom(128 * 1024)
    with tcp_connect(HOST, d.port) as s:
        got, took = echo_timed(s, data, want=len(data) + 1, timeout=8)
    assert got == data
    assert took < 5, f"EOF after {took:.1f}s: waited for the idle timeout"
    c = d.counters_when(lambda c: c["tcp_max_bytes_closes"] == 1)
    assert c["tcp_max_bytes_closes"] == 1
    assert c["tcp_idle_timeouts"] == 0
