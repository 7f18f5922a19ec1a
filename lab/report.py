"""The lab's table (Markdown) and chart (SVG), from results.json's data.

The chart is drawn 1920 px wide, every text at least 16 px, so that its
PNG (lab.py renders it with headless chromium) reads when projected: one
panel per UDP attack (packets per second at the victim over time, every
server on one log scale, and under it what each was sent, what reached
the victim, the ratio of its kind and what stopped it), and one panel for
the TCP attacks (connections held, the legitimate client, memory).
"""

import math
import re
import textwrap
from xml.sax.saxutils import escape

COLORS = {"naive": "#d62728", "echod": "#1f77b4", "custom": "#2ca02c"}
KIND_TITLES = {
    "loop": "a loop between two services",
    "reflection": "reflection",
    "amplification": "amplification by broadcast",
    "memory": "memory",
    "lockout": "lockout",
}


def _n(v):
    return "–" if v is None else f"{v:,}"


def _bytes(v):
    if v is None:
        return "–"
    for unit, size in (("MB", 10 ** 6), ("kB", 10 ** 3)):
        if v >= size:
            return f"{v / size:.1f} {unit}"
    return f"{v} B"


def _count(n, what):
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _kib(v):
    return f"{v / 1024:+.1f} MiB" if abs(v) >= 1024 else f"{v:+d} KiB"


def _legit(r):
    g = r["legit"]
    return f"{g['echoed']}/{g['sent']}"


def _held(r):
    """Connections the attacker held (slow-readers: kept open)."""
    return r["attacker"].get("held", r["attacker"]["sent"])


def _rss(r):
    before, after = r["rss_kib"]
    return f"{before:,} → {after:,} KiB"


def _sides(doc):
    return list(doc["sides"])


def _echods(doc):
    return [s for s in doc["sides"] if s != "naive"]


def sent_text(kind, r):
    """What the attacker sent: packets (or connections) and bytes."""
    a = r["attacker"]
    if kind in ("memory", "lockout"):
        return f"{_count(a['sent'], 'connection')}, {_bytes(a['sent_bytes'])}"
    return f"{_count(a['sent'], 'packet')}, {_bytes(a['sent_bytes'])}"


def reached_text(kind, r):
    if kind in ("memory", "lockout"):
        return "– (the server is the victim)"
    return (f"{_count(r['victim_packets'], 'packet')}, "
            f"{_bytes(r['victim_bytes'])}")


def ratio_text(kind, r):
    if r.get("ratio") is None:
        if kind == "lockout":
            return f"{r['attacker']['held']:,} connections held"
        return "–"
    if kind == "loop":
        q = r["ratio"]
        return (f"self-sustaining, {q['rate_at_stop']:,} packets/s when "
                "the lab stopped it" if q["self_sustaining"] else
                q["text"])
    return f"{r['ratio']['value']:.2f}×"


def stop_text(r):
    """What stopped the attack in one echod: keyword, reason, count."""
    s = r.get("stopped_by")
    if s is None:
        return "nothing"
    if s["counter"] is None:
        return (f"`{s['keyword']}`: backpressure (no counter, no log line; "
                "see memory)")
    keyword = s["keyword"] if s["keyword"].startswith("always") else \
        f"`{s['keyword']}`"
    return (f"{keyword}: {s['event']} reason={s['reason']}, "
            f"{_count(s['count'], 'time')}")


def log_text(r):
    s = r.get("stopped_by")
    if s is None or s.get("log") is None:
        return "–"
    return f"`{s['log']}`"


def guards(r):
    """Every drop or refusal counter of one echod that moved."""
    words = ("drop", "refused", "evict", "would")
    return ", ".join(f"{k}={v:,}" for k, v in sorted(r["counters"].items())
                     if any(w in k for w in words) and v > 0) or "–"


