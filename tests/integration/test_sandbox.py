"""The privileged bootstrap and the sandbox, seen from outside.

What echod promises after event=ready (src/echod.c, privdrop.c, sandbox.c,
sockact.c): as root, every process runs as the resolved user in an empty
chroot, with no capability (bounding set included), no_new_privs, seccomp
filter mode, core and file size limits 0 (workers: no new processes), and
only its sockets, epoll and signalfd open. Without root it still drops its
capabilities and enters seccomp, and says which steps it skipped. Any step
it cannot take is a refusal: event=hardening_failed and exit 71.

Every process started here is stopped by pid at teardown; every wait is
bounded and synchronised on the log or /proc, never on a sleep.
"""

import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import proc_status as status
from conftest import port_free_on as conftest_port_free_on
from conftest import fd_targets
from conftest import (ECHOD_BIN, workers_of, EXIT_OSERR, READY_TIMEOUT, ROOT,
                      kill_pids,
                      children_of, free_port, is_event, parse_logfmt,
                      run_echod, tcp_echo, udp_echo, wait_until)

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not IS_ROOT, reason="needs root (CI runs as root): chroot, user change "
    "and the bounding set are only taken by a root echod")

LAUNCHER = Path(__file__).resolve().parent / "sockact_launch.py"
SETPRIV = shutil.which("setpriv")
ZERO_CAPS = "0000000000000000"
CAP_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


# ---------------------------------------------------------------- helpers


