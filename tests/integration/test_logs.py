"""log stderr|syslog and log-format logfmt|json: every line of a run, in
each format and to each sink, parses; the two formats carry the same
fields; a syslog sink gets one datagram per line with a daemon-facility
priority; a syslog socket that cannot be reached refuses the start."""

import json
import os
import re
import select
import signal
import socket
import subprocess
import threading

import pytest

from conftest import (ECHOD_BIN, EXIT_CONFIG, EXIT_OSERR, free_port,
                      run_echod, tcp_echo, udp_echo, wait_until)

# One strict logfmt pair: key=bare or key="quoted \" value".
PAIR = r'[A-Za-z_][A-Za-z0-9_]*=(?:"(?:[^"\\]|\\.)*"|[^\s"=]*)'
LOGFMT_LINE = re.compile(rf"^{PAIR}(?: {PAIR})*$")
SYSLOG_PREFIX = re.compile(r"^<(\d+)>echod\[(\d+)\]: (.*)$", re.S)
SEVERITY = {"error": 3, "warn": 4, "info": 6, "debug": 7}
DAEMON = 3


def has_event(line, event):
    """event=EVENT in logfmt or "event":"EVENT" in JSON."""
    return re.search(rf'(^|\s)event={event}(\s|$)|"event":"{event}"',
                     line) is not None


def parse_logfmt_strict(line):
    assert LOGFMT_LINE.match(line), f"not logfmt: {line!r}"
    out = {}
    for m in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)',
                         line):
        v = m.group(2)
        if v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        out[m.group(1)] = v
    return out


def parse_json_line(line):
    obj = json.loads(line)
    assert isinstance(obj, dict), line
    return {k: str(v) for k, v in obj.items()}


