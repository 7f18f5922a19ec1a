"""SIGHUP reloads the policy on a live echod; -T prints the policy in force.

Each test checks a promise of echod(8) "SIGNALS" and SECURITY.md "The
policy reader" from outside: the log lines, the echoes, /proc and gdb.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from test_abuse import net
from conftest import proc_status as _status
from conftest import (ROOT, EXIT_CONFIG, is_event, parse_logfmt, reader_of,
                      recv_exact, rss_kib, run_echod, tcp_connect, udp_socket,
                      wait_until)

GDB = shutil.which("gdb")
needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb is not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

NO_BYTE_RATES = "udp-byte-rate unlimited\nudp-global-rate unlimited\n"
QUIET = "udp-rate unlimited\n" + NO_BYTE_RATES

_fixtures = (net,)  # imported for pytest, used by name


@pytest.fixture
def live(tmp_path, echod):
    """Factory: start(text, workers=2) -> (Echod, write), where write(text)
    replaces the policy file (world-readable, as the reader, running as
    the service user, must read it) and reload(d) sends SIGHUP."""
    pdir = tmp_path / "etc"
    pdir.mkdir()
    os.chmod(pdir, 0o755)
    path = pdir / "echod.conf"

    def write(text):
        tmp = pdir / ".echod.conf.new"
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)  # as editors do: a new inode by rename

    def start(text, workers=2, args=()):
        write(text)
        d = echod(args=["-c", str(path)] + list(args), workers=workers,
                  listen=("127.0.0.1",))
        return d, write

    start.path = path
    return start


def reload(d, what=("reload", "reload_refused"), timeout=5.0):
    """SIGHUP, then the fields of the outcome's log line."""
    start = len(d.log_lines())
    os.kill(d.pid, signal.SIGHUP)
    line = d.wait_for_line(lambda l: any(is_event(l, e) for e in what),
                           timeout, start, what=f"event={'/'.join(what)}")
    return parse_logfmt(line)


def udp_burst(port, n, src="127.0.0.1", timeout=0.5):
    """n distinct datagrams from one socket; how many came back."""
    with udp_socket(host=src) as s:
        for i in range(n):
            s.sendto(b"burst %d %f" % (i, time.monotonic()), ("127.0.0.1", port))
        got = 0
        s.settimeout(timeout)
        try:
            while got < n:
                s.recvfrom(2048)
                got += 1
        except socket.timeout:
            pass
        return got


def digest_of(path, *args):
    r = run_echod(["-c", path, "-T"] + list(args))
    assert r.returncode == 0, r.stderr
    m = re.search(rb"^# digest ([0-9a-f]{16})$", r.stdout, re.M)
    assert m, r.stdout
    return m.group(1).decode()


# ---------------------------------------------------------------- reload


def test_reload_logs_changed_keywords_and_digest(live):
    d, write = live(QUIET)
    write(QUIET + "deny 198.18.7.0/24\ntcp-idle-timeout 20s\n")
    f = reload(d)
    assert f["event"] == "reload", f
    assert f["changed"] == "tcp-idle-timeout,deny", f
    assert f["digest"] == digest_of(live.path, "-l", "127.0.0.1",
                                    "-p", str(d.port), "-w", "2")
    assert d.counters()["policy_reloads"] == 1
    again = reload(d)
    assert again["changed"] == "none" and again["digest"] == f["digest"]
    assert d.workers() and d.proc.poll() is None


