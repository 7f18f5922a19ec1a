"""build/echo-client against a real echod (and against broken servers)."""

import os
import re
import socket
import subprocess
import threading

import pytest

from conftest import CLIENT_BIN, free_port

pytestmark = pytest.mark.skipif(
    not CLIENT_BIN.exists(),
    reason=f"{CLIENT_BIN} not built (make build/echo-client)")

GREETING = b"Hey, GNU rocks!\n"
PROBE_LINE = re.compile(r"seq=(\d+) bytes=(\d+) rtt=\d+\.\d{3} ms")


def client(args, stdin=b"", timeout=20):
    return subprocess.run([str(CLIENT_BIN)] + [str(a) for a in args],
                          input=stdin, capture_output=True, timeout=timeout)


def test_tcp_greeting(echod):
    d = echod()
    r = client(["-p", d.port, "127.0.0.1"], GREETING)
    assert r.returncode == 0, r.stderr
    assert r.stdout == GREETING
    assert r.stderr == b""


def test_udp_greeting(echod):
    d = echod()
    r = client(["-u", "-p", d.port, "127.0.0.1"], GREETING)
    assert r.returncode == 0, r.stderr
    assert r.stdout == GREETING
    c = d.counters_when(lambda c: c["udp_echoed"] >= 1)
    assert c["udp_received"] == 1 and c["udp_echoed"] == 1
    assert c["tcp_accepted"] == 0


@pytest.mark.parametrize("proto", [[], ["-u"]], ids=["tcp", "udp"])
def test_ipv6(echod, proto):
    d = echod()
    r = client(proto + ["-6", "-p", d.port, "::1"], GREETING)
    assert r.returncode == 0, r.stderr
    assert r.stdout == GREETING


def test_one_mib_random_tcp(echod):
    d = echod()
    data = os.urandom(1024 * 1024)
    r = client(["-p", d.port, "127.0.0.1"], data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    c = d.counters_when(lambda c: c["tcp_closed"] >= 1)
    assert c["tcp_bytes_in"] == len(data)


@pytest.mark.parametrize("proto", [[], ["-u"]], ids=["tcp", "udp"])
def test_probes(echod, proto):
    d = echod()
    r = client(proto + ["-n", "5", "-p", d.port, "127.0.0.1"])
    out = r.stdout.decode()
    assert r.returncode == 0, (out, r.stderr)
    lines = out.splitlines()
    probes = [l for l in lines if PROBE_LINE.fullmatch(l)]
    assert [PROBE_LINE.fullmatch(l).group(1) for l in probes] == \
        ["1", "2", "3", "4", "5"]
    assert all(PROBE_LINE.fullmatch(l).group(2) == "64" for l in probes)
    assert "5 probes sent, 5 received, 0% loss" in out
    assert re.search(r"rtt min/avg/p50/p99/max = "
                     r"\d+\.\d+/\d+\.\d+/\d+\.\d+/\d+\.\d+/\d+\.\d+ ms", out)
    assert len(lines) == 5 + 3, lines  # probes, header, counts, rtt
    c = d.counters_when(lambda c: c["udp_echoed"] + c["tcp_bytes_out"] >= 5)
    if proto:
        assert c["udp_echoed"] == 5 and c["udp_bytes_in"] == 5 * 64
    else:
        assert c["tcp_bytes_in"] == 5 * 64


def test_connection_refused():
    port = free_port()  # nothing listens there
    r = client(["-p", port, "127.0.0.1"], GREETING)
    assert r.returncode == 2
    assert b"refused" in r.stderr.lower()
    assert r.stdout == b""


def test_udp_port_unreachable():
    port = free_port()
    r = client(["-u", "-p", port, "127.0.0.1"], GREETING)
    assert r.returncode == 2
    assert b"refused" in r.stderr.lower()


@pytest.mark.parametrize("args", [["-x"], ["-p", "0"], ["-n"], ["a", "b"],
                                  ["-4", "-6"]],
                         ids=["unknown", "port0", "missing", "two-hosts",
                              "both-families"])
def test_bad_usage(args):
    r = client(args)
    assert r.returncode == 64
    assert b"usage: echo-client" in r.stderr
    assert r.stdout == b""


def _one_shot_tcp_server(transform):
    """A TCP server for one connection that sends back transform(data)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(10)

    def serve():
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            buf = b""
            while True:
                b = conn.recv(65536)
                if not b:
                    break
                buf += b
            conn.sendall(transform(buf))
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv.getsockname()[1], t


def test_mismatch_exits_1():
    port, t = _one_shot_tcp_server(lambda b: b.replace(b"GNU", b"gnu"))
    r = client(["-p", port, "127.0.0.1"], GREETING)
    t.join(10)
    assert r.returncode == 1, r.stderr
    assert b"mismatch" in r.stderr


def test_short_echo_exits_1():
    port, t = _one_shot_tcp_server(lambda b: b[:-3])
    r = client(["-p", port, "127.0.0.1"], GREETING)
    t.join(10)
    assert r.returncode == 1, r.stderr
    assert b"short echo" in r.stderr


def test_udp_loss_exits_3():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:
        mute.bind(("127.0.0.1", 0))  # receives, never answers
        port = mute.getsockname()[1]
        r = client(["-u", "-t", "0.3", "-p", port, "127.0.0.1"], GREETING)
    assert r.returncode == 3, r.stderr
    assert b"no echo" in r.stderr
