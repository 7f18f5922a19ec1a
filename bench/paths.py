#!/usr/bin/python3
"""make bench-paths: echod's two TCP echo paths (copy and splice) and the Go
server, by how much each connection keeps in flight.

Why a run of its own: on a machine where the load generator has one CPU,
a TCP row's MB/s is set by that CPU, and a server changes it only through
the work its echo leaves the generator. This run varies the data in
flight per connection (echo-bench -w, and unbounded writes) and records,
for each shape and server, the MB/s, the server CPU's working time per GB
echoed, the server's system calls and waits per MB, the share of echod's
echo that went through a pipe and how busy the load's CPU was, so the
two effects can be told apart. Each round starts each server afresh, in
an order rotated every round, after one unrecorded warm-up round; the
tables hold the medians.
Server on CPU 0, load on CPU 1 (two CPUs or more are needed).
"""

import argparse
import contextlib
import io
import select
import statistics
import sys
import tempfile
import time

import bench

KIB = 1024
SHAPES = [
    # key, label, echo-bench args
    ("c1w64k", "1 connection, 64 KiB in flight", ["-c", 1, "-w", 64 * KIB]),
    ("c1w256k", "1 connection, 256 KiB in flight (make bench)",
     ["-c", 1, "-w", 256 * KIB]),
    ("c1w1m", "1 connection, 1 MiB in flight", ["-c", 1, "-w", 1024 * KIB]),
    ("c1u", "1 connection, unbounded writes", ["-c", 1, "-u"]),
    ("c64w16k", "64 connections, 16 KiB in flight each",
     ["-c", 64, "-w", 16 * KIB]),
    ("c64w64k", "64 connections, 64 KiB in flight each",
     ["-c", 64, "-w", 64 * KIB]),
    ("c64w256k", "64 connections, 256 KiB in flight each (make bench)",
     ["-c", 64, "-w", 256 * KIB]),
    ("c64u", "64 connections, unbounded writes", ["-c", 64, "-u"]),
]
NAMES = {"echod": "copy path", "splice": "splice path", "go": "Go"}
FIGURES = [
    # figure, title, cell format
    ("mbs", "Throughput (MB/s, every byte verified)", "{:.0f}"),
    ("cpu", "Server CPU, working time per GB echoed (ms)", "{:.0f}"),
    ("calls", "Server system calls per MB echoed (perf stat)", "{:.1f}"),
    ("sleeps", "Server waits (voluntary context switches) per MB echoed",
     "{:.1f}"),
    ("spliced", "Share of the echo that went through a pipe", "{:.0f}%"),
    ("load", "The load generator's CPU, busy", "{:.0f}%"),
]


def perf_syscalls(pids, workdir):
    """perf stat counting the system calls of pids, started disabled and
    enabled through its control FIFO: its "ack" says it counts. None
    without perf."""
    if bench.shutil.which("perf") is None:
        return None
    ctl, ack, out = (workdir / n for n in ("ctl", "ack", "out"))
    for fifo in (ctl, ack):
        fifo.unlink(missing_ok=True)
        bench.os.mkfifo(fifo)
    p = bench.subprocess.Popen(
        ["perf", "stat", "-x,", "-o", str(out), "-e", "raw_syscalls:sys_enter",
         "-D", "-1", "--control", f"fifo:{ctl},{ack}",
         "-p", ",".join(str(x) for x in pids)],
        stdout=bench.subprocess.DEVNULL, stderr=bench.subprocess.DEVNULL)
    # Read-write opens do not wait for the other end.
    wfd = bench.os.open(ctl, bench.os.O_RDWR)
    rfd = bench.os.open(ack, bench.os.O_RDWR)
    try:
        bench.os.write(wfd, b"enable\n")
        ready, _, _ = select.select([rfd], [], [], 10)
        if not ready or not bench.os.read(rfd, 64).startswith(b"ack"):
            p.kill()
            raise bench.BenchError("perf stat did not acknowledge enable")
    finally:
        bench.os.close(wfd)
        bench.os.close(rfd)
    return p, out


def perf_count(started):
    """Stop the perf stat of perf_syscalls; the calls it counted."""
    p, out = started
    p.send_signal(bench.signal.SIGINT)
    p.wait(10)
    for line in out.read_text().splitlines():
        if "raw_syscalls:sys_enter" in line:
            return int(line.split(",")[0])
    raise bench.BenchError("perf stat counted no system calls")


