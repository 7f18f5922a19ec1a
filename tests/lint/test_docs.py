"""The documents say what the code does: every policy keyword is documented
in policy/echod.conf (the built-in policy) and the README, SECURITY.md
names every seccomp list, and every syscall a list allows is explained by
its reason there."""

import re

from conftest import ROOT, policy_keywords


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


def list_lines(path):
    """(line number, syscall, reason) for every rule of a seccomp list."""
    for no, line in enumerate(path.read_text().splitlines(), 1):
        rule = line.split("#")[0]
        if not rule.strip():
            continue
        name = rule.split("--")[0].split()
        reason = rule.split("--", 1)[1].strip() if "--" in rule else ""
        yield no, name[0] if name else "", reason


def test_every_allowed_syscall_is_explained():
    """SECURITY.md does not copy the allowlists: it names each
    policy/seccomp-*.list, and each rule there, allowed or answered
    ENOSYS, carries its reason on its own line (NAME ... -- reason)."""
    sec = (ROOT / "SECURITY.md").read_text()
    lists = sorted((ROOT / "policy").glob("seccomp-*.list"))
    assert len(lists) >= 5, lists
    for path in lists:
        assert f"policy/{path.name}" in sec, path.name
        rules = list(list_lines(path))
        assert rules, path.name
        for no, name, reason in rules:
            assert re.fullmatch(r"[a-z_0-9]+", name), f"{path.name}:{no}"
            assert reason, f"{path.name}:{no}: {name} has no '-- reason'"


TEST_REF = re.compile(r"`((?:tests/unit/)?test_\w+\.(?:py|c))(?:::(\w+))?`")


def test_security_md_promises_name_tests_that_exist():
    """Every section of SECURITY.md but how to report, the threat model
    and how to read it names a test, and every test it names exists: a
    file of tests/integration or tests/unit, and the function in it."""
    sec = (ROOT / "SECURITY.md").read_text()
    preamble = ("Reporting a vulnerability", "Threat model", "How to read this")
    sections = [s for s in sec.split("\n## ")[1:]
                if not s.startswith(preamble)]
    assert len(sections) >= 8, len(sections)
    for section in sections:
        assert TEST_REF.search(section), section.splitlines()[0]
    for path, func in TEST_REF.findall(sec):
        f = ROOT / path if path.startswith("tests/") else \
            ROOT / "tests" / "integration" / path
        assert f.exists(), path
        if func:
            pattern = rf"^def {func}\(" if path.endswith(".py") \
                else rf"^{func}\(void"
            assert re.search(pattern, f.read_text(), re.M), f"{path}::{func}"


def test_documents_tell_no_history():
    """The documents say what is: no tracker numbers ("issue 8") and no
    working sessions ("this session"); that story is the commits'."""
    docs = [ROOT / "README.md", ROOT / "SECURITY.md",
            *sorted((ROOT / "docs").glob("*.md")),
            *sorted((ROOT / "man").glob("*.[0-9]")),
            *sorted((ROOT / "bench" / "results").glob("*.md"))]
    history = re.compile(r"\b(issues? #?\d+|(this|that|the last) session)\b",
                         re.I)
    for doc in docs:
        for no, line in enumerate(doc.read_text().splitlines(), 1):
            assert not history.search(line), \
                f"{doc.relative_to(ROOT)}:{no}: {line}"
