"""docs/operations.md: its counter table is both outputs' truth, and the
README's first screen leads to it."""

import re
import socket

from conftest import ROOT, counter_names
from test_metrics import samples, scrape

DOC = ROOT / "docs" / "operations.md"


def table():
    """[(counter, metric name, {label: value})] of the counter table."""
    rows = []
    for m in re.finditer(r"^\| `(\w+)` \| `(\w+)(?:\{([^}]*)\})?` \|$",
                         DOC.read_text(), re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        rows.append((m.group(1), m.group(2), labels))
    return rows


def test_counter_table_matches_the_counters_and_the_metrics(echod):
    rows = table()
    assert [r[0] for r in rows] == list(counter_names()), \
        "the table lists every counter once, in the SIGUSR1 line's order"
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    mport = s.getsockname()[1]
    s.close()
    d = echod(policy_text=f"metrics 127.0.0.1:{mport}\n",
              listen=("127.0.0.1",))
    line = d.counters()
    status, _, body = scrape(mport)
    assert status == 200
    series = samples(body)
    for counter, metric, labels in rows:
        assert counter in line, f"{counter} is not in the SIGUSR1 line"
        key = (metric, frozenset(labels.items()))
        assert key in series, f"{metric}{labels} is not served"


def test_readme_first_screen_links_operations():
    first_screen = "\n".join((ROOT / "README.md").read_text()
                             .splitlines()[:24])
    assert "(docs/operations.md)" in first_screen


def test_operations_covers_the_workflow():
    text = DOC.read_text()
    for needle in ("echod -c /etc/echod/echod.conf -T",
                   "echod -c /etc/echod/echod.conf -t",
                   "systemctl reload echod",
                   "systemctl kill --kill-whom=main -s USR1 echod",
                   "systemctl enable --now echod.socket",
                   "journalctl -u echod", "useradd --system",
                   "echod.conf.dist", "## Upgrades"):
        assert needle in text, needle
