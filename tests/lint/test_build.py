"""The build: header dependencies, recorded flags, unit tests by wildcard,
and the Debian dependency step (.ci/deps).

The make tests build one small object into a scratch BUILD directory, so
they never touch build/ and cost about a second.
"""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

MAKE = shutil.which("make")
COMPILE = " -c -o "


def make(build, *args):
    r = subprocess.run([MAKE, "--no-print-directory", f"BUILD={build}",
                        *args], cwd=str(ROOT), capture_output=True,
                       timeout=120)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 0, out
    return out


def compiled(out):
    """The objects make compiled, by file name."""
    return sorted(Path(line.split(COMPILE)[1].split()[0]).name
                  for line in out.splitlines() if COMPILE in line)


@pytest.fixture
def build(tmp_path):
    return tmp_path / "build"


@pytest.mark.skipif(MAKE is None, reason="make is missing")
def test_header_change_rebuilds_only_its_users(build):
    target = f"{build}/obj/units.o"
    assert compiled(make(build, target)) == ["units.o"]
    dep = (build / "obj" / "units.d").read_text()
    assert "src/units.h" in dep, dep
    assert compiled(make(build, target)) == []
    assert compiled(make(build, "-W", "src/units.h", target)) == ["units.o"]
    # units.c does not include log.h: touching it rebuilds nothing here.
    assert "src/log.h" not in dep, dep
    assert compiled(make(build, "-W", "src/log.h", target)) == []


@pytest.mark.skipif(MAKE is None, reason="make is missing")
def test_new_compiler_or_flags_rebuild(build):
    target = f"{build}/obj/units.o"
    assert compiled(make(build, target)) == ["units.o"]
    assert compiled(make(build, target, "CFLAGS=-O1 -g")) == ["units.o"]
    assert "-O1 -g" in (build / "flags").read_text()
    assert compiled(make(build, target, "CFLAGS=-O1 -g")) == []
    if shutil.which("clang"):
        assert compiled(make(build, target, "CFLAGS=-O1 -g",
                             "CC=clang")) == ["units.o"]
        assert (build / "flags").read_text().startswith("clang ")


@pytest.mark.skipif(MAKE is None, reason="make is missing")
def test_every_unit_test_source_is_built(build):
    out = make(build, "-n", "all")
    sources = sorted(p.stem for p in (ROOT / "tests" / "unit")
                     .glob("test_*.c"))
    assert len(sources) >= 9, sources
    for name in sources:
        assert f"-o {build}/{name} " in out, name


# ------------------------------------------------------------ .ci/deps


def fake_tools(bindir, installed):
    """dpkg-query that knows only `installed`, apt-get that records its
    arguments in bindir/apt.log."""
    bindir.mkdir()
    names = " ".join(installed)
    (bindir / "dpkg-query").write_text(
        "#!/bin/sh\n"
        f"for p in {names}; do echo \"$p ii \"; done\n")
    (bindir / "apt-get").write_text(
        f"#!/bin/sh\necho \"$*\" >> {bindir}/apt.log\n")
    for tool in ("dpkg-query", "apt-get"):
        (bindir / tool).chmod(stat.S_IRWXU)


def deps_packages():
    text = (ROOT / ".ci" / "deps").read_text()
    body = text[text.index("pkgs=(") + 6:text.index(")", text.index("pkgs=("))]
    pkgs = body.split()
    assert "libcmocka-dev" in pkgs, pkgs
    return pkgs


def run_deps(path):
    env = dict(os.environ, PATH=path)
    return subprocess.run(["/bin/bash", str(ROOT / ".ci" / "deps")],
                          env=env, capture_output=True, timeout=30)


@pytest.mark.skipif(os.geteuid() != 0, reason="the install path needs root")
def test_deps_installs_only_what_is_missing(tmp_path):
    pkgs = deps_packages()
    bindir = tmp_path / "bin"
    fake_tools(bindir, pkgs[1:])
    r = run_deps(f"{bindir}:/usr/bin:/bin")
    assert r.returncode == 0, r.stderr
    calls = (bindir / "apt.log").read_text().splitlines()
    assert calls[-1].endswith(f"--no-install-recommends {pkgs[0]}"), calls


def test_deps_runs_no_apt_when_nothing_is_missing(tmp_path):
    bindir = tmp_path / "bin"
    fake_tools(bindir, deps_packages())
    r = run_deps(f"{bindir}:/usr/bin:/bin")
    assert r.returncode == 0, r.stderr
    assert (r.stdout, r.stderr) == (b"", b"")
    assert not (bindir / "apt.log").exists()


def test_deps_off_debian_says_what_it_would_install(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("awk", "grep", "id"):
        (bindir / tool).symlink_to(shutil.which(tool))
    r = run_deps(str(bindir))
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "not a Debian system" in err, err
    assert "would install: " + " ".join(deps_packages()) in err, err


def test_python_sources_have_no_unused_or_undefined_names():
    """pyflakes over every tracked Python file: an unused import or an
    undefined name in a test or the bench is a bug waiting (a fixture
    shared by importing it from another test module, as test_isolation.py
    once did, is one: shared fixtures live in conftest.py)."""
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=str(ROOT),
                           capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    r = subprocess.run(["/usr/bin/python3", "-m", "pyflakes", *files],
                       cwd=str(ROOT), capture_output=True, text=True,
                       timeout=120)
    assert "No module named pyflakes" not in r.stderr, \
        "python3-pyflakes is missing: .ci/deps installs it"
    assert r.returncode == 0, r.stdout + r.stderr


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is missing")
def test_ci_rejects_long_or_shapeless_subjects(tmp_path):
    """.ci/check-subjects on a scratch repository: a base, then good,
    too long and shapeless subjects and a merge; in a shallow clone that
    lacks the base, the commits it holds are checked."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "check-subjects", repo / ".ci")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ci@example.org")
    git(repo, "config", "user.name", "ci")

    def commit(subject):
        git(repo, "commit", "-q", "--allow-empty", "-m", subject)
        return git(repo, "rev-parse", "--short", "HEAD")

    base = commit("an old subject without a module, before the base")
    (repo / ".ci" / "subjects-base").write_text(f"# the base\n{base}\n")
    git(repo, "add", ".ci")
    commit("ci: check subjects")
    commit("docs/hacking.md, README: two modules, one change")
    git(repo, "checkout", "-q", "-b", "side")
    long_one = commit("tcp: " + "x" * 68)
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge branch 'side'", "side")
    shapeless = commit("Fix the build")

    def check(where):
        return subprocess.run(["bash", str(where / ".ci" / "check-subjects")],
                              capture_output=True, text=True, timeout=30)

    r = check(repo)
    assert r.returncode == 1, r.stdout + r.stderr
    offenders = [line.split()[0] for line in r.stderr.splitlines()
                 if line.startswith("  ") and not line.startswith("   ")]
    assert offenders == [shapeless, long_one], r.stderr
    assert "73 characters (at most 72)" in r.stderr, r.stderr
    assert "2 of 4 subjects" in r.stderr, r.stderr

    git(repo, "reset", "-q", "--hard", "HEAD~1")
    git(repo, "reset", "-q", "--hard", "HEAD^1")
    r = check(repo)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 subjects since" in r.stdout, r.stdout

    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1",
                    f"file://{repo}", str(shallow)], check=True,
                   capture_output=True)
    r = check(shallow)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "shallow clone" in r.stdout and "1 subjects" in r.stdout, r.stdout
