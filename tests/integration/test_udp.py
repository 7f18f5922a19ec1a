"""UDP echo: exact datagrams, reply source address, oversize drops, counters."""

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (ECHOD_BIN, Echod, free_port, parse_logfmt, udp_echo,
                      udp_socket)


@pytest.mark.asan
@pytest.mark.parametrize("size", [0, 1, 1472, 65507])
def test_udp_echo_ipv4(echod, size):
    d = echod()
    payload = os.urandom(size)
    data, addr = udp_echo("127.0.0.1", d.port, payload)
    assert data == payload
    assert addr == ("127.0.0.1", d.port)


@pytest.mark.asan
def test_udp_echo_ipv6_largest(echod):
    d = echod()
    payload = os.urandom(65507)
    data, addr = udp_echo("::1", d.port, payload)
    assert data == payload
    assert addr == ("::1", d.port)


def test_reply_comes_from_destination_address(echod):
    """Bound to 0.0.0.0, a datagram sent to 127.0.0.2 is answered from
    127.0.0.2 (IP_PKTINFO), not from the route's preferred 127.0.0.1."""
    d = echod(listen=["0.0.0.0"])
    with udp_socket(socket.AF_INET, "127.0.0.1") as s:
        s.settimeout(2)
        s.sendto(b"who answers?", ("127.0.0.2", d.port))
        data, addr = s.recvfrom(65536)
    assert data == b"who answers?"
    assert addr == ("127.0.0.2", d.port)


def test_connected_client_to_secondary_loopback(echod):
    """A connected UDP socket only accepts replies from where it sent."""
    d = echod(listen=["0.0.0.0"])
    with udp_socket() as s:
        s.settimeout(2)
        s.connect(("127.0.0.2", d.port))
        s.send(b"connected")
        assert s.recv(65536) == b"connected"


@pytest.mark.asan
def test_oversize_dropped_whole(echod):
    d = echod(policy_text="udp-max-datagram 512\n")
    with udp_socket() as s:
        s.settimeout(0.5)
        big = os.urandom(513)
        s.sendto(big, ("127.0.0.1", d.port))
        with pytest.raises(socket.timeout):
            s.recvfrom(65536)
        ok = os.urandom(512)
        s.settimeout(2)
        s.sendto(ok, ("127.0.0.1", d.port))
        data, addr = s.recvfrom(65536)
        assert data == ok
        assert addr == ("127.0.0.1", d.port)
    c = d.counters_when(lambda c: c["udp_echoed"] >= 1)
    assert c["udp_drop_oversize"] == 1
    assert c["udp_received"] == 2
    assert c["udp_echoed"] == 1


def test_udp_counters_match_traffic(echod):
    d = echod()
    sizes = [0, 1, 100, 1472, 9000, 65507]
    total = 0
    for i, size in enumerate(sizes):
        host = "127.0.0.1" if i % 2 == 0 else "::1"
        payload = os.urandom(size)
        data, _ = udp_echo(host, d.port, payload)
        assert data == payload
        total += size
    n = len(sizes)
    c = d.counters_when(lambda c: c["udp_echoed"] >= n)
    assert c["udp_received"] == n
    assert c["udp_echoed"] == n
    assert c["udp_bytes_in"] == total
    assert c["udp_bytes_out"] == total
    assert c["udp_drop_oversize"] == 0
    assert c["udp_send_errors"] == 0


def test_udp_burst_from_many_sockets(echod):
    """64 sockets each send one distinct datagram before anyone reads: every
    reply goes to its own sender (a recvmmsg batch keeps them apart)."""
    d = echod()
    socks = []
    try:
        for i in range(64):
            s = udp_socket()
            s.settimeout(2)
            socks.append(s)
        for i, s in enumerate(socks):
            s.sendto(b"datagram-%d-" % i + os.urandom(i), ("127.0.0.1", d.port))
        for i, s in enumerate(socks):
            data, addr = s.recvfrom(65536)
            assert data.startswith(b"datagram-%d-" % i)
            assert len(data) == len(b"datagram-%d-" % i) + i
            assert addr == ("127.0.0.1", d.port)
    finally:
        for s in socks:
            s.close()


