"""What a compromised process can still reach, checked from outside.

gdb plays the attacker: attached as root to a sandboxed worker, it writes
the worker's memory or makes it call what an exploit would call. Each test
names the SECURITY.md promise it checks (the table "What each process can
still do"). Every process is stopped by pid at teardown.
"""

import os
import re
import shutil
import socket
import subprocess

import pytest

from conftest import free_port, run_echod
from test_sandbox import (  # noqa: F401 (fixtures)
    chroot_dir, policy, needs_root, wait_worker_hardened, serves_tcp_udp,
    status)

GDB = shutil.which("gdb")
needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb is not installed")


def gdb(pid, *commands, timeout=30):
    """Attach gdb to pid, run commands, detach; gdb's output."""
    argv = [GDB, "-nx", "-batch", "-p", str(pid),
            "-ex", "set confirm off", "-ex", "set pagination off"]
    for c in commands:
        argv += ["-ex", c]
    r = subprocess.run(argv, capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return (r.stdout + r.stderr).decode(errors="replace")


def writable_shared_mappings(pid):
    """(range, perms, inode, path) of every writable MAP_SHARED mapping."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            perms = fields[1]
            if "w" in perms and perms[3] == "s":
                out.append((fields[0], perms, fields[4],
                            fields[5] if len(fields) > 5 else ""))
    return out


# ------------------------------------------------- 1. no shared memory


@needs_root
def test_no_writable_memory_shared_between_processes(policy, echod):
    d = echod(args=["-c", policy()], workers=3)
    pids = [d.pid] + d.workers()
    assert len(pids) == 4
    for pid in pids[1:]:
        wait_worker_hardened(pid)
    for pid in pids:
        assert writable_shared_mappings(pid) == [], pid
    assert d.stop() == 0


@needs_root
@needs_gdb
def test_garbage_in_one_workers_counters_spares_the_others(policy, echod):
    """A worker whose counters say a million connections are open refuses
    its own clients only: the other worker still admits and echoes."""
    d = echod(args=["-c", policy("tcp-max-connections 100\n")], workers=2)
    bad, good = d.workers()
    wait_worker_hardened(bad)
    out = gdb(bad, "set var counters->tcp_active = 1000000",
              "print counters->tcp_active")
    assert "= 1000000" in out, out
    echoed = refused = 0
    for i in range(40):
        # Workers are chosen by source prefix: one /24 per connection.
        s = socket.socket()
        try:
            s.settimeout(3)
            s.bind((f"127.0.{i + 1}.1", 0))
            s.connect(("127.0.0.1", d.port))
            s.sendall(b"x%d" % i)
            try:
                got = s.recv(16)
            except ConnectionResetError:
                got = b""
            if got:
                echoed += 1
            else:
                refused += 1
        finally:
            s.close()
    assert echoed > 0 and refused > 0, (echoed, refused)
    c = d.counters()
    # The refusals are the broken worker's own: the other's share is intact.
    assert c["tcp_refused_max"] == refused, c
    assert c["tcp_accepted"] == echoed, c
    assert d.stop() == 0



def test_tcp_cap_below_worker_count_is_refused(tmp_path):
    """Every worker needs a share of tcp-max-connections of at least one."""
    conf = tmp_path / "cap.conf"
    conf.write_text("tcp-max-connections 3\n")
    r = run_echod(["-c", str(conf), "-l", "127.0.0.1", "-p", free_port(),
                   "-w", "4"])
    assert r.returncode == 78, r.stderr
    assert b"tcp-max-connections 3 is split among 4 workers" in r.stderr