def resolved_user():
    """What echod resolves without 'user': echod if it exists, else nobody."""
    for name in ("echod", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return pw.pw_name, pw.pw_uid, pw.pw_gid
    pytest.skip("neither user echod nor nobody exists on this system")


def nobody():
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody on this system")
    return pw.pw_uid, pw.pw_gid


def limits(pid):
    """/proc/PID/limits as {name: (soft, hard)}."""
    out = {}
    with open(f"/proc/{pid}/limits") as f:
        next(f)
        for line in f:
            m = re.match(r"(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
            if m:
                out[m.group(1)] = (m.group(2), m.group(3))
    return out


def fd_access(pid, fd):
    """O_RDONLY, O_WRONLY or O_RDWR from /proc/PID/fdinfo/FD."""
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        flags = int(next(l for l in f if l.startswith("flags:")).split()[1],
                    8)
    return {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}[flags & 3]


def assert_only_sockets_open(pid, worker):
    """Sockets, epoll and signalfd; stdin and stdout /dev/null; stderr
    write-only. Pipes: a worker holds the write end of its own counters
    pipe (gather.c) and the read end of its own policy pipe (reload.c);
    the supervisor the other end of each. A worker also holds both ends
    of each pipe of its splice pool, at most tcp-splice-pipes (none by
    default, 16 in these tests' bound; pipepool.c)."""
    bad = {}
    pipes = []
    for fd, target in sorted(fd_targets(pid).items()):
        if target.startswith("socket:[") or target in (
                "anon_inode:[eventpoll]", "anon_inode:[signalfd]"):
            continue
        if fd <= 1 and target == "/dev/null":
            continue
        if fd == 2:
            if fd_access(pid, 2) != "O_WRONLY":
                bad[fd] = f"{target} open {fd_access(pid, 2)}"
            continue
        if target.startswith("pipe:["):
            pipes.append((fd, fd_access(pid, fd), target))
            continue
        bad[fd] = target
    assert not bad, f"pid {pid} holds unexpected fds: {bad}"
    ends = sorted(a for _, a, _ in pipes)
    if worker:
        by_pipe = {}
        for _, access, target in pipes:
            by_pipe.setdefault(target, []).append(access)
        pool = [t for t, a in by_pipe.items()
                if sorted(a) == ["O_RDONLY", "O_WRONLY"]]
        assert len(pool) <= 16, (pid, pipes)
        rest = sorted(a for t, acc in by_pipe.items() if t not in pool
                      for a in acc)
        assert rest == ["O_RDONLY", "O_WRONLY"], (pid, pipes)
    else:
        assert pipes and ends.count("O_RDONLY") == ends.count("O_WRONLY"), \
            (pid, pipes)


def assert_echod_holds_only_sockets(d):
    """Supervisor and (hardened) workers: sockets and the loop's fds only."""
    for pid in [d.pid] + d.workers():
        if pid != d.pid:
            wait_worker_hardened(pid)
        assert_only_sockets_open(pid, worker=pid != d.pid)


def wait_worker_hardened(pid):
    """A worker hardens itself (RLIMIT_NPROC 0, then its own seccomp filter
    on top of the supervisor's) just after the fork, so possibly just after
    the supervisor logged event=ready or worker_started: wait for it."""
    def done():
        st = status(pid)
        return (limits(pid)["Max processes"][0] == "0"
                and st.get("Seccomp_filters", "2") == "2")
    wait_until(done, 2.0, what=f"worker {pid} to harden itself")


def assert_sandboxed(pid, uid, gid, worker, bounding_dropped=True):
    """The state every echod process must be in once it serves."""
    if worker:
        wait_worker_hardened(pid)
    st = status(pid)
    who = f"pid {pid} ({'worker' if worker else 'supervisor'})"
    assert st["Uid"].split() == [str(uid)] * 4, f"{who}: Uid {st['Uid']}"
    assert st["Gid"].split() == [str(gid)] * 4, f"{who}: Gid {st['Gid']}"
    for f in CAP_FIELDS:
        if f == "CapBnd" and not bounding_dropped:
            continue
        assert st[f] == ZERO_CAPS, f"{who}: {f} {st[f]}"
    assert st["NoNewPrivs"] == "1", f"{who}: NoNewPrivs {st['NoNewPrivs']}"
    assert st["Seccomp"] == "2", f"{who}: Seccomp {st['Seccomp']}"
    if "Seccomp_filters" in st:
        # The supervisor's filter, and for a worker its own stacked on it.
        want = "2" if worker else "1"
        assert st["Seccomp_filters"] == want, f"{who}: {st['Seccomp_filters']}"
    lim = limits(pid)
    assert lim["Max core file size"] == ("0", "0"), f"{who}: {lim}"
    if worker:
        assert lim["Max processes"] == ("0", "0"), f"{who}: {lim}"
    return st


def port_free_on(port, hosts=("127.0.0.1", "::1")):
    """TCP and UDP `port` can be bound on every host in hosts."""
    return conftest_port_free_on(port, hosts)


def require_port_7(hosts=("127.0.0.1", "::1")):
    if not port_free_on(7, hosts):
        pytest.skip(f"TCP or UDP port 7 is in use on {', '.join(hosts)}")


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_ready_or_port_taken(d, port):
    """Ready, or skip if another program took `port` since we looked."""
    line = d.wait_for_line(
        lambda l: is_event(l, "ready") or is_event(l, "bind_failed"),
        READY_TIMEOUT, what="event=ready")
    if is_event(line, "bind_failed"):
        pytest.skip(f"port {port} was taken by another program: {line}")


def event_fields(d, event):
    return parse_logfmt(d.wait_event(event, timeout=5))


def serves_tcp_udp(port, hosts=("127.0.0.1",)):
    for host in hosts:
        payload = os.urandom(4000)
        assert tcp_echo(host, port, payload) == payload, f"TCP {host}"
        dgram = os.urandom(700)
        assert udp_echo(host, port, dgram) == (dgram, (host, port)), \
            f"UDP {host}"


def reachable_by_others(path):
    """Every directory on the way is o+x and the file is o+rx."""
    p = Path(path).resolve()
    for d in p.parents:
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(p).st_mode
    return bool(mode & stat.S_IXOTH and mode & stat.S_IROTH)


def as_nobody(argv):
    if SETPRIV is None:
        pytest.skip("setpriv (util-linux) is missing: cannot run as nobody")
    uid, gid = nobody()
    return [SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
            "--"] + [str(a) for a in argv]


# ---------------------------------------------------------------- 1. /proc


@needs_root
def test_every_process_is_sandboxed(chroot_dir, policy, echod):
    name, uid, gid = resolved_user()
    d = echod(args=["-c", policy()], workers=2)
    workers = d.workers()
    assert len(workers) == 2, workers
    sb = event_fields(d, "sandboxed")
    assert sb["user"] == name and sb["uid"] == str(uid), sb
    assert sb["chroot"] == chroot_dir and sb["seccomp"] == "kill", sb
    for pid in [d.pid] + workers:
        worker = pid != d.pid
        st = assert_sandboxed(pid, uid, gid, worker)
        assert uid != 0 and gid != 0
        assert st["Groups"] == "", f"pid {pid}: Groups {st['Groups']!r}"
        assert os.readlink(f"/proc/{pid}/root") == chroot_dir
        assert limits(pid)["Max file size"] == ("0", "0")
        assert_only_sockets_open(pid, worker=pid != d.pid)
    assert os.listdir(chroot_dir) == []
    # And it still does its job from in there.
    serves_tcp_udp(d.port, ("127.0.0.1", "::1"))
    assert d.stop() == 0


# ---------------------------------------------------------------- 2. port 7


@needs_root
def test_serves_port_7_on_loopback(policy, echod):
    require_port_7()
    d = echod(args=["-c", policy()], port=7, workers=1, wait=False)
    wait_ready_or_port_taken(d, 7)
    for host in ("127.0.0.1", "::1"):
        data = b"RFC 862 \x00\xff" + os.urandom(3000)
        assert tcp_echo(host, 7, data) == data
        dgram = b"\x00udp\xff" + os.urandom(500)
        assert udp_echo(host, 7, dgram) == (dgram, (host, 7))
    assert d.stop() == 0


# ---------------------------------------------------------------- 3, 4. workers


def _replaced(d, victim, sig, expect_signal):
    before = set(d.workers())
    n = len(before)
    mark = len(d.log_lines())
    os.kill(victim, sig)
    died = parse_logfmt(d.wait_for_line(
        lambda l: is_event(l, "worker_died") and f"pid={victim} " in l + " ",
        5.0, mark, f"event=worker_died pid={victim}"))
    assert died["signal"] == expect_signal, died
    new = wait_until(
        lambda: sorted(set(d.workers()) - before)
        if len(d.workers()) == n else None,
        5.0, what="a replacement worker")
    assert len(new) == 1 and victim not in d.workers()
    return died, new[0]


@needs_root
def test_sigsys_worker_is_reported_and_replaced(policy, echod):
    name, uid, gid = resolved_user()
    d = echod(args=["-c", policy()], workers=1)
    [victim] = d.workers()
    serves_tcp_udp(d.port)
    died, new = _replaced(d, victim, signal.SIGSYS, "SIGSYS")
    assert died["cause"].startswith("sandbox violation"), died
    assert died["level"] == "warn", died
    # The replacement is sandboxed like the first, and serves.
    assert_sandboxed(new, uid, gid, worker=True)
    serves_tcp_udp(d.port, ("127.0.0.1", "::1"))
    assert d.counters()["worker_restarts"] == 1
    assert d.stop() == 0


@needs_root
def test_sigkill_worker_replaced_then_sigterm_ends_all(policy, echod):
    d = echod(args=["-c", policy()], workers=2)
    first = d.workers()
    assert len(first) == 2
    serves_tcp_udp(d.port)
    victim = first[0]
    _, new = _replaced(d, victim, signal.SIGKILL, "KILL")
    assert new not in first
    serves_tcp_udp(d.port, ("127.0.0.1", "::1"))
    everyone = [d.pid] + d.workers()
    t0 = time.monotonic()
    assert d.stop(signal.SIGTERM, timeout=1.5) == 0
    assert time.monotonic() - t0 < 1.5
    wait_until(lambda: all(gone(p) for p in everyone + first), 1.0,
               what="every echod process gone")
    assert children_of(d.pid) == []


# ---------------------------------------------------------------- 5. sockets


def _launch_argv(specs, echod_args, opts=()):
    return ([sys.executable, str(LAUNCHER)] + list(opts) + list(specs)
            + ["--", str(ECHOD_BIN)] + [str(a) for a in echod_args])


def _listen_inode(port, family="tcp"):
    """Inode of the socket listening on 127.0.0.1:port in /proc/net/tcp."""
    want = "0100007F:%04X" % port
    with open(f"/proc/net/{family}") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == want and (family != "tcp" or fields[3] == "0A"):
                return fields[9]
    return None


@needs_root
def test_socket_activation_serves_passed_sockets(policy, spawn):
    name, uid, gid = resolved_user()
    port, other = free_port(), free_port()
    specs = [f"tcp,127.0.0.1,{port}", f"udp,127.0.0.1,{port}",
             f"tcp,::1,{port}", f"udp,::1,{port}"]
    d = spawn(_launch_argv(specs, ["-c", policy(), "-l", "127.0.0.1",
                                   "-p", other, "-w", "1"]), port)
    act = event_fields(d, "socket_activation")
    assert act["sockets"] == "4", act
    listening = {parse_logfmt(l)["proto"] + " " + parse_logfmt(l)["addr"]
                 for l in d.log_lines() if is_event(l, "listening")}
    assert listening == {f"tcp 127.0.0.1:{port}", f"udp 127.0.0.1:{port}",
                         f"tcp [::1]:{port}", f"udp [::1]:{port}"}, listening
    serves_tcp_udp(port, ("127.0.0.1", "::1"))
    # echod bound nothing itself: -l/-p were ignored, and the listener is
    # the very socket the launcher put at fd 3.
    with pytest.raises(ConnectionRefusedError):
        tcp_echo("127.0.0.1", other, b"x", timeout=2)
    assert port_free_on(other, ("127.0.0.1",))
    assert os.readlink(f"/proc/{d.pid}/fd/3") == \
        f"socket:[{_listen_inode(port)}]"
    for pid in [d.pid] + d.workers():
        assert_sandboxed(pid, uid, gid, worker=pid != d.pid)
        assert_only_sockets_open(pid, worker=pid != d.pid)
    assert d.stop() == 0


@needs_root
def test_datagram_queued_before_packet_info_is_not_judged_forged(policy,
                                                                  spawn):
    """A datagram that waited on a passed socket before anyone set
    IP_PKTINFO (systemd without PassPacketInfo=yes: the one that starts the
    service) comes with interface 0. echod cannot judge it, so it drops it
    under its own reason and says why once, rather than calling the host's
    own loopback traffic forged (bad_source); the next one is echoed."""
    port = free_port()
    d = spawn(_launch_argv([f"udpqueued,127.0.0.1,{port}"],
                           ["-c", policy(), "-w", "1"]), port)
    line = d.wait_for_line(
        lambda l: is_event(l, "udp_drop") and "no_packet_info" in l,
        READY_TIMEOUT, what="udp_drop reason=no_packet_info")
    f = parse_logfmt(line)
    assert f["level"] == "warn" and f["reason"] == "no_packet_info", line
    assert "PassPacketInfo=yes" in f["msg"], line
    data, _ = udp_echo("127.0.0.1", port, b"after start\n")
    assert data == b"after start\n"
    c = d.counters_when(lambda c: c["udp_echoed"] >= 1)
    assert (c["udp_received"], c["udp_echoed"]) == (2, 1), c
    assert c["udp_drop_no_packet_info"] == 1, c
    assert c["udp_drop_bad_source"] == 0, c
    assert d.stop() == 0
    assert sum(is_event(l, "udp_drop") for l in d.log_lines()) == 1


@needs_root
def test_socket_activation_leaves_no_stray_fds(policy, spawn):
    """Only the LISTEN_FDS sockets are taken: a file and a directory the
    launcher also left open past them must not reach the sandbox."""
    port = free_port()
    d = spawn(_launch_argv([f"tcp,127.0.0.1,{port}", "file", "dir"],
                           ["-c", policy(), "-w", "1"],
                           ["--listen-fds", "1"]), port, wait=False)
    line = d.wait_for_line(lambda l: is_event(l, "ready") or
                           "level=error" in l, READY_TIMEOUT, what="ready")
    assert is_event(line, "ready"), d.log_text()
    data = os.urandom(1000)
    assert tcp_echo("127.0.0.1", port, data) == data
    assert_echod_holds_only_sockets(d)


@needs_root
def test_inherited_fds_do_not_reach_the_sandbox(policy, spawn):
    port = free_port()
    d = spawn(_launch_argv(["file", "dir"],
                           ["-c", policy(), "-l", "127.0.0.1", "-p", port,
                            "-w", "1"], ["--no-listen-env"]), port)
    data = os.urandom(1000)
    assert tcp_echo("127.0.0.1", port, data) == data
    assert_echod_holds_only_sockets(d)


SOCKACT_ERRORS = [
    pytest.param([], ["--listen-pid", "1"], r"LISTEN_PID 1 is not this "
                 r"process \(\d+\): the sockets were meant for another",
                 id="listen-pid-of-another-process"),
    pytest.param([], ["--listen-fds", "abc"],
                 r"LISTEN_FDS 'abc' is not a count", id="listen-fds-abc"),
    pytest.param(["file"], [], r"passed fd 3 is not a socket",
                 id="fd3-regular-file"),
    pytest.param(["pipe"], [], r"passed fd 3 is not a socket",
                 id="fd3-pipe"),
    pytest.param(["unix"], [], r"passed fd 3 is not an IPv4 or IPv6 socket",
                 id="fd3-unix-socket"),
    pytest.param(["tcp6dual,::,PORT"], [],
                 r"passed fd 3 is IPv6 without IPV6_V6ONLY: set "
                 r"BindIPv6Only=ipv6-only", id="ipv6-without-v6only"),
    pytest.param(["tcpbound,127.0.0.1,PORT"], [],
                 r"passed fd 3 is a TCP socket that is not listening",
                 id="tcp-not-listening"),
    pytest.param(["tcp,127.0.0.1,PORT"], ["--listen-fds", "2"],
                 r"passed fd 4 is not a socket", id="fewer-fds-than-count"),
    pytest.param(["udpunbound"], [], r"passed fd 3 .*not bound",
                 id="udp-not-bound"),
]


@needs_root
@pytest.mark.parametrize("specs, opts, message", SOCKACT_ERRORS)
def test_socket_activation_refuses_bad_fds(policy, spawn, specs, opts,
                                           message):
    port = free_port()
    specs = [s.replace("PORT", str(port)) for s in specs]
    if not specs:
        specs = [f"tcp,127.0.0.1,{port}"]
    d = spawn(_launch_argv(specs, ["-c", policy(), "-l", "127.0.0.1", "-p",
                                   free_port(), "-w", "1"], opts),
              port, wait=False)
    first = d.wait_for_line(
        lambda l: is_event(l, "ready") or (
            is_event(l, "socket_activation") and "level=error" in l),
        READY_TIMEOUT, what="event=socket_activation level=error")
    assert not is_event(first, "ready"), d.log_text()
    assert d.proc.wait(5) == EXIT_OSERR, d.log_text()
    d._reader.join(2.0)
    log = d.log_lines()
    lines = [l for l in log if is_event(l, "socket_activation")]
    assert lines == [first], log
    assert re.search(message, parse_logfmt(first)["msg"]), log
    assert not any(is_event(l, "listening") for l in log), log


@needs_root
@pytest.mark.skipif(not os.path.exists("/usr/bin/systemd-socket-activate"),
                    reason="/usr/bin/systemd-socket-activate is not installed")
def test_systemd_socket_activate(policy, spawn):
    port, other = free_port(), free_port()
    d = spawn(["/usr/bin/systemd-socket-activate", "-l", f"127.0.0.1:{port}",
               str(ECHOD_BIN), "-c", policy(), "-l", "127.0.0.1", "-p", other,
               "-w", "1"], port, wait=False)
    # It execs echod (same pid) on the first connection, which then waits
    # in the backlog for echod to accept it.
    d.wait_for_line(lambda l: l.startswith("Listening on"), 5.0,
                    what="systemd-socket-activate listening")
    data = os.urandom(5000)
    assert tcp_echo("127.0.0.1", port, data) == data
    d.wait_ready()
    assert event_fields(d, "socket_activation")["sockets"] == "1"
    assert os.readlink(f"/proc/{d.pid}/exe") == str(ECHOD_BIN)
    data = os.urandom(5000)
    assert tcp_echo("127.0.0.1", port, data) == data
    with pytest.raises(ConnectionRefusedError):
        tcp_echo("127.0.0.1", other, b"x", timeout=2)
    assert status(d.pid)["Seccomp"] == "2"
    assert d.stop() == 0


# ---------------------------------------------------------------- 6, 7. no root


def _nobody_binary(public_bin_dir, caps=None):
    """build/echod itself if nobody can run it and no caps are wanted,
    else a copy in a 0755 directory (with caps set by setcap)."""
    if caps is None and reachable_by_others(ECHOD_BIN):
        return str(ECHOD_BIN)
    copy = public_bin_dir / "echod"
    shutil.copy2(ECHOD_BIN, copy)
    os.chmod(copy, 0o755)
    if caps is not None:
        setcap = shutil.which("setcap")
        if setcap is None:
            pytest.skip("setcap (libcap2-bin) is not installed")
        r = subprocess.run([setcap, caps, str(copy)], capture_output=True,
                           timeout=10)
        if r.returncode != 0:
            pytest.skip(f"setcap {caps} failed (no xattrs on this "
                        f"filesystem?): {r.stderr.decode().strip()}")
    return str(copy)


def _skipped_steps(d):
    return set(event_fields(d, "hardening_skipped")["steps"].split(","))


@needs_root
@pytest.mark.parametrize("caps, skipped, bounding_dropped", [
    ("cap_net_bind_service,cap_setpcap=ep", {"chroot", "user"}, True),
    ("cap_net_bind_service=ep", {"chroot", "user", "bounding_set"}, False),
], ids=["with-setpcap", "without-setpcap"])
def test_file_capabilities_as_nobody(public_bin_dir, spawn, caps, skipped,
                                     bounding_dropped):
    uid, gid = nobody()
    binary = _nobody_binary(public_bin_dir, caps)
    require_port_7(("127.0.0.1",))
    d = spawn(as_nobody([binary, "-l", "127.0.0.1", "-p", "7", "-w", "2"]),
              7, wait=False)
    wait_ready_or_port_taken(d, 7)
    assert _skipped_steps(d) == skipped
    data = os.urandom(4000)
    assert tcp_echo("127.0.0.1", 7, data) == data
    workers = d.workers()
    assert len(workers) == 2
    for pid in [d.pid] + workers:
        st = assert_sandboxed(pid, uid, gid, pid != d.pid, bounding_dropped)
        if not bounding_dropped:
            assert st["CapBnd"] != ZERO_CAPS  # kept, and said so
        assert os.readlink(f"/proc/{pid}/root") == "/"
        assert_only_sockets_open(pid, worker=pid != d.pid)
    assert d.stop() == 0


@needs_root
def test_nobody_on_high_port(public_bin_dir, spawn):
    uid, gid = nobody()
    binary = _nobody_binary(public_bin_dir)
    port = free_port()
    d = spawn(as_nobody([binary, "-l", "127.0.0.1", "-l", "[::1]", "-p", port,
                         "-w", "2"]), port)
    assert _skipped_steps(d) == {"chroot", "user", "bounding_set"}
    serves_tcp_udp(port, ("127.0.0.1", "::1"))
    for pid in [d.pid] + d.workers():
        st = assert_sandboxed(pid, uid, gid, pid != d.pid,
                              bounding_dropped=False)
        assert st["CapEff"] == ZERO_CAPS
    assert d.stop() == 0


# ---------------------------------------------------------------- 8. refusals


def _refusal(args, step, message):
    r = run_echod(["-l", "127.0.0.1", "-p", free_port(), "-w", "1"] + args)
    log = r.stderr.decode()
    failed = [parse_logfmt(l) for l in log.splitlines()
              if is_event(l, "hardening_failed")]
    assert r.returncode == EXIT_OSERR, log
    assert len(failed) == 1, log
    assert failed[0]["step"] == step, log
    assert failed[0]["level"] == "error", log
    assert re.search(message, failed[0]["msg"]), log
    assert failed[0]["action"] == "refusing to serve", log
    assert not any(is_event(l, "listening") or is_event(l, "ready")
                   for l in log.splitlines()), log
    return failed[0]


@needs_root
def test_refuses_missing_user(policy):
    _refusal(["-c", policy(), "-u", "no-such-user-xyz"], "user",
             r"user 'no-such-user-xyz' does not exist: create it \(useradd")


@needs_root
def test_refuses_root_user(policy):
    _refusal(["-c", policy(), "-u", "root"], "user",
             r"'root' has uid or gid 0: choose an unprivileged user")


@needs_root
def test_refuses_chroot_not_empty(chroot_dir, policy):
    Path(chroot_dir, "leftover").write_text("x")
    _refusal(["-c", policy()], "chroot",
             r"is not empty \(holds 'leftover'\): use an empty directory")


@needs_root
@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757],
                         ids=["0777", "0775", "0757"])