def test_reload_under_load_loses_no_byte_and_no_connection(live):
    """TCP bulk on 4 connections and UDP at 200/s while 20 reloads go
    through (two policies that both echo all of it): every byte and every
    datagram comes back, no connection closes."""
    a = QUIET + "tcp-idle-timeout 20s\n"
    b = QUIET + "tcp-idle-timeout 25s\ndeny 198.18.9.0/24\n"
    d, write = live(a)
    stop = threading.Event()
    errors, tcp_bytes, udp = [], [0], {"sent": 0, "got": 0}

    def bulk():
        try:
            s = tcp_connect("127.0.0.1", d.port)
            while not stop.is_set():
                chunk = os.urandom(64 * 1024)
                s.sendall(chunk)
                if recv_exact(s, len(chunk)) != chunk:
                    errors.append("tcp bytes differ")
                    return
                tcp_bytes[0] += len(chunk)
            s.close()
        except OSError as e:
            errors.append(f"tcp: {e!r}")

    def datagrams():
        with udp_socket() as s:
            s.settimeout(1.0)
            i = 0
            while not stop.is_set():
                payload = b"steady %d" % i
                s.sendto(payload, ("127.0.0.1", d.port))
                udp["sent"] += 1
                try:
                    if s.recvfrom(2048)[0] == payload:
                        udp["got"] += 1
                except socket.timeout:
                    errors.append(f"udp datagram {i} not echoed")
                i += 1
                time.sleep(0.005)

    threads = [threading.Thread(target=bulk) for _ in range(4)]
    threads.append(threading.Thread(target=datagrams))
    for t in threads:
        t.start()
    try:
        for i in range(20):
            write(b if i % 2 == 0 else a)
            assert reload(d)["event"] == "reload"
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not errors, errors[:5]
    assert udp["sent"] > 100 and udp["got"] == udp["sent"], udp
    assert tcp_bytes[0] > 4 * 64 * 1024
    c = d.counters()
    assert c["tcp_closed"] == 4 and c["tcp_idle_timeouts"] == 0, c
    assert c["policy_reloads"] == 20


def test_new_deny_prefix_takes_effect_within_100ms(live):
    d, write = live(QUIET)
    write(QUIET + "deny 127.0.0.2\n")
    sent, echoed = {}, []
    with udp_socket(host="127.0.0.2") as s:
        s.setblocking(False)
        t0 = time.monotonic()
        os.kill(d.pid, signal.SIGHUP)
        i = 0
        while time.monotonic() - t0 < 0.6:
            payload = b"probe %d" % i
            sent[payload] = time.monotonic() - t0
            s.sendto(payload, ("127.0.0.1", d.port))
            i += 1
            time.sleep(0.002)
            try:
                while True:
                    echoed.append(s.recvfrom(2048)[0])
            except BlockingIOError:
                pass
    assert d.wait_event("reload")
    last = max((sent[p] for p in echoed), default=0.0)
    assert last < 0.100, f"echoed a probe sent {last * 1000:.0f} ms after SIGHUP"
    assert len(sent) > 100 and len(echoed) < len(sent)
    # TCP too: a new connection from the denied source is refused.
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.settimeout(2)
    s.connect(("127.0.0.1", d.port))
    try:
        s.sendall(b"x")
        assert s.recv(16) == b""  # closed at once, or reset
    except ConnectionResetError:
        pass
    s.close()
    assert d.counters()["tcp_refused_deny"] == 1


def test_echo_client_tries_a_deny_rule_from_the_host(live):
    """echo-client -b sends from one of the host's addresses: a deny rule
    can be tried on the server itself, before and after a reload."""
    from conftest import CLIENT_BIN

    def probe(src):
        return subprocess.run(
            [str(CLIENT_BIN), "-u", "-n", "3", "-t", "0.3", "-p",
             str(d.port), "-b", src, "127.0.0.1"],
            capture_output=True, timeout=10).returncode

    d, write = live(QUIET)
    assert probe("127.0.0.2") == 0
    write(QUIET + "deny 127.0.0.2\n")
    assert reload(d)["changed"] == "deny"
    assert probe("127.0.0.2") == 3  # no echo
    assert probe("127.0.0.3") == 0


def test_lowered_rate_applies_to_a_source_mid_burst(live):
    d, write = live(NO_BYTE_RATES + "udp-rate 1000/s burst 1000\n", workers=1)
    assert udp_burst(d.port, 100) == 100
    write(NO_BYTE_RATES + "udp-rate 10/s burst 10\n")
    assert reload(d)["changed"] == "udp-rate"
    got = udp_burst(d.port, 100)
    assert 1 <= got <= 20, got


