"""The man pages: mandoc finds nothing to say about them, echod.conf(5)
documents exactly the parser's directive table with each default (as in the
built-in policy) and each numeric range (as in the table), and the flags in
echod(8) and echo-client(1) are the ones the programs accept."""

import re
import subprocess

import pytest

from conftest import EXIT_CONFIG, ROOT, run_echod

MAN = ROOT / "man"
PAGES = ["echod.8", "echod.conf.5", "echo-client.1"]
TIME_UNITS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}
SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def directive_table():
    """(name, setter, min, max, bytes) for every row of src/policy.c's
    table."""
    text = (ROOT / "src" / "policy.c").read_text()
    table = text[text.index("static const struct directive directives[]"):]
    table = table[: table.index("};")]
    rows = re.findall(r'\{"([a-z0-9-]+)",\s*(\w+),\s*([^,]+),\s*([^,]+),'
                      r'\s*([^,]+),\s*\w+,\s*(\w+)\}', table)
    assert len(rows) >= 20, rows

    def c_value(expr):
        expr = re.sub(r"UINT64_C\((\d+)\)", r"\1", expr.strip())
        assert re.fullmatch(r"[\d\s*<()+-]+", expr), expr
        return eval(expr)  # digits and arithmetic only, checked above

    return [(name, setter, c_value(lo), c_value(hi), is_bytes == "true")
            for name, setter, _field, lo, hi, is_bytes in rows]


def man_entries(page):
    """{keyword: body text} for every `.It Ic keyword` of a page."""
    entries = {}
    current = None
    for line in (MAN / page).read_text().splitlines():
        m = re.match(r"\.It Ic ([a-z0-9-]+)", line)
        if m:
            current = m.group(1)
            assert current not in entries, f"{current} documented twice"
            entries[current] = []
        elif line.startswith((".El", ".Sh")):
            current = None
        elif current:
            entries[current].append(line)
    return {k: "\n".join(v) for k, v in entries.items()}


def builtin_values():
    """{keyword: value text} of the uncommented, single-line directives of
    the built-in policy."""
    seen = {}
    for line in (ROOT / "policy" / "echod.conf").read_text().splitlines():
        words = line.split("#")[0].split()
        if words:
            seen.setdefault(words[0], []).append(" ".join(words[1:]))
    return seen


def to_number(text, setter, is_bytes):
    """A range bound as the table holds it: ms, bytes or a count."""
    m = re.fullmatch(r"(\d+)([a-z]*)", text)
    assert m, text
    durations = setter == "set_duration" or (setter == "set_optional"
                                              and not is_bytes)
    return int(m.group(1)) * (TIME_UNITS if durations
                              else SIZE_UNITS)[m.group(2)]


@pytest.mark.parametrize("page", PAGES)
def test_mandoc_lint_is_clean(page):
    r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning",
                        str(MAN / page)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (
        r.stdout + r.stderr)


@pytest.mark.parametrize("page", PAGES)
def test_mandoc_style_is_clean(page):
    """Style messages too, but for references to pages not installed on
    this host (echod's own, before make install) and its mandoc.db."""
    r = subprocess.run(["mandoc", "-T", "lint", "-W", "style",
                        str(MAN / page)], capture_output=True, text=True)
    host = ("referenced manual not found", "outdated mandoc.db")
    said = [line for line in (r.stdout + r.stderr).splitlines()
            if not any(h in line for h in host)]
    assert said == []


def test_conf_page_documents_exactly_the_directive_table():
    table = {row[0] for row in directive_table()}
    documented = set(man_entries("echod.conf.5"))
    assert table - documented == set(), "undocumented keywords"
    assert documented - table == set(), "documented keywords the parser lacks"


def test_conf_page_defaults_are_the_builtin_policy():
    builtin = builtin_values()
    for name, body in man_entries("echod.conf.5").items():
        assert "Default:" in body, f"{name}: no default"
        m = re.search(r"Default:[^\n]*\n\.Ql (.*) \.$", body, re.M)
        if name in builtin:
            assert m, f"{name}: default not given as .Ql VALUE"
            # \& (a zero-width escape) keeps a trailing "::" from
            # reading as punctuation to mandoc; it is not in the value.
            assert m.group(1).replace("\\&", "") == " ".join(
                builtin[name]), name
        else:
            assert m is None or m.group(1) in ("off", "none"), name


