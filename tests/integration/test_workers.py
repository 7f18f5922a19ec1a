"""Several workers: all serve, and a killed worker is replaced."""

import os
import socket
import signal
import struct

from conftest import (is_event, parse_logfmt, tcp_echo, udp_echo,
                      wait_until)


def _serves(d):
    data = os.urandom(30_000)
    assert tcp_echo("127.0.0.1", d.port, data) == data
    assert tcp_echo("::1", d.port, data) == data
    assert udp_echo("127.0.0.1", d.port, data[:1000]) == (
        data[:1000], ("127.0.0.1", d.port))
    assert udp_echo("::1", d.port, data[:1000]) == (data[:1000], ("::1", d.port))


def test_two_workers_echo(echod):
    d = echod(workers=2)
    assert len(d.workers()) == 2
    started = [l for l in d.log_lines() if is_event(l, "worker_started")]
    assert len(started) == 2
    _serves(d)


def test_killed_worker_is_replaced(echod):
    d = echod(workers=2)
    original = d.workers()
    assert len(original) == 2
    _serves(d)
    # Kill each worker in turn, so whichever serves loopback is hit.
    for n, victim in enumerate(original, start=1):
        before = set(d.workers())
        mark = len(d.log_lines())
        os.kill(victim, signal.SIGKILL)
        died = d.wait_event("worker_died", timeout=5, start=mark)
        f = parse_logfmt(died)
        assert f["pid"] == str(victim)
        assert f["signal"] == "KILL"
        new = wait_until(
            lambda: set(d.workers()) - before - {victim}
            if len(d.workers()) == 2 else None,
            timeout=5, what="a replacement worker")
        assert len(new) == 1
        assert victim not in d.workers()
        _serves(d)
        c = d.counters()
        assert c["worker_restarts"] == n
    assert not set(d.workers()) & set(original)
    assert d.stop() == 0


def _socket_owners(pids):
    """{socket inode: pid} of every socket the processes hold."""
    owners = {}
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[int(target[8:-1])] = pid
    return owners


def _accepted_inodes(port):
    """{(peer address, peer port): inode} of the established IPv4 TCP
    sockets on local port `port` (/proc/net/tcp)."""
    found = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], \
                fields[9]
            if state != "01" or int(local.split(":")[1], 16) != port:
                continue
            addr, rport = remote.split(":")
            host = socket.inet_ntoa(struct.pack("<I", int(addr, 16)))
            found[(host, int(rport, 16))] = int(inode)
    return found


def _steering(d):
    """{source address: worker pid} for 64 /24s of 127.0.0.0/8, two
    addresses each: the worker holding each accepted connection."""
    conns = []
    try:
        for i in range(1, 65):
            for host in (1, 2):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                conns.append(s)
                s.settimeout(5)
                s.bind((f"127.0.{i}.{host}", 0))
                s.connect(("127.0.0.1", d.port))
        # Echoed: accepted by a worker, which holds the socket.
        for n, s in enumerate(conns):
            s.sendall(b"%d" % n)
            assert s.recv(16) == b"%d" % n
        inodes = _accepted_inodes(d.port)
        owners = _socket_owners(d.workers())
        return {s.getsockname()[0]: owners[inodes[s.getsockname()]]
                for s in conns}
    finally:
        for s in conns:
            s.close()


def _partition(where):
    """Which /24s share a worker, whatever the workers are called."""
    groups = {}
    for i in range(1, 65):
        groups.setdefault(where[f"127.0.{i}.1"], set()).add(i)
    return {frozenset(g) for g in groups.values()}


def test_steering_key_is_new_at_each_start(echod):
    """The worker a prefix lands on is a keyed hash's, the key drawn at
    each start: two starts group the same 64 /24s differently (under two
    independent keys, 64 prefixes over 4 workers are grouped alike with
    negligible probability; unkeyed, always), while in each, both
    addresses of a /24 land on one worker (each source is counted in
    exactly one)."""
    partitions = []
    for _ in range(2):
        d = echod(workers=4, listen=("127.0.0.1",),
                  policy_text="tcp-connect-rate unlimited\n")
        where = _steering(d)
        for i in range(1, 65):
            assert where[f"127.0.{i}.1"] == where[f"127.0.{i}.2"], i
        assert len(set(where.values())) == 4
        partitions.append(_partition(where))
        assert d.stop() == 0
    assert partitions[0] != partitions[1]
