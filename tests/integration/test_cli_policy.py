"""Flags, policy files, exit codes, signals and the counters line."""

import re
import signal
import socket
import time

import pytest

from conftest import (ECHOD_BIN, EXIT_CONFIG, EXIT_OSERR, EXIT_USAGE,
                      POLICY_FILE, counter_names, free_port, is_event,
                      parse_logfmt, run_echod, tcp_echo, udp_echo)

USAGE_HEAD = "usage: echod "


# ---------------------------------------------------------------- flags


def test_help():
    r = run_echod(["-h"])
    assert r.returncode == 0
    out = r.stdout.decode()
    assert out.startswith(USAGE_HEAD)
    for flag in ("-c FILE", "-t", "-l ADDR", "-p PORT", "-w WORKERS", "-V"):
        assert flag in out
    assert r.stderr == b""


def test_version():
    r = run_echod(["-V"])
    assert r.returncode == 0
    assert re.fullmatch(rb"echod \d+\.\d+\.\d+\n", r.stdout), r.stdout
    assert r.stderr == b""


@pytest.mark.parametrize(
    "args, message",
    [
        (["-x"], "unknown option -x"),
        (["-p", "0"], "-p: '0' is not a port"),
        (["-p", "70000"], "-p: '70000' is not a port"),
        (["-p", "12ab"], "-p: '12ab' is not a port"),
        (["-w", "0"], "-w: '0' is not auto or 1-256"),
        (["-w", "257"], "-w: '257' is not auto or 1-256"),
        (["-l", "nonsense"], "-l: 'nonsense' is not ADDR"),
        (["-l", "localhost"], "-l: 'localhost' is not ADDR"),
        (["-p"], "option -p needs a value"),
        (["-c"], "option -c needs a value"),
        (["-t", "extra"], "unexpected argument 'extra'"),
        (["-u", "a;b"], "-u: 'a;b' is not a valid user name"),
    ],
    ids=["unknown", "port0", "port70000", "port-junk", "workers0",
         "workers257", "listen-junk", "listen-name", "missing-p",
         "missing-c", "extra-arg", "bad-user"],
)
def test_bad_flags_exit_64_with_usage(args, message):
    r = run_echod(args)
    err = r.stderr.decode()
    assert r.returncode == EXIT_USAGE, err
    assert err.startswith("echod: " + message), err
    assert USAGE_HEAD in err
    assert r.stdout == b""


def test_check_shipped_policy():
    r = run_echod(["-t", "-c", POLICY_FILE])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"ok\n"
    assert r.stderr == b""


