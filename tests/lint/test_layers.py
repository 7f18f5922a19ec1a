"""The layers of src/: each header's "Map:" comment names its layer and
every echod header it and its .c include, and no module includes a header
from a layer above its own (docs/hacking.md, Layout). A newcomer who adds an
include that crosses a layer, or forgets the map, hears it here."""

import re

from conftest import ROOT

SRC = ROOT / "src"
ORDER = ["base", "parser", "packet-path", "process", "bootstrap"]
MAP_RE = re.compile(r"Map: ([a-z-]+) layer; calls ([^.]+)\.", re.S)
INCLUDE_RE = re.compile(r'^#include "([a-z_]+)\.h"', re.M)


def maps():
    """{module: (layer, set of modules it says it calls)}"""
    out = {}
    for h in sorted(SRC.glob("*.h")):
        top = h.read_text().split("*/", 1)[0]
        m = MAP_RE.search(top)
        assert m, f"{h.name}: no 'Map: LAYER layer; calls ...' in its top comment"
        layer = m.group(1)
        assert layer in ORDER, f"{h.name}: unknown layer {layer}"
        calls = re.sub(r"\s*\n\s*\*\s*", " ", m.group(2)).strip()
        named = set() if calls == "nothing of echod" else {
            c.strip() for c in calls.split(",")}
        out[h.stem] = (layer, named)
    return out


def includes(module):
    found = set()
    for f in (SRC / f"{module}.h", SRC / f"{module}.c"):
        if f.exists():
            found |= set(INCLUDE_RE.findall(f.read_text()))
    found.discard(module)
    return found


def test_every_map_names_exactly_what_the_module_includes():
    for module, (_, named) in maps().items():
        assert includes(module) == named, module


def test_no_module_includes_a_higher_layer():
    m = maps()
    for module, (layer, _) in m.items():
        for dep in includes(module):
            assert dep in m, f"{module} includes {dep}.h, which has no map"
            assert ORDER.index(m[dep][0]) <= ORDER.index(layer), (
                f"{module} ({layer}) includes {dep} ({m[dep][0]})")


def test_the_issues_rules():
    """The parsers include no runtime or network module; the packet path
    no bootstrap one; the log level is log.h's."""
    m = maps()
    for parser in ("policy", "cli", "addr", "units", "sockact"):
        for dep in includes(parser):
            assert m[dep][0] in ("base", "parser"), (parser, dep)
            assert dep not in ("ratelimit", "loop", "listen", "tcp", "udp"), (
                parser, dep)
    for fast in ("udp", "tcp", "guard", "ratelimit", "acl"):
        for dep in includes(fast):
            assert m[dep][0] != "bootstrap", (fast, dep)
    assert "enum log_level" in (SRC / "log.h").read_text()
    assert "enum log_level {" not in (SRC / "policy.h").read_text()


# A rate table entry, and the state the guard keeps in one, by type.
ENTRY_TYPES = ("rate_entry", "tcp_source", "udp_source", "udp_aggregate")
HANDLE_RE = re.compile(
    r"struct (?:%s)\s*\*\s*(?:const\s+)?(\w+)" % "|".join(ENTRY_TYPES))
GUARD_CALL_DEREF_RE = re.compile(
    r"\b(?:udp_guard|tcp_guard|rate_table|rate_entry)_\w+\([^;{}]*?\)\s*->")


def without_comments(text):
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)


def test_the_guard_keeps_its_entries():
    """A rate table entry is ratelimit.c's, the state in it guard.c's:
    their structs are defined there and nowhere else, no header shows
    their fields, and no other module reaches through a handle to one
    (a pointer of those types, or what a guard call returns)."""
    owners = {"rate_entry": "ratelimit.c", "tcp_source": "guard.c",
              "udp_source": "guard.c", "udp_aggregate": "guard.c"}
    for f in sorted(SRC.glob("*.[ch]")):
        text = without_comments(f.read_text())
        for t in ENTRY_TYPES:
            if re.search(r"\bstruct %s\s*\{" % t, text):
                assert f.name == owners[t], (
                    f"{f.name} defines struct {t}: only {owners[t]} may")
        if f.name in ("ratelimit.c", "guard.c"):
            continue
        assert not re.search(r"\bstruct rate_entry\b", text), (
            f"{f.name} names struct rate_entry, ratelimit.c's own")
        for name in set(HANDLE_RE.findall(text)):
            m = re.search(r"\b%s\s*->" % name, text)
            assert not m, (
                f"{f.name} reaches into a rate entry through {name}->")
        m = GUARD_CALL_DEREF_RE.search(text)
        assert not m, f"{f.name} reaches into what {m.group(0)} returns"


def test_tools_live_beside_the_daemon_not_in_it():
    """The load generator is a tool: bench/ at the top, beside lab/, not
    among the daemon's sources; like echo-client, one file per mode on
    shared modules, none over 400 lines."""
    assert not (SRC / "bench").exists()
    sources = sorted((ROOT / "bench").glob("*.[ch]"))
    assert {"main.c", "options.c", "tcp.c", "udp.c", "rtt.c", "idle.c",
            "flood.c"} <= {f.name for f in sources}
    for f in sources + sorted((SRC / "client").glob("*.[ch]")):
        lines = f.read_text().count("\n")
        assert lines <= 400, f"{f.relative_to(ROOT)}: {lines} lines"