def test_conf_page_ranges_are_the_parsers():
    entries = man_entries("echod.conf.5")
    checked = 0
    for name, setter, lo, hi, is_bytes in directive_table():
        if setter not in ("set_uint", "set_duration", "set_size",
                          "set_optional", "set_workers"):
            continue
        m = re.search(r"^Range: (\w+) to (\w+)\.$", entries[name], re.M)
        assert m, f"{name}: no 'Range: MIN to MAX.' line"
        assert (to_number(m.group(1), setter, is_bytes),
                to_number(m.group(2), setter, is_bytes)) == (lo, hi), name
        checked += 1
    assert checked >= 10


def _policy_check(tmp_path, text):
    """echod -t over a policy file holding text."""
    path = tmp_path / "limits.conf"
    path.write_text(text)
    return run_echod(["-t", "-c", path])


def _prefix_lines(keywords, n):
    """n distinct IPv4 hosts, 64 a line, the lines taking the keywords in
    turn."""
    hosts = [f"10.{i // 250}.{i % 250}.1" for i in range(n)]
    return "".join(f"{keywords[j % len(keywords)]} "
                   + " ".join(hosts[i:i + 64]) + "\n"
                   for j, i in enumerate(range(0, n, 64)))


@pytest.mark.parametrize("name, keywords", [
    ("allow", ("allow", "deny")),  # one list: "both lists together"
    ("rate-exempt", ("rate-exempt",)),
    ("metrics-allow", ("metrics-allow",)),
])
def test_conf_page_prefix_limits_are_the_parsers(tmp_path, name, keywords):
    m = re.search(r"^At most (\d+) prefixes\b",
                  man_entries("echod.conf.5")[name], re.M)
    assert m, f"{name}: no 'At most N prefixes' line"
    n = int(m.group(1))
    r = _policy_check(tmp_path, _prefix_lines(keywords, n))
    assert r.returncode == 0 and r.stdout == b"ok\n", r.stderr
    r = _policy_check(tmp_path, _prefix_lines(keywords, n + 1))
    assert r.returncode == EXIT_CONFIG, r.stderr
    assert f"more than {n} prefixes" in r.stderr.decode()


def test_conf_page_values_per_line_are_the_parsers(tmp_path):
    m = re.search(r"at most 1024 bytes and (\d+) values after its keyword",
                  (MAN / "echod.conf.5").read_text())
    assert m, "no 'N values after its keyword' in the page"
    n = int(m.group(1))
    r = _policy_check(tmp_path, "udp-deny-source-ports" + " 7" * n + "\n")
    assert r.returncode == 0 and r.stdout == b"ok\n", r.stderr
    r = _policy_check(tmp_path,
                      "udp-deny-source-ports" + " 7" * (n + 1) + "\n")
    assert r.returncode == EXIT_CONFIG, r.stderr
    assert (f"too many words on one line (at most {n} after the keyword)"
            in r.stderr.decode())


def flags_in_page(page):
    text = (MAN / page).read_text()
    flags = set()
    for m in re.finditer(r"^\.It Fl (\w)", text, re.M):
        flags.add(m.group(1))
    return flags


def test_echod_page_has_every_flag():
    cli = (ROOT / "src" / "cli.c").read_text()
    booleans = re.search(r'strchr\("(\w+)", \*f\) != NULL', cli).group(1)
    values = re.search(r'strchr\("(\w+)", \*f\) == NULL', cli).group(1)
    assert flags_in_page("echod.8") == set(booleans + values)


def test_client_page_has_every_flag():
    src = (ROOT / "src" / "client" / "options.c").read_text()
    optstring = re.search(r'getopt\(argc, argv, ":([^"]+)"\)', src).group(1)
    assert flags_in_page("echo-client.1") == set(optstring.replace(":", ""))