LEGEND = """\
What each column means (each cell: {order}):

- **attacker sent**: the forged packets (TCP attacks: connections) the
  attacker put on the wire, and their IP bytes.
- **reached the victim**: what the capture on the victim's interface
  counted from the servers' networks (packets, IP bytes). In the TCP
  attacks the server itself is the victim: see the TCP table.
- **ratio**, defined per kind of attack. Reflection and amplification:
  bytes at the victim / bytes the attacker sent (1.00× hides the attacker
  behind the server; above 1 amplifies). A loop: "self-sustaining" when
  the victim still received packets in the second half of the window, with
  the packets per second at the victim in its last 0.2 s before the lab
  stopped the victim's service; a loop has no ratio, since one packet
  started it and the count only says how long the lab let it run.
  Lockout: the connections the attacker still held at the end.
- **legitimate client**: echoes received / requests sent by a client that
  runs alongside (UDP probes every 50 ms; runs of `echo-client` for TCP).
- **memory growth**: resident memory of the server's processes after the
  attack minus before (echod: supervisor and workers; fraggle: all three
  hosts). echod allocates at start, at their configured sizes, its
  receive buffers (a batch of datagram slots per worker), its rate tables
  (`rate-table-size` entries, for UDP and for TCP) and its connection
  slots (`tcp-max-connections`); the kernel makes a page resident the
  first time it is touched, so the first packets of an attack (and the
  legitimate client's) grow echod by some hundred KiB, once, bounded by
  those sizes, whatever the attack's size; per TCP connection it adds a
  small record, bounded by the connection caps. The naive server
  allocates nothing up front and nothing per datagram, but keeps
  every TCP byte it cannot send (slow-readers).
- **verdict**: did the attack get what it wanted (the lab's rules are in
  `verdict()` of lab/lab.py).
- **what stopped it in echod**: the counter that moved most, as the
  policy keyword behind it, the event and reason echod logs for it and the
  count; "nothing" for the naive server, which answers everything.
- **echod's log line**: the first line echod wrote for that reason in this
  run (the whole log of each run is under `logs/`).
"""