def test_reload_keeps_a_spent_rate_bucket(live):
    """A restart refills every bucket (a spent source got 12 of 20 probes
    again); a reload keeps them: the same source stays throttled."""
    base = NO_BYTE_RATES + "udp-rate 10/s burst 10\n"
    d, write = live(base, workers=1)
    assert udp_burst(d.port, 20) <= 12
    write(base + "tcp-idle-timeout 29s\n")
    assert reload(d)["changed"] == "tcp-idle-timeout"
    assert udp_burst(d.port, 20) <= 5


def test_invalid_file_is_refused_and_the_old_policy_stays(live):
    d, write = live(QUIET + "deny 127.0.0.2\n")
    write(QUIET + "deny 127.0.0.2\ntcp-idle-timeout soon\n")
    f = reload(d)
    assert f["event"] == "reload_refused", f
    assert f["error"].startswith(f"{live.path}:5: 'tcp-idle-timeout'"), f
    os.remove(live.path)
    f = reload(d)
    assert f["error"] == f"{live.path}: cannot open: No such file or directory"
    assert udp_burst(d.port, 5, src="127.0.0.2") == 0
    assert udp_burst(d.port, 5) == 5
    c = d.counters()
    assert c["policy_reloads_refused"] == 2 and c["policy_reloads"] == 0


@pytest.mark.parametrize("line,keyword", [
    ("rate-table-size 4096", "rate-table-size"),
    ("listen 127.0.0.9", None),  # -l overrides listen: nothing changes
    ("tcp-buffer 32k", "tcp-buffer"),
    ("user daemon", "user"),
])
def test_restart_only_keyword_is_refused(live, line, keyword):
    d, write = live(QUIET + "deny 127.0.0.2\n")
    write(QUIET + line + "\n")
    f = reload(d)
    if keyword is None:
        assert f["event"] == "reload" and f["changed"] == "deny", f
        return
    assert f["event"] == "reload_refused", f
    assert f["error"] == (f"'{keyword}' changed and only a restart can "
                          "change it: restart to apply"), f
    assert udp_burst(d.port, 5, src="127.0.0.2") == 0  # deny still holds


def _fds(pid):
    return sorted(os.listdir(f"/proc/{pid}/fd"))


def test_100_reloads_leave_rss_and_fds_flat(live):
    a = QUIET + "tcp-idle-timeout 20s\n"
    b = QUIET + "tcp-idle-timeout 21s\ndeny 198.18.3.0/24\n"
    d, write = live(a)
    pids = [d.pid, reader_of(d.pid)] + d.workers()
    assert None not in pids and len(pids) == 4

    def snapshot():
        return {p: (len(_fds(p)), rss_kib(p)) for p in pids}

    for i in range(10):  # warm up: every page the reloads touch
        write(b if i % 2 == 0 else a)
        assert reload(d)["event"] == "reload"
    before = snapshot()
    for i in range(100):
        write(b if i % 2 == 0 else a)
        assert reload(d)["event"] == "reload"
    after = snapshot()
    for p in pids:
        assert after[p][0] == before[p][0], (p, before[p], after[p])
        assert after[p][1] - before[p][1] <= 64, (p, before[p], after[p])
    assert d.counters()["policy_reloads"] == 110


