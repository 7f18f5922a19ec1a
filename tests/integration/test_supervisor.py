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
from test_reload import live
from conftest import (ECHOD_BIN, Echod, free_port, is_event, parse_logfmt,
                      tcp_echo, wait_until)
from test_sandbox import (assert_sandboxed, fd_access, fd_targets, needs_root,
                          status)

_fixtures = (live,)  # imported for pytest, used by name

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


def shared_pipes(pid, other):
    """{fd: pipe target} of pid's pipes that other also holds, but
    stderr's."""
    theirs = set(fd_targets(other).values())
    mine = fd_targets(pid)
    return {fd: t for fd, t in mine.items()
            if t.startswith("pipe:") and t in theirs and t != mine.get(2)}


def write_end(pid, parent):
    """The fd pid writes its counters to: a pipe its parent (the
    supervisor for a worker, the keeper for the metrics process) shares,
    open write-only."""
    fds = [fd for fd in shared_pipes(pid, parent)
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


def metrics_value(port, name):
    with socket.create_connection((HOST, port), 5) as s:
        s.sendall(GET)
        text = read_all(s).decode()
    return [float(l.split()[-1]) for l in text.splitlines()
            if l.startswith(name + " ") or l.startswith(name + "{")]


def assert_whole_snapshots(d, c):
    """The metrics process shows whole snapshots: the worker count, and
    the accepted connections SIGUSR1 showed (once the supervisor's next
    tick has sent them: within 2 s, not garbage)."""
    assert metrics_value(d.mport, "echod_workers") == [1.0]
    assert metrics_value(d.mport, "echod_workers_alive") == [1.0]
    want = [float(c["tcp_accepted"])]
    wait_until(lambda: metrics_value(
        d.mport, "echod_tcp_connections_accepted_total") == want, 2.0,
        what=f"tcp accepted {want} in the scrape")


@needs_root
@needs_gdb
@pytest.mark.parametrize("how", ["exit71", "exit64", "exit78", "forged",
                                 "odd", "segv"])
def test_the_metrics_process_is_restarted(metered, how):
    """A metrics process that exits after ready (71, 64, 78), writes a
    forged snapshot or an odd-sized scrap into its counters pipe and
    exits, or dies of SIGSEGV is restarted by the keeper; echo and the
    endpoint go on."""
    d = metered(workers=1)
    keeper = d.keeper_pid()
    m = d.metrics_pid()
    assert m is not None and scrape_ok(d.mport)
    mark = len(d.log_lines())
    if how.startswith("exit"):
        gdb(m, f"call (void)_exit({how[4:]})")
    elif how == "forged":
        forge_and_exit(m, write_end(m, keeper), 64)
    elif how == "odd":
        out = gdb(m, f"print (long)write({write_end(m, keeper)}, \"abc\", 3)",
                  "call (void)_exit(71)")
        assert "$1 = 3" in out, out
    else:
        os.kill(m, signal.SIGSEGV)
    died = parse_logfmt(d.wait_event("metrics_died", 5.0, mark))
    assert died["ready"] == "yes", died
    assert died["pid"] == str(m), died
    want = {"forged": "64", "odd": "71", "segv": "SEGV"}.get(how, how[4:])
    assert died.get("signal" if how == "segv" else "exit_status") == want, \
        died
    new = wait_new(d, d.metrics_pid, m)
    d.wait_event("metrics_started", 5.0, mark)
    wait_until(lambda: scrape_ok(d.mport), 5.0, what="scrapes again")
    assert d.proc.poll() is None
    assert d.keeper_pid() == keeper  # the keeper restarted it
    assert tcp_echo(HOST, d.port, b"echo") == b"echo"
    assert not any(is_event(l, "metrics_failed") or is_event(l, "worker_failed")
                   or is_event(l, "metrics_keeper_gone")
                   for l in d.log_lines())
    c = d.counters()
    assert c["metrics_restarts"] == 1
    assert_whole_snapshots(d, c)
    assert new in [d.metrics_pid()]
    assert d.stop() == 0


@needs_root
@needs_gdb
def test_a_torn_snapshot_read_cannot_desynchronise_the_next(metered):
    """The snapshot pipe is read a record at a time: a metrics process
    that reads three bytes of a snapshot and dies leaves its successor
    reading whole snapshots (from a byte stream it would read every later
    one three bytes off)."""
    d = metered(workers=1)
    keeper, m = d.keeper_pid(), d.metrics_pid()
    feed = [fd for fd in shared_pipes(m, d.pid)
            if fd_access(m, fd) == "O_RDONLY"]
    assert len(feed) == 1, fd_targets(m)
    # While gdb holds it stopped: three connections, three changes the
    # supervisor sends on its next ticks, queued; then the torn read.
    traffic = ("import socket, time\n"
               "for _ in range(3):\n"
               f"    socket.create_connection(('{HOST}', {d.port})).close()\n"
               "    time.sleep(0.12)\n")
    mark = len(d.log_lines())
    out = gdb(m, f"shell {PYTHON} -c \"{traffic}\"",
              "set $b = (char *)malloc(8)",
              "print ((long (*)(int, void *, unsigned long))read)"
              f"({feed[0]}, $b, 3)",
              "call (void)_exit(71)")
    assert "$1 = 3" in out, out
    d.wait_event("metrics_died", 5.0, mark)
    wait_new(d, d.metrics_pid, m)
    wait_until(lambda: scrape_ok(d.mport), 5.0, what="scrapes again")
    assert d.keeper_pid() == keeper
    assert_whole_snapshots(d, d.counters())
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


def test_the_metrics_bound_is_the_one_at_start(live):
    """The keeper holds the start-up policy: a reload that raises
    worker-restart-limit applies to the workers, not to the metrics
    process's bound (SECURITY.md, echod.conf(5))."""
    from test_reload import reload as sighup
    mport = free_port()
    text = f"metrics {HOST}:{mport}\nworker-restart-limit {{}}\n"
    d, write = live(text.format("1/m"), workers=1)
    write(text.format("100/m"))
    sighup(d, what=("reload",))
    m = d.metrics_pid()
    mark = len(d.log_lines())
    os.kill(m, signal.SIGKILL)
    wait_new(d, d.metrics_pid, m)
    d.wait_event("metrics_started", 5.0, mark)
    os.kill(d.metrics_pid(), signal.SIGKILL)
    failed = parse_logfmt(d.wait_event("metrics_failed", 5.0, mark))
    assert failed["action"] == "close_endpoint", failed
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
    # Its fds: stdin/stdout /dev/null, stderr, the metrics listener, the
    # snapshot pipe from the supervisor (read end), its counters pipe to
    # the keeper (write end), its epoll; no echo socket, no signalfd.
    keeper = d.keeper_pid()
    fds = fd_targets(m)
    listener = f"socket:[{listener_inode(mport)}]"
    feed = shared_pipes(m, d.pid)
    assert [fd_access(m, fd) for fd in feed] == ["O_RDONLY"], fds
    up = {fd: t for fd, t in shared_pipes(m, keeper).items()
          if fd not in feed}
    assert [fd_access(m, fd) for fd in up] == ["O_WRONLY"], fds
    assert not set(up.values()) & set(fd_targets(d.pid).values())
    pipes = {**feed, **up}
    rest = {fd: t for fd, t in fds.items() if fd > 2 and fd not in pipes}
    assert sorted(rest.values()) == sorted([listener,
                                            "anon_inode:[eventpoll]"]), fds
    assert fds[0] == fds[1] == "/dev/null"
    for w in d.workers():
        assert listener not in fd_targets(w).values()
    # A scraper's connection is the metrics process's: the keeper holds
    # the listener only to hand it on, the supervisor neither it nor a
    # connection.
    with socket.create_connection((HOST, mport), 5) as held:
        held.sendall(b"GET /metrics HTTP/1.1\r\n")
        conn = wait_until(lambda: accepted_inodes(mport) or None, 2.0,
                          what="the scraper's connection accepted")
        assert len(conn) == 1
        assert f"socket:[{conn[0]}]" in fd_targets(m).values()
        assert f"socket:[{conn[0]}]" not in fd_targets(d.pid).values()
        assert f"socket:[{conn[0]}]" not in fd_targets(keeper).values()
    assert d.stop() == 0


# ------------------------------------------------ the keeper


@needs_root
def test_keeper_is_sandboxed_and_holds_only_its_own(policy, echod):
    """The keeper: the service user, no capability, NoNewPrivs, its own
    seccomp filter (not the supervisor's: one filter), no core; it holds
    the metrics listener, the snapshot pipe's read end (to hand on), its
    report pipe to the supervisor, the running metrics process's counters
    pipe, its epoll and signalfd; no echo socket, no policy reader."""
    from test_sandbox import resolved_user
    from test_metrics import listener_inode
    mport = free_port()
    d = echod(args=["-c", policy(f"metrics {HOST}:{mport}\n")], workers=2)
    k, m = d.keeper_pid(), d.metrics_pid()
    name, uid, gid = resolved_user()
    st = assert_sandboxed(k, uid, gid, worker=False)
    assert st["Name"] == "echod-keeper"
    assert os.readlink(f"/proc/{k}/root") == os.readlink(f"/proc/{d.pid}/root")
    fds = fd_targets(k)
    listener = f"socket:[{listener_inode(mport)}]"
    with_sup = shared_pipes(k, d.pid)
    assert sorted(fd_access(k, fd) for fd in with_sup) == \
        ["O_RDONLY", "O_WRONLY"], fds
    feed = [fd for fd in with_sup if fd_access(k, fd) == "O_RDONLY"]
    assert with_sup[feed[0]] in shared_pipes(m, d.pid).values()
    report = [fd for fd in with_sup if fd_access(k, fd) == "O_WRONLY"]
    assert with_sup[report[0]] not in fd_targets(m).values()
    counters = {fd: t for fd, t in shared_pipes(k, m).items()
                if fd not in with_sup}
    assert [fd_access(k, fd) for fd in counters] == ["O_RDONLY"], fds
    rest = {fd: t for fd, t in fds.items()
            if fd > 2 and fd not in with_sup and fd not in counters}
    assert sorted(rest.values()) == sorted([
        listener, "anon_inode:[eventpoll]", "anon_inode:[signalfd]"]), fds
    assert fds[0] == fds[1] == "/dev/null"
    assert d.stop() == 0


def test_the_supervisor_holds_no_metrics_socket(metered):
    """From outside: no fd of the supervisor (nor of a worker) is the
    metrics listener; the keeper and the metrics process hold it."""
    from test_metrics import listener_inode, socket_inodes
    d = metered(workers=2)
    inode = listener_inode(d.mport)
    assert inode not in socket_inodes(d.pid)
    for w in d.workers():
        assert inode not in socket_inodes(w)
    assert inode in socket_inodes(d.keeper_pid())
    assert inode in socket_inodes(d.metrics_pid())
    assert d.stop() == 0


@needs_root
@needs_gdb
def test_a_compromised_supervisor_cannot_accept_a_scrape(metered):
    """gdb as a compromised supervisor: with the metrics process stopped
    and a scraper waiting in the backlog, accept4 on every fd the
    supervisor holds takes nothing; the scraper is then answered by the
    metrics process."""
    d = metered(workers=1)
    m = d.metrics_pid()
    os.kill(m, signal.SIGSTOP)
    try:
        waiting = socket.create_connection((HOST, d.mport), 5)
        waiting.sendall(GET)
        fds = sorted(fd_targets(d.pid))
        calls = [f"print ((int (*)(int, void *, void *, int))accept4)"
                 f"({fd}, 0, 0, {socket.SOCK_CLOEXEC})"
                 for fd in fds]
        out = gdb(d.pid, *calls)
        got = [l for l in out.splitlines() if l.startswith("$")]
        assert len(got) == len(fds), out
        assert all(l.endswith("= -1") for l in got), out
    finally:
        os.kill(m, signal.SIGCONT)
    with waiting:
        assert read_all(waiting).startswith(b"HTTP/1.1 200 ")
    assert d.proc.poll() is None
    assert d.stop() == 0


def test_a_killed_keeper_closes_the_endpoint_only(metered):
    """The keeper is not restarted (one forked after the supervisor's
    filter would hold it): killing it ends the metrics process with it
    and closes the endpoint; echo goes on, and SIGTERM still stops the
    service with 0."""
    d = metered(workers=2)
    k, m = d.keeper_pid(), d.metrics_pid()
    mark = len(d.log_lines())
    os.kill(k, signal.SIGKILL)
    gone = parse_logfmt(d.wait_event("metrics_keeper_gone", 5.0, mark))
    assert gone["pid"] == str(k) and gone["signal"] == "KILL", gone
    assert gone["action"] == "close_endpoint", gone
    wait_until(lambda: not os.path.exists(f"/proc/{m}/stat") or
               status(m).get("State", "").startswith("Z"), 5.0,
               what="the metrics process gone with its keeper")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, d.mport), 2)
    assert d.keeper_pid() is None
    assert len(d.workers()) == 2
    assert tcp_echo(HOST, d.port, b"echo") == b"echo"
    assert d.counters()["tcp_accepted"] >= 1
    assert d.proc.poll() is None
    assert d.stop() == 0