def test_refuses_chroot_writable_by_others(chroot_dir, policy, mode):
    os.chmod(chroot_dir, mode)
    _refusal(["-c", policy()], "chroot",
             re.escape(f"{chroot_dir} is writable by group or others: "
                       f"chmod 755 {chroot_dir}"))


@needs_root
def test_refuses_chroot_not_owned_by_root(chroot_dir, policy):
    uid, _ = nobody()
    os.chown(chroot_dir, uid, -1)
    _refusal(["-c", policy()], "chroot",
             re.escape(f"{chroot_dir} is not owned by root: chown root "
                       f"{chroot_dir}"))


@needs_root
def test_refuses_chroot_that_is_a_file(chroot_dir, policy):
    os.rmdir(chroot_dir)
    Path(chroot_dir).write_text("")
    _refusal(["-c", policy()], "chroot", r"is not a directory")


@needs_root
def test_refuses_chroot_that_is_a_symlink(chroot_dir, policy, tmp_path):
    target = tempfile.mkdtemp(prefix="echod-target-")
    try:
        os.chmod(target, 0o755)
        os.rmdir(chroot_dir)
        os.symlink(target, chroot_dir)
        _refusal(["-c", policy()], "chroot", r"is not a directory")
    finally:
        shutil.rmtree(target, ignore_errors=True)


