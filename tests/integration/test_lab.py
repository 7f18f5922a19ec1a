"""The reflection-attack lab (lab/lab.py, `make lab`), in its short form.

Every attack must work against the naive server and fail against echod with
the default policy; the figures behind each verdict are checked here from
results.json (captured at the victim, read from the servers' counters), so
the lab cannot rot silently. Also: the table and the SVG chart are whole,
a student's policy changes the outcome, and the lab leaves nothing behind
on Ctrl-C or after its driver was killed.

Needs root (namespaces, raw sockets, port 7 inside the namespaces).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zlib

import pytest

from conftest import CLIENT_BIN, ECHOD_BIN, ROOT, wait_until

LAB = ROOT / "lab" / "lab.py"
NAIVE_BIN = ROOT / "build" / "lab" / "naive"
PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: network namespaces, "
                                       "raw sockets")

# The default policy's UDP rate per source prefix.
RATE, BURST = 100, 200


def lab_argv(out, *extra):
    return [PYTHON, str(LAB), "--echod", str(ECHOD_BIN), "--naive",
            str(NAIVE_BIN), "--client", str(CLIENT_BIN), "--out", str(out),
            *extra]


def run_lab(out, *extra, timeout=120):
    """Run the lab to its end; the CompletedProcess, with .pid (its
    namespaces are named after it; other runs may be going on at once)."""
    with subprocess.Popen(lab_argv(out, *extra), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          cwd=str(ROOT)) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=20)
    print(stdout[-4000:], stderr[-4000:])
    r = subprocess.CompletedProcess(proc.args, proc.returncode, stdout,
                                    stderr)
    r.pid = proc.pid
    return r


def lab_namespaces(pid):
    """The namespaces of the lab run whose driver is `pid`."""
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return sorted(n for n in names if n.startswith(f"echod-lab-{pid}-"))


def netns_pids(name):
    r = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                       text=True)
    return [int(p) for p in r.stdout.split()]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab")
    t0 = time.monotonic()
    r = run_lab(out, "--short", "--check")
    elapsed = time.monotonic() - t0
    return r, out, elapsed


def attack(out, name):
    doc = json.loads((out / "results.json").read_text())
    return doc["attacks"][name]


def test_short_lab_every_attack_works_on_naive_and_fails_on_echod(short_run):
    r, out, elapsed = short_run
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["attacks"]) == {
        "chargen-loop", "echo-loop", "echo-loop-high", "srcport", "fraggle",
        "reflection", "spoofed-sources", "slow-readers", "slowloris",
        "conn-flood"}
    for name, a in doc["attacks"].items():
        assert a["naive"]["worked"], (name, a["naive"]["why"])
        assert not a["echod"]["worked"], (name, a["echod"]["why"])
        # No guard may cost the legitimate client its echoes (a datagram
        # may still be lost when a flood overflows a socket on busy cores).
        g = a["echod"]["legit"]
        assert g["sent"] >= 1 and g["echoed"] >= 0.9 * g["sent"], (name, g)
        if a["kind"] in ("memory", "lockout"):
            assert g["echoed"] == g["sent"], (name, g)
        # echod's memory does not follow the attack.
        assert a["echod"]["memory_growth_kib"] < 2048, name
    assert elapsed < 90  # about 30 s on 2 idle cores
    assert not lab_namespaces(r.pid), "the lab left namespaces behind"


def test_short_lab_loops(short_run):
    _, out, _ = short_run
    for name, counter in (("chargen-loop", "udp_drop_port"),
                          ("echo-loop", "udp_drop_port"),
                          ("echo-loop-high", "udp_drop_loop")):
        a = attack(out, name)
        nv, ed = a["naive"], a["echod"]
        # The naive server kept looping with the victim's service in both
        # directions until the lab stopped the service.
        assert nv["loop_length"] >= 100, name
        assert nv["capture"]["out"]["packets"] >= 50, name
        # echod: fewer than 10 packets on the wire, then silence.
        assert ed["loop_length"] < 10, (name, ed["loop_length"])
        assert ed["counters"].get(counter, 0) >= 1, (name, ed["counters"])


def test_short_lab_reflections(short_run):
    _, out, _ = short_run
    a = attack(out, "srcport")
    sent = a["naive"]["attacker"]["sent"]
    ports = a["naive"]["capture"]["in"]["ports"]
    assert {p: ports.get(p) for p in ("7", "13", "17", "19", "37")} == \
        {p: sent // 5 for p in ("7", "13", "17", "19", "37")}
    assert a["echod"]["victim_packets"] == 0
    assert a["echod"]["counters"]["udp_drop_port"] == sent

    a = attack(out, "fraggle")
    sent = a["naive"]["attacker"]["sent"]
    assert a["naive"]["victim_packets"] == 3 * sent  # three hosts answer
    assert a["naive"]["amplification"] > 2.5
    assert a["echod"]["victim_packets"] == 0
    # Every worker's socket gets its own copy of a broadcast, and drops it.
    dropped = a["echod"]["counters"]["udp_drop_bad_dest"]
    assert dropped >= sent and dropped % sent == 0

    for name in ("reflection", "spoofed-sources"):
        a = attack(out, name)
        nv, ed = a["naive"], a["echod"]
        sent = nv["attacker"]["sent"]
        # (A naive server that falls behind loses some in its socket
        # buffer: on 2 busy cores, up to a quarter.)
        assert nv["victim_packets"] >= 0.5 * sent, name
        # One victim (one /24; one /56 for the spoofed site): a burst,
        # then the rate, for as long as the capture ran.
        bound = BURST + RATE * ed["capture"]["seconds"] + 2
        assert BURST <= ed["victim_packets"] <= bound, (name, bound)
        assert ed["counters"]["udp_drop_rate"] >= sent - bound, name
        assert ed["amplification"] < 0.1, name
    a = attack(out, "spoofed-sources")
    assert a["naive"]["victim_addresses"] == a["naive"]["victim_packets"]


def test_short_lab_tcp(short_run):
    _, out, _ = short_run
    a = attack(out, "slow-readers")
    attempted = a["naive"]["attacker"]["attempted_bytes"]
    assert a["naive"]["memory_growth_kib"] * 1024 >= attempted // 2
    for name in ("slowloris", "conn-flood"):
        a = attack(out, name)
        assert a["naive"]["legit"]["echoed"] == 0, name
        assert a["naive"]["attacker"]["held"] > 1000, name
        ed = a["echod"]
        refused = sum(v for k, v in ed["counters"].items()
                      if k.startswith("tcp_refused") or "evict" in k)
        assert refused > 0, (name, ed["counters"])
        assert ed["attacker"]["held"] < a["naive"]["attacker"]["held"]


def test_short_lab_table_and_chart(short_run):
    _, out, _ = short_run
    doc = json.loads((out / "results.json").read_text())
    table = (out / "table.md").read_text()
    for name, a in doc["attacks"].items():
        row = [line for line in table.splitlines()
               if line.startswith(f"| {name} |")]
        assert len(row) == 1, name
        assert f"{a['naive']['legit']['echoed']}/" in row[0]
        if a["kind"] not in ("memory", "lockout"):
            assert f"| {a['naive']['victim_packets']:,} / " \
                f"{a['echod']['victim_packets']:,} |" in row[0]
    svg = ET.parse(out / "chart.svg").getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    width, height = float(svg.get("width")), float(svg.get("height"))
    lines = svg.findall(".//s:polyline", ns)
    charted = {"chargen-loop", "echo-loop", "echo-loop-high", "srcport",
               "fraggle", "reflection", "spoofed-sources"}
    assert {(p.get("data-attack"), p.get("data-side")) for p in lines} == \
        {(n, s) for n in charted for s in ("naive", "echod")}
    for p in lines:
        pts = [tuple(map(float, xy.split(",")))
               for xy in p.get("points").split()]
        assert len(pts) >= 2
        assert all(0 <= x <= width and 0 <= y <= height for x, y in pts)
        # Each line is labelled with the packets the capture counted.
        assert int(p.get("data-packets")) == \
            doc["attacks"][p.get("data-attack")][p.get("data-side")][
                "victim_packets"]
    r, _, _ = short_run
    assert f"chart: {out / 'chart.svg'}" in r.stdout


def png_pixels(path):
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA PNG
    without interlacing, as chromium writes its screenshots."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    i, idat = 8, b""
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + n]
        if kind == b"IHDR":
            w, h = int.from_bytes(body[:4], "big"), \
                int.from_bytes(body[4:8], "big")
            assert body[8] == 8 and body[9] in (2, 6) and body[12] == 0
            bpp = 3 if body[9] == 2 else 4
        elif kind == b"IDAT":
            idat += body
        i += 12 + n
    raw, stride, prev, rows = zlib.decompress(idat), w * bpp, None, []
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        up = prev or bytearray(stride)
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = up[x], (up[x - bpp] if x >= bpp else 0)
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[x] = (line[x] + pred) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(
            v for k, v in enumerate(line) if k % 4 != 3))
        prev = line
    return w, h, rows


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium not installed (.ci/deps has it)")
def test_short_lab_chart_renders_in_a_browser(short_run, tmp_path):
    """Debian's chromium, headless, draws chart.svg: both series' colours
    appear, on a light page, at the size the SVG declares."""
    _, out, _ = short_run
    png = tmp_path / "chart.png"
    svg = ET.parse(out / "chart.svg").getroot()
    width, height = int(svg.get("width")), int(svg.get("height"))
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", "--no-first-run",
                    "--force-device-scale-factor=0.5",
                    f"--window-size={width},{height}",
                    f"--screenshot={png}", (out / "chart.svg").as_uri()],
                   capture_output=True, timeout=60, cwd=str(tmp_path))
    w, h, rows = png_pixels(png)
    assert (w, h) == ((width + 1) // 2, (height + 1) // 2)

    # The lines are thin and smoothed into the background: judge by hue
    # (naive #d62728 is red, echod #1f77b4 blue; text and grid are grey).
    counts = {"naive": 0, "echod": 0, "light": 0}
    for row in rows:
        for k in range(0, len(row), 3):
            r, g, b = row[k:k + 3]
            counts["naive"] += r > g + 60 and r > b + 60
            counts["echod"] += b > r + 60 and b > g + 20
            counts["light"] += min(r, g, b) > 240
    assert counts["naive"] > 1000 and counts["echod"] > 300, counts
    assert counts["light"] > 0.5 * w * h, counts


def test_lab_policy_file_changes_the_outcome(tmp_path):
    """A student turns the loop guard off: the loop through an unlisted
    port runs against echod too, until its rate limit."""
    policy = tmp_path / "weak.conf"
    policy.write_text("udp-loop-guard off\n")
    r = run_lab(tmp_path / "out", "--short", "--attack", "echo-loop-high",
                "--policy", str(policy))
    assert r.returncode == 0, r.stderr
    a = attack(tmp_path / "out", "echo-loop-high")
    assert a["echod"]["worked"], a["echod"]["why"]
    assert a["echod"]["loop_length"] > 100
    assert a["echod"]["counters"].get("udp_drop_loop", 0) == 0
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["policy"] == str(policy)


def test_lab_refuses_bad_input(tmp_path):
    r = run_lab(tmp_path, "--attack", "teardrop")
    assert r.returncode == 2 and "unknown attack teardrop" in r.stderr
    bad = tmp_path / "bad.conf"
    bad.write_text("udp-rate fast\n")
    r = run_lab(tmp_path, "--policy", str(bad))
    assert r.returncode == 1
    assert f"{bad}:1:" in r.stderr
    assert not lab_namespaces(r.pid)


def _start_and_wait_for_servers(out):
    proc = subprocess.Popen(lab_argv(out, "--attack", "reflection"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=str(ROOT))
    # The driver's namespaces exist and srv1 runs a server.
    srv1 = f"echod-lab-{proc.pid}-srv1"
    wait_until(lambda: srv1 in lab_namespaces(proc.pid) and
               netns_pids(srv1), 20, interval=0.05,
               what="the lab's first server")
    pids = {p for n in lab_namespaces(proc.pid) for p in netns_pids(n)}
    return proc, pids


def test_lab_ctrl_c_removes_everything(tmp_path):
    proc, pids = _start_and_wait_for_servers(tmp_path)
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, proc.stderr.read()
    assert not lab_namespaces(proc.pid)
    assert not [p for p in pids if alive(p)]
    assert not list(tmp_path.iterdir()), "an interrupted run wrote results"


def test_lab_cleans_up_a_stale_run(tmp_path):
    proc, pids = _start_and_wait_for_servers(tmp_path)
    proc.kill()  # no clean-up at all: namespaces and echod stay
    proc.wait()
    stale = lab_namespaces(proc.pid)
    assert stale
    # (Another lab starting meanwhile may clean it up first: either way
    # it must be gone.)
    r = run_lab(tmp_path, "--clean")
    assert r.returncode == 0, r.stderr
    assert not lab_namespaces(proc.pid)
    assert not [p for p in pids if alive(p)]


def test_lab_network_has_no_way_out():
    """Every address and route of the lab's namespaces lies in its ranges;
    the check the lab runs before any attack refuses a default route."""
    sys.path.insert(0, str(ROOT / "lab"))
    import topo
    t = topo.Topology()
    try:
        t.check()
        t["atk"].ip("route", "add", "default", "via", "198.18.1.1")
        with pytest.raises(RuntimeError, match="atk: route to default"):
            t.check()
    finally:
        t.delete()
    assert not lab_namespaces(os.getpid())
