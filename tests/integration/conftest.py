"""Fixtures for echod's integration tests: free ports, a running echod, logs.

Every echod started here listens on loopback (127.0.0.1 and ::1 unless a
test asks otherwise) on a high port, is synchronised by reading its log
(event=ready, event=counters), never by sleeping, and is killed by pid at
teardown whatever the test did.
"""

import os
import random
import re
import shutil
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bin(env, default):
    p = Path(os.environ.get(env, default))
    return p if p.is_absolute() else ROOT / p


ECHOD_BIN = _bin("ECHOD_BIN", "build/echod")
CLIENT_BIN = _bin("ECHO_CLIENT_BIN", "build/echo-client")
POLICY_FILE = ROOT / "policy" / "echod.conf"
COUNTERS_H = ROOT / "src" / "counters.h"

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 1.5

EXIT_USAGE = 64
EXIT_OSERR = 71
EXIT_CONFIG = 78


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "asan: core tests also run against the ASan+UBSan build "
        "(tests/run.py runs them with ECHOD_BIN=build/asan/echod)",
    )


def counter_names():
    """Every counter name in src/counters.h, in order."""
    text = COUNTERS_H.read_text()
    names = re.findall(r"^\s*X\((\w+)\)", text, re.M)
    assert names, "no X(name) entries found in src/counters.h"
    return names


def policy_keywords():
    """Every keyword of src/policy.c's directive table, in order."""
    text = (ROOT / "src" / "policy.c").read_text()
    table = text[text.index("static const struct directive directives[]"):]
    table = table[: table.index("};")]
    names = re.findall(r'\{"([a-z0-9-]+)",', table)
    assert len(names) >= 20, names
    return names


# ---------------------------------------------------------------- ports

_handed_out = set()


def port_free_on(port, hosts):
    """True if TCP and UDP `port` can be bound on every address in hosts
    (IPv6 ones with IPV6_V6ONLY, as echod binds them)."""
    for host in hosts:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(family, kind)
            try:
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((host, port))
            except OSError:
                return False
            finally:
                s.close()
    return True


def _port_free(port):
    """True if `port` can be bound for TCP and UDP on the wildcard
    addresses of both families (the wildcard covers 127/8 and ::1)."""
    return port_free_on(port, ("0.0.0.0", "::"))


def free_port():
    """A port in 20000-60000 free for TCP and UDP on 127.0.0.1 and ::1,
    never handed out twice in one run (no TIME_WAIT leftovers)."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(500):
        port = rng.randint(20000, 60000)
        if port in _handed_out:
            continue
        if _port_free(port):
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found in 500 tries")


# ---------------------------------------------------------------- /proc


def kill_pids(pids):
    """SIGKILL each pid we started; one already gone is fine."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def children_of(pid):
    """Pids of the live processes whose parent is `pid`."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # comm may contain spaces or parentheses: split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == pid and state != "Z":
            kids.append(int(entry))
    return sorted(kids)


METRICS_COMM = "echod-metrics"  # src/keeper.h: the metrics process
KEEPER_COMM = "echod-keeper"  # src/keeper.h: the metrics keeper
READER_COMM = "echod-reader"  # src/reader.c: the policy reader


def comm(pid):
    """/proc/PID/comm, or "" once the process is gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def workers_of(pid):
    """The supervisor's children but its metrics keeper and its policy
    reader: its workers."""
    return [k for k in children_of(pid)
            if comm(k) not in (KEEPER_COMM, READER_COMM)]