@needs_root
@needs_gdb
def test_a_keeper_refusal_stops_the_service(metered):
    """The keeper's exit status is the one datum from it that decides
    something: 71 (a metrics process refused to start, or the keeper's
    own hardening failed) stops the service with 71, as a worker's
    refusal does."""
    d = metered(workers=1)
    k = d.keeper_pid()
    mark = len(d.log_lines())
    gdb(k, "call (void)_exit(71)")
    gone = parse_logfmt(d.wait_event("metrics_keeper_gone", 5.0, mark))
    assert gone["exit_status"] == "71" and gone["action"] == "stop", gone
    assert d.proc.wait(5) == 71


def test_the_keeper_dies_with_the_supervisor(metered):
    """SIGKILL to the supervisor: the keeper and the metrics process end
    too (PR_SET_PDEATHSIG), and the port is free again."""
    d = metered(workers=1)
    k, m = d.keeper_pid(), d.metrics_pid()
    os.kill(d.pid, signal.SIGKILL)
    d.proc.wait(5)
    for pid in (k, m):
        wait_until(lambda: not os.path.exists(f"/proc/{pid}/stat") or
                   status(pid).get("State", "").startswith("Z"), 5.0,
                   what=f"pid {pid} gone with the supervisor")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, d.mport), 2)


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
    k = d.keeper_pid()
    w = d.workers()[0]
    wait_until(lambda: status(m).get("Seccomp_filters") == "2", 2.0,
               what="metrics hardened")
    if abi < 6:
        pytest.skip("signal scoping needs Landlock ABI 6")
    out = gdb(m, f"print (int)kill({d.pid}, 0)",
              "print *(int *)__errno_location()",
              f"print (int)kill({w}, 0)",
              "print *(int *)__errno_location()",
              f"print (int)kill({k}, 0)",
              "print *(int *)__errno_location()")
    assert "$1 = -1" in out and "$2 = 1" in out, out  # EPERM
    assert "$3 = -1" in out and "$4 = 1" in out, out
    assert "$5 = -1" in out and "$6 = 1" in out, out
    # The keeper, in a domain of its own too: neither the supervisor nor
    # a worker (its filter only logs its kill calls here).
    out = gdb(k, f"print (int)kill({d.pid}, 0)",
              "print *(int *)__errno_location()",
              f"print (int)kill({w}, 0)",
              "print *(int *)__errno_location()")
    assert "$1 = -1" in out and "$2 = 1" in out, out
    assert "$3 = -1" in out and "$4 = 1" in out, out
    # A worker (the supervisor's domain) may still: the refusal is the
    # metrics process's own domain, not the uid.
    out = gdb(w, f"print (int)kill({d.pid}, 0)")
    assert "$1 = 0" in out, out
    assert d.metrics_pid() == m
    assert d.stop() == 0