def test_a_sighup_while_a_worker_reads_is_applied_not_lost(live):
    """A worker still reading the last policy (here: stopped) defers the
    next reload; the newest file is applied once it has read, and nothing
    is refused, so an operator's quick second SIGHUP is never lost."""
    files = [QUIET + f"tcp-idle-timeout {20 + i}s\n" for i in range(3)]
    last = QUIET + "tcp-idle-timeout 30s\ndeny 198.18.5.0/24\n"
    d, write = live(files[0])
    stopped = d.workers()[1]
    os.kill(stopped, signal.SIGSTOP)
    try:
        # Each policy is about 40 KB: the stopped worker's pipe (64 KiB)
        # takes one whole and part of the next, and the one after waits.
        outcomes = []
        for text in files[1:] + [last]:
            write(text)
            f = reload(d, what=("reload", "reload_refused",
                                "reload_deferred"))
            outcomes.append(f["event"])
            if f["event"] == "reload_deferred":
                break
        assert outcomes[-1] == "reload_deferred", outcomes
        assert "reload_refused" not in outcomes, outcomes
        write(last)  # the newest file is the one applied
        f = reload(d, what=("reload", "reload_refused", "reload_deferred"))
        assert f["event"] == "reload_deferred", f
        start = len(d.log_lines())
    finally:
        os.kill(stopped, signal.SIGCONT)
    line = d.wait_for_line(
        lambda l: is_event(l, "reload") or is_event(l, "reload_refused"),
        5.0, start, what="the deferred reload")
    f = parse_logfmt(line)
    assert f["event"] == "reload" and "deny" in f["changed"], f
    assert d.counters()["policy_reloads"] == outcomes.count("reload") + 1
    with udp_socket(host="127.0.0.1") as s:  # and it serves
        s.settimeout(2.0)
        for i in range(8):
            s.sendto(b"after %d" % i, ("127.0.0.1", d.port))
            assert s.recvfrom(64)[0] == b"after %d" % i


def test_reload_of_the_built_in_policy(echod):
    d = echod()
    assert reader_of(d.pid) is None  # nothing to read: no reader
    f = reload(d)
    assert f["event"] == "reload" and f["changed"] == "none", f


def test_reload_count_and_digest_in_the_metrics(live):
    from test_metrics import samples, scrape, value
    mport = socket.socket()
    mport.bind(("127.0.0.1", 0))
    port = mport.getsockname()[1]
    mport.close()
    text = QUIET + f"metrics 127.0.0.1:{port}\n"
    d, write = live(text)
    write(text + "deny 198.18.4.0/24\n")
    f = reload(d)
    write(text + "tcp-idle-timeout soon\n")
    assert reload(d)["event"] == "reload_refused"
    key = ("echod_policy_info", frozenset({"digest": f["digest"]}.items()))

    def scraped():
        status, _, body = scrape(port)
        assert status == 200
        vals = samples(body)
        return vals if key in vals and value(
            vals, "echod_policy_reloads_total", result="refused") == 1 \
            else None

    vals = wait_until(scraped, 3.0, interval=0.05, what="the reload scraped")
    assert value(vals, "echod_policy_reloads_total", result="ok") == 1
    assert value(vals, "echod_policy_info", digest=f["digest"]) == 1
    assert len([k for k in vals if k[0] == "echod_policy_info"]) == 1


def test_unreadable_policy_is_said_at_start(tmp_path, echod):
    """The reader runs as the service user: a file only root may read is
    named at start, not at the first reload."""
    path = tmp_path / "secret.conf"
    path.write_text(QUIET)
    os.chmod(path, 0o600)
    if os.geteuid() != 0:
        pytest.skip("needs root: the reader must run as another user")
    d = echod(args=["-c", str(path)], listen=("127.0.0.1",))
    assert any(is_event(l, "policy_unreadable") for l in d.log_lines())
    f = reload(d)
    assert f["event"] == "reload_refused" and "Permission denied" in f["error"]


# ------------------------------------------------------------ the reader


def _dir_fd(pid, directory):
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if os.readlink(f"/proc/{pid}/fd/{fd}") == str(directory):
            return int(fd)
    return None