def reader_of(pid):
    """The pid of the supervisor's policy reader, or None."""
    kids = [k for k in children_of(pid) if comm(k) == READER_COMM]
    return kids[0] if kids else None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_until(pred, timeout, interval=0.02, what="condition"):
    """Poll `pred` until it returns a true value (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def echoes(s, payload, timeout=1.0):
    """True if s gets payload back within timeout (False if closed)."""
    s.settimeout(timeout)
    try:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            b = s.recv(4096)
            if not b:
                return False
            got += b
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        return False
    return got == payload


# ---------------------------------------------------------------- logs


def parse_logfmt(line):
    """key=value pairs of one logfmt line ("quoted values" allowed)."""
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        v = m.group(2)
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = v[1:-1]
        out[m.group(1)] = v
    return out


def is_event(line, event):
    return re.search(r"(^|\s)event=" + re.escape(event) + r"(\s|$)", line) is not None


class Echod:
    """One running echod: its port, process and collected stderr."""

    def __init__(self, argv, port, policy_path, stdin=subprocess.DEVNULL):
        self.argv = argv
        self.port = port
        self.policy_path = policy_path
        self._lines = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=str(ROOT),
        )
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def log_lines(self):
        with self._cond:
            return list(self._lines)

    def log_text(self):
        return "\n".join(self.log_lines())

    def wait_for_line(self, pred, timeout, start=0, what="log line"):
        """The first line at index >= start matching pred; raises on timeout
        or when echod's stderr closes first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines[start:]:
                    if pred(line):
                        return line
                start = max(start, len(self._lines))
                if self._eof:
                    try:
                        status = self.proc.wait(2)
                    except subprocess.TimeoutExpired:
                        status = "running, stderr closed"
                    raise AssertionError(
                        f"echod exited (status {status}) before "
                        f"{what}; log:\n" + "\n".join(self._lines)
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {what}; "
                        "log:\n" + "\n".join(self._lines)
                    )
                self._cond.wait(left)

    def wait_event(self, event, timeout=5.0, start=0):
        return self.wait_for_line(
            lambda l: is_event(l, event), timeout, start, f"event={event}"
        )

    def wait_ready(self, timeout=READY_TIMEOUT):
        return self.wait_event("ready", timeout)

    def workers(self):
        """The worker pids: every child but the metrics process and the
        policy reader."""
        return workers_of(self.pid)

    def keeper_pid(self):
        """The metrics keeper's pid, or None."""
        found = [p for p in children_of(self.pid) if comm(p) == KEEPER_COMM]
        return found[0] if found else None

    def metrics_pid(self):
        """The metrics process's pid (the keeper's child), or None."""
        keeper = self.keeper_pid()
        found = [p for p in children_of(keeper) if comm(p) == METRICS_COMM] \
            if keeper else []
        return found[0] if found else None

    def counters(self, timeout=5.0):
        """SIGUSR1, then the counters of the new event=counters line."""
        with self._cond:
            start = len(self._lines)
        os.kill(self.pid, signal.SIGUSR1)
        line = self.wait_event("counters", timeout, start)
        fields = parse_logfmt(line)
        return {k: int(v) for k, v in fields.items() if v.isdigit() and k != "pid"}

    def counters_when(self, pred, timeout=3.0):
        """Counters once pred(counters) holds (a worker counts a reply just
        after sending it); returns the last ones seen if it never does, so
        the caller's assertion shows the values."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.counters()
            if pred(c) or time.monotonic() >= deadline:
                return c
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send sig, wait; the exit status. Asserts it ended within timeout."""
        t0 = time.monotonic()
        os.kill(self.pid, sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"echod did not exit within {timeout}s of signal {sig!r}"
            )
        elapsed = time.monotonic() - t0
        self._reader.join(2.0)
        assert elapsed < timeout, f"echod took {elapsed:.2f}s to stop"
        return rc

    def kill_all(self):
        """Teardown: SIGKILL the workers and the supervisor by pid."""
        if self.proc.poll() is None:
            kids = children_of(self.pid)
            kill_pids([self.pid] + kids)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            for pid in kids:
                # Reaped by init; just make sure they are gone.
                try:
                    wait_until(lambda: not os.path.exists(f"/proc/{pid}/stat")
                               or _is_zombie(pid), 2.0, what=f"pid {pid} gone")
                except AssertionError:
                    pass
        self._reader.join(2.0)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def echod(tmp_path):
    """Factory: start(args=[], policy_text=None, workers=1,
    listen=("127.0.0.1", "[::1]"), port=None, wait=True) -> Echod."""
    started = []

    def start(args=(), policy_text=None, workers=1,
              listen=("127.0.0.1", "[::1]"), port=None, wait=True,
              stdin=subprocess.DEVNULL):
        # A port picked here may be taken by someone else before echod
        # binds it (exit 71, "in use"): then try another, at most 3 times.
        attempts = 1 if port is not None or not wait else 3
        for attempt in range(attempts):
            d = _launch(args, policy_text, workers, listen,
                        port or free_port(), stdin)
            if not wait:
                return d
            try:
                d.wait_ready()
                return d
            except AssertionError:
                lost_race = (d.proc.poll() == EXIT_OSERR
                             and "in use" in d.log_text())
                if not lost_race or attempt == attempts - 1:
                    raise

    def _launch(args, policy_text, workers, listen, port, stdin):
        argv = [str(ECHOD_BIN)]
        policy_path = None
        if policy_text is not None:
            policy_path = tmp_path / f"policy-{len(started)}.conf"
            data = policy_text.encode() if isinstance(policy_text, str) else policy_text
            policy_path.write_bytes(data)
            argv += ["-c", str(policy_path)]
        for addr in listen:
            argv += ["-l", addr]
        argv += ["-p", str(port)]
        if workers is not None:
            argv += ["-w", str(workers)]
        argv += list(args)
        d = Echod(argv, port, policy_path, stdin)
        started.append(d)
        return d

    yield start
    for d in started:
        d.kill_all()


