#!/usr/bin/python3
"""`make fuzz-campaign FUZZ_SECONDS=N [FUZZ_JOBS=J]`: every harness for N
seconds (J processes each, sharing one scratch corpus), then what they
learned merged back into fuzz/corpus/NAME/ with libFuzzer's -merge=1, so
the result is a reviewable diff: only inputs that add coverage are added
(named by their SHA-1), the committed seeds stay as they are.

  campaign.py --seconds N [--jobs J] [--harness NAME ...]

Writes build/fuzz/campaign/summary.md (also printed): per harness the runs,
execs/s, inputs added and findings; per gated file the line coverage of
the corpora before and after (fuzz/coverage.py); and every finding with
its reproducer's path (fuzz/findings/NAME/, not committed). Exits 1 if a
harness found something. The libFuzzer builds (make fuzz) and the coverage
builds (make fuzz-coverage-build) must be current: the Makefile sees to it.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUZZ_BIN = ROOT / "build" / "fuzz"
OUT = FUZZ_BIN / "campaign"
ENV = dict(os.environ,
           ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1",
           UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
FINDING = re.compile(r"^(crash|leak|timeout|oom|slow-unit)-")


def harnesses():
    out = subprocess.run(["make", "-s", "--no-print-directory", "fuzz-list"],
                         cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    return [line.split("|")[0] for line in out.splitlines()]


def coverage(label):
    out = OUT / f"coverage-{label}"
    subprocess.run(["/usr/bin/python3", str(ROOT / "fuzz" / "coverage.py"),
                    "--quiet", "--out", str(out)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads((out / "summary.json").read_text())["files"]


def stat(log, name):
    m = re.findall(rf"^stat::{name}:\s+(\d+)", log, re.M)
    return sum(int(x) for x in m)


def run_harness(name, seconds, jobs):
    """Run J processes of NAME over a fresh scratch corpus (new inputs land
    there; the committed corpus is read only); merge back. Returns a dict
    for the summary."""
    work = OUT / "work" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    findings = ROOT / "fuzz" / "findings" / name
    findings.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in findings.iterdir()}
    corpus = ROOT / "fuzz" / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    argv = [str(FUZZ_BIN / name), str(work), str(corpus),
            f"-max_total_time={seconds}", "-timeout=5", "-rss_limit_mb=2048",
            "-print_final_stats=1", f"-artifact_prefix={findings}/"]
    d = ROOT / "fuzz" / f"{name}.dict"
    if d.exists():
        argv.append(f"-dict={d}")
    procs = []
    for j in range(jobs):
        log = open(OUT / f"{name}.{j}.log", "w")
        procs.append((subprocess.Popen(argv, cwd=ROOT, env=ENV,
                                       stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT), log))
    codes = []
    for p, log in procs:
        codes.append(p.wait())
        log.close()
    logs = "".join((OUT / f"{name}.{j}.log").read_text(errors="replace")
                   for j in range(jobs))
    runs = stat(logs, "number_of_executed_units")
    rate = stat(logs, "average_exec_per_sec")
    new = sorted(p.name for p in findings.iterdir()
                 if p.name not in before and FINDING.match(p.name))

    # Merge: inputs of the scratch corpus that add features to the
    # committed one are copied into it; nothing of it is removed.
    had = {p.name for p in corpus.iterdir()}
    merge_log = OUT / f"{name}.merge.log"
    with open(merge_log, "w") as log:
        rc = subprocess.run([str(FUZZ_BIN / name), "-merge=1",
                             "-use_counters=0", "-timeout=5",
                             "-rss_limit_mb=2048", str(corpus), str(work)],
                            cwd=ROOT, env=ENV, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT).returncode
    added = sorted(p.name for p in corpus.iterdir() if p.name not in had)
    return {"name": name, "runs": runs, "rate": rate, "codes": codes,
            "findings": [str((findings / f).relative_to(ROOT)) for f in new],
            "added": added, "merge_rc": rc,
            "merge_log": str(merge_log.relative_to(ROOT))}


def summary(results, cov_before, cov_after, seconds, jobs, elapsed):
    lines = [f"# fuzz campaign: {seconds} s per harness, {jobs} job(s) each, "
             f"{elapsed:.0f} s in all", "",
             "| harness | runs | execs/s | inputs added | findings |",
             "|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['runs']} | {r['rate']} | "
                     f"{len(r['added'])} | {len(r['findings'])} |")
    lines += ["", "Line coverage of the corpora, over every harness that "
              "links the file (fuzz/coverage.py):", "",
              "| file | before | after |", "|---|---:|---:|"]
    for f, b in cov_before.items():
        a = cov_after.get(f, b)
        lines.append(f"| {f} | {b['hit']}/{b['lines']} {b['percent']}% | "
                     f"{a['hit']}/{a['lines']} {a['percent']}% |")
    found = [(r["name"], f) for r in results for f in r["findings"]]
    lines += ["", "Findings (reproduce: ./build/fuzz-replay/NAME FILE; keep "
              "a fixed one in fuzz/crashes/NAME/):", ""]
    lines += [f"- {n}: {f}" for n, f in found] or ["- none"]
    odd = [r for r in results if r["merge_rc"] != 0 or
           any(c != 0 for c in r["codes"]) and not r["findings"]]
    for r in odd:
        lines.append(f"- {r['name']}: exit statuses {r['codes']}, merge "
                     f"{r['merge_rc']} (see build/fuzz/campaign/"
                     f"{r['name']}.*.log and {r['merge_log']})")
    lines += ["", "New corpus inputs are in fuzz/corpus/NAME/ (git status "
              "lists them); commit those worth keeping."]
    return "\n".join(lines) + "\n", bool(found or odd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--harness", action="append")
    args = ap.parse_args()
    if args.seconds < 1 or args.jobs < 1:
        sys.exit("campaign.py: --seconds and --jobs are at least 1")
    names = args.harness or harnesses()
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    cov_before = coverage("before")
    results = []
    for name in names:
        print(f"== {name}: {args.seconds} s, {args.jobs} job(s)", flush=True)
        r = run_harness(name, args.seconds, args.jobs)
        print(f"   {r['runs']} runs, {len(r['added'])} inputs added, "
              f"{len(r['findings'])} findings", flush=True)
        results.append(r)
    cov_after = coverage("after")
    text, bad = summary(results, cov_before, cov_after, args.seconds,
                        args.jobs, time.monotonic() - t0)
    (OUT / "summary.md").write_text(text)
    print(text, end="")
    print(f"(written to {(OUT / 'summary.md').relative_to(ROOT)})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