@needs_root
@needs_gdb
def test_reader_reads_its_directory_and_nothing_else(live, tmp_path):
    """gdb makes the reader open what an exploit would: its own policy
    file opens; /etc/shadow, a path beside its directory and another
    directory do not (Landlock: EACCES even through its directory fd).
    The supervisor and the workers hold no way into the directory."""
    from test_isolation import gdb
    (tmp_path / "beside.txt").write_text("not for the reader\n")
    os.chmod(tmp_path / "beside.txt", 0o644)
    d, _ = live(QUIET)
    pdir = live.path.parent
    r = reader_of(d.pid)
    fd = _dir_fd(r, pdir)
    assert fd is not None, os.listdir(f"/proc/{r}/fd")
    st = _status(r)
    assert st["CapEff"] == "0000000000000000" and st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2" and st["Uid"].split()[0] != "0", st
    out = gdb(r,
              f'print (int)openat({fd}, "echod.conf", 0)',
              'print (int)open("/etc/shadow", 0)',
              f'print (int)openat({fd}, "../beside.txt", 0)',
              "print *(int *)__errno_location()",
              f'print (int)openat({fd}, "/etc/passwd", 0)')
    first = re.search(r"\$1 = (-?\d+)", out)
    assert first and int(first.group(1)) >= 0, out
    assert "$2 = -1" in out and "$3 = -1" in out, out
    assert "$4 = 13" in out, out  # EACCES: Landlock, not the file mode
    assert "$5 = -1" in out, out
    for p in [d.pid] + d.workers():
        assert _dir_fd(p, pdir) is None, p
    assert reload(d)["event"] == "reload"  # the reader still serves


@needs_root
def test_reader_dies_with_the_supervisor(live):
    d, _ = live(QUIET)
    r = reader_of(d.pid)
    d.proc.kill()
    d.proc.wait(5)
    wait_until(lambda: not os.path.exists(f"/proc/{r}")
               or open(f"/proc/{r}/stat").read().rsplit(")", 1)[1].split()[0] == "Z",
               2.0, what="the reader gone")


# ------------------------------------------------------------------ -T


def test_print_policy_round_trips(tmp_path):
    """-T prints every keyword; fed back to -t it is accepted, and -T of
    it prints the same text, for the built-in policy and a busy one."""
    busy = tmp_path / "busy.conf"
    busy.write_text(
        "listen 127.0.0.1:7007 [::1]:7008\nworkers 3\nuser daemon\n"
        "allow 198.51.100.7 2001:db8::/48\ndeny 198.51.100.0/24 10.0.0.0/8\n"
        "rate-exempt 192.0.2.1\nudp-deny-source-ports 0-1023 5000-5010 7777\n"
        "udp-rate 6000/m burst 7\nudp-byte-rate 64k/s burst 1m\n"
        "tcp-min-rate off\ntcp-max-lifetime 90s\ntcp-max-bytes 1g\n"
        "udp-loop-guard off repeats 9 window 250ms hold 2h\n"
        "log-format json\nmetrics [::1]:9100\nallow-downgrade fsize-limit\n"
        "xdp-prefilter lo mode generic\nenforce log-only\n")
    builtin = run_echod(["-T"])
    assert builtin.returncode == 0, builtin.stderr
    keywords = re.findall(r'^\s*\{"(\S+)", set_', (ROOT / "src" / "policy.c")
                          .read_text(), re.M)
    assert len(keywords) > 30
    for kw in keywords:
        assert re.search(rf"^#? ?{re.escape(kw)}[ :]", builtin.stdout.decode(),
                         re.M), kw
    for source in (None, busy):
        first = run_echod((["-c", source] if source else []) + ["-T"])
        assert first.returncode == 0, first.stderr
        again_path = tmp_path / "again.conf"
        again_path.write_bytes(first.stdout)
        assert run_echod(["-c", again_path, "-t"]).stdout == b"ok\n"
        second = run_echod(["-c", again_path, "-T"])
        assert second.stdout == first.stdout


def test_print_policy_shows_the_flags(tmp_path):
    r = run_echod(["-T", "-l", "127.0.0.1", "-p", "7010", "-w", "2", "-v"])
    out = r.stdout.decode()
    assert "\nlisten 127.0.0.1:7010\n" in out
    assert "\nworkers 2\n" in out and "\nlog-level debug\n" in out