@needs_root
def test_refuses_chroot_under_a_parent_others_can_write(tmp_path):
    """A local user who can write the parent could swap the directory
    between the check and chroot(): the parent must be closed too (a
    sticky parent, like /tmp, is fine: no one renames root's entries)."""
    parent = tempfile.mkdtemp(prefix="echod-parent-")
    try:
        os.chmod(parent, 0o777)  # world-writable, not sticky
        root = os.path.join(parent, "empty")
        os.mkdir(root, 0o755)
        conf = tmp_path / "parent.conf"
        conf.write_text(f"chroot {root}\n")
        _refusal(["-c", str(conf)], "chroot",
                 re.escape(f"chroot parent {os.path.realpath(parent)} must "
                           "be a directory owned by root and not writable "
                           "by others (or sticky)"))
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@needs_root
def test_inherited_stdin_is_not_kept(policy, echod, tmp_path):
    """Whatever root's stdin was (here a file) is not readable from the
    sandbox: stdin and stdout are /dev/null in every process."""
    secret = tmp_path / "secret"
    secret.write_text("root's file\n")
    with open(secret) as stdin:
        d = echod(args=["-c", policy()], workers=1, stdin=stdin)
    for pid in [d.pid] + d.workers():
        for fd in ("0", "1"):
            assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null", pid


