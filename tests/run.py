#!/usr/bin/python3
"""`make test`'s runner: every unit test binary, the lint tests, then the
integration tests.

Run from the repository root as /usr/bin/python3 tests/run.py. Steps:
  1. build/test_* and build/asan/test_* (cmocka), counted from their
     "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s)" lines; one that
     crashes or fails without a count counts as 1 failed;
  2. pytest on tests/lint (the tree, documents, man pages and build read
     as text; echod run only with -t), then on tests/integration, each
     counted from its junit xml;
  3. if build/asan/echod exists, the integration tests marked `asan` again
     against it;
  4. every fuzz corpus and kept reproducer, replayed under ASan+UBSan.
Prints each step's output as it runs, then exactly one line
"N passed, M failed, K skipped"; exits 1 if anything failed or nothing ran.

Environment: ECHOD_BIN (default build/echod) and ECHO_CLIENT_BIN (default
build/echo-client) are passed to pytest.
"""

import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
UNIT_TIMEOUT = 120
PYTEST_TIMEOUT = 600

PASSED_RE = re.compile(r"^\[\s+PASSED\s+\]\s+(\d+)\s+test", re.M)
FAILED_RE = re.compile(r"^\[\s+FAILED\s+\]\s+(\d+)\s+test", re.M)


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def add(self, passed=0, failed=0, skipped=0):
        self.passed += passed
        self.failed += failed
        self.skipped += skipped


def banner(text):
    print(f"\n=== {text}", flush=True)


def run_streaming(argv, env=None, timeout=None):
    """Run argv, echoing its merged output line by line; (status, output).
    Status is None if it had to be killed after timeout seconds."""
    proc = subprocess.Popen(argv, cwd=str(ROOT), env=env,
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = []
    deadline = time.monotonic() + timeout if timeout else None
    killer = None
    if timeout:
        import threading

        def kill_late():
            if proc.poll() is None:
                proc.kill()
        killer = threading.Timer(timeout, kill_late)
        killer.daemon = True
        killer.start()
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            out.append(line)
            sys.stdout.write(line)
            sys.stdout.flush()
        status = proc.wait()
    finally:
        if killer:
            killer.cancel()
    if deadline and time.monotonic() >= deadline and status < 0:
        print(f"run.py: {argv[0]} killed after {timeout}s", flush=True)
        return None, "".join(out)
    return status, "".join(out)


def unit_binaries():
    found = []
    for d in (ROOT / "build", ROOT / "build" / "asan"):
        if not d.is_dir():
            continue
        for p in sorted(d.glob("test_*")):
            if p.is_file() and os.access(p, os.X_OK):
                found.append(p)
    return found


def run_unit(path, tally):
    rel = path.relative_to(ROOT)
    banner(f"unit: {rel}")
    status, out = run_streaming([str(path)], timeout=UNIT_TIMEOUT)
    passed = sum(int(n) for n in PASSED_RE.findall(out))
    failed = sum(int(n) for n in FAILED_RE.findall(out))
    if status != 0 and failed == 0:
        why = "timed out" if status is None else f"exit status {status}"
        print(f"run.py: {rel}: {why} without a failure count: 1 failed",
              flush=True)
        failed = 1
    tally.add(passed, failed)


def junit_counts(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tests = failures = errors = skipped = 0
    for s in suites:
        tests += int(s.get("tests", 0))
        failures += int(s.get("failures", 0))
        errors += int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
    return tests - failures - errors - skipped, failures + errors, skipped


def run_pytest(label, extra, env, xml, tally, tests="tests/integration"):
    banner(f"{tests.split('/')[-1]}: {label}")
    xml_path = ROOT / xml
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    if xml_path.exists():
        xml_path.unlink()
    argv = [PYTHON, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
            f"--junitxml={xml}", *extra, tests]
    status, _ = run_streaming(argv, env=env, timeout=PYTEST_TIMEOUT)
    if not xml_path.exists():
        print(f"run.py: pytest ({label}) wrote no {xml}: 1 failed", flush=True)
        tally.add(failed=1)
        return
    passed, failed, skipped = junit_counts(xml_path)
    # 5: nothing collected (e.g. no test carries the marker): not a failure.
    if status not in (0, 1, 5) and failed == 0:
        print(f"run.py: pytest ({label}) exit status {status}: 1 failed",
              flush=True)
        failed = 1
    tally.add(passed, failed, skipped)


def run_fuzz_replays(tally):
    """Every fuzz corpus and kept crash reproducer, replayed by the harness
    built without libFuzzer under ASan+UBSan (make fuzz-replay-build): one
    test per harness."""
    replay_dir = ROOT / "build" / "fuzz-replay"
    names = sorted(p.name for p in replay_dir.glob("fuzz_*")
                   if p.is_file() and os.access(p, os.X_OK))
    if not names:
        print("\nrun.py: no fuzz replay binaries (make fuzz-replay-build): "
              "1 failed", flush=True)
        tally.add(failed=1)
        return
    for name in names:
        dirs = [str(d) for d in (ROOT / "fuzz" / "corpus" / name,
                                 ROOT / "fuzz" / "crashes" / name)
                if d.is_dir()]
        banner(f"fuzz replay: {name} on {' '.join(dirs)}")
        status, _ = run_streaming([str(replay_dir / name), *dirs],
                                  timeout=UNIT_TIMEOUT)
        tally.add(passed=1) if status == 0 else tally.add(failed=1)


def main():
    os.chdir(ROOT)
    t0 = time.monotonic()
    tally = Tally()

    for binary in unit_binaries():
        run_unit(binary, tally)

    env = dict(os.environ)
    env.setdefault("ECHOD_BIN", "build/echod")
    env.setdefault("ECHO_CLIENT_BIN", "build/echo-client")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    run_pytest("the tree, the documents, the build", [], env,
               "build/pytest-lint.xml", tally, tests="tests/lint")
    run_pytest(f"ECHOD_BIN={env['ECHOD_BIN']}", [], env, "build/pytest.xml",
               tally)

    asan_echod = ROOT / "build" / "asan" / "echod"
    if asan_echod.exists():
        asan_env = dict(env)
        asan_env["ECHOD_BIN"] = "build/asan/echod"
        # LeakSanitizer's exit-time scan needs ptrace and threads, which
        # echod's seccomp allowlist (rightly) kills with SIGSYS; the unit
        # tests under ASan keep leak checking. Errors still abort.
        asan_env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        run_pytest("asan-marked tests, ECHOD_BIN=build/asan/echod",
                   ["-m", "asan"], asan_env, "build/pytest-asan.xml", tally)
    else:
        print("\nrun.py: build/asan/echod not built: skipping the ASan pass "
              "(make sanitize)", flush=True)

    run_fuzz_replays(tally)

    print(f"\nrun.py: {time.monotonic() - t0:.1f}s in all", flush=True)
    print(f"{tally.passed} passed, {tally.failed} failed, "
          f"{tally.skipped} skipped", flush=True)
    if tally.failed > 0 or tally.passed + tally.failed == 0:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
