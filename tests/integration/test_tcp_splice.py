"""The TCP splice path (src/tcp.c, src/pipepool.c): each transfer moves a
connection's bytes socket -> pipe -> the same socket with splice(2), through
a pipe lent by the worker's bounded pool. Clients that write as fast as
their sockets take (no cap on what is in flight) get back exactly their
bytes, in order, up to a FIN after the last one; the pool never grows past
tcp-splice-pipes; a transfer that finds it empty takes the copy path and is
counted; a pipe is held only while bytes wait in it; a refused splice is
said once and the copy path serves."""

import os
import re
import selectors
import shutil
import socket
import time

import pytest

from conftest import fd_targets
from conftest import ECHOD_BIN, Echod, children_of, free_port, is_event, \
    recv_exact, stall_sending, tcp_connect

# The bench's rates: one source moving many MiB is measured, not throttled.
UNLIMITED = ("tcp-byte-rate unlimited\ntcp-connect-rate unlimited\n")
SPLICE = UNLIMITED + "tcp-splice-pipes 16\n"  # the default is the copy path
TRANSFER = 256 * 1024  # the most one splice takes in (TCP_READ_CHUNK)


def unbounded_echo(port, conns, nbytes, timeout=60.0):
    """conns connections, each writing its own nbytes of random data as
    fast as its socket takes them while reading its echo, then a
    half-close (SHUT_WR) and reads to the server's FIN. Asserts each echo
    is exactly what that connection sent; returns the bytes echoed."""
    sel = selectors.DefaultSelector()
    state = []
    for i in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setblocking(False)
        st = {"s": s, "data": os.urandom(nbytes), "sent": 0,
              "got": bytearray(), "eof": False, "fin": False}
        state.append(st)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
    deadline = time.monotonic() + timeout
    open_ = conns
    try:
        while open_ > 0:
            assert time.monotonic() < deadline, "echo not back in time"
            for key, ev in sel.select(1.0):
                st = key.data
                s = st["s"]
                if ev & selectors.EVENT_WRITE and not st["fin"]:
                    try:
                        st["sent"] += s.send(
                            memoryview(st["data"])[st["sent"]:
                                                   st["sent"] + 65536])
                    except BlockingIOError:
                        pass
                    if st["sent"] == nbytes:
                        s.shutdown(socket.SHUT_WR)
                        st["fin"] = True
                        sel.modify(s, selectors.EVENT_READ, st)
                if ev & selectors.EVENT_READ:
                    try:
                        chunk = s.recv(65536)
                    except BlockingIOError:
                        continue
                    if chunk:
                        st["got"] += chunk
                        continue
                    # The server's FIN: after exactly the bytes sent.
                    assert st["fin"], "FIN before the client's own"
                    assert len(st["got"]) == nbytes
                    assert bytes(st["got"]) == st["data"], "echo differs"
                    sel.unregister(s)
                    s.close()
                    open_ -= 1
    finally:
        for st in state:
            st["s"].close()
    return conns * nbytes


@pytest.mark.parametrize("conns,nbytes", [(1, 24 << 20), (64, 1 << 20)])
def test_unbounded_writes_are_echoed_byte_for_byte(echod, conns, nbytes):
    d = echod(policy_text=SPLICE, listen=("127.0.0.1",))
    total = unbounded_echo(d.port, conns, nbytes)
    c = d.counters_when(lambda c: c["tcp_closed"] == conns)
    assert c["tcp_closed"] == conns, c
    assert c["tcp_bytes_in"] == c["tcp_bytes_out"] == total, c
    # The splice path carried them (the pool of 16 for 64 writers runs
    # dry at times: those transfers are the copy path's, and counted).
    assert c["tcp_splice_bytes"] > 0, c
    if conns == 1:
        assert c["tcp_splice_bytes"] == total, c
        assert c["tcp_splice_fallbacks"] == 0, c
    assert d.stop() == 0