@needs_root
def test_refuses_stderr_regular_file(policy, tmp_path):
    logf = tmp_path / "echod.log"
    with open(logf, "wb") as err:
        r = subprocess.run([str(ECHOD_BIN), "-c", policy(), "-l", "127.0.0.1",
                            "-p", str(free_port()), "-w", "1"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=err, timeout=10, cwd=str(ROOT))
    log = logf.read_text()
    assert r.returncode == EXIT_OSERR, log
    f = parse_logfmt(next(l for l in log.splitlines()
                          if is_event(l, "hardening_failed")))
    assert f["step"] == "rlimit_fsize", log
    assert "set 'allow-downgrade fsize-limit'" in f["msg"], log
    assert "log to a pipe or the journal" in f["msg"], log


@needs_root
def test_stderr_regular_file_allowed_by_downgrade(policy, tmp_path):
    name, uid, gid = resolved_user()
    logf = tmp_path / "echod.log"
    port = free_port()
    with open(logf, "wb") as err:
        proc = subprocess.Popen(
            [str(ECHOD_BIN), "-c", policy("allow-downgrade fsize-limit\n"),
             "-l", "127.0.0.1", "-p", str(port), "-w", "1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            cwd=str(ROOT))
    kids = []
    try:
        def lines():
            return logf.read_text().splitlines()

        wait_until(lambda: proc.poll() is not None
                   or any(is_event(l, "ready") for l in lines()),
                   READY_TIMEOUT, what="event=ready in the log file")
        assert proc.poll() is None, logf.read_text()
        skipped = [parse_logfmt(l) for l in lines()
                   if is_event(l, "hardening_skipped")]
        assert len(skipped) == 1, lines()
        assert skipped[0]["steps"] == "fsize_limit", skipped
        assert skipped[0]["level"] == "warn", skipped
        kids = workers_of(proc.pid)
        assert len(kids) == 1
        for pid in [proc.pid] + kids:
            assert_sandboxed(pid, uid, gid, pid != proc.pid)
            assert limits(pid)["Max file size"] == ("unlimited", "unlimited")
        data = os.urandom(1000)
        assert tcp_echo("127.0.0.1", port, data) == data
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(1.5) == 0
        assert any(is_event(l, "stopped") for l in lines())
    finally:
        if proc.poll() is None:
            kill_pids([proc.pid] + kids)
            proc.wait(5)


# Run argv[1:] with the seccomp() system call failing with ENOSYS, as on a
# kernel built without it: a classic BPF filter installed by prctl (root
# needs no no_new_privs for that), then exec. libseccomp then reports API
# level 1, below the 3 that SECCOMP_RET_KILL_PROCESS needs.
# Runs argv[3:] on a kernel that answers syscall argv[1] with errno
# argv[2], as a kernel without that feature would.
_NO_SYSCALL = r"""
import ctypes, os, struct, sys
if os.uname().machine != "x86_64":
    sys.exit(77)
AUDIT_ARCH_X86_64 = 0xC000003E
NR_SECCOMP, ENOSYS = int(sys.argv[1]), int(sys.argv[2])
LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06
RET_ALLOW, RET_ERRNO, RET_KILL = 0x7FFF0000, 0x00050000, 0
insns = [
    (LD_W_ABS, 0, 0, 4),                  # seccomp_data.arch
    (JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
    (RET_K, 0, 0, RET_KILL),
    (LD_W_ABS, 0, 0, 0),                  # seccomp_data.nr
    (JEQ_K, 0, 1, NR_SECCOMP),
    (RET_K, 0, 0, RET_ERRNO | ENOSYS),
    (RET_K, 0, 0, RET_ALLOW),
]
code = b"".join(struct.pack("HBBI", *i) for i in insns)
buf = ctypes.create_string_buffer(code, len(code))
prog = struct.pack("HxxxxxxP", len(insns), ctypes.addressof(buf))
pbuf = ctypes.create_string_buffer(prog, len(prog))
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, pbuf, 0, 0) != 0:
    sys.exit("prctl: " + os.strerror(ctypes.get_errno()))
os.execv(sys.argv[3], sys.argv[3:])
"""
NR_SECCOMP, NR_LANDLOCK_CREATE_RULESET = 317, 444
ENOSYS, EOPNOTSUPP = 38, 95


def without_syscall(nr, errno):
    """argv prefix: what follows runs where syscall nr fails with errno
    (x86_64 only; the wrapper exits 77 elsewhere)."""
    return [sys.executable, "-c", _NO_SYSCALL, str(nr), str(errno)]


@needs_root
def test_refuses_without_seccomp(policy):
    """A kernel whose seccomp() is missing cannot kill a whole process for
    a forbidden call: echod must refuse at step seccomp, not serve
    unfiltered or with thread-only kills."""
    argv = without_syscall(NR_SECCOMP, ENOSYS) + [str(ECHOD_BIN),
            "-l", "127.0.0.1", "-p", str(free_port()), "-w", "1", "-c",
            policy()]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=10, cwd=str(ROOT))
    if r.returncode == 77:
        pytest.skip("the seccomp() filter in this test is x86_64 only")
    log = r.stderr.decode()
    failed = [parse_logfmt(l) for l in log.splitlines()
              if is_event(l, "hardening_failed")]
    assert r.returncode == EXIT_OSERR, log
    assert len(failed) == 1, log
    assert failed[0]["step"] == "seccomp", log
    assert re.search(r"lacks SECCOMP_RET_KILL_PROCESS \(API level [012] < 3\)",
                     failed[0]["msg"]), log
    assert failed[0]["action"] == "refusing to serve", log
    assert not any(is_event(l, "listening") or is_event(l, "ready")
                   for l in log.splitlines()), log


# ---------------------------------------------------------------- 9. log mode


@needs_root
def test_sandbox_violation_log_warns_and_still_filters(policy, echod):
    d = echod(args=["-c", policy("sandbox-violation log\n")], workers=1)
    warn = event_fields(d, "sandbox_log_only")
    assert warn["level"] == "warn", warn
    assert "never in production" in warn["msg"], warn
    assert event_fields(d, "sandboxed")["seccomp"] == "log"
    for pid in [d.pid] + d.workers():
        assert status(pid)["Seccomp"] == "2"
        assert status(pid)["NoNewPrivs"] == "1"
    serves_tcp_udp(d.port)
    assert d.stop() == 0


@needs_root
def test_default_policy_has_no_log_only_warning(policy, echod):
    d = echod(args=["-c", policy()], workers=1)
    assert event_fields(d, "sandboxed")["seccomp"] == "kill"
    assert not any(is_event(l, "sandbox_log_only") or
                   is_event(l, "hardening_skipped") for l in d.log_lines())
    assert d.stop() == 0


# ---------------------------------------------------------------- 10. dist/

DIST = ROOT / "dist"


def _unit_settings(path):
    """{(section, key): [values]} of a systemd unit file."""
    out, section = {}, None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        k, _, v = line.partition("=")
        out.setdefault((section, k.strip()), []).append(v.strip())
    return out


@pytest.fixture
def dist_units():
    svc, sock = DIST / "echod.service", DIST / "echod.socket"
    if not (svc.exists() and sock.exists()):
        pytest.skip("dist/echod.service or dist/echod.socket is absent")
    return svc, sock


def test_dist_service_hardening(dist_units):
    svc, _ = dist_units
    s = _unit_settings(svc)
    for key, want in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                      ("PrivateTmp", "yes"), ("PrivateDevices", "yes"),
                      ("SystemCallArchitectures", "native")]:
        assert s.get(("Service", key)) == [want], \
            f"{svc.name}: want {key}={want}, have {s.get(('Service', key))}"
    for key in ("CapabilityBoundingSet", "RestrictAddressFamilies"):
        assert ("Service", key) in s, f"{svc.name}: no {key}="
    families = " ".join(s[("Service", "RestrictAddressFamilies")]).split()
    assert {"AF_INET", "AF_INET6"} <= set(families), families


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_dist_units_verify(dist_units, tmp_path):
    names = []
    for unit in dist_units:
        text = unit.read_text()
        # Point ExecStart at the built binary (keeping any prefix and args).
        text = re.sub(r"^(ExecStart=[-@:+!]*)(\S+)",
                      lambda m: m.group(1) + str(ECHOD_BIN), text, flags=re.M)
        (tmp_path / unit.name).write_text(text)
        names.append(unit.name)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no"]
                       + [str(tmp_path / n) for n in names],
                       capture_output=True, timeout=60, cwd=str(tmp_path))
    out = (r.stdout + r.stderr).decode()
    own = [l for l in out.splitlines() if any(n in l for n in names)]
    assert r.returncode == 0, out
    assert own == [], out


