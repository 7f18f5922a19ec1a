"""metrics ADDR:PORT: a Prometheus scrape over plain HTTP/1.x (curl and
Python's prometheus_client parser, both real clients of the format) whose
values match the traffic this test sent, drops and refusals by reason;
gauges for open connections and workers; the build and hardening facts;
clear HTTP errors for malformed, slow and excess scrapers, at bounded
memory; sources outside loopback and metrics-allow refused; the policy's
checks of both keywords."""

import os
import random
import re
import socket
import struct
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import netns
from conftest import read_all
from conftest import fd_targets
from conftest import (EXIT_CONFIG, Echod, ECHOD_BIN, counter_names, free_port,
                      parse_logfmt, rss_kib, run_echod, tcp_connect,
                      tcp_echo, udp_echo, udp_socket)

SRV4, CLI4 = "198.18.7.1", "198.18.7.2"


def scrape(port, host="127.0.0.1", path="/metrics"):
    """curl's view: (status, headers, body)."""
    r = subprocess.run(
        ["curl", "-sS", "--max-time", "5", "-D", "-",
         f"http://{host}:{port}{path}"], capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.decode().partition("\r\n\r\n")
    status = int(head.split()[1])
    return status, head, body


def samples(body):
    """{(name, frozenset(labels)): value} through prometheus_client."""
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(vals, name, **labels):
    return vals[(name, frozenset(labels.items()))]


def raw(port, data):
    """Send bytes, then read the whole answer."""
    with tcp_connect("127.0.0.1", port) as s:
        s.sendall(data)
        return read_all(s)


def status_of(answer):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert m, answer[:200]
    return int(m.group(1))


@pytest.fixture
def metered(echod):
    def start(extra="", workers=2):
        mport = free_port()
        d = echod(policy_text=f"metrics 127.0.0.1:{mport}\n"
                  "deny 127.0.0.2\nudp-max-datagram 100\n" + extra,
                  workers=workers)
        d.mport = mport
        return d
    return start


def test_scrape_matches_the_traffic(metered):
    d = metered()
    for i in range(3):
        assert tcp_echo("127.0.0.1", d.port, b"x" * 10) == b"x" * 10
    for i in range(5):
        assert udp_echo("127.0.0.1", d.port, b"y" * 20)[0] == b"y" * 20
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.2", 0))
        for i in range(2):
            s.sendto(b"denied", ("127.0.0.1", d.port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.sendto(b"z" * 101, ("127.0.0.1", d.port))  # over udp-max-datagram
    with socket.create_connection(("127.0.0.1", d.port), 5,
                                  source_address=("127.0.0.2", 0)) as c:
        c.settimeout(5)
        assert c.recv(10) == b""

    want = {
        ("echod_udp_datagrams_echoed_total", ()): 5,
        ("echod_udp_dropped_total", (("reason", "deny"),)): 2,
        ("echod_udp_dropped_total", (("reason", "oversize"),)): 1,
        ("echod_udp_dropped_total", (("reason", "rate"),)): 0,
        ("echod_tcp_refused_total", (("reason", "deny"),)): 1,
        ("echod_tcp_refused_total", (("reason", "per_source"),)): 0,
        ("echod_bytes_echoed_total", (("proto", "udp"),)): 100,
        ("echod_bytes_echoed_total", (("proto", "tcp"),)): 30,
        ("echod_tcp_connections_open", ()): 0,
    }

    def current():
        status, head, body = scrape(d.mport)
        assert status == 200, body
        assert "text/plain; version=0.0.4" in head
        vals = samples(body)
        return {k: vals.get((k[0], frozenset(k[1]))) for k in want}, vals

    deadline = time.monotonic() + 5
    while True:  # workers report at most every 100 ms
        got, vals = current()
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert got == want
    # The same figures as SIGUSR1's counters line.
    c = d.counters()
    assert value(vals, "echod_udp_dropped_total", reason="deny") == \
        c["udp_drop_deny"]
    assert value(vals, "echod_tcp_connections_accepted_total") == \
        c["tcp_accepted"]
    info = [k for k in vals if k[0] == "echod_build_info"]
    assert len(info) == 1 and vals[info[0]] == 1
    labels = dict(info[0][1])
    assert re.fullmatch(r"\d+\.\d+\.\d+", labels["version"])
    assert labels["seccomp"] == "kill"
    # The level the start-up line reports, not a constant.
    sandboxed = parse_logfmt(d.wait_event("sandboxed"))
    assert labels["landlock"] == sandboxed["landlock"]
    assert labels["chroot"] in ("none", "/var/empty/echod")
    assert value(vals, "echod_workers") == 2
    assert value(vals, "echod_workers_alive") == 2
    assert value(vals, "echod_workers_ready") == 2
    assert value(vals, "echod_metrics_requests_total", result="ok") >= 1


def test_open_connections_gauge(metered):
    d = metered()
    conns = [tcp_connect("127.0.0.1", d.port) for _ in range(3)]
    try:
        for c in conns:
            c.sendall(b"hi")
            assert c.recv(2) == b"hi"
        deadline = time.monotonic() + 5
        while True:
            vals = samples(scrape(d.mport)[2])
            if value(vals, "echod_tcp_connections_open") == 3 or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert value(vals, "echod_tcp_connections_open") == 3
    finally:
        for c in conns:
            c.close()


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /nothing HTTP/1.1\r\n\r\n", 404),
    (b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 405),
    (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # TLS hello
    (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 5000, 431),
    (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
])
def test_malformed_requests_get_a_clear_error(metered, request_bytes,
                                              status):
    d = metered(workers=1)
    answer = raw(d.mport, request_bytes)
    assert status_of(answer) == status
    assert b"Connection: close" in answer
    # The server is still there for the next scraper.
    assert scrape(d.mport)[0] == 200


def tcp_from(src, port):
    s = socket.socket()
    s.settimeout(5)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def test_slow_and_excess_scrapers_are_bounded(metered):
    """Four slow scrapers from four sources hold every slot: a fifth source
    is served at once, and the one that held its slot longest without a
    whole request makes room; the rest get 408 after 2 s. A second
    connection from one source replaces its first."""
    d = metered(workers=1)
    m = d.metrics_pid()
    rss0 = rss_kib(m), rss_kib(d.pid)
    slow = []
    try:
        for i in range(4):
            slow.append(tcp_from(f"127.0.0.{11 + i}", d.mport))
            slow[-1].sendall(b"GET /metrics HTTP/1.1\r\n")  # never the rest
            time.sleep(0.02)  # an order of arrival to evict by
        t0 = time.monotonic()
        with tcp_from("127.0.0.15", d.mport) as fifth:
            fifth.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            assert status_of(read_all(fifth)) == 200
        assert time.monotonic() - t0 < 1.0
        # The oldest slow one made room: closed without an answer.
        assert read_all(slow[0]) == b""
        for s in slow[1:]:
            assert status_of(read_all(s)) == 408
        assert 1.5 < time.monotonic() - t0 < 4
        # One source, one connection: the second replaces the first.
        first = tcp_from("127.0.0.16", d.mport)
        first.sendall(b"GET /metrics HTTP/1.1\r\n")
        time.sleep(0.05)
        with tcp_from("127.0.0.16", d.mport) as second:
            assert read_all(first) == b""
            second.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            assert status_of(read_all(second)) == 200
        first.close()
    finally:
        for s in slow:
            s.close()
    # Many bad scrapes later, neither process holds more memory than its
    # fixed buffers (allocated once; 4 x 36 KiB and 32 KiB, touched once).
    for i in range(200):
        raw(d.mport, b"GET /x HTTP/1.1\r\n\r\n" if i % 2 else b"junk\r\n")
    assert scrape(d.mport)[0] == 200
    assert rss_kib(m) - rss0[0] < 400
    assert rss_kib(d.pid) - rss0[1] < 400
    vals = samples(scrape(d.mport)[2])
    # 1 evicted, 3 timed out, 1 replaced, 200 bad.
    assert value(vals, "echod_metrics_requests_total",
                 result="error") == 205
    assert value(vals, "echod_metrics_requests_total", result="ok") == 4


@pytest.mark.parametrize("line, message", [
    ("metrics 0.0.0.0:9107", "needs 'metrics-allow'"),
    ("metrics [::]:9107", "needs 'metrics-allow'"),
    ("metrics 127.0.0.1", "ADDR:PORT"),
    ("metrics localhost:9107", "ADDR:PORT"),
    ("metrics-allow 198.18.0.1/8", "zero host bits"),
])
def test_policy_checks(tmp_path, line, message):
    policy = tmp_path / "p.conf"
    policy.write_text(line + "\n")
    r = run_echod(["-c", policy, "-t"])
    err = r.stderr.decode()
    assert r.returncode == EXIT_CONFIG, err
    assert err.startswith(f"{policy}:1: ") and message in err, err


def test_wildcard_with_metrics_allow_passes(tmp_path):
    ok = tmp_path / "ok.conf"
    ok.write_text("metrics 0.0.0.0:9107\nmetrics-allow 198.18.0.0/15\n")
    r = run_echod(["-c", ok, "-t"])
    assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr


def test_off_by_default_listening_line_when_on(echod, metered):
    d = echod()
    assert not any("proto=metrics" in l for l in d.log_lines())
    m = metered(workers=2)
    assert any(f"proto=metrics addr=127.0.0.1:{m.mport}" in l
               for l in m.log_lines())
    # The metrics process serves the listener (the keeper keeps it for a
    # restarted one); neither the supervisor nor a worker holds it.
    inode = listener_inode(m.mport)
    assert inode in socket_inodes(m.metrics_pid())
    assert inode in socket_inodes(m.keeper_pid())
    assert inode not in socket_inodes(m.pid)
    workers = m.workers()
    assert len(workers) == 2
    for w in workers:
        assert inode not in socket_inodes(w)


def listener_inode(port):
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if f[1].endswith(f":{port:04X}") and f[3] == "0A":  # LISTEN
            return f[9]
    raise AssertionError(f"no listener on port {port}")


def socket_inodes(pid):
    return {target[8:-1] for target in fd_targets(pid).values()
            if target.startswith("socket:[")}


def test_only_allowed_sources_may_scrape(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    try:
        pair = netns.Pair([SRV4 + "/24"], [CLI4 + "/24"])
    except netns.NetnsUnavailable as e:
        pytest.skip(f"network namespaces unavailable: {e}")
    daemons = []
    try:
        for allow, verdict in (("198.18.9.0/24", "refused"),
                               (CLI4, "allowed")):
            port, mport = free_port(), free_port()
            policy = tmp_path / f"{verdict}.conf"
            policy.write_text(f"metrics {SRV4}:{mport}\n"
                              f"metrics-allow {allow}\n")
            d = Echod(pair.srv.exec_argv(
                [ECHOD_BIN, "-c", policy, "-l", SRV4, "-p", port, "-w",
                 "1"]), port, policy)
            daemons.append(d)
            d.wait_ready()
            s = pair.cli.socket(socket.AF_INET, socket.SOCK_STREAM)
            with s:
                s.settimeout(5)
                s.connect((SRV4, mport))
                s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
                got = b""
                while True:
                    try:
                        chunk = s.recv(65536)
                    except ConnectionResetError:
                        break
                    if not chunk:
                        break
                    got += chunk
            if verdict == "refused":
                assert got == b""
                line = d.wait_event("metrics_refused")
                assert f"peer={CLI4}:" in line and "not_allowed" in line
            else:
                assert status_of(got) == 200
                assert b"echod_build_info{" in got
            d.stop()
    finally:
        for d in daemons:
            d.kill_all()
        pair.delete()


def test_rate_table_occupancy(metered):
    d = metered(extra="rate-prefix-v4 32\n", workers=1)
    for src in ("127.0.0.1", "127.0.0.3", "127.0.0.4"):
        with udp_socket(socket.AF_INET, host=src) as s:
            s.settimeout(2)
            s.sendto(b"t", ("127.0.0.1", d.port))
            assert s.recvfrom(10)[0] == b"t"
    for src in ("127.0.0.1", "127.0.0.5"):
        with socket.create_connection(("127.0.0.1", d.port), 5,
                                      source_address=(src, 0)) as c:
            c.sendall(b"t")
            assert c.recv(1) == b"t"
    deadline = time.monotonic() + 5
    while True:  # workers report at most every 100 ms
        vals = samples(scrape(d.mport)[2])
        got = (value(vals, "echod_rate_table_entries", proto="udp"),
               value(vals, "echod_rate_table_entries", proto="tcp"))
        if got == (3, 2) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert got == (3, 2)
    assert value(vals, "echod_rate_table_slots") == 16384


# ------------------------------------------------ the renderer, any snapshot

RENDER = ECHOD_BIN.parent / "test_metrics"
LABEL_BYTES = bytes(range(1, 256))


def expected_label(raw_bytes):
    """What metrics.c's label_value makes of a fact: printable ASCII as is,
    any other byte but a newline '?' (then the parser undoes \\ \" \n)."""
    return "".join(chr(b) if 0x20 <= b <= 0x7e or b == 0x0a else "?"
                   for b in raw_bytes)


def random_value(rng):
    return rng.choice([0, 1, 2**53 + 1, 2**63, 2**64 - 1,
                       rng.getrandbits(64), rng.getrandbits(20)])


def test_any_snapshot_renders_as_valid_exposition():
    """A property test of the pure renderer: 300 random snapshots (extreme
    and random counter values, facts of arbitrary bytes) each parse with
    prometheus_client, with every value and label as given."""
    names = counter_names()
    rng = random.Random(20)
    for case in range(300):
        values = [random_value(rng) for _ in names]
        workers, alive = rng.getrandbits(32), rng.getrandbits(32)
        slots = rng.getrandbits(32)
        facts = [bytes(rng.choice(LABEL_BYTES)
                       for _ in range(rng.choice([0, 1, 5, 40, 300])))
                 for _ in range(5)]
        stdin = (struct.pack(f"<{len(names)}Q", *values) +
                 struct.pack("<IIQ", workers, alive, slots) +
                 b"".join(f + b"\0" for f in facts))
        r = subprocess.run([RENDER, "--render"], input=stdin,
                           capture_output=True, timeout=10)
        assert r.returncode == 0, (case, r.stderr)
        text = r.stdout.decode("utf-8")
        got = {}
        for fam in text_string_to_metric_families(text):
            for smp in fam.samples:
                got[(smp.name, frozenset(smp.labels.items()))] = smp.value
        info = [k for k in got if k[0] == "echod_build_info"]
        assert len(info) == 1
        assert dict(info[0][1]) == dict(zip(
            ("version", "seccomp", "landlock", "chroot", "user"),
            (expected_label(f) for f in facts))), case
        assert got[("echod_workers", frozenset())] == float(workers)
        assert got[("echod_workers_alive", frozenset())] == float(alive)
        assert got[("echod_rate_table_slots", frozenset())] == \
            float(slots * workers)
        # Each counter once, at its value (as a float, as the parser has
        # it); every counter sample is one of ours.
        assert len(got) == len(names) + 4
        for name, v in zip(names, values):
            assert float(v) in got.values(), (case, name)
        assert got[("echod_udp_dropped_total",
                    frozenset({("reason", "rate")}))] == \
            float(values[names.index("udp_drop_rate")])
        assert got[("echod_tcp_connections_open", frozenset())] == \
            float(values[names.index("tcp_active")])