def test_print_policy_refuses_a_bad_file(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("udp-rate 5x/s\n")
    r = run_echod(["-c", bad, "-T"])
    assert r.returncode == EXIT_CONFIG and r.stdout == b""
    assert r.stderr.decode().startswith(f"{bad}:1: 'udp-rate'")


# ----------------------------------------------------- lost defaults


@pytest.mark.parametrize("flag", ["-t", "-T"])
def test_replacing_the_port_list_warns_of_the_loop_ports(tmp_path, flag):
    one = tmp_path / "one.conf"
    one.write_text("udp-deny-source-ports 8080\n")
    r = run_echod(["-c", one, flag])
    assert r.returncode == 0
    lines = [parse_logfmt(l) for l in r.stderr.decode().splitlines()
             if is_event(l, "policy_default_lost")]
    assert len(lines) == 1 and lines[0]["uncovered"] == "0,7,13,17,19,37"
    extended = tmp_path / "extended.conf"
    extended.write_text("udp-deny-source-ports 0-1023 8080\n")
    r = run_echod(["-c", extended, flag])
    assert r.returncode == 0 and b"policy_default_lost" not in r.stderr
    partial = tmp_path / "partial.conf"
    partial.write_text("udp-deny-source-ports 0-18 20-1023\n")
    r = run_echod(["-c", partial, flag])
    assert b"uncovered=19 " in r.stderr


def test_the_warning_at_start_and_at_reload(live):
    d, write = live(QUIET)
    assert not any(is_event(l, "policy_default_lost") for l in d.log_lines())
    write(QUIET + "udp-deny-source-ports 8080\n")
    start = len(d.log_lines())
    assert reload(d)["event"] == "reload"
    line = d.wait_event("policy_default_lost", 2.0, start)
    assert parse_logfmt(line)["uncovered"] == "0,7,13,17,19,37"


def test_shipped_policy_shows_how_to_extend_a_list():
    """The example extends the list: the built-in ports stay, 8080 joins
    them, and -t prints no warning for it."""
    text = (ROOT / "policy" / "echod.conf").read_text()
    example = re.search(r"^# (udp-deny-source-ports 0-1023 .*8080.*)$", text,
                        re.M)
    assert example, "policy/echod.conf shows no extended list"
    path = ROOT / "build" / f"extend-{os.getpid()}.conf"
    path.write_text(example.group(1) + "\n")
    try:
        r = run_echod(["-c", path, "-t"])
    finally:
        path.unlink()
    assert r.returncode == 0 and b"policy_default_lost" not in r.stderr


# ------------------------------------------------------------ with XDP


@needs_root
def test_reload_with_the_prefilter_only_tightens(tmp_path, net):
    """The XDP program was loaded with the policy of the start: a reload
    that would have it drop what the new policy echoes (a deny removed) is
    refused and says why; a new deny prefix applies in the workers at once."""
    from conftest import ECHOD_BIN, Echod
    from test_abuse import CLI4, PORT, SRV4
    from test_xdp import PREFILTER
    p = net()
    pdir = tmp_path / "etc"
    pdir.mkdir()
    os.chmod(pdir, 0o755)
    path = pdir / "echod.conf"
    base = PREFILTER + QUIET + "deny 198.18.64.0/24\n"
    path.write_text(base)
    os.chmod(path, 0o644)
    d = Echod(p.srv.exec_argv([ECHOD_BIN, "-c", path, "-l", SRV4, "-p", PORT,
                               "-w", 1]), PORT, path)
    try:
        d.wait_ready()
        d.wait_event("xdp_attached")

        def probe():
            return subprocess.run(p.cli.exec_argv(
                [str(ROOT / "build" / "echo-client"), "-u", "-n", 2, "-t",
                 0.5, "-p", PORT, SRV4]), capture_output=True,
                timeout=10).returncode

        assert probe() == 0
        path.write_text(PREFILTER + QUIET)
        f = reload(d)
        assert f["event"] == "reload_refused", f
        assert f["error"].startswith("'allow/deny': the XDP prefilter"), f
        assert f["error"].endswith("restart to apply"), f
        path.write_text(base + f"deny {CLI4}\n")
        f = reload(d)
        assert f["event"] == "reload" and f["changed"] == "deny", f
        assert probe() == 3
        c = d.counters()
        assert c["udp_drop_deny"] == 2 and c["xdp_udp_drop_deny"] == 0, c
    finally:
        d.kill_all()