def run_echod(args, timeout=10.0):
    """Run echod to completion (flags, -t, policy errors)."""
    return subprocess.run(
        [str(ECHOD_BIN)] + [str(a) for a in args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        cwd=str(ROOT),
    )


# ---------------------------------------------------------------- sockets


def tcp_connect(host, port, timeout=5.0):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def recv_exact(s, n, timeout=10.0):
    """Read exactly n bytes (fewer only at EOF), within timeout overall."""
    deadline = time.monotonic() + timeout
    chunks = []
    got = 0
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out reading: {got} of {n} bytes")
        s.settimeout(left)
        b = s.recv(min(n - got, 1 << 20))
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def echo_timed(s, data, want=None, timeout=10.0):
    """Send data from a thread while reading `want` bytes (default all of
    it) back: (what came back, seconds it took)."""
    t0 = time.monotonic()
    sender = threading.Thread(target=s.sendall, args=(data,))
    sender.start()
    got = recv_exact(s, len(data) if want is None else want, timeout)
    took = time.monotonic() - t0
    sender.join(5)
    return got, took


def recv_to_eof(s, limit, timeout=10.0):
    """Everything until EOF (at most limit+1 bytes), within timeout."""
    data = recv_exact(s, limit + 1, timeout)
    return data


def closed_promptly(s, timeout=2.0):
    """True if echod closed (FIN or reset) s within timeout."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def stall_sending(s, block, quiet=0.5):
    """Send block until the socket has stayed full for `quiet` seconds
    (the server stopped reading this peer, which reads nothing); the
    bytes sent."""
    s.setblocking(False)
    sent = 0
    view = memoryview(block)
    while sent < len(block):
        try:
            sent += s.send(view[sent:sent + 65536])
        except BlockingIOError:
            _, w, _ = select.select([], [s], [], quiet)
            if not w:
                break
    s.setblocking(True)
    return sent


def tcp_echo(host, port, payload, timeout=10.0):
    """Send payload, half-close, read to EOF: what came back."""
    with tcp_connect(host, port, timeout) as s:
        if payload:
            s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return recv_to_eof(s, len(payload), timeout)


# Source ports that echod's default policy never answers (known services a
# reflection could loop through); some lie in the ephemeral range.
_DENIED_UDP_SOURCE_PORTS = {1194, 1434, 1900, 3283, 3478, 3702, 5060, 5353,
                            5683, 6881, 10001, 11211, 17185, 26000, 30120,
                            32414, 33848, 37810} | set(range(27015, 27031))


def udp_socket(family=socket.AF_INET, host=None):
    """A UDP socket bound to an ephemeral port that no default policy
    rule refuses, so that a test never depends on the kernel's choice."""
    if host is None:
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    rejected = []
    try:
        for _ in range(50):
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.bind((host, 0))
            port = s.getsockname()[1]
            if port >= 1024 and port not in _DENIED_UDP_SOURCE_PORTS:
                return s
            rejected.append(s)  # keep it bound so it is not chosen again
        raise RuntimeError("no acceptable UDP source port in 50 tries")
    finally:
        for r in rejected:
            r.close()


def udp_socket_on_denied_port(host):
    """A UDP socket on host bound to one of the default policy's denied
    source ports, the first one free: a fixed one may be taken by whatever
    else runs on the machine (another run of the same test)."""
    for port in sorted(_DENIED_UDP_SOURCE_PORTS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((host, port))
            return s
        except OSError:
            s.close()
    raise RuntimeError("every default-denied UDP source port is in use")


def udp_echo(host, port, payload, timeout=2.0):
    """One datagram there and back: (data, source address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with udp_socket(family) as s:
        s.settimeout(timeout)
        s.sendto(payload, (host, port))
        data, addr = s.recvfrom(65536)
        return data, addr[:2]


# ---- sandbox fixtures, shared by test_sandbox.py and test_isolation.py ----

@pytest.fixture
def chroot_dir():
    """A fresh empty root-owned 0755 directory, as prepare_chroot wants."""
    d = tempfile.mkdtemp(prefix="echod-root-")
    os.chmod(d, 0o755)
    yield os.path.realpath(d)
    shutil.rmtree(d, ignore_errors=True)
    if os.path.lexists(d):
        os.unlink(d)


@pytest.fixture
def policy(tmp_path, chroot_dir):
    """Write a policy that uses the test's chroot; returns its path."""
    n = [0]

    def make(extra=""):
        n[0] += 1
        p = tmp_path / f"sandbox-policy-{n[0]}.conf"
        p.write_text(f"chroot {chroot_dir}\n{extra}")
        return str(p)

    return make


@pytest.fixture
def spawn():
    """Factory: an Echod for any argv (launchers, setpriv), killed by pid
    at teardown like the conftest fixture's."""
    started = []

    def start(argv, port=None, wait=True):
        d = Echod([str(a) for a in argv], port, None)
        started.append(d)
        if wait:
            d.wait_ready()
        return d

    yield start
    for d in started:
        d.kill_all()


@pytest.fixture
def public_bin_dir():
    """A 0755 directory outside pytest's 0700 tmp, for binaries nobody runs."""
    d = tempfile.mkdtemp(prefix="echod-cap-")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def deb(tmp_path_factory):
    """`make deb` of this tree, once per run: the package test_install.py
    installs in a throw-away root and test_systemd.py under systemd."""
    if shutil.which("dpkg-buildpackage") is None:
        pytest.skip("dpkg-buildpackage missing (dpkg-dev, debhelper)")
    build = tmp_path_factory.mktemp("debbuild")
    r = subprocess.run(["make", "-s", "--no-print-directory", "deb",
                        f"BUILD={build}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    debs = list((build / "deb").glob("echod_*_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


def proc_status(pid):
    """/proc/PID/status as {field: value string}."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


GDB = shutil.which("gdb")


def gdb(pid, *commands, timeout=30):
    """Attach gdb to pid, run commands, detach; gdb's output."""
    argv = [GDB, "-nx", "-batch", "-p", str(pid),
            "-ex", "set confirm off", "-ex", "set pagination off"]
    for c in commands:
        argv += ["-ex", c]
    r = subprocess.run(argv, capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return (r.stdout + r.stderr).decode(errors="replace")


def read_all(s, timeout=5):
    """Everything until the peer closes."""
    s.settimeout(timeout)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return got
        got += chunk


def fd_targets(pid):
    """{fd: what /proc/PID/fd/FD links to}; fds closed meanwhile left out."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out
