"""The documents say what the code does: every policy keyword is documented
in policy/echod.conf (the built-in policy) and the README, and SECURITY.md
names every syscall the seccomp allowlists allow."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def policy_keywords():
    text = (ROOT / "src" / "policy.c").read_text()
    table = text[text.index("static const struct directive directives[]"):]
    table = table[: table.index("};")]
    names = re.findall(r'\{"([a-z0-9-]+)",', table)
    assert len(names) >= 20, names
    return names


def syscalls(list_name):
    names = []
    for line in (ROOT / "policy" / list_name).read_text().splitlines():
        line = line.split("--")[0].split("#")[0].split()
        if line:
            names.append(line[0])
    assert names
    return names


def test_every_keyword_in_the_default_policy_file():
    conf = (ROOT / "policy" / "echod.conf").read_text()
    for kw in policy_keywords():
        assert re.search(r"^#?\s*" + re.escape(kw) + r"\b", conf, re.M), kw


def test_every_keyword_in_the_readme():
    """Each keyword opens a code span of its own (`kw` or `kw ARGS`): a
    longer keyword (tcp-max-connections-per-source) or prose does not
    count for a shorter one (tcp-max-connections)."""
    readme = (ROOT / "README.md").read_text()
    for kw in policy_keywords():
        assert re.search("`" + re.escape(kw) + r"[` ]", readme), kw


def test_security_md_names_every_allowed_syscall():
    sec = (ROOT / "SECURITY.md").read_text()
    worker = sec[sec.index("### Worker allowlist"):sec.index("### Supervisor additions")]
    extra = sec[sec.index("### Supervisor additions"):]
    for name in syscalls("seccomp-worker.list"):
        assert re.search(r"\b" + name + r"\b", worker), name
    for name in syscalls("seccomp-supervisor.list"):
        assert re.search(r"\b" + name + r"\b", extra), name
    metrics = sec[sec.index("### Metrics allowlist"):]
    metrics = metrics[:metrics.index("\n## ")]
    for name in syscalls("seccomp-metrics.list"):
        assert re.search(r"\b" + name + r"\b", metrics), name
    keeper = sec[sec.index("### Keeper additions"):]
    keeper = keeper[:keeper.index("\n### ")]
    for name in syscalls("seccomp-keeper.list"):
        assert re.search(r"\b" + name + r"\b", keeper), name
    reader = sec[sec.index("### Policy reader allowlist"):]
    reader = reader[:reader.index("\n## ")]
    for name in syscalls("seccomp-reader.list"):
        assert re.search(r"\b" + name + r"\b", reader), name
    optional = sec[sec.index("get ENOSYS instead"):]
    optional = optional[:optional.index("\n\n")]
    for name in syscalls("seccomp-enosys.list"):
        assert re.search(r"\b" + name + r"\b", optional), name
