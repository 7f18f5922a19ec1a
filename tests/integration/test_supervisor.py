"""The supervisor does one job: no scraper and no worker can stall it or
stop the service (SECURITY.md: "The metrics endpoint", "What crosses to
the supervisor", "What each process can still do").

Each attack runs in a process of its own (bounded in time, stopped by pid):
a scraper that sends a request and then keeps writing, one source holding
forty connections, a disallowed source connecting in a loop. While it runs,
a scrape from another allowed source, SIGUSR1's counters line and SIGTERM
are timed. gdb, attached as root, plays a compromised worker or metrics
process: it forges a snapshot, then exits with a refusal status.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

import netns
from conftest import gdb, read_all
from conftest import (ECHOD_BIN, Echod, free_port, is_event, parse_logfmt,
                      tcp_echo, wait_until)
from test_sandbox import assert_sandboxed, fd_targets, needs_root, status

GDB = shutil.which("gdb")
needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb is not installed")
PYTHON = "/usr/bin/python3"
HOST = "127.0.0.1"
SCRAPER = "127.0.0.2"  # another allowed (loopback) source
SRV4, CLI4 = "198.18.20.1", "198.18.20.2"
LOG_RATE, LOG_BURST = 50, 200     # src/log.h: the service's budget
LOG_LIMIT_LINES = 5               # src/log.h: per reason per window
SCRAPE_MS, USR1_MS, TERM_S = 100, 100, 1.0
ATTACK_S = 20  # an attacker's own bound; the test stops it long before
SAMPLES = 5

GET = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"

# The attackers: each prints "attacking" once its attack is in place,
# then keeps it up until killed or ATTACK_S is over.
WRITER = r"""
import socket, sys, time
host, port, end = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
chunk, said = b"x" * 65536, False
while time.monotonic() < end:
    s = socket.socket()
    try:
        s.settimeout(1)
        s.bind((host, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        while time.monotonic() < end:
            s.sendall(chunk)          # and never reads
            if not said:
                print("attacking", flush=True)
                said = True
    except OSError:
        pass
    finally:
        s.close()
"""

HOLDER = r"""
import select, socket, sys, time
host, port, end = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
conns, said = [], False
while time.monotonic() < end:
    while len(conns) < 40:
        s = socket.socket()
        try:
            s.bind((host, 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            conns.append(s)
        except OSError:
            s.close()
            break
    if not said:
        print("attacking", flush=True)
        said = True
    # Closed (408, or replaced): reopened at once.
    readable = select.select(conns, [], [], 0.005)[0]
    for s in readable:
        conns.remove(s)
        s.close()
"""

KNOCKER = r"""
import socket, sys, time
host, port, end = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
n = 0
while time.monotonic() < end:
    s = socket.socket()
    try:
        s.settimeout(1)
        s.connect((host, port))
        s.recv(1)
    except OSError:
        pass
    finally:
        s.close()
    n += 1
    if n == 20:
        print("attacking", flush=True)
"""


class Attacker:
    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        assert line == b"attacking\n", (line, self.proc.stderr.read())

    def running(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)


def timed_scrape(connect):
    """Seconds from connect to the whole 200 answer."""
    t0 = time.monotonic()
    with connect() as s:
        s.sendall(GET)
        answer = read_all(s)
    elapsed = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
    assert b"echod_build_info{" in answer
    return elapsed


def timed_usr1(d):
    mark = len(d.log_lines())
    t0 = time.monotonic()
    os.kill(d.pid, signal.SIGUSR1)
    d.wait_event("counters", 5.0, mark)
    return time.monotonic() - t0


def assert_bounded_while(d, attacker, connect, what):
    """Scrapes and SIGUSR1 within their bounds, the log within the budget,
    then SIGTERM within 1 s, all while the attack runs."""
    mark = len(d.log_lines())
    t0 = time.monotonic()
    scrapes, usr1 = [], []
    for _ in range(SAMPLES):
        time.sleep(0.2)  # pacing: the samples spread over a second
        scrapes.append(timed_scrape(connect))
        usr1.append(timed_usr1(d))
    assert attacker.running()
    print(f"{what}: scrape ms {[round(t * 1000, 1) for t in scrapes]}, "
          f"SIGUSR1 ms {[round(t * 1000, 1) for t in usr1]}")
    assert max(scrapes) < SCRAPE_MS / 1000, scrapes
    assert max(usr1) < USR1_MS / 1000, usr1
    lines = [l for l in d.log_lines()[mark:] if not is_event(l, "counters")]
    elapsed = time.monotonic() - t0
    assert len(lines) <= LOG_BURST + LOG_RATE * elapsed, len(lines)
    t1 = time.monotonic()
    assert d.stop(timeout=TERM_S) == 0
    print(f"{what}: SIGTERM to exit {(time.monotonic() - t1) * 1000:.0f} ms")
    assert attacker.running()
    return lines


def loopback_from(src, port):
    def connect():
        s = socket.socket()
        s.settimeout(5)
        s.bind((src, 0))
        s.connect((HOST, port))
        return s
    return connect


@pytest.fixture
def metered(echod):
    def start(workers=2, extra=""):
        mport = free_port()
        d = echod(policy_text=f"metrics {HOST}:{mport}\n" + extra,
                  workers=workers, listen=(HOST,))
        d.mport = mport
        return d
    return start


@pytest.fixture
def attackers():
    started = []

    def start(script, host, port, netns_of=None):
        argv = [PYTHON, "-c", script, host, str(port), str(ATTACK_S)]
        a = Attacker(netns_of.exec_argv(argv) if netns_of else argv)
        started.append(a)
        return a
    yield start
    for a in started:
        a.stop()


@pytest.mark.parametrize("script", [WRITER, HOLDER], ids=["writer", "holder"])
def test_a_scraper_cannot_stall_the_supervisor(metered, attackers, script):
    """A scraper that keeps writing after its request costs its slot; one
    source holding forty connections holds one slot."""
    d = metered()
    a = attackers(script, HOST, d.mport)
    assert_bounded_while(d, a, loopback_from(SCRAPER, d.mport),
                         "writer" if script is WRITER else "holder")


@needs_root
def test_a_refused_source_costs_five_lines(tmp_path, attackers):
    """A disallowed source connecting in a loop: each connection refused at
    once, at most five lines for it (the per-reason limit of a window),
    and the service unhurt."""
    try:
        pair = netns.Pair([SRV4 + "/24"], [CLI4 + "/24"])
    except netns.NetnsUnavailable as e:
        pytest.skip(f"network namespaces unavailable: {e}")
    d = None
    try:
        port, mport = free_port(), free_port()
        policy = tmp_path / "p.conf"
        # The scraper is the server's own address; the client is refused.
        policy.write_text(f"metrics {SRV4}:{mport}\n"
                          f"metrics-allow {SRV4}/32\n")
        d = Echod(pair.srv.exec_argv([ECHOD_BIN, "-c", policy, "-l", SRV4,
                                      "-p", port, "-w", "2"]), port, policy)
        d.wait_ready()
        mark = len(d.log_lines())
        a = attackers(KNOCKER, SRV4, mport, netns_of=pair.cli)

        def connect():
            s = pair.srv.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect((SRV4, mport))
            return s
        lines = assert_bounded_while(d, a, connect, "refused source")
        refused = [l for l in d.log_lines()[mark:]
                   if is_event(l, "metrics_refused")]
        assert 1 <= len(refused) <= LOG_LIMIT_LINES, refused
        assert all(f"peer={CLI4}:" in l for l in refused)
        final = parse_logfmt([l for l in d.log_lines()
                              if is_event(l, "final_counters")][-1])
        assert int(final["metrics_refused"]) > 3 * LOG_LIMIT_LINES, final
        print(f"refused source: {final['metrics_refused']} refusals, "
              f"{len(refused)} lines, {len(lines)} lines in all")
    finally:
        if d is not None:
            d.kill_all()
        pair.delete()


# ------------------------------------------------ gdb as the attacker


def pipes_to_supervisor(pid, supervisor):
    """{fd: pipe target} of pid's pipes the supervisor also holds (its
    counters pipe, and for the metrics process the snapshot pipe), but
    stderr's."""
    theirs = set(fd_targets(supervisor).values())
    mine = fd_targets(pid)
    return {fd: t for fd, t in mine.items()
            if t.startswith("pipe:") and t in theirs and t != mine.get(2)}


def write_end(pid, supervisor):
    """The fd pid writes its counters to: a pipe the supervisor shares,
    open write-only."""
    from test_sandbox import fd_access
    fds = [fd for fd in pipes_to_supervisor(pid, supervisor)
           if fd_access(pid, fd) == "O_WRONLY"]
    assert len(fds) == 1, fds
    return fds[0]


def forge_and_exit(pid, fd, status):
    """The compromised process: an all-zero snapshot of the right kind
    (ready 0), then _exit(status)."""
    return gdb(pid,
               "set $m = (struct counters_msg *)calloc(1, "
               "sizeof(struct counters_msg))",
               "set var $m->kind = 1",
               f"print (long)write({fd}, $m, sizeof(struct counters_msg)) "
               "== sizeof(struct counters_msg)",
               f"call (void)_exit({status})")


def wait_new(d, get, old):
    return wait_until(lambda: (lambda p: p if p and p != old else None)(
        get()), 5.0, what="a replacement")


@needs_root
@needs_gdb
@pytest.mark.parametrize("status", [71, 64, 78])
def test_a_forged_snapshot_cannot_unready_a_worker(echod, status):
    """Readiness is the supervisor's latch: a worker that writes a snapshot
    saying it is not ready, then exits with a refusal status, is a crash
    like any other (restarted), not a refusal to start (service stopped)."""
    d = echod(workers=2, listen=(HOST,))
    w = d.workers()[0]
    mark = len(d.log_lines())
    fd = write_end(w, d.pid)
    out = forge_and_exit(w, fd, status)
    assert "$1 = 1" in out, out  # the whole snapshot written
    died = parse_logfmt(d.wait_event("worker_died", 5.0, mark))
    assert died["exit_status"] == str(status) and died["ready"] == "yes"
    wait_until(lambda: len(d.workers()) == 2 and w not in d.workers(), 5.0,
               what="a replacement worker")
    assert d.proc.poll() is None
    assert not any(is_event(l, "worker_failed") for l in d.log_lines())
    assert tcp_echo(HOST, d.port, b"still here") == b"still here"
    assert d.counters()["worker_restarts"] == 1
    assert d.stop() == 0


def scrape_ok(port):
    with socket.create_connection((HOST, port), 5) as s:
        s.sendall(GET)
        return read_all(s).startswith(b"HTTP/1.1 200 ")


@needs_root
@needs_gdb
@pytest.mark.parametrize("how", ["exit", "forged", "segv"])
def test_the_metrics_process_is_restarted(metered, how):
    """A metrics process that exits after ready (71), writes a forged
    snapshot and exits (64), or dies of SIGSEGV is restarted; echo and the
    endpoint go on."""
    d = metered(workers=1)
    m = d.metrics_pid()
    assert m is not None and scrape_ok(d.mport)
    mark = len(d.log_lines())
    if how == "exit":
        gdb(m, "call (void)_exit(71)")
    elif how == "forged":
        forge_and_exit(m, write_end(m, d.pid), 64)
    else:
        os.kill(m, signal.SIGSEGV)
    died = parse_logfmt(d.wait_event("metrics_died", 5.0, mark))
    assert died["ready"] == "yes", died
    assert died.get("signal" if how == "segv" else "exit_status") == \
        {"exit": "71", "forged": "64", "segv": "SEGV"}[how], died
    new = wait_new(d, d.metrics_pid, m)
    d.wait_event("metrics_started", 5.0, mark)
    wait_until(lambda: scrape_ok(d.mport), 5.0, what="scrapes again")
    assert d.proc.poll() is None
    assert tcp_echo(HOST, d.port, b"echo") == b"echo"
    assert not any(is_event(l, "metrics_failed") or is_event(l, "worker_failed")
                   for l in d.log_lines())
    assert d.counters()["metrics_restarts"] == 1
    assert new in [d.metrics_pid()]
    assert d.stop() == 0


def test_the_metrics_process_has_its_own_restart_bound(metered):
    """Past worker-restart-limit, the metrics process is not restarted: the
    endpoint closes, the echo goes on (a scraper that can crash it must
    not stop the service)."""
    d = metered(workers=1, extra="worker-restart-limit 1/m\n")
    for n in range(2):
        m = d.metrics_pid()
        mark = len(d.log_lines())
        os.kill(m, signal.SIGKILL)
        if n == 0:
            wait_new(d, d.metrics_pid, m)
            d.wait_event("metrics_started", 5.0, mark)
    failed = parse_logfmt(d.wait_event("metrics_failed", 5.0, mark))
    assert failed["action"] == "close_endpoint", failed
    wait_until(lambda: d.metrics_pid() is None, 5.0, what="no metrics")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, d.mport), 2)
    assert d.proc.poll() is None
    assert tcp_echo(HOST, d.port, b"echo") == b"echo"
    assert d.stop() == 0


# ------------------------------------------------ /proc of the metrics process


@needs_root
def test_metrics_process_is_sandboxed_and_holds_only_its_own(policy, echod):
    from test_sandbox import resolved_user
    from test_metrics import listener_inode
    mport = free_port()
    d = echod(args=["-c", policy(f"metrics {HOST}:{mport}\n")], workers=2)
    m = d.metrics_pid()
    name, uid, gid = resolved_user()
    st = assert_sandboxed(m, uid, gid, worker=True)
    assert st["Name"] == "echod-metrics"
    assert os.readlink(f"/proc/{m}/root") == os.readlink(f"/proc/{d.pid}/root")
    # Its fds: stdin/stdout /dev/null, stderr, the metrics listener, its two
    # pipes to the supervisor, its epoll; no echo socket, no signalfd.
    fds = fd_targets(m)
    listener = f"socket:[{listener_inode(mport)}]"
    pipes = pipes_to_supervisor(m, d.pid)
    assert len(pipes) == 2, fds
    rest = {fd: t for fd, t in fds.items() if fd > 2 and fd not in pipes}
    assert sorted(rest.values()) == sorted([listener,
                                            "anon_inode:[eventpoll]"]), fds
    assert fds[0] == fds[1] == "/dev/null"
    for w in d.workers():
        assert listener not in fd_targets(w).values()
    # A scraper's connection is the metrics process's: the supervisor holds
    # the listener only to hand it on, and no connection.
    with socket.create_connection((HOST, mport), 5) as held:
        held.sendall(b"GET /metrics HTTP/1.1\r\n")
        conn = wait_until(lambda: accepted_inodes(mport) or None, 2.0,
                          what="the scraper's connection accepted")
        assert len(conn) == 1
        assert f"socket:[{conn[0]}]" in fd_targets(m).values()
        assert f"socket:[{conn[0]}]" not in fd_targets(d.pid).values()
    assert d.stop() == 0


def accepted_inodes(port):
    """Inodes of the established connections whose local port is port."""
    out = []
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if f[1].endswith(f":{port:04X}") and f[3] == "01" and f[9] != "0":
            out.append(f[9])
    return out


@needs_root
@needs_gdb
def test_metrics_process_landlock_stands_alone(tmp_path, echod):
    """With seccomp only logging, the metrics process, in a Landlock domain
    of its own (ABI 6 scoping), signals neither the supervisor nor a
    worker."""
    from test_isolation import kernel_landlock_abi
    abi = kernel_landlock_abi()
    if abi == 0:
        pytest.skip("this kernel offers no Landlock")
    mport = free_port()
    d = echod(policy_text=f"sandbox-violation log\nmetrics {HOST}:{mport}\n",
              workers=1, listen=(HOST,))
    m = d.metrics_pid()
    w = d.workers()[0]
    wait_until(lambda: status(m).get("Seccomp_filters") == "2", 2.0,
               what="metrics hardened")
    if abi < 6:
        pytest.skip("signal scoping needs Landlock ABI 6")
    out = gdb(m, f"print (int)kill({d.pid}, 0)",
              "print *(int *)__errno_location()",
              f"print (int)kill({w}, 0)",
              "print *(int *)__errno_location()")
    assert "$1 = -1" in out and "$2 = 1" in out, out  # EPERM
    assert "$3 = -1" in out and "$4 = 1" in out, out
    # A worker (the supervisor's domain) may still: the refusal is the
    # metrics process's own domain, not the uid.
    out = gdb(w, f"print (int)kill({d.pid}, 0)")
    assert "$1 = 0" in out, out
    assert d.metrics_pid() == m
    assert d.stop() == 0