def table(doc):
    sides = _sides(doc)
    order = " / ".join(sides)
    head = ("| attack | attacker sent | reached the victim | ratio | "
            "legitimate client | memory growth | verdict | "
            "what stopped it in echod | echod's log line |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    rows, tcp_rows, pcap_rows, counter_rows = [], [], [], []
    for name, a in doc["attacks"].items():
        kind = a["kind"]

        def each(f, who=sides):
            return " / ".join(f(a[s]) for s in who)
        sent = [sent_text(kind, a[s]) for s in sides]
        rows.append(
            f"| {name} | "
            f"{' / '.join(sent) if len(set(sent)) > 1 else sent[0]} | "
            f"{each(lambda r: reached_text(kind, r))} | "
            f"{each(lambda r: ratio_text(kind, r))} | "
            f"{each(_legit)} | "
            f"{each(lambda r: _kib(r['memory_growth_kib']))} | "
            + " / ".join(("**worked**" if a[s]["worked"] else "stopped")
                         for s in sides) + " | "
            f"{each(stop_text, _echods(doc))} | "
            f"{each(log_text, _echods(doc))} |")
        counter_rows.append(f"| {name} | {each(guards, _echods(doc))} |")
        if kind in ("memory", "lockout"):
            tcp_rows.append(
                f"| {name} | {each(lambda r: _n(_held(r)))} | "
                f"{each(_legit)} | "
                f"{each(lambda r: _kib(r['memory_growth_kib']))} | "
                f"{each(_rss)} |")
        for s in sides:
            for v, p in a[s]["pcap"].items():
                pcap_rows.append(
                    f"| {name} | {s} | {v} | `{p['path']}` | "
                    f"{p['packets']:,} of {p['seen']:,} |")
    names = "\n".join(f"- **{k}**: {label}" for k, label in
                      doc["sides"].items())
    bound = doc["pcap_bound"]
    return (
        f"# echod lab, run {doc['run']}\n\n"
        f"The same attacks against:\n\n{names}\n\n"
        f"{doc['scale']} run, {doc['seconds']} s. Each cell: {order}.\n\n"
        + head + "\n".join(rows) + "\n\n" + LEGEND.format(order=order) +
        "\n## The TCP attacks\n\n"
        "| attack | connections the attacker held at the end | "
        "legitimate client | memory growth | resident memory before → "
        "after |\n|---|---|---|---|---|\n" + "\n".join(tcp_rows) + "\n\n"
        "## echod's drop and refusal counters that moved\n\n"
        "| attack | counters |\n|---|---|\n" + "\n".join(counter_rows) +
        "\n\nA broadcast reaches every worker's socket, so fraggle's count "
        "is the forged datagrams times the workers.\n\n"
        "## Captures\n\n"
        "Open them with `tcpdump -n -r FILE` or Wireshark (raw IP, no "
        "Ethernet header). Vantage points: *victim* is the victim's "
        "interface, *server* the interface of the server under attack "
        "(srv1; it also sees the legitimate client's probes), *client* the "
        "legitimate client's. Each file holds the first "
        f"{bound['pcap_first']:,} packets on the interface, then one in "
        f"{bound['pcap_every']:,} of the rest, at most "
        f"{bound['pcap_max']:,} packets cut to {bound['snaplen']} bytes: "
        f"at most {bound['max_bytes']:,} bytes a file.\n\n"
        "| attack | server | vantage | file | packets kept of seen |\n"
        "|---|---|---|---|---|\n" + "\n".join(pcap_rows) + "\n")


# ---------------------------------------------------------------- chart

WIDTH = 1920
COLS = 2
PW = WIDTH // COLS         # one panel's width
ML, MR = 100, 30           # plot margins inside a panel
PLOT_H = 300
LINE = 26                  # one line of 18 px text
MONO_CHARS = 84            # characters of a 16 px monospace line in a panel
TITLE_H = 150


def svg_size(svg):
    m = re.search(r'<svg[^>]* width="(\d+)" height="(\d+)"', svg)
    return int(m.group(1)), int(m.group(2))


def _series(r):
    """Packets/s at the victim per bin, from the attack's first packet to
    the end of the capture."""
    cap = r["capture"]
    skip = int(r["attacker"]["start"] / cap["bin"])
    bins = cap["bins_in"][skip:]
    total = int((cap["seconds"] - r["attacker"]["start"]) / cap["bin"])
    bins += [0] * (total - len(bins))
    return [c / cap["bin"] for c in bins]


def _wrap(text, width):
    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def _side_lines(doc, kind, side, r):
    """The text under a panel for one server: (class, text) pairs."""
    label = "naive" if side == "naive" else \
        "echod, built-in" if side == "echod" else "echod, custom"
    out = [("side", f"{label}: attacker sent {sent_text(kind, r)}; "
            f"victim got {reached_text(kind, r)}")]
    q = r.get("ratio")
    if q is not None:
        out.append(("note", ("ratio " if kind != "loop" else "") +
                    q["text"]))
    if side != "naive":
        s = r.get("stopped_by")
        if s is None:
            out.append(("note", "not stopped"))
        elif s["counter"] is None:
            out.append(("note", f"stopped by {s['keyword']}: backpressure "
                        "(no counter, no log line)"))
        else:
            out.append(("note", f"stopped by {s['keyword']}: {s['event']} "
                        f"reason={s['reason']}, {_count(s['count'], 'time')}"))
            if s["log"]:
                out += [("log", t) for t in _wrap(s["log"], MONO_CHARS)]
    return out


def _text(x, y, cls, text, extra=""):
    return (f'<text x="{x}" y="{y}" class="{cls}"{extra}>'
            f'{escape(text)}</text>')


def _udp_panel(doc, name, a, x0, y0, height):
    sides = _sides(doc)
    kind = a["kind"]
    out = [f'<g transform="translate({x0},{y0})" data-panel="{name}">',
           _text(ML, 30, "title", f"{name}: {KIND_TITLES[kind]}",
                 f' data-panel="{escape(name)}"')]
    top, pw = 50, PW - ML - MR
    series = {s: _series(a[s]) for s in sides}
    width = a[sides[0]]["capture"]["bin"]
    n = max(2, max(len(v) for v in series.values()))
    for s in series:  # the shorter capture ended with its quiet tail
        series[s] += [0.0] * (n - len(series[s]))
    peak = max([1.0] + [v for s in series.values() for v in s])
    decades = max(1, math.ceil(math.log10(peak + 1)))

    def y(v):
        return top + PLOT_H - PLOT_H * math.log10(v + 1) / decades

    def x(i):
        return ML + pw * i / (n - 1)
    out.append(f'<rect x="{ML}" y="{top}" width="{pw}" height="{PLOT_H}" '
               'class="frame"/>')
    for d in range(decades + 1):
        yy = y(10 ** d - 1)
        label = ["0", "10", "100", "1k", "10k", "100k", "1M", "10M"][d] \
            if d < 8 else f"1e{d}"
        out.append(f'<line x1="{ML}" x2="{ML + pw}" y1="{yy:.1f}" '
                   f'y2="{yy:.1f}" class="grid"/>')
        out.append(_text(ML - 8, f"{yy + 6:.1f}", "ylabel", label))
    seconds = (n - 1) * width
    step = next(st for st in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
                if seconds / st <= 10)
    t = 0.0
    while t <= seconds + 1e-9:
        xx = ML + pw * t / seconds
        out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top + PLOT_H}" '
                   f'y2="{top + PLOT_H + 6}" class="axis"/>')
        out.append(_text(f"{xx:.1f}", top + PLOT_H + 26, "xlabel", f"{t:g}"))
        t += step
    out.append(_text(ML + pw, top + PLOT_H + 52, "xunit",
                     "seconds since the first forged packet"))
    out.append(_text(24, top + PLOT_H / 2, "yunit", "packets/s at victim",
                     f' transform="rotate(-90 24 {top + PLOT_H / 2})"'))
    for s in sides:
        pts = " ".join(f"{x(i):.1f},{y(v):.1f}"
                       for i, v in enumerate(series[s]))
        out.append(f'<polyline class="series" data-side="{s}" '
                   f'data-attack="{escape(name)}" '
                   f'data-packets="{a[s]["victim_packets"]}" '
                   f'stroke="{COLORS[s]}" points="{pts}"/>')
    if kind == "loop":
        # Where the lab stopped the victim's service, and which loops were
        # still going then: they did not end, the lab ended them.
        start, stop = a[sides[0]]["attacker"]["window"]
        at = (stop - a[sides[0]]["attacker"]["start"]) / width
        xx = x(min(n - 1, max(0, at)))
        out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" '
                   f'y2="{top + PLOT_H}" class="stopline"/>')
        stopped = [s for s in sides if a[s]["ratio"]["self_sustaining"]]
        for k, s in enumerate(stopped):
            yy = y(a[s]["ratio"]["rate_at_stop"])
            out.append(f'<circle cx="{xx:.1f}" cy="{yy:.1f}" r="8" '
                       f'fill="{COLORS[s]}" class="stopmark" '
                       f'data-side="{s}"/>')
        label = ("stopped by the lab: " + ", ".join(stopped) +
                 " still looping") if stopped else "the lab stopped here"
        out.append(_text(f"{xx - 10:.1f}", top + 24, "stoplabel", label))
    yy = top + PLOT_H + 60
    for s in sides:
        for cls, text in _side_lines(doc, kind, s, a[s]):
            yy += LINE
            if cls == "side":
                out.append(f'<rect x="{ML - 34}" y="{yy - 16}" width="24" '
                           f'height="16" fill="{COLORS[s]}"/>')
            out.append(_text(ML if cls == "side" else ML + 20, yy, cls,
                             text))
    out.append("</g>")
    return out