def test_check_builtin_policy():
    r = run_echod(["-t"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"ok\n"


def test_builtin_policy_is_the_shipped_file():
    """The binary embeds policy/echod.conf verbatim (the build generates it)."""
    embedded = POLICY_FILE.read_bytes() in ECHOD_BIN.read_bytes()
    assert embedded, f"{ECHOD_BIN} does not contain {POLICY_FILE} verbatim"


def test_default_and_shipped_policy_both_serve(echod):
    for args in ([], ["-c", str(POLICY_FILE)]):
        d = echod(args=args)
        assert tcp_echo("127.0.0.1", d.port, b"tcp") == b"tcp"
        assert udp_echo("::1", d.port, b"udp")[0] == b"udp"
        c = d.counters()
        assert c["tcp_refused_max"] == 0
        assert d.stop() == 0


# ---------------------------------------------------------------- policy

PREAMBLE = "# a test policy\n\nlog-level info\n"  # the error goes on line 4


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("frobnicate 1\n", 4, "unknown keyword 'frobnicate'"),
        ("tcp-idle-timeout 5x\n", 4, "'tcp-idle-timeout': '5x' is not a duration"),
        ("tcp-idle-timeout 30\n", 4, "'tcp-idle-timeout': '30' is not a duration"),
        ("tcp-buffer 12q\n", 4, "'tcp-buffer': '12q' is not a size"),
        ("tcp-max-connections 0\n", 4, "'tcp-max-connections': '0' is not a whole number from 1 to 100000"),
        ("tcp-max-connections 100001\n", 4, "'tcp-max-connections': '100001' is not a whole number"),
        ("tcp-idle-timeout 50ms\n", 4, "'tcp-idle-timeout': 50ms is out of range"),
        ("tcp-buffer 17m\n", 4, "'tcp-buffer': 17m is out of range"),
        ("udp-max-datagram 65536\n", 4, "'udp-max-datagram': 65536 is out of range"),
        ("workers 0\n", 4, "'workers': expected auto or 1 to 256"),
        ("tcp-buffer 32k\n\ntcp-buffer 64k\n", 6, "'tcp-buffer' conflicts with line 4"),
        ("log-level debug\n", 4, "'log-level' conflicts with line 3"),
        ("listen localhost\n", 4, "'listen': 'localhost' is not ADDR"),
        ("listen 127.0.0.1 ::1 300.1.1.1\n", 4, "'listen': '300.1.1.1' is not ADDR"),
        ("protocols tcp sctp\n", 4, "'protocols': 'sctp' is neither tcp nor udp"),
        ("protocols udp udp\n", 4, "'protocols': 'udp' named twice"),
        ("protocols\n", 4, "'protocols' needs a value"),
        ("user root;rm\n", 4, "'user': 'root;rm' is not a valid user name"),
        ("tcp-buffer 1k 2k\n", 4, "'tcp-buffer' takes 1 value, got 2"),
        ("tcp-buffer 1k\x01\n", 4, "control character 0x01 in line"),
        ("rate-exempt 198.18.0.2\nrate-exempt 2001:db8::/129\n", 5,
         "'rate-exempt': '2001:db8::/129' is not ADDR or ADDR/LEN"),
        ("rate-exempt\n", 4, "'rate-exempt' needs a value"),
    ],
    ids=["unknown-keyword", "bad-duration", "duration-no-unit", "bad-size",
         "range-low", "range-high", "duration-range", "size-range",
         "udp-range", "workers-range", "conflict", "conflict-preamble",
         "bad-listen", "bad-listen-third", "bad-protocol",
         "protocol-twice", "protocols-empty", "bad-user", "extra-value",
         "control-char", "rate-exempt-v6-length", "rate-exempt-empty"],
)
def test_policy_error(tmp_path, body, line, message):
    path = tmp_path / "bad.conf"
    path.write_text(PREAMBLE + body)
    _assert_policy_error(path, line, message)


