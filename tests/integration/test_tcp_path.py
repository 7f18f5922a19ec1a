"""The TCP echo path (src/tcp.c): the copy path peeks at the receive queue,
sends what the peer's window takes, and consumes only that; the splice path
moves one transfer at a time socket -> pipe -> socket. So echod itself holds
no echo bytes in its memory: what a slow peer has not taken stays in the
kernel's queue, counted neither in nor out, or (splice) at most one
transfer of it in the one pipe that peer's connection holds."""

import os
import socket

import pytest

from conftest import recv_exact, stall_sending, tcp_connect


@pytest.mark.asan
@pytest.mark.parametrize("pipes", [0, 16])
def test_nothing_held_for_a_peer_that_does_not_read(echod, pipes):
    """A peer that sends 64 MiB and reads nothing: every byte echod took
    in it has also sent out (copy path: in == out), or waits in the one
    pipe lent to it, at most one 256 KiB transfer (splice path), and the
    rest is still the kernel's. Then it reads, and gets every byte back in
    order."""
    d = echod(policy_text=f"tcp-splice-pipes {pipes}\n",
              listen=("127.0.0.1",))
    # More than the kernel lets queue: reading by splice grows the
    # server's receive buffer up to net.ipv4.tcp_rmem's maximum.
    block = os.urandom(64 << 20)
    with tcp_connect("127.0.0.1", d.port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sent = stall_sending(s, block)
        assert sent < len(block), "the peer never stalled"
        if pipes == 0:
            c = d.counters_when(lambda c: c["tcp_bytes_in"] > 0)
            assert c["tcp_bytes_in"] == c["tcp_bytes_out"], c
        else:
            c = d.counters_when(lambda c: c["tcp_splice_pipes_busy"] == 1)
            assert c["tcp_splice_pipes_busy"] == 1, c
            held = c["tcp_bytes_in"] - c["tcp_bytes_out"]
            assert 0 < held <= 256 * 1024, c
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
        sent = stall_sending(s, block)
        got = recv_exact(s, 1 << 20, timeout=30)
        rest = stall_sending(s, block[sent:])
        s.shutdown(socket.SHUT_WR)
        got += recv_exact(s, sent + rest - len(got), timeout=30)
        assert got == block[: sent + rest]