def test_drop_log_lines_are_limited_per_source(echod):
    """A source over its rate gets a few drop lines, then only counters:
    it cannot make echod write a line per datagram."""
    d = echod(policy_text="udp-rate 1/s burst 1\nudp-loop-guard off\n")
    sent = 40
    with udp_socket() as s:
        s.settimeout(0.5)
        for i in range(sent):
            s.sendto(b"r%d" % i, ("127.0.0.1", d.port))
        s.recv(100)  # the one the burst allows
    c = d.counters_when(lambda c: c["udp_received"] == sent)
    assert c["udp_received"] == sent
    assert c["udp_drop_rate"] >= sent - 2
    drops = [l for l in d.log_lines()
             if "event=udp_drop " in l and "reason=rate" in l]
    assert 1 <= len(drops) <= 3, drops


# ---------------------------------------------------------------- receive buffer

def _receive_buffers(port):
    """SO_RCVBUF of every UDP socket bound to port, as ss reads it (the
    kernel's figure: twice the bytes set)."""
    out = subprocess.run(["ss", "-uanmH", f"sport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    return [int(b) for b in re.findall(r"\brb(\d+)\b", out)]


def _rmem_max():
    with open("/proc/sys/net/core/rmem_max") as f:
        return int(f.read())


def test_receive_buffer_is_the_policys_on_every_socket(echod):
    """udp-receive-buffer sets each worker's v4 and v6 sockets; the
    default is 4m (root lifts net.core.rmem_max)."""
    if os.geteuid() != 0:
        pytest.skip("past net.core.rmem_max only as root")
    d = echod(policy_text="udp-receive-buffer 1m\n", workers=2)
    assert _receive_buffers(d.port) == [2 << 20] * 4
    line = d.wait_event("udp_receive_buffer")
    assert parse_logfmt(line)["bytes"] == "1048576", line
    assert udp_echo("127.0.0.1", d.port, b"x")[0] == b"x"
    d = echod()
    assert _receive_buffers(d.port) == [8 << 20] * 2
    # Past the host's cap: root's CAP_NET_ADMIN lifts it.
    big = 2 * _rmem_max()
    if big <= 256 << 20:
        d = echod(policy_text=f"udp-receive-buffer {big}\n")
        assert _receive_buffers(d.port) == [2 * big] * 2


def test_receive_buffer_capped_without_cap_net_admin_says_so(echod, tmp_path):
    """Without CAP_NET_ADMIN the host's rmem_max caps it: served, with a
    warning naming what it got and what was asked."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux)")
    cap = _rmem_max()
    if cap >= 256 << 20:
        pytest.skip(f"net.core.rmem_max is {cap}: nothing caps 256m")
    policy = tmp_path / "rcvbuf.conf"
    policy.write_text("udp-receive-buffer 256m\n")
    port = free_port()
    d = Echod(["setpriv", "--bounding-set=-net_admin", "--inh-caps=-all",
               str(ECHOD_BIN), "-c", str(policy), "-l", "127.0.0.1", "-p",
               str(port), "-w", "1"], port, policy)
    try:
        f = parse_logfmt(d.wait_event("udp_receive_buffer"))
        assert (f["level"], f["bytes"], f["asked"]) == \
            ("warn", str(cap), str(256 << 20)), f
        d.wait_ready()
        assert _receive_buffers(port) == [2 * cap]
        assert udp_echo("127.0.0.1", port, b"y")[0] == b"y"
        assert d.stop() == 0
    finally:
        d.kill_all()


def test_a_larger_buffer_from_systemd_is_kept(tmp_path):
    """A passed socket whose buffer systemd already made larger
    (ReceiveBuffer=16M) keeps it: echod only ever raises it."""
    if os.geteuid() != 0:
        pytest.skip("SO_RCVBUFFORCE needs root")
    port = free_port()
    launcher = Path(__file__).resolve().parent / "sockact_launch.py"
    d = Echod([sys.executable, str(launcher), f"udpbig,127.0.0.1,{port}",
               "--", str(ECHOD_BIN), "-w", "1"], port, None)
    try:
        f = parse_logfmt(d.wait_event("udp_receive_buffer"))
        assert (f["level"], f["bytes"]) == ("info", str(16 << 20)), f
        d.wait_ready()
        assert _receive_buffers(port) == [32 << 20]
        assert udp_echo("127.0.0.1", port, b"z")[0] == b"z"
    finally:
        d.kill_all()
