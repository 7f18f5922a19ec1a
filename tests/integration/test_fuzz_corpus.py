"""The fuzz corpora keep up with the code.

Every directive of the policy table has an entry in fuzz/fuzz_policy.dict
and a seed in fuzz/corpus/fuzz_policy/ that uses it, so a campaign starts
from inputs that reach it. Every file of fuzz/coverage-floors keeps the
share of its lines the committed corpora reach (over every harness that
links it, fuzz/unreachable left out) at or above its floor, and the
unreachable list names only lines that exist and are not reached.

The coverage binaries come from `make fuzz-coverage-build` (a prerequisite
of `make test`). ECHOD_FUZZ_DIR (default fuzz/) points the checks at
another copy of the dictionaries and corpora, e.g. an older tree's.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import policy_keywords

ROOT = Path(__file__).resolve().parents[2]
FUZZ_DIR = Path(os.environ.get("ECHOD_FUZZ_DIR", ROOT / "fuzz"))
FLOORS = ROOT / "fuzz" / "coverage-floors"
COV_BIN = ROOT / "build" / "fuzz-coverage"


def dict_values():
    """The dictionary's strings, escapes undone."""
    values = set()
    for line in (FUZZ_DIR / "fuzz_policy.dict").read_text().splitlines():
        m = re.match(r'^\s*(?:[A-Za-z0-9_]+\s*=\s*)?"(.*)"\s*$', line)
        if m:
            values.add(m.group(1).encode().decode("unicode_escape"))
    return values


def seed_keywords():
    """The first word of every line of every seed (comments aside)."""
    words = set()
    for seed in (FUZZ_DIR / "corpus" / "fuzz_policy").iterdir():
        text = seed.read_bytes().decode("latin-1")
        for line in text.splitlines():
            line = line.split("#", 1)[0].split()
            if line:
                words.add(line[0])
    return words


def test_every_directive_has_a_dict_entry_and_a_seed():
    values, seeds = dict_values(), seed_keywords()
    no_entry = [k for k in policy_keywords()
                if k not in values and k + " " not in values]
    no_seed = [k for k in policy_keywords() if k not in seeds]
    assert not no_entry and not no_seed, (
        f"directives without an entry in fuzz/fuzz_policy.dict: {no_entry}; "
        f"without a seed in fuzz/corpus/fuzz_policy/: {no_seed}")


def test_the_lint_reads_the_table_and_the_seeds():
    """The lint sees a known directive, in the dictionary and in a seed,
    and does not take a comment for a directive."""
    assert "udp-loop-guard" in policy_keywords()
    assert "udp-loop-guard " in dict_values()
    assert "udp-loop-guard" in seed_keywords()
    assert "policy:" not in seed_keywords()


def floors():
    out = []
    for line in FLOORS.read_text().splitlines():
        line = line.split("#", 1)[0].split()
        if line:
            out.append((line[0], float(line[1])))
    return out


@pytest.fixture(scope="module")
def coverage(tmp_path_factory):
    missing = [n for n in ("fuzz_policy", "fuzz_tcp", "fuzz_guard")
               if not (COV_BIN / n).exists()]
    assert not missing, (f"no coverage build of {missing}: "
                         "make fuzz-coverage-build")
    out = tmp_path_factory.mktemp("fuzz-coverage")
    r = subprocess.run(
        ["/usr/bin/python3", str(ROOT / "fuzz" / "coverage.py"), "--quiet",
         "--gate", "--corpus", str(FUZZ_DIR / "corpus"), "--out", str(out)],
        cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    print(r.stdout[-4000:], r.stderr[-4000:])
    summary = json.loads((out / "summary.json").read_text())
    summary["rc"] = r.returncode
    return summary


@pytest.mark.parametrize("rel,floor", floors(), ids=[f for f, _ in floors()])
def test_file_at_its_coverage_floor(coverage, rel, floor):
    got = coverage["files"][rel]
    assert got["lines"] > 0
    assert got["percent"] >= floor, (
        f"{rel}: the corpora reach {got['hit']}/{got['lines']} lines "
        f"({got['percent']}%), under its floor of {floor}%: add seeds "
        f"(make fuzz-coverage lists the functions and lines missed)")


def test_unreachable_list_is_true(coverage):
    assert coverage["errors"] == []


def test_gate_verdict(coverage):
    """coverage.py --gate's own exit status agrees with the checks above."""
    assert coverage["rc"] == (1 if coverage["errors"] or
                              coverage["under_floor"] else 0)


def test_floors_are_at_least_ninety_for_every_parser_and_guard():
    gated = dict(floors())
    for module in ("policy", "addr", "units", "cli", "sockact", "logline",
                   "http", "guard", "ratelimit", "tcp"):
        assert gated.get(f"src/{module}.c", 0) >= 90, module


def test_oss_fuzz_and_clusterfuzzlite_project_files():
    """The project files name a C project, the base-builder image and a
    build script that runs fuzz/build.sh, and ask only for sanitizers and
    engines OSS-Fuzz offers for C. (fuzz/oss-fuzz/check-build.sh builds
    with each sanitizer's flags; this machine cannot build the images.)"""
    import yaml

    cfl = yaml.safe_load((ROOT / ".clusterfuzzlite" / "project.yaml")
                         .read_text())
    assert cfl == {"language": "c"}
    oss = yaml.safe_load((ROOT / "fuzz" / "oss-fuzz" / "project.yaml")
                         .read_text())
    for key in ("homepage", "main_repo", "language", "primary_contact"):
        assert oss.get(key), key
    assert oss["language"] == "c"
    assert set(oss["sanitizers"]) <= {"address", "undefined", "memory"}
    assert set(oss["fuzzing_engines"]) <= {"libfuzzer", "afl", "honggfuzz"}
    for df in (ROOT / ".clusterfuzzlite" / "Dockerfile",
               ROOT / "fuzz" / "oss-fuzz" / "Dockerfile"):
        text = df.read_text()
        assert re.search(r"^FROM gcr\.io/oss-fuzz-base/base-builder$", text,
                         re.M), df
        assert re.search(r"^COPY \S*build\.sh \$SRC/$", text, re.M), df
        assert "WORKDIR $SRC/echod" in text, df
    script = ROOT / ".clusterfuzzlite" / "build.sh"
    assert os.access(script, os.X_OK)
    assert 'exec "$SRC/echod/fuzz/build.sh"' in script.read_text()
    assert os.access(ROOT / "fuzz" / "build.sh", os.X_OK)
