#!/usr/bin/python3
"""Coverage of src/ by the fuzz corpora, per file over every harness that
links it: `make fuzz-coverage` and `make test`'s gate.

Each coverage build of a harness (build/fuzz-coverage/NAME, replay_main
with -fprofile-instr-generate) replays its corpus; the profiles of all
harnesses are merged and llvm-cov reads them over all the binaries at once,
so a file's lines count as covered when any harness that links the file
reaches them (guard.c by fuzz_guard, fuzz_tcp_admit, fuzz_tcp, ...).

The files reported are those of fuzz/coverage-floors ("FILE PERCENT", the
least share of FILE's lines the corpora must reach). Lines the harnesses
cannot reach are listed in fuzz/unreachable with their reason and left out
of both sides of the share. An entry there that matches no line, or a line
that the corpora do reach, is an error: the list stays true.

  coverage.py [--corpus DIR] [--out DIR] [--gate] [--quiet]

--gate exits 1 when a file is under its floor (or the unreachable list is
wrong); --corpus (default fuzz/corpus) is the root of the NAME/
directories, so a campaign can measure a corpus before merging it.
Writes OUT/report.txt (per file and per function), OUT/summary.txt and
OUT/summary.json (per file: lines, hit, percent, floor; the errors).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ROOT / "fuzz" / "coverage-floors"
UNREACHABLE = ROOT / "fuzz" / "unreachable"
FUNCTION_BAR = 90.0


def tool(*names):
    for n in names:
        path = shutil.which(n)
        if path:
            return path
    sys.exit(f"coverage.py: none of {', '.join(names)} on PATH")


def harnesses():
    """{NAME: [module, ...]} as fuzz/fuzz.mk lists them (make fuzz-list)."""
    out = subprocess.run(["make", "-s", "--no-print-directory", "fuzz-list"],
                         cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    found = {}
    for line in out.splitlines():
        name, mods, _ = line.split("|")
        found[name] = mods.split()
    return found


def read_floors(path=FLOORS):
    floors = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"\d+(\.\d+)?", parts[1]):
            sys.exit(f"{path}:{n}: expected 'FILE PERCENT'")
        floors[parts[0]] = float(parts[1])
    return floors


class Entry:
    """One line of fuzz/unreachable: FILE | FUNCTION | TEXT | REASON.
    It names the statement around every line of FUNCTION in FILE whose
    source contains TEXT; "BEFORE >> TEXT" only where the line before
    contains BEFORE (for a line as common as "return -1;")."""

    def __init__(self, where, file, function, text, reason):
        self.where, self.file, self.function = where, file, function
        self.before, _, self.text = text.rpartition(" >> ")
        self.reason = reason
        self.matched = []

    def names(self, source, ln):
        return self.text in source[ln - 1] and (
            not self.before or (ln >= 2 and self.before in source[ln - 2]))


def ends_statement(line):
    return line.rstrip().endswith((";", "{", "}", ")"))


def statement(source, ln):
    """The lines line ln names: a preprocessor line alone; for a line that
    opens a block ("if (...) {"), the block's body up to its closing brace;
    else the statement ln is part of: back to the line after one that ends
    a statement (or an if's condition), on to the first that ends one."""
    line = source[ln - 1].rstrip()
    if line.lstrip().startswith("#"):
        return range(ln, ln + 1)
    if line.endswith("{"):
        depth, last = 0, ln
        for last in range(ln, len(source) + 1):
            depth += source[last - 1].count("{") - source[last - 1].count("}")
            if depth == 0:
                break
        return range(ln + 1, last + 1)
    first = ln
    while first > 1 and source[first - 2].strip() and \
            not ends_statement(source[first - 2]):
        first -= 1
    last = ln
    while last < len(source) and not source[last - 1].rstrip().endswith(
            (";", "{", "}")):
        last += 1
    return range(first, last + 1)


def read_unreachable(path=UNREACHABLE):
    entries = []
    if not path.exists():
        return entries
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split(" | ")]
        if len(parts) != 4 or not all(parts):
            sys.exit(f"{path}:{n}: expected 'FILE | FUNCTION | TEXT | "
                     "REASON'")
        entries.append(Entry(f"{path.name}:{n}", *parts))
    return entries