def sleeps(pids):
    """Voluntary context switches of every thread of pids: how often the
    server waited, each a wake-up someone else paid for."""
    n = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for t in bench.Path(f"/proc/{pid}/task").iterdir():
                for line in (t / "status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        n += int(line.split()[1])
    return n


def measure(s, args, seconds, results, kind, key, workdir):
    """One load against server s: MB/s, server CPU ms per GB, load CPU %,
    and, where they can be had, the server's system calls per MB (perf)
    and the share of the echo that was spliced (echod's counters)."""
    echod = kind != "go"
    c0 = s.counters() if echod else None
    pids = s.pids()
    perf = perf_syscalls(pids, workdir)
    srv0, load0 = bench.cpu_busy_jiffies(0), bench.cpu_busy_jiffies(1)
    sleeps0 = sleeps(pids)
    t0 = time.monotonic()
    r = bench.run_load(["tcp"] + args + ["-d", seconds, s.host, s.port], "1")
    wall = time.monotonic() - t0
    slept = sleeps(pids) - sleeps0
    srv = bench.cpu_busy_jiffies(0) - srv0
    load = bench.cpu_busy_jiffies(1) - load0
    mb = float(r["bytes"]) / 1e6
    got = [("mbs", float(r["mb_per_s"])),
           ("cpu", srv * 1000.0 / bench.CLOCK_TICKS / (mb / 1000.0)),
           ("load", 100.0 * load / bench.CLOCK_TICKS / wall),
           ("sleeps", slept / mb)]
    if perf is not None:
        got.append(("calls", perf_count(perf) / mb))
    if echod:
        c1 = s.counters()
        out = c1["tcp_bytes_out"] - c0["tcp_bytes_out"]
        got.append(("spliced", 100.0 * (c1["tcp_splice_bytes"] -
                                        c0["tcp_splice_bytes"]) / out))
    for what, v in got:
        results.setdefault((kind, key, what), []).append(v)


def one_round(kind, seconds, results):
    s = bench.start(kind, "0")
    try:
        with tempfile.TemporaryDirectory(prefix="echod-bench-paths-") as d:
            for key, _, args in SHAPES:
                measure(s, args, seconds, results, kind, key, bench.Path(d))
        if not s.alive():
            raise bench.BenchError(f"{kind} died during the round")
    finally:
        s.stop()


def report(kinds, results, notes):
    """One table per figure: the shapes down, the servers across."""
    med = {k: statistics.median(v) for k, v in results.items()}
    for what, title, fmt in FIGURES:
        if not any(w == what for _, _, w in med):
            continue
        print(f"{title}:\n")
        print("| shape | " + " | ".join(NAMES[k] for k in kinds) + " |")
        print("|---" * (len(kinds) + 1) + "|")
        for key, label, _ in SHAPES:
            cells = []
            for k in kinds:
                v = med.get((k, key, what))
                cell = "—" if v is None else fmt.format(v)
                if what == "mbs" and k != "echod" and v is not None:
                    cell += f" ({v / med[('echod', key, 'mbs')]:.2f}x copy)"
                cells.append(cell)
            print(f"| {label} | " + " | ".join(cells) + " |")
        print()
    for n in notes:
        print(f"note: {n}")
    for (k, key, what), vals in sorted(results.items()):
        print(f"BENCH server={k} metric={key}_{what} "
              f"median={statistics.median(vals):.3f} rounds={len(vals)} "
              "values=" + ",".join(f"{v:.3f}" for v in vals))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--results", default=str(bench.RESULTS),
                    help="directory for this run's results file "
                         "('' for none)")
    a = ap.parse_args()
    if len(bench.os.sched_getaffinity(0)) < 2:
        sys.exit("bench-paths: needs two CPUs (server on 0, load on 1)")
    bench.write_splice_policy()
    kinds, notes = ["echod", "splice"], []
    why = bench.build_go()
    if why:
        notes.append(why)
    else:
        kinds.append("go")
    notes.append(f"load average at start: {bench.os.getloadavg()[0]:.2f}")
    results = {}
    try:
        for kind in kinds:
            bench.log(f"bench-paths: warm-up round (not recorded): {kind}")
            one_round(kind, min(a.seconds, 0.5), {})
        for r in range(a.rounds):
            for kind in kinds[r % len(kinds):] + kinds[:r % len(kinds)]:
                bench.log(f"bench-paths: round {r + 1}/{a.rounds}: {kind}")
                one_round(kind, a.seconds, results)
    except (bench.BenchError, bench.subprocess.TimeoutExpired) as e:
        bench.log(f"bench-paths: FAILED: {e}")
        return 1
    notes.append(f"load average at end: {bench.os.getloadavg()[0]:.2f}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report(kinds, results, notes)
    print(out.getvalue(), end="")
    cmd = "make bench-paths" + (f" PATHS_ARGS='{' '.join(sys.argv[1:])}'"
                                if sys.argv[1:] else "")
    if a.results:
        path = bench.save_results(out.getvalue(), cmd, bench.Path(a.results),
                                  title="make bench-paths")
        bench.log(f"bench-paths: results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
