"""The XDP prefilter's rows of `make bench`: echod (one worker) with and
without `xdp-prefilter` under two floods, over the bench's veth pair
(198.18.0.0/15 only, bounded in count and time):

  port     spoofed datagrams from 100,000 sources, all from source port 19
           (which the guards refuse), policy/bench.conf (rates lifted);
           a legitimate client sends 1000 datagrams/s
  sources  spoofed datagrams from 100,000 sources (390 /24s) from
           ephemeral ports, the built-in policy (udp-rate 100/s burst 200
           per /24) without the global cap (which the flood would spend
           for everyone, the legitimate client included, with or without
           the prefilter); a legitimate client sends 90 datagrams/s,
           within its own prefix's rate

The flood runs as fast as echo-bench can send (no -r) on the load CPU.
Each row: the flood offered, the share of it that reached echod's socket
(udp_received beyond the legitimate datagrams), the worker's CPU while the
legitimate client ran, and the share of the legitimate datagrams echoed.

bench.py calls run() with itself as `b` (its Server, run_load, parse_kv,
Namespaces, BENCH, ROOT, POLICY) and report() with the medians.
"""

import os
import signal
import subprocess
import time

HOST, PORT = "198.18.0.1", 20007
FLOOD_SOURCES = 100000
FLOOD_MAX = 10_000_000  # datagrams; the time bound ends it first

CASES = [
    # key, label, policy ("bench": policy/bench.conf), flood args, legit rate
    ("port", "source-port-19 flood, bench policy", "bench", ["-P", "19"],
     1000),
    ("sources", "100,000 spoofed sources, udp-rate 100/s per /24",
     "udp-global-rate unlimited\n", [], 90),
]
METRICS = [
    # key, column, format
    ("flood_pps", "flood offered (dgram/s)", lambda v: f"{v / 1000:.0f}k"),
    ("reached_pct", "flood reaching the socket", lambda v: f"{v:.1f}%"),
    ("worker_cpu_pct", "worker CPU", lambda v: f"{v:.1f}%"),
    ("legit_pct", "legit UDP echoed", lambda v: f"{v:.1f}%"),
]


def _cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _worker(b, pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        kids = [int(k) for k in f.read().split()]
    if len(kids) != 1:
        raise b.BenchError(f"expected one worker, found {kids}")
    return kids[0]


def _counters(b, s, timeout=3.0):
    """SIGUSR1, then the fields of the next event=counters line."""
    start = len(s.lines)
    os.kill(s.proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in s.lines[start:]:
            if " event=counters " in f" {line} ":
                return {k: int(v) for k, v in
                        (w.split("=", 1) for w in line.split() if "=" in w)
                        if v.isdigit()}
        time.sleep(0.02)
    raise b.BenchError("no counters line after SIGUSR1")


def _policy(b, key, base, prefilter):
    path = b.ROOT / "build" / "bench" / f"xdp-{key}-{int(prefilter)}.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = b.POLICY.read_text() if base == "bench" else base
    if prefilter:
        text += "\nxdp-prefilter ebv-s\n"
    path.write_text(text)
    return path


def _one(b, ns, key, base, flood_args, legit_rate, prefilter, seconds,
         srv_cpu, load_cpu, notes):
    pin = lambda cpu: ["taskset", "-c", cpu] if cpu else []  # noqa: E731
    argv = ns.exec_prefix(ns.srv) + pin(srv_cpu) + [
        str(b.ROOT / "build" / "echod"), "-c",
        str(_policy(b, key, base, prefilter)), "-w", "1", "-l",
        f"{HOST}:{PORT}"]
    cli = ns.exec_prefix(ns.cli)
    flood_s = seconds + 1.5
    s = b.Server("echod", argv, HOST, PORT)
    try:
        if prefilter:
            att = [l for l in s.lines if " event=xdp_attached " in f" {l} "]
            if not att:
                raise b.BenchError("the prefilter did not attach")
            note = "XDP rows: " + att[0].split("event=")[1].strip()
            if note not in notes:
                notes.append(note)
        worker = _worker(b, s.proc.pid)
        c0 = _counters(b, s)
        flood = subprocess.Popen(
            cli + pin(load_cpu) + [
                str(b.BENCH), "flood", "-S", str(FLOOD_SOURCES), "-F",
                "198.18.4.0", "-d", str(flood_s), "-n", str(FLOOD_MAX),
                "-s", "64"] + flood_args + [HOST, str(PORT)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # the flood at full rate first
        ticks, t0 = _cpu_ticks(worker), time.monotonic()
        legit = b.run_load(["udp", "-s", 64, "-w", 32, "-r", legit_rate,
                            "-d", seconds, HOST, PORT], load_cpu, cli)
        ticks = _cpu_ticks(worker) - ticks
        elapsed = time.monotonic() - t0
        out, err = flood.communicate(timeout=flood_s + 10)
        if flood.returncode != 0:
            raise b.BenchError(f"flood: {err.strip()}")
        fl = b.parse_kv(out.strip().splitlines()[-1])
        c1 = _counters(b, s)
    finally:
        s.stop()
    flood_in = c1["udp_received"] - c0["udp_received"] - int(legit["sent"])
    return {
        "flood_pps": float(fl["per_s"]),
        "reached_pct": 100.0 * max(0, flood_in) / max(1, int(fl["sent"])),
        "worker_cpu_pct": 100.0 * ticks / os.sysconf("SC_CLK_TCK") / elapsed,
        "legit_pct": float(legit["echoed_pct"]),
    }


def run(b, seconds, srv_cpu, load_cpu, results, notes):
    """Every case with and without the prefilter, in one namespace pair."""
    if os.geteuid() != 0:
        notes.append("XDP rows skipped: need root (namespaces, XDP)")
        return
    ns = b.Namespaces()
    try:
        for key, _, base, flood_args, legit_rate in CASES:
            for prefilter in (False, True):
                r = _one(b, ns, key, base, flood_args, legit_rate, prefilter,
                         seconds, srv_cpu, load_cpu, notes)
                for metric, value in r.items():
                    results[("echod", f"xdp_{key}_{int(prefilter)}_"
                             f"{metric}")] = [value]
    finally:
        ns.delete()


def report(med):
    """The rows, as a table of their own (nothing if they did not run)."""
    if ("echod", f"xdp_{CASES[0][0]}_0_flood_pps") not in med:
        return
    print("| under attack, 1 worker, veth | "
          + " | ".join(col for _, col, _ in METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    for key, label, _, _, _ in CASES:
        for prefilter in (0, 1):
            cells = [fmt(med[("echod", f"xdp_{key}_{prefilter}_{m}")])
                     for m, _, fmt in METRICS]
            which = "XDP prefilter" if prefilter else "no prefilter"
            print(f"| {label}, {which} | " + " | ".join(cells) + " |")
    print()