class SyslogSink:
    """A unix datagram socket standing in for /dev/log."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.datagrams = []
        self.stopping = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.stopping:
            try:
                self.datagrams.append(self.sock.recv(65536))
            except socket.timeout:
                continue

    def lines(self):
        return [d.decode() for d in list(self.datagrams)]

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


def run_once(tmp_path, fmt, sink):
    """Start echod (2 workers, log-level debug) with the given format and
    sink, drive every kind of event, stop it; returns (lines, stderr)."""
    port = free_port()
    sock_path = tmp_path / f"log-{fmt}.sock"
    policy = tmp_path / f"{fmt}-{sink}.conf"
    policy.write_text(
        f"log-level debug\nlog-format {fmt}\n"
        + (f"log syslog {sock_path}\n" if sink == "syslog" else "log stderr\n")
        + "deny 127.0.0.2\n")
    syslog = SyslogSink(sock_path) if sink == "syslog" else None
    errlines = []
    proc = subprocess.Popen(
        [ECHOD_BIN, "-c", policy, "-l", "127.0.0.1", "-l", "[::1]",
         "-p", str(port), "-w", "2"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    reader = threading.Thread(
        target=lambda: errlines.extend(
            l.decode().rstrip("\n") for l in proc.stderr), daemon=True)
    reader.start()
    lines = (lambda: syslog.lines()) if syslog else (lambda: list(errlines))
    try:
        wait_until(lambda: any(has_event(l, "ready") for l in lines()), 10,
                   what="event ready")
        assert tcp_echo("127.0.0.1", port, b"hello\n") == b"hello\n"
        assert tcp_echo("::1", port, b"hello6\n") == b"hello6\n"
        assert udp_echo("127.0.0.1", port, b"dgram")[0] == b"dgram"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.2", 0))
            s.sendto(b"denied", ("127.0.0.1", port))  # a drop, logged
        with socket.create_connection(("127.0.0.1", port), 5,
                                      source_address=("127.0.0.2", 0)) as c:
            c.settimeout(5)
            assert c.recv(10) == b""  # refused: closed at once
        n = len(lines())
        os.kill(proc.pid, signal.SIGUSR1)
        wait_until(lambda: any(has_event(l, "counters")
                               for l in lines()[n:]), 5, what="counters")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(5) == 0
        reader.join(2)
        if syslog:
            wait_until(lambda: any(has_event(l, "stopped")
                                   for l in lines()[-3:]), 2,
                       what="the last line")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if syslog:
            syslog.close()
    return lines(), list(errlines)


@pytest.mark.parametrize("sink", ["stderr", "syslog"])
def test_every_line_parses_in_both_formats(tmp_path, sink):
    fields = {}
    for fmt, parse in (("logfmt", parse_logfmt_strict),
                       ("json", parse_json_line)):
        lines, stderr = run_once(tmp_path, fmt, sink)
        assert len(lines) >= 15, lines
        if sink == "syslog":
            assert stderr == [], stderr
        events = {}
        for raw in lines:
            if sink == "syslog":
                m = SYSLOG_PREFIX.match(raw)
                assert m, raw
                pri, body = int(m.group(1)), m.group(3)
                assert "\n" not in body
            else:
                body = raw
            f = parse(body)
            for key in ("ts", "level", "event", "role"):
                assert key in f, (key, raw)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
                                f["ts"]), f["ts"]
            if sink == "syslog":
                assert pri == DAEMON * 8 + SEVERITY[f["level"]], raw
            events.setdefault(f["event"], set()).update(f)
        for needed in ("ready", "counters", "worker_started",
                       "udp_drop", "tcp_refused"):
            assert any(e.startswith(needed) for e in events), (
                needed, sorted(events))
        fields[fmt] = events
    # The same events carry the same fields in both formats.
    common = set(fields["logfmt"]) & set(fields["json"])
    assert {"ready", "counters"} <= common
    for event in common:
        assert fields["logfmt"][event] == fields["json"][event], event


def test_json_numbers_and_strings(tmp_path):
    lines, _ = run_once(tmp_path, "json", "stderr")
    counters = [json.loads(l) for l in lines if '"event":"counters"' in l]
    assert counters and counters[-1]["udp_echoed"] >= 1
    assert isinstance(counters[-1]["tcp_accepted"], int)
    assert all(isinstance(json.loads(l)["event"], str) for l in lines)


def test_unreachable_syslog_refuses_to_start(tmp_path):
    policy = tmp_path / "p.conf"
    policy.write_text(f"log syslog {tmp_path}/nobody-listens\n")
    r = run_echod(["-c", policy, "-l", "127.0.0.1", "-p", free_port()])
    assert r.returncode == EXIT_OSERR, r.stderr
    assert b"step=syslog" in r.stderr and b"nobody-listens" in r.stderr
    r = run_echod(["-c", policy, "-t"])
    assert r.returncode == EXIT_OSERR and b"step=syslog" in r.stderr


@pytest.mark.parametrize("line, message", [
    ("log syslog dev/log", "not an absolute socket path"),
    ("log file", "expected stderr or syslog"),
    ("log stderr /dev/log", "expected stderr or syslog"),
    ("log-format xml", "neither json nor logfmt"),
])
def test_bad_log_directives(tmp_path, line, message):
    policy = tmp_path / "p.conf"
    policy.write_text(line + "\n")
    r = run_echod(["-c", policy, "-t"])
    err = r.stderr.decode()
    assert r.returncode == EXIT_CONFIG, err
    assert err.startswith(f"{policy}:1: '{line.split()[0]}': "), err
    assert message in err, err


def test_syslog_gone_lines_go_to_stderr(tmp_path):
    """The syslog socket cannot be reconnected inside the sandbox: when the
    daemon goes away, lines go to stderr instead of nowhere."""
    sock_path = tmp_path / "gone.sock"
    policy = tmp_path / "p.conf"
    policy.write_text(f"log syslog {sock_path}\n")
    sink = SyslogSink(sock_path)
    port = free_port()
    proc = subprocess.Popen(
        [ECHOD_BIN, "-c", policy, "-l", "127.0.0.1", "-p", str(port), "-w",
         "1"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        wait_until(lambda: any(has_event(l, "ready") for l in sink.lines()),
                   10, what="event ready on the syslog socket")
        sink.close()
        os.unlink(sock_path)
        os.kill(proc.pid, signal.SIGUSR1)
        ready, _, _ = select.select([proc.stderr], [], [], 5)
        assert ready, "nothing on stderr within 5 s"
        line = proc.stderr.readline().decode()
        assert has_event(line, "counters") and line.startswith("ts="), line
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