def _setpriv_caps(names):
    return ",".join("+" + n.lower().removeprefix("cap_") for n in names)


# How each [Service] setting of dist/echod.service is checked without
# systemd as PID 1: emulated below (unshare, mounts, prlimit, setpriv, a
# unix socket for the journal), or checked only under the real systemd that
# test_systemd.py boots, or why neither can check it.
UNIT_BOOTED = {
    "Type": "echod.service runs and serves (every test there)",
    "ExecStart": "the packaged path and policy",
    "Restart": "a refusal is not restarted: NRestarts stays 0",
    "RestartSec": "as Restart: no start 3 s after a refusal",
    "RestartPreventExitStatus": "loaded as 64 71 78; the exit-78 refusal",
    "ProtectKernelModules": "systemd's own filter and bounding set, under "
                            "which echod reaches seccomp=kill",
    "ProtectKernelLogs": "as ProtectKernelModules",
    "ProtectClock": "as ProtectKernelModules",
    "RestrictAddressFamilies": "systemd's seccomp filter, stacked under "
                               "echod's (Seccomp_filters >= 2)",
    "RestrictNamespaces": "as RestrictAddressFamilies",
    "RestrictRealtime": "as RestrictAddressFamilies",
    "RestrictSUIDSGID": "as RestrictAddressFamilies",
    "LockPersonality": "as RestrictAddressFamilies",
    "MemoryDenyWriteExecute": "as RestrictAddressFamilies",
    "SystemCallArchitectures": "as RestrictAddressFamilies",
    "SystemCallFilter": "loaded with seccomp, chroot and landlock_*; echod "
                        "reaches seccomp=kill and the kernel's Landlock ABI",
    "SystemCallErrorNumber": "as SystemCallFilter: a call outside it fails "
                             "with EPERM, which echod would report",
}
UNIT_NOT_EMULATED = {
    "MemoryMax": "set under the real boot too, but neither can enforce it "
                 "here: the memory controller is held by cgroup v1; each "
                 "worker's RLIMIT_DATA is tested in test_isolation.py",
    "ExecReload": "SIGHUP to the main process, as kill would send it; the "
                  "reload itself is test_reload.py's",
}