def test_copy_path_alone_when_the_policy_has_no_pipes(echod):
    """The default, tcp-splice-pipes 0: the copy path, no pipe in the
    worker."""
    d = echod(policy_text=UNLIMITED, listen=("127.0.0.1",))
    [w] = d.workers()
    assert pool_pipes(w) == 0
    total = unbounded_echo(d.port, 8, 1 << 20)
    c = d.counters_when(lambda c: c["tcp_closed"] == 8)
    assert c["tcp_bytes_out"] == total, c
    assert c["tcp_splice_bytes"] == 0 and c["tcp_splice_fallbacks"] == 0, c
    assert d.stop() == 0


def pool_pipes(pid):
    """Pipes the process holds both ends of: the pool's (its counters
    pipe is a write end alone)."""
    ends = {}
    for target in fd_targets(pid).values():
        if target.startswith("pipe:"):
            ends[target] = ends.get(target, 0) + 1
    return sum(1 for n in ends.values() if n == 2)


def test_pool_bound_fallback_and_no_idle_holder(echod):
    """tcp-splice-pipes 2 and four peers that send and do not read: two
    keep a pipe each with their unsent echo in it, the others find the
    pool empty and take the copy path (counted); the worker never holds
    more than the two pipes. Once the peers have read their echo, no
    connection holds a pipe although all four are open."""
    d = echod(policy_text=UNLIMITED + "tcp-splice-pipes 2\n",
              listen=("127.0.0.1",))
    [w] = d.workers()
    assert pool_pipes(w) == 2
    # More than the kernel lets queue (the server's receive buffer grows
    # to net.ipv4.tcp_rmem's 32 MiB here).
    block = os.urandom(64 << 20)
    socks, sent = [], []
    try:
        for _ in range(4):
            s = tcp_connect("127.0.0.1", d.port)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            socks.append(s)
            sent.append(stall_sending(s, block))
            assert sent[-1] < len(block), "the peer never stalled"
        c = d.counters_when(lambda c: c["tcp_splice_pipes_busy"] == 2)
        assert c["tcp_splice_pipes_busy"] == 2, c
        assert c["tcp_splice_fallbacks"] >= 2, c
        # Held echo: at most one transfer in each of the two pipes.
        assert 0 < c["tcp_bytes_in"] - c["tcp_bytes_out"] <= 2 * TRANSFER, c
        assert pool_pipes(w) == 2
        for s, n in zip(socks, sent):
            assert recv_exact(s, n, timeout=30) == block[:n]
        c = d.counters_when(lambda c: c["tcp_splice_pipes_busy"] == 0)
        assert c["tcp_splice_pipes_busy"] == 0, c
        assert c["tcp_active"] == 4, c
        assert c["tcp_bytes_in"] == c["tcp_bytes_out"] == sum(sent), c
    finally:
        for s in socks:
            s.close()
    assert pool_pipes(w) == 2
    assert d.stop() == 0


@pytest.mark.skipif(shutil.which("strace") is None,
                    reason="strace is missing (.ci/deps installs it)")
def test_refused_splice_is_said_once_and_the_copy_path_serves(tmp_path):
    """splice(2) refused (EPERM, as an outer sandbox's filter would): one
    event=tcp_splice_refused line, and every echo still exact, by the copy
    path. strace injects the error by turning the call into an invalid
    one, which the kernel shows echod's seccomp filter again: the policy
    logs violations instead of killing (`sandbox-violation log`)."""
    port = free_port()
    policy = tmp_path / "p.conf"
    policy.write_text(SPLICE + "sandbox-violation log\n")
    argv = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=splice",
            "-e", "inject=splice:error=EPERM", str(ECHOD_BIN), "-c",
            str(policy), "-w", "1", "-l", "127.0.0.1", "-p", str(port)]
    d = Echod(argv, port, policy)
    try:
        d.wait_ready(timeout=20)
        # Counters come from echod's supervisor, strace's child.
        d.pid = children_of(d.proc.pid)[0]
        total = unbounded_echo(port, 4, 1 << 20)
        total += unbounded_echo(port, 1, 2 << 20)
        c = d.counters_when(lambda c: c["tcp_closed"] == 5)
        assert c["tcp_bytes_out"] == total, c
        assert c["tcp_splice_bytes"] == 0, c
        refused = [l for l in d.log_lines()
                   if is_event(l, "tcp_splice_refused")]
        assert len(refused) == 1, refused
        assert re.search(r'error="Operation not permitted"', refused[0])
    finally:
        d.kill_all()
