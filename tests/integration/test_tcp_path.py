"""The TCP echo path: echod peeks at the receive queue, sends what the
peer's window takes, and consumes only that (src/tcp.c). So echod itself
holds no echo bytes: what a slow peer has not taken stays in the kernel's
queue, counted neither in nor out."""

import os
import socket

import pytest

from conftest import recv_exact, tcp_connect


def _stall(s, block):
    """Send until the socket has been full for a moment (echod stopped
    reading this peer, which reads nothing); the bytes sent."""
    s.setblocking(False)
    sent = 0
    view = memoryview(block)
    while sent < len(block):
        try:
            sent += s.send(view[sent:])
        except BlockingIOError:
            import select
            _, w, _ = select.select([], [s], [], 0.5)
            if not w:
                break
    s.setblocking(True)
    return sent


@pytest.mark.asan
def test_nothing_held_for_a_peer_that_does_not_read(echod):
    """A peer that sends 16 MiB and reads nothing: every byte echod took
    in it has also sent out (in == out), and the rest is still the
    kernel's. Then it reads, and gets every byte back in order."""
    d = echod(listen=("127.0.0.1",))
    block = os.urandom(16 << 20)
    with tcp_connect("127.0.0.1", d.port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sent = _stall(s, block)
        assert sent < len(block), "the peer never stalled"
        c = d.counters_when(lambda c: c["tcp_bytes_in"] > 0)
        assert c["tcp_bytes_in"] == c["tcp_bytes_out"], c
        assert c["tcp_bytes_in"] < sent
        s.shutdown(socket.SHUT_WR)
        assert recv_exact(s, sent, timeout=30) == block[:sent]


@pytest.mark.asan
def test_tcp_buffer_above_the_read_chunk(echod):
    """tcp-buffer larger than the worker's 256 KiB read chunk: a slow
    peer's reads are still bounded by the chunk (ASan would see an
    overflow), and the echo is exact."""
    d = echod(policy_text="tcp-buffer 4m\n", listen=("127.0.0.1",))
    block = os.urandom(6 << 20)
    with tcp_connect("127.0.0.1", d.port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sent = _stall(s, block)
        got = recv_exact(s, 1 << 20, timeout=30)
        rest = _stall(s, block[sent:])
        s.shutdown(socket.SHUT_WR)
        got += recv_exact(s, sent + rest - len(got), timeout=30)
        assert got == block[: sent + rest]