def run_corpora(names, corpus, out):
    """Replay each harness's corpus under its coverage build; returns the
    profraw files written."""
    raws = []
    for name in names:
        binary = ROOT / "build" / "fuzz-coverage" / name
        cdir = corpus / name
        if not cdir.is_dir():
            continue
        raw = out / f"{name}.profraw"
        raw.unlink(missing_ok=True)
        env = dict(os.environ, LLVM_PROFILE_FILE=str(raw))
        r = subprocess.run([str(binary), str(cdir)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
        if r.returncode != 0:
            sys.exit(f"coverage.py: {name} failed on {cdir} (exit "
                     f"{r.returncode}):\n{r.stderr[-2000:]}")
        raws.append(raw)
    return raws


def parse_lcov(text):
    """{path: {"fn": [(line, name)], "da": {line: count},
    "br": [(line, taken)]}}"""
    files, cur = {}, None
    for line in text.splitlines():
        if line.startswith("SF:"):
            cur = files.setdefault(line[3:], {"fn": [], "da": {}, "br": []})
        elif line.startswith("FN:"):
            ln, name = line[3:].split(",", 1)
            cur["fn"].append((int(ln), name))
        elif line.startswith("DA:"):
            ln, count = line[3:].split(",")[:2]
            cur["da"][int(ln)] = int(count)
        elif line.startswith("BRDA:"):
            ln, _, _, taken = line[5:].split(",")
            cur["br"].append((int(ln), taken not in ("-", "0")))
    return files


def function_of(fns, line):
    """The function (by start line) that holds line, or None."""
    best = None
    for start, name in fns:
        if start <= line:
            best = name
        else:
            break
    return best


def pct(hit, total):
    return 100.0 * hit / total if total else 100.0


class Tally:
    def __init__(self):
        self.lines = self.lines_hit = self.branches = self.branches_hit = 0
        self.exempt = 0
        self.missed = []

    def line_pct(self):
        return pct(self.lines_hit, self.lines)

    def branch_pct(self):
        return pct(self.branches_hit, self.branches)


def measure(rel, data, entries, errors):
    """(file Tally, {function: Tally}) for one file, the unreachable
    entries of that file applied."""
    fns = sorted(data["fn"])
    source = (ROOT / rel).read_text().splitlines()
    exempt = {}
    for e in (e for e in entries if e.file == rel):
        names = [name for _, name in fns]
        if e.function not in names and f"{Path(rel).name}:{e.function}" \
                not in names:
            errors.append(f"{e.where}: {rel} has no function {e.function}")
            continue
        for ln in range(1, len(source) + 1):
            fn = function_of(fns, ln)
            if fn not in (e.function, f"{Path(rel).name}:{e.function}"):
                continue
            if e.names(source, ln):
                for x in statement(source, ln):
                    if x in data["da"]:
                        e.matched.append(x)
                        exempt[x] = e
        if not e.matched:
            errors.append(f"{e.where}: no line of {e.function} in {rel} "
                          f"contains {e.text!r}")
    whole, per_fn = Tally(), {}
    for ln, count in sorted(data["da"].items()):
        fn = function_of(fns, ln) or "?"
        t = per_fn.setdefault(fn, Tally())
        if ln in exempt:
            if count > 0:
                errors.append(f"{exempt[ln].where}: {rel}:{ln} is listed "
                              f"as unreachable but the corpora reach it "
                              f"({count} times)")
            whole.exempt += 1
            t.exempt += 1
            continue
        for x in (whole, t):
            x.lines += 1
            x.lines_hit += count > 0
            if count == 0:
                x.missed.append(ln)
    for ln, taken in data["br"]:
        fn = function_of(fns, ln) or "?"
        t = per_fn.setdefault(fn, Tally())
        for x in (whole, t):
            x.branches += 1
            x.branches_hit += taken
    return whole, per_fn


def ranges(lines):
    """[3, 4, 5, 9] -> "3-5,9"."""
    out, start, prev = [], None, None
    for ln in lines:
        if start is None:
            start = prev = ln
        elif ln == prev + 1:
            prev = ln
        else:
            out.append(f"{start}-{prev}" if prev != start else str(start))
            start = prev = ln
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else str(start))
    return ",".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(ROOT / "fuzz" / "corpus"))
    ap.add_argument("--out", default=str(ROOT / "build" / "fuzz-coverage"))
    ap.add_argument("--gate", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    corpus, out = Path(args.corpus).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    profdata_tool = tool("llvm-profdata-14", "llvm-profdata")
    cov_tool = tool("llvm-cov-14", "llvm-cov")
    floors = read_floors()
    entries = read_unreachable()
    mods = harnesses()
    names = sorted(mods)

    raws = run_corpora(names, corpus, out)
    profdata = out / "all.profdata"
    subprocess.run([profdata_tool, "merge", "-sparse", "-o", str(profdata),
                    *map(str, raws)], check=True)
    binaries = [str(ROOT / "build" / "fuzz-coverage" / n) for n in names]
    objects = [binaries[0]] + [a for b in binaries[1:]
                               for a in ("-object", b)]
    targets = [str(ROOT / f) for f in floors]
    lcov = subprocess.run([cov_tool, "export", "-format=lcov", *objects,
                           f"-instr-profile={profdata}", *targets],
                          check=True, capture_output=True, text=True).stdout
    files = parse_lcov(lcov)

    errors, report, summary, failed = [], [], [], []
    measured = {}
    header = (f"{'file':<18} {'lines':>13} {'%':>7} {'branches':>11} "
              f"{'%':>7} {'floor':>6}  harnesses")
    summary.append(header)
    for rel, floor in floors.items():
        data = files.get(str(ROOT / rel))
        module = Path(rel).stem
        drivers = [n for n in names if module in mods[n]]
        if data is None:
            errors.append(f"{rel}: no harness links it")
            continue
        whole, per_fn = measure(rel, data, entries, errors)
        lp = whole.line_pct()
        measured[rel] = {"lines": whole.lines, "hit": whole.lines_hit,
                         "percent": round(lp, 2), "floor": floor,
                         "unreachable": whole.exempt,
                         "branches": whole.branches,
                         "branches_hit": whole.branches_hit,
                         "harnesses": drivers}
        verdict = "" if lp >= floor else "  UNDER FLOOR"
        if verdict:
            failed.append(f"{rel}: {lp:.2f}% of lines, floor {floor:g}%")
        summary.append(
            f"{rel:<18} {whole.lines_hit:>5}/{whole.lines:<5} {lp:>6.2f}% "
            f"{whole.branches_hit:>4}/{whole.branches:<4} "
            f"{whole.branch_pct():>6.2f}% {floor:>5g}%  "
            f"{' '.join(drivers)}{verdict}")
        report.append(f"== {rel}: lines {whole.lines_hit}/{whole.lines} "
                      f"{lp:.2f}% ({whole.exempt} unreachable, not counted), "
                      f"branches {whole.branches_hit}/{whole.branches} "
                      f"{whole.branch_pct():.2f}%; harnesses: "
                      f"{' '.join(drivers)}")
        report.append(f"   {'function':<32} {'lines':>9} {'%':>7} "
                      f"{'branches':>9} {'%':>7}  missed lines")
        under = []
        for fn, t in sorted(per_fn.items(),
                            key=lambda kv: function_start(data, kv[0])):
            mark = "*" if t.line_pct() < FUNCTION_BAR else " "
            if mark == "*":
                under.append(fn)
            report.append(
                f"{mark}  {fn:<32} {t.lines_hit:>4}/{t.lines:<4} "
                f"{t.line_pct():>6.2f}% {t.branches_hit:>4}/{t.branches:<4} "
                f"{t.branch_pct():>6.2f}%  {ranges(t.missed)}")
        report.append(f"   functions under {FUNCTION_BAR:g}% of lines: "
                      f"{', '.join(under) if under else 'none'}")
        report.append("")
    for e in entries:
        if e.file not in floors:
            errors.append(f"{e.where}: {e.file} is not in {FLOORS.name}")

    (out / "report.txt").write_text("\n".join(report) + "\n")
    (out / "summary.txt").write_text("\n".join(summary) + "\n")
    (out / "summary.json").write_text(json.dumps(
        {"files": measured, "errors": errors, "under_floor": failed},
        indent=1) + "\n")
    if not args.quiet:
        print("\n".join(report))
    print("== line and branch coverage per file, over every harness that "
          "links it")
    print("\n".join(summary))
    for e in errors:
        print(f"coverage.py: {e}")
    for f in failed:
        print(f"coverage.py: under its floor: {f}")
    if args.gate and (errors or failed):
        return 1
    return 0


def function_start(data, fn):
    for start, name in data["fn"]:
        if name == fn:
            return start
    return 1 << 30


if __name__ == "__main__":
    sys.exit(main())