# The namespace and mount settings, as systemd applies them, in one shell
# run under `unshare --mount --uts --ipc --propagation private`.
UNIT_MOUNTS = r"""
set -e
# RuntimeDirectory=echod echod/empty, RuntimeDirectoryMode=0755: a fresh
# /run holding them, and the policy the unit's comment asks for.
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -m 0755 /run/echod /run/echod/empty /run/dev /run/tree
# The tree under test, wherever it was cloned (/tmp and /root are masked
# below): the launcher and the binary run from this view of it.
mount --bind "$ECHOD_TREE" /run/tree
printf 'chroot /run/echod/empty\n' > /run/echod/echod.conf
chmod 0644 /run/echod/echod.conf
# PrivateDevices=yes: a /dev with the pseudo devices only.
mount -t tmpfs -o mode=0755 tmpfs /run/dev
for d in null zero full random urandom tty; do
    touch /run/dev/$d; mount --bind /dev/$d /run/dev/$d
done
mount --move /run/dev /dev
# PrivateTmp=yes, ProtectHome=yes
mount -t tmpfs -o mode=1777 tmpfs /tmp
for h in /home /root; do
    [ -d $h ] && mount -t tmpfs -o ro,mode=0755 tmpfs $h
done
# ProtectProc=invisible, ProcSubset=pid (and so no /proc/sys to tune)
mount -t proc -o hidepid=invisible,subset=pid proc /proc
# ProtectKernelTunables=yes, ProtectControlGroups=yes: /sys read-only
mount --bind /sys /sys && mount -o remount,bind,ro /sys
# ProtectSystem=strict: / read-only (its own mount flag, this namespace)
mount -o remount,bind,ro /
# UMask=0077
umask 077
exec "$@"
"""