def _panel_height(doc, a):
    lines = sum(len(_side_lines(doc, a["kind"], s, a[s]))
                for s in _sides(doc))
    return 50 + PLOT_H + 60 + LINE * lines + 30


def _tcp_panel(doc, names, x0, y0):
    """Per TCP attack: the connections the attacker held, the legitimate
    client, memory growth; a bar per server for held connections."""
    sides = _sides(doc)
    out = [f'<g transform="translate({x0},{y0})" data-panel="tcp">',
           _text(ML, 30, "title", "TCP attacks: connections held, "
                 "legitimate client served, memory", ' data-panel="tcp"')]
    peak = max([1] + [_held(doc["attacks"][n][s])
                      for n in names for s in sides])
    yy = 50
    bar_w = WIDTH - ML - MR - 900
    for name in names:
        a = doc["attacks"][name]
        yy += LINE + 10
        out.append(_text(ML, yy, "subtitle", name))
        for s in sides:
            r = a[s]
            held = _held(r)
            what = "connections held" if "held" in r["attacker"] else \
                "connections open"
            g = r["legit"]
            served = "served" if g["sent"] and g["echoed"] == g["sent"] \
                else "NOT served" if g["echoed"] == 0 else "partly served"
            yy += LINE + 6
            w = max(2, bar_w * held / peak)
            out.append(f'<rect x="{ML + 20}" y="{yy - 18}" width="{w:.1f}" '
                       f'height="20" fill="{COLORS[s]}" class="bar" '
                       f'data-attack="{name}" data-side="{s}" '
                       f'data-held="{held}"/>')
            out.append(_text(ML + 30 + bar_w, yy, "side",
                             f"{s}: {held:,} {what}; legitimate client "
                             f"{g['echoed']}/{g['sent']} {served}; memory "
                             f"{_kib(r['memory_growth_kib'])}"))
            if s != "naive" and r.get("stopped_by"):
                st = r["stopped_by"]
                yy += LINE
                out.append(_text(
                    ML + 40, yy, "note", f"stopped by {st['keyword']}: " +
                    ("backpressure (no counter, no log line)"
                     if st["counter"] is None else
                     f"{st['event']} reason={st['reason']}, "
                     f"{_count(st['count'], 'time')}")))
                if st["log"]:
                    for t in _wrap(st["log"], 2 * MONO_CHARS):
                        yy += LINE
                        out.append(_text(ML + 60, yy, "log", t))
    out.append("</g>")
    return out, yy + 30