@pytest.mark.asan
def test_policy_bad_log_level(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text("# levels\nlog-level verbose\n")
    _assert_policy_error(path, 2, "'log-level': 'verbose' is not one of "
                         "error, warn, info, debug")


@pytest.mark.asan
def test_policy_nul_byte(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_bytes(b"log-level info\ntcp-buffer 16k\x00 junk\n")
    _assert_policy_error(path, 2, "NUL byte in line")


@pytest.mark.asan
def test_policy_long_line(tmp_path):
    path = tmp_path / "bad.conf"
    ok = "#" + "x" * 1023  # exactly 1024 bytes: allowed
    path.write_text(ok + "\n" + "#" + "y" * 1024 + "\n")
    _assert_policy_error(path, 2, "line longer than 1024 bytes")


def test_policy_longest_line_and_repeats_are_fine(tmp_path):
    path = tmp_path / "good.conf"
    path.write_text("#" + "x" * 1023 + "\n"
                    "log-level info\nlog-level info   # same value\n"
                    "listen 127.0.0.1\nlisten ::1\n"
                    "tcp-idle-timeout 1h\ntcp-buffer 512\n"
                    "udp-max-datagram 0\nprotocols udp tcp\n"
                    "workers auto\r\n")
    r = run_echod(["-t", "-c", path])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"ok\n"


def test_policy_missing_file(tmp_path):
    path = tmp_path / "nope.conf"
    r = run_echod(["-t", "-c", path])
    err = r.stderr.decode()
    assert r.returncode == EXIT_CONFIG
    assert err == f"{path}: cannot open: No such file or directory\n"
    assert r.stdout == b""


def test_policy_not_a_regular_file(tmp_path):
    r = run_echod(["-t", "-c", tmp_path])
    assert r.returncode == EXIT_CONFIG
    assert r.stderr.decode() == f"{tmp_path}: not a regular file\n"


def _assert_policy_error(path, line, message):
    r = run_echod(["-t", "-c", path])
    err = r.stderr.decode()
    assert r.returncode == EXIT_CONFIG, err
    # Exactly one line: FILE:LINE: message
    assert re.fullmatch(re.escape(f"{path}:{line}: ") + r"[^\n]+\n", err), err
    assert err.startswith(f"{path}:{line}: {message}"), err
    assert r.stdout == b""


# ---------------------------------------------------------------- binding


def test_port_in_use_exits_71():
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        r = run_echod(["-l", "127.0.0.1", "-p", str(port), "-w", "1"])
    err = r.stderr.decode()
    assert r.returncode == EXIT_OSERR, err
    assert "in use" in err
    assert f"127.0.0.1:{port}" in err
    assert "event=bind_failed" in err


# ---------------------------------------------------------------- signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_stops_cleanly(echod, sig):
    d = echod(workers=2)
    workers = d.workers()
    assert len(workers) == 2
    # An open connection must not hold the stop up.
    with socket.create_connection(("127.0.0.1", d.port), timeout=3) as s:
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        t0 = time.monotonic()
        rc = d.stop(sig, timeout=1.5)
        elapsed = time.monotonic() - t0
    assert rc == 0
    assert elapsed < 1.0, f"stop took {elapsed:.2f}s"
    lines = d.log_lines()
    assert is_event(lines[-1], "stopped"), lines[-1]
    assert parse_logfmt(lines[-1])["exit_status"] == "0"
    name = "TERM" if sig == signal.SIGTERM else "INT"
    assert any(is_event(l, "stopping") and f"signal={name}" in l for l in lines)
    for pid in workers:
        assert not _alive(pid), f"worker {pid} outlived echod"


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.asan
def test_sigusr1_logs_every_counter_once(echod):
    d = echod()
    c = d.counters()
    names = counter_names()
    assert set(names) <= set(c), f"missing: {set(names) - set(c)}"
    assert d.stop() == 0
    lines = d.log_lines()
    counter_lines = [l for l in lines if is_event(l, "counters")]
    assert len(counter_lines) == 1, counter_lines
    fields = list(parse_logfmt(counter_lines[0]))
    # Every counter, in the order of src/counters.h.
    assert [f for f in fields if f in names] == names
    # Nothing happened yet; the one gauge says the single worker is ready.
    assert c["workers_ready"] == 1
    assert all(v == 0 for k, v in c.items()
               if k in names and k != "workers_ready")
    # The final counters on stop.
    assert sum(is_event(l, "final_counters") for l in lines) == 1


# ---------------------------------------------------------------- listen


def _tcp_refused(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
    return False


def test_policy_listen_replaces_builtin_list(echod):
    """A file's `listen` replaces the built-in 0.0.0.0 and ::."""
    d = echod(policy_text="listen 127.0.0.1\n", listen=())
    assert tcp_echo("127.0.0.1", d.port, b"listed") == b"listed"
    assert _tcp_refused("::1", d.port)


def test_flag_ports_and_explicit_ports(echod):
    """-p applies only to addresses without their own port."""
    other = free_port()
    d = echod(listen=(f"127.0.0.1:{other}", "[::1]"))
    assert tcp_echo("127.0.0.1", other, b"own port") == b"own port"
    assert tcp_echo("::1", d.port, b"-p port") == b"-p port"
    assert _tcp_refused("127.0.0.1", d.port)
    assert _tcp_refused("::1", other)


def test_protocols_tcp_only(echod):
    d = echod(policy_text="protocols tcp\n")
    assert tcp_echo("127.0.0.1", d.port, b"tcp") == b"tcp"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.connect(("127.0.0.1", d.port))
        s.send(b"udp?")
        with pytest.raises(ConnectionRefusedError):
            s.recv(100)


def test_protocols_udp_only(echod):
    d = echod(policy_text="protocols udp\n")
    assert udp_echo("127.0.0.1", d.port, b"udp")[0] == b"udp"
    assert _tcp_refused("127.0.0.1", d.port)