UNIT_EMULATED = {
    "CapabilityBoundingSet", "AmbientCapabilities", "NoNewPrivileges",
    "SecureBits", "LimitNOFILE", "UMask", "PrivateTmp", "PrivateDevices",
    "PrivateIPC", "PrivateMounts", "ProtectSystem", "ProtectHome",
    "ProtectKernelTunables", "ProtectControlGroups", "ProtectHostname",
    "ProtectProc", "ProcSubset", "RuntimeDirectory", "RuntimeDirectoryMode",
    "StandardError",
}


@needs_root
@pytest.mark.skipif(shutil.which("unshare") is None or SETPRIV is None,
                    reason="unshare and setpriv (util-linux) are needed")
def test_dist_service_as_systemd_runs_it(dist_units, tmp_path):
    """echod under every setting of dist/echod.service that can be applied
    without systemd as PID 1 (namespaces, mounts, rlimits, capabilities,
    securebits, no_new_privs, stderr on a unix stream socket like the
    journal's, socket activation) reaches event=ready and serves."""
    svc, _ = dist_units
    s = _unit_settings(svc)
    keys = {k for (section, k) in s if section == "Service"}
    unaccounted = (keys - UNIT_EMULATED - set(UNIT_BOOTED)
                   - set(UNIT_NOT_EMULATED))
    assert not unaccounted, f"emulate these or say why not: {unaccounted}"
    assert s[("Service", "SecureBits")] == ["noroot-locked"]
    assert s[("Service", "StandardError")] == ["journal"]
    assert s[("Service", "RuntimeDirectory")] == ["echod echod/empty"]
    bounding = " ".join(s[("Service", "CapabilityBoundingSet")]).split()
    assert " ".join(s.get(("Service", "AmbientCapabilities"), [""])) == ""
    nofile = s[("Service", "LimitNOFILE")][0]
    script = tmp_path / "unit.sh"
    script.write_text(UNIT_MOUNTS)
    port = free_port()
    # Paths as seen inside the namespace, where the tree is /run/tree.
    tree = Path("/run/tree")
    argv = (["unshare", "--mount", "--uts", "--ipc", "--propagation",
             "private", "--", "sh", str(script),
             "prlimit", f"--nofile={nofile}:{nofile}", "--",
             sys.executable, str(tree / LAUNCHER.resolve().relative_to(ROOT)),
             f"tcp,127.0.0.1,{port}", f"udp,127.0.0.1,{port}", "--",
             SETPRIV, "--bounding-set=-all," + _setpriv_caps(bounding),
             "--securebits=+noroot_locked", "--no-new-privs", "--",
             str(tree / Path(ECHOD_BIN).resolve().relative_to(ROOT)),
             "-c", "/run/echod/echod.conf"])
    journal, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=journal,
                            cwd="/", env=dict(os.environ,
                                              ECHOD_TREE=str(ROOT)))
    journal.close()
    pids = [proc.pid]
    try:
        text, deadline = "", time.monotonic() + READY_TIMEOUT
        while "event=ready" not in text and "level=error" not in text:
            ours.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = ours.recv(4096)
            assert chunk, f"stderr closed: {text}"
            text += chunk.decode(errors="replace")
        assert "event=ready" in text, text
        assert "event=socket_activation" in text, text
        pids = [proc.pid] + workers_of(proc.pid)
        st = status(proc.pid)
        assert st["CapBnd"] == ZERO_CAPS and st["NoNewPrivs"] == "1", st
        assert os.readlink(f"/proc/{proc.pid}/root") == "/run/echod/empty"
        assert os.readlink(f"/proc/{proc.pid}/fd/2").startswith("socket:")
        for ns in ("mnt", "uts", "ipc"):  # private namespaces, as systemd
            assert os.readlink(f"/proc/{proc.pid}/ns/{ns}") != \
                os.readlink(f"/proc/self/ns/{ns}"), ns
        assert int(limits(proc.pid)["Max open files"][1]) <= int(nofile)
        serves_tcp_udp(port)
        # echod shut down the reading half of its stderr socket.
        with pytest.raises(BrokenPipeError):
            ours.send(b"typed at the journal\n")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(2) == 0
    finally:
        kill_pids(reversed(pids))
        proc.wait(5)
        ours.close()