STYLE = ("text{font-family:DejaVu Sans,sans-serif;font-size:18px;fill:#222}"
         ".head{font-size:30px;font-weight:bold}.sub{font-size:20px}"
         ".title{font-size:24px;font-weight:bold}"
         ".subtitle{font-size:20px;font-weight:bold}"
         ".ylabel{text-anchor:end}.xlabel{text-anchor:middle}"
         ".xunit{text-anchor:end;fill:#444}"
         ".yunit{text-anchor:middle;fill:#444}"
         ".note{fill:#333}.log{font-family:DejaVu Sans Mono,monospace;"
         "font-size:16px;fill:#555}"
         ".stoplabel{text-anchor:end;font-weight:bold;fill:#000}"
         ".frame{fill:#fff;stroke:#999}.grid{stroke:#e4e4e4}"
         ".axis{stroke:#999}"
         ".stopline{stroke:#000;stroke-width:2;stroke-dasharray:8 6}"
         ".series{fill:none;stroke-width:3;stroke-linejoin:round}")


def chart(doc, names):
    """One panel per UDP attack, one for the TCP attacks; the title names
    every server and policy in full."""
    names = [n for n in names if n in doc["attacks"]]
    udp = [n for n in names
           if doc["attacks"][n]["kind"] not in ("memory", "lockout")]
    tcp = [n for n in names if n not in udp]
    head = [_text(20, 44, "head", "echod lab: the same forged traffic "
                  f"against {len(doc['sides'])} servers")]
    y = 44
    for part in _wrap(f"{doc['scale']} run {doc['run']}, {doc['seconds']} s",
                      150):
        y += 30
        head.append(_text(20, y, "sub", part))
    for s, label in doc["sides"].items():
        for k, part in enumerate(_wrap(label, 150)):
            y += 30
            if k == 0:
                head.append(f'<rect x="20" y="{y - 18}" width="30" '
                            f'height="18" fill="{COLORS[s]}"/>')
            head.append(_text(60, y, "sub", part, ' data-side-label="'
                              f'{s}"' if k == 0 else ""))
    y += 30
    head.append(_text(20, y, "sub", "Packets per second at the victim, "
                      "log scale; every figure under each chart is "
                      "defined in table.md."))
    body, top = [], y + 20
    rows = math.ceil(len(udp) / COLS)
    for row in range(rows):
        row_names = udp[row * COLS:(row + 1) * COLS]
        h = max(_panel_height(doc, doc["attacks"][n]) for n in row_names)
        for k, n in enumerate(row_names):
            body += _udp_panel(doc, n, doc["attacks"][n], k * PW, top, h)
        top += h
    if tcp:
        panel, h = _tcp_panel(doc, tcp, 0, top)
        body += panel
        top += h
    height = int(top + 20)
    return "\n".join(
        [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
         f'height="{height}" viewBox="0 0 {WIDTH} {height}">',
         f"<style>{STYLE}</style>",
         f'<rect width="{WIDTH}" height="{height}" fill="#fafafa"/>'] +
        head + body + ["</svg>"]) + "\n"
