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
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

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


def make_env(slide):
    """The environment a student's shell has, plus the short scale (and
    no chart.png unless `slide`: chromium takes seconds a run): no make
    state inherited from `make test` (its jobserver is not ours)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    env["LAB_SCALE"] = "short"
    env["SLIDE"] = "yes" if slide else "no"
    return env


def run_shell(command, timeout=180, slide=False):
    """One documented command, as written, through bash at the top of the
    tree, as root; the CompletedProcess."""
    r = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"],
                       cwd=str(ROOT), env=make_env(slide),
                       capture_output=True, text=True, timeout=timeout)
    print(f"$ {command}\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r


def run_dir_of(stdout):
    """The run directory a lab run reported."""
    m = re.search(r"results: (\S+)/results\.json", stdout)
    assert m, stdout[-2000:]
    d = Path(m.group(1))
    return d if d.is_absolute() else ROOT / d


def doc_commands(text):
    """Each line of each ```sh block: the commands a reader types."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        out += [line for line in block.splitlines()
                if line.strip() and not line.startswith("#")]
    return out


def readme_lab_section():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Lab\n")
    return readme[start:readme.index("\n## ", start + 1)]


# The README's first command, run as written: every attack, in the short
# form (LAB_SCALE=short); the tests below read what it wrote.
FIRST = "make lab"


@pytest.fixture(scope="module")
def short_run():
    assert doc_commands(readme_lab_section())[0] == FIRST
    t0 = time.monotonic()
    r = run_shell(FIRST, slide=True)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    return r, run_dir_of(r.stdout), elapsed


def attack(out, name):
    doc = json.loads((out / "results.json").read_text())
    return doc["attacks"][name]


def test_short_lab_every_attack_works_on_naive_and_fails_on_echod(short_run):
    r, out, elapsed = short_run
    doc = json.loads((out / "results.json").read_text())
    assert doc["sides"] == {"naive": "naive server (lab/naive.c)",
                            "echod": "echod, policy built-in "
                                     "(policy/echod.conf)"}
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
    assert elapsed < 120  # about 35 s on 2 idle cores
    # The run's own directory, pointed at by latest; no partial left.
    base = out.parent
    assert out.name == doc["run"] and out.name.endswith("-builtin")
    assert not [p for p in base.iterdir() if p.name.startswith(".")]
    assert "died by itself" not in r.stdout


def test_short_lab_loops(short_run):
    _, out, _ = short_run
    for name, counter, reason in (
            ("chargen-loop", "udp_drop_port", "port"),
            ("echo-loop", "udp_drop_port", "port"),
            ("echo-loop-high", "udp_drop_loop", "loop")):
        a = attack(out, name)
        nv, ed = a["naive"], a["echod"]
        # The naive server kept looping with the victim's service in both
        # directions until the lab stopped the service.
        assert nv["loop_length"] >= 100, name
        assert nv["capture"]["out"]["packets"] >= 50, name
        # echod: fewer than 10 packets on the wire, then silence.
        assert ed["loop_length"] < 10, (name, ed["loop_length"])
        assert ed["counters"].get(counter, 0) >= 1, (name, ed["counters"])
        # What stopped it: the keyword, the reason, the count and one of
        # echod's own log lines from this run (also in its log file).
        st = ed["stopped_by"]
        assert (st["counter"], st["reason"], st["count"]) == \
            (counter, reason, ed["counters"][counter]), st
        assert " event=udp_drop " in st["log"] and \
            f" reason={reason} " in st["log"], st
        assert st["log"] in (out / ed["log"]).read_text().splitlines()
        assert nv["stopped_by"] is None


def test_short_lab_ratio_definitions(short_run):
    """Reflection: bytes at the victim / bytes the attacker sent; a loop:
    self-sustaining or not, and its rate at the stop, never a ratio."""
    _, out, _ = short_run
    doc = json.loads((out / "results.json").read_text())
    table = (out / "table.md").read_text()
    for name, a in doc["attacks"].items():
        for side in ("naive", "echod"):
            r, q = a[side], a[side]["ratio"]
            if a["kind"] in ("reflection", "amplification"):
                assert q["value"] == round(r["victim_bytes"] /
                                           r["attacker"]["sent_bytes"], 4)
            elif a["kind"] == "loop":
                assert "value" not in q
                bins, width = r["capture"]["bins_in"], r["capture"]["bin"]
                stop = r["attacker"]["window"][1]
                last = sum(bins[int((stop - 0.2) / width):
                                int(stop / width)])
                assert q["rate_at_stop"] == (round(last / 0.2)
                                             if q["self_sustaining"] else 0)
            else:
                assert q is None
    # srcport: each answer is as long as its question: exactly 1.00x;
    # fraggle: three hosts answer each: exactly 3.00x.
    assert attack(out, "srcport")["naive"]["ratio"]["value"] == 1.0
    assert attack(out, "fraggle")["naive"]["ratio"]["value"] == 3.0
    for name in ("chargen-loop", "echo-loop", "echo-loop-high"):
        a = attack(out, name)
        assert a["naive"]["ratio"]["self_sustaining"]
        assert a["naive"]["ratio"]["rate_at_stop"] >= 1000
        assert not a["echod"]["ratio"]["self_sustaining"]
        row = next(line for line in table.splitlines()
                   if line.startswith(f"| {name} |"))
        ratio = row.split(" | ")[3]
        assert ratio.startswith("self-sustaining, ") and "×" not in ratio, \
            row
        assert f"{a['naive']['ratio']['rate_at_stop']:,} packets/s when " \
            "the lab stopped it" in row


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
    assert a["echod"]["victim_packets"] == 0
    # Every worker's socket gets its own copy of a broadcast, and drops it.
    dropped = a["echod"]["counters"]["udp_drop_bad_dest"]
    assert dropped >= sent and dropped % sent == 0
    assert a["echod"]["stopped_by"]["keyword"] == "always on (no keyword)"

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
        assert ed["ratio"]["value"] < 0.1, name
        assert ed["stopped_by"]["counter"] == "udp_drop_rate"
    a = attack(out, "spoofed-sources")
    assert a["naive"]["victim_addresses"] == a["naive"]["victim_packets"]


def test_short_lab_tcp(short_run):
    _, out, _ = short_run
    a = attack(out, "slow-readers")
    attempted = a["naive"]["attacker"]["attempted_bytes"]
    assert a["naive"]["memory_growth_kib"] * 1024 >= attempted // 2
    assert a["echod"]["stopped_by"]["keyword"] == "tcp-buffer"
    for name in ("slowloris", "conn-flood"):
        a = attack(out, name)
        assert a["naive"]["legit"]["echoed"] == 0, name
        assert a["naive"]["attacker"]["held"] > 1000, name
        ed = a["echod"]
        refused = sum(v for k, v in ed["counters"].items()
                      if k.startswith("tcp_refused") or "evict" in k)
        assert refused > 0, (name, ed["counters"])
        assert ed["attacker"]["held"] < a["naive"]["attacker"]["held"]
        assert ed["stopped_by"]["log"] and " event=tcp_" in \
            ed["stopped_by"]["log"]


def tcpdump(path, *filt):
    r = subprocess.run(["tcpdump", "-n", "-r", str(path), *filt],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


@pytest.mark.skipif(shutil.which("tcpdump") is None,
                    reason="tcpdump not installed (.ci/deps has it)")
def test_short_lab_pcaps(short_run):
    """Each attack keeps a pcap per server and vantage point, within its
    bound, readable by tcpdump, holding the attack's packets, and named
    in the table."""
    _, out, _ = short_run
    doc = json.loads((out / "results.json").read_text())
    bound = doc["pcap_bound"]
    assert bound["max_bytes"] == 24 + bound["pcap_max"] * \
        (16 + bound["snaplen"])
    table = (out / "table.md").read_text()
    files = set()
    for name, a in doc["attacks"].items():
        for side in ("naive", "echod"):
            want = ("victim", "server") if a["kind"] not in (
                "memory", "lockout") else ("server", "client")
            assert tuple(a[side]["pcap"]) == want, name
            for vantage, p in a[side]["pcap"].items():
                path = out / p["path"]
                assert p["path"] == f"pcap/{name}-{side}-{vantage}.pcap"
                files.add(path.name)
                assert path.stat().st_size <= bound["max_bytes"]
                assert f"`{p['path']}`" in table
                # The first packets whole, then one in `every`, at most max.
                seen, first = p["seen"], bound["pcap_first"]
                kept = min(bound["pcap_max"], seen if seen <= first else
                           first + (seen - first) // bound["pcap_every"])
                assert p["packets"] == kept, (name, side, vantage, p)
                assert len(tcpdump(path)) == kept, path
    assert files == {p.name for p in (out / "pcap").iterdir()}

    srv, vic = "198.18.0.1", "198.18.2.2"
    a = attack(out, "srcport")
    sent = a["naive"]["attacker"]["sent"]
    answers = f"udp and src host {srv} and src port 7 and dst host {vic}"
    assert len(tcpdump(out / a["naive"]["pcap"]["victim"]["path"],
                       answers)) == sent
    assert tcpdump(out / a["echod"]["pcap"]["victim"]["path"],
                   answers) == []
    # echod got every forged datagram, and answered none.
    forged = f"udp and src host {vic} and dst host {srv} and dst port 7"
    assert len(tcpdump(out / a["echod"]["pcap"]["server"]["path"],
                       forged)) == sent
    lines = tcpdump(out / a["naive"]["pcap"]["victim"]["path"], answers)
    assert {line.split(" > ")[1].split(":")[0].rsplit(".", 1)[1]
            for line in lines} == {"7", "13", "17", "19", "37"}

    a = attack(out, "fraggle")
    lines = tcpdump(out / a["naive"]["pcap"]["victim"]["path"],
                    f"udp and dst host {vic}")
    assert {line.split(" IP ")[1].split(".7 >")[0] for line in lines} == \
        {"198.18.0.1", "198.18.0.2", "198.18.0.3"}

    # A loop: the naive server's file is full; its sample spans the loop.
    a = attack(out, "echo-loop-high")
    p = a["naive"]["pcap"]["victim"]
    assert p["seen"] > bound["pcap_first"] and p["packets"] > \
        bound["pcap_first"]
    # (and, once the lab stopped the victim's service, an ICMP or two)
    assert p["packets"] - 5 <= len(tcpdump(out / p["path"],
                                           "udp port 7007")) <= p["packets"]
    assert len(tcpdump(out / a["echod"]["pcap"]["victim"]["path"],
                       "udp port 7007")) == a["echod"]["loop_length"]

    a = attack(out, "spoofed-sources")
    lines = tcpdump(out / a["naive"]["pcap"]["victim"]["path"],
                    "ip6 and udp and src host 2001:db8::1")
    # (besides the answers: the victim's neighbour discovery)
    kept = a["naive"]["pcap"]["victim"]["packets"]
    assert kept - 5 <= len(lines) <= kept
    dsts = {line.split(" > ")[1].split(".40000")[0] for line in lines}
    assert len(dsts) == len(lines)
    assert all(d.startswith("2001:db8:0:2") for d in dsts)

    a = attack(out, "slowloris")
    syns = tcpdump(out / a["naive"]["pcap"]["server"]["path"],
                   "tcp[tcpflags] == tcp-syn and dst port 7")
    assert len(syns) >= min(bound["pcap_first"] // 3, 100)
    sources = {line.split(" IP ")[1].split(" > ")[0].rsplit(".", 1)[0]
               for line in syns}
    assert sources - {"198.18.3.2"} == {"198.18.1.10", "198.18.1.11",
                                        "198.18.1.12", "198.18.1.13"}


def test_short_lab_table_and_chart(short_run):
    r, out, _ = short_run
    doc = json.loads((out / "results.json").read_text())
    table = (out / "table.md").read_text()
    header = next(line for line in table.splitlines()
                  if line.startswith("| attack | attacker sent |"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    for c in columns:  # every column has its legend
        assert f"- **{c}**" in table, c
    assert "Each cell: naive / echod." in table
    for name, a in doc["attacks"].items():
        # The first row of the attack's is the main table's.
        row = next(line for line in table.splitlines()
                   if line.startswith(f"| {name} |"))
        assert f"{a['naive']['legit']['echoed']}/" in row
        sent = a["naive"]["attacker"]["sent"]
        assert f"| {sent:,} packet" in row or f"| {sent:,} connection" in row
        if a["kind"] not in ("memory", "lockout"):
            assert f"| {a['naive']['victim_packets']:,} packet" in row
            assert f" / {a['echod']['victim_packets']:,} packet" in row
        st = a["echod"]["stopped_by"]
        if st["counter"]:
            assert f"reason={st['reason']}, {st['count']:,} time" in row
            assert f"`{st['log']}`" in row
    svg = ET.parse(out / "chart.svg").getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    width, height = float(svg.get("width")), float(svg.get("height"))
    lines = svg.findall(".//s:polyline", ns)
    charted = {n for n, a in doc["attacks"].items()
               if a["kind"] not in ("memory", "lockout")}
    assert {(p.get("data-attack"), p.get("data-side")) for p in lines} == \
        {(n, s) for n in charted for s in ("naive", "echod")}
    for p in lines:
        g = next(g for g in svg.iter("{http://www.w3.org/2000/svg}g")
                 if g.get("data-panel") == p.get("data-attack"))
        dx, dy = map(float, re.match(r"translate\(([\d.]+),([\d.]+)\)",
                                     g.get("transform")).groups())
        pts = [tuple(map(float, xy.split(",")))
               for xy in p.get("points").split()]
        assert len(pts) >= 2
        assert all(0 <= x + dx <= width and 0 <= y + dy <= height
                   for x, y in pts)
        # Each line is labelled with the packets the capture counted.
        assert int(p.get("data-packets")) == \
            doc["attacks"][p.get("data-attack")][p.get("data-side")][
                "victim_packets"]
    # The loops the lab stopped are marked: naive, not echod.
    stopped = [g for g in svg.iter("{http://www.w3.org/2000/svg}g")
               if g.get("data-panel") in ("chargen-loop", "echo-loop",
                                          "echo-loop-high")]
    assert len(stopped) == 3
    for g in stopped:
        sides = [c.get("data-side") for c in g.iter(
            "{http://www.w3.org/2000/svg}circle")]
        assert sides == ["naive"], g.get("data-panel")
        text = " ".join(t.text or "" for t in g.iter(
            "{http://www.w3.org/2000/svg}text"))
        assert "stopped by the lab: naive still looping" in text
    # The TCP panel: each TCP attack, a bar per server with what it held.
    bars = {(b.get("data-attack"), b.get("data-side")): int(b.get(
        "data-held")) for b in svg.iter("{http://www.w3.org/2000/svg}rect")
        if b.get("class") == "bar"}
    assert set(bars) == {(n, s) for n in ("slow-readers", "slowloris",
                                          "conn-flood")
                         for s in ("naive", "echod")}
    assert bars[("slowloris", "naive")] > bars[("slowloris", "echod")]
    assert f"chart: {out.relative_to(ROOT) / 'chart.svg'}" in r.stdout


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




def panel_titles(svg):
    """(name, x, y) of each panel's title in the chart's own pixels."""
    out = []
    for g in svg.iter("{http://www.w3.org/2000/svg}g"):
        if g.get("data-panel") is None:
            continue
        dx, dy = map(float, re.match(r"translate\(([\d.]+),([\d.]+)\)",
                                     g.get("transform")).groups())
        t = next(t for t in g.iter("{http://www.w3.org/2000/svg}text")
                 if t.get("class") == "title")
        out.append((g.get("data-panel"), dx + float(t.get("x")),
                    dy + float(t.get("y"))))
    return out


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium not installed (.ci/deps has it)")
def test_short_lab_slide(short_run):
    """make lab's chart.png: headless chromium's drawing of chart.svg at
    its own size, 1920 px wide, every text at least 16 px, every panel's
    title inside the picture and drawn, both servers' colours shown."""
    _, out, _ = short_run
    svg = ET.parse(out / "chart.svg").getroot()
    width, height = int(svg.get("width")), int(svg.get("height"))
    assert width == 1920
    style = next(svg.iter("{http://www.w3.org/2000/svg}style")).text
    sizes = [int(v) for v in re.findall(r"font-size:(\d+)px", style)]
    assert sizes and min(sizes) >= 16, sizes
    assert "font-size" not in (out / "chart.svg").read_text().split(
        "</style>", 1)[1]
    w, h, rows = png_pixels(out / "chart.png")
    assert (w, h) == (width, height)
    titles = panel_titles(svg)
    doc = json.loads((out / "results.json").read_text())
    assert {t[0] for t in titles} == {
        n for n, a in doc["attacks"].items()
        if a["kind"] not in ("memory", "lockout")} | {"tcp"}
    for name, x, y in titles:
        assert 0 <= x < w - 200 and 24 <= y <= h, (name, x, y)
        # Dark text pixels on the title's line (24 px bold).
        dark = sum(1 for row in rows[int(y) - 20:int(y) + 2]
                   for k in range(int(x) * 3, (int(x) + 200) * 3, 3)
                   if max(row[k:k + 3]) < 100)
        assert dark > 100, (name, dark)
    # The lines are thin and smoothed into the background: judge by hue
    # (naive #d62728 is red, echod #1f77b4 blue; text and grid are grey).
    counts = {"naive": 0, "echod": 0, "light": 0}
    for row in rows[::2]:
        for k in range(0, len(row), 6):
            r, g, b = row[k:k + 3]
            counts["naive"] += r > g + 60 and r > b + 60
            counts["echod"] += b > r + 60 and b > g + 20
            counts["light"] += min(r, g, b) > 240
    assert counts["naive"] > 1000 and counts["echod"] > 300, counts
    assert counts["light"] > 0.5 * (w // 2) * (h // 2), counts


def test_lab_policy_run_against_the_builtin(short_run, tmp_path):
    """POLICY=FILE: echod with the built-in policy against echod with the
    student's file, in a new directory; the previous run is untouched;
    the table and the chart's title name both policies in full."""
    _, previous, _ = short_run
    before = {p: p.read_bytes() for p in previous.rglob("*")
              if p.is_file()}
    policy = tmp_path / "weak.conf"
    policy.write_text("udp-loop-guard off\n")
    r = run_lab(previous.parent, "--short", "--attack", "echo-loop-high",
                "--policy", str(policy), "--no-slide")
    assert r.returncode == 0, r.stderr
    out = run_dir_of(r.stdout)
    assert out.parent == previous.parent and out != previous
    assert out.name.endswith("-weak")
    assert (previous.parent / "latest").resolve() == out.resolve()
    assert before == {p: p.read_bytes() for p in previous.rglob("*")
                      if p.is_file()}
    doc = json.loads((out / "results.json").read_text())
    assert doc["policy"] == str(policy)
    assert list(doc["sides"]) == ["echod", "custom"]
    assert doc["sides"]["custom"] == f"echod, policy {policy}"
    a = doc["attacks"]["echo-loop-high"]
    assert set(a) == {"kind", "echod", "custom"}
    assert not a["echod"]["worked"] and a["custom"]["worked"]
    assert a["custom"]["loop_length"] > 100
    assert a["custom"]["counters"].get("udp_drop_loop", 0) == 0
    table = (out / "table.md").read_text()
    assert "Each cell: echod / custom." in table
    assert f"- **custom**: echod, policy {policy}" in table
    assert "- **echod**: echod, policy built-in (policy/echod.conf)" in table
    svg = ET.parse(out / "chart.svg").getroot()
    labels = {t.get("data-side-label"): t.text for t in svg.iter(
        "{http://www.w3.org/2000/svg}text") if t.get("data-side-label")}
    assert labels == doc["sides"]
    lines = {p.get("data-side") for p in svg.iter(
        "{http://www.w3.org/2000/svg}polyline")}
    assert lines == {"echod", "custom"}
    assert sorted(p.name for p in (out / "pcap").iterdir()) == [
        f"echo-loop-high-{s}-{v}.pcap" for s in ("custom", "echod")
        for v in ("server", "victim")]


def doc_sections():
    """(attack or None, text) of each '### ' section of docs/lab.md."""
    text = (ROOT / "docs" / "lab.md").read_text()
    parts = re.split(r"\n### ", text)
    return [(None, parts[0])] + [(p.split("\n", 1)[0].strip(), p)
                                 for p in parts[1:]]


def test_docs_commands_run_as_written(short_run):
    """Every command of the README's Lab section and of docs/lab.md, as
    written, as root, in order (`make lab`, which both open with, is the
    short run above; LAB_SCALE=short keeps the floods small, SLIDE=no
    saves chromium's seconds), and each section's expected result holds."""
    _, first, _ = short_run
    lab_section = readme_lab_section()
    readme = doc_commands(lab_section)
    assert "docs/lab.md" in lab_section
    runs = {FIRST: first}  # command: the run directory it wrote
    for command in readme + [c for _, text in doc_sections()
                             for c in doc_commands(text)]:
        if command == FIRST:
            continue
        assert command not in runs, f"{command}: twice"
        r = run_shell(command)
        assert r.returncode == 0, (command, r.stderr[-2000:])
        runs[command] = run_dir_of(r.stdout) if command.startswith(
            ("make lab", "lab/lab.py --check")) else None
        if command.startswith("tcpdump "):
            assert r.stdout.strip(), f"{command}: no packets"
    attacks = json.loads((first / "results.json").read_text())["attacks"]
    sections = doc_sections()
    assert sum(name in attacks for name, _ in sections) == 10
    for name, text in sections:
        expected = re.search(r"\*\*Expected result:\*\* custom "
                             r"\*\*(worked|stopped)\*\*(?: \(echod's "
                             r"counter:\s+`(\w+)`\))?", text)
        assert (expected is not None) == (name in attacks), name
        ran = [runs[c] for c in doc_commands(text)
               if c.startswith("make lab ")]
        if expected is None:
            continue
        # The section's run: naive, built-in echod and the custom policy.
        assert len(ran) == 1, name
        a = json.loads((ran[0] / "results.json").read_text())[
            "attacks"][name]
        assert set(a) == {"kind", "naive", "echod", "custom"}, name
        assert a["naive"]["worked"] and not a["echod"]["worked"], name
        assert a["custom"]["worked"] == (expected.group(1) == "worked"), \
            (name, a["custom"]["why"])
        if expected.group(2):
            assert a["custom"]["stopped_by"]["counter"] == \
                expected.group(2), (name, a["custom"]["stopped_by"])


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
