"""The lab's table (Markdown) and chart (SVG), from results.json's data."""

import math
from xml.sax.saxutils import escape

GUARD_WORDS = ("drop", "refused", "evict", "throttled", "idle", "would",
               "lifetime", "max_bytes")


def _n(v):
    return "–" if v is None else f"{v:,}"


def _bytes(v):
    if v is None:
        return "–"
    for unit, size in (("MB", 10 ** 6), ("kB", 10 ** 3)):
        if v >= size:
            return f"{v / size:.1f} {unit}"
    return f"{v} B"


def _amp(v):
    if v is None:
        return "–"
    return f"{v:,.0f}×" if v >= 100 else f"{v:.2f}×"


def _kib(v):
    return f"{v / 1024:+.1f} MiB" if abs(v) >= 1024 else f"{v:+d} KiB"


def _legit(r):
    g = r["legit"]
    return f"{g['echoed']}/{g['sent']}"


def guards(r):
    """echod's counters that moved for a drop or a refusal."""
    return ", ".join(f"{k}={v:,}" for k, v in sorted(r["counters"].items())
                     if any(w in k for w in GUARD_WORDS) and v > 0) or "–"


def table(doc):
    head = ("| attack | packets at the victim | bytes at the victim | "
            "loop length | amplification | server memory growth | "
            "legitimate client | attack on naive | attack on echod | "
            "echod's drop counters |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for name, a in doc["attacks"].items():
        nv, ed = a["naive"], a["echod"]

        def pair(f, key):
            if a["kind"] in ("memory", "lockout") and key.startswith(
                    ("victim", "amplification")):
                return "–"  # the server itself is the victim
            return f"{f(nv[key])} / {f(ed[key])}"
        rows.append(
            f"| {name} | {pair(_n, 'victim_packets')} | "
            f"{pair(_bytes, 'victim_bytes')} | {pair(_n, 'loop_length')} | "
            f"{pair(_amp, 'amplification')} | "
            f"{pair(_kib, 'memory_growth_kib')} | "
            f"{_legit(nv)} / {_legit(ed)} | "
            f"{'**worked**' if nv['worked'] else 'failed'} | "
            f"{'**worked**' if ed['worked'] else 'stopped'} | "
            f"{guards(ed)} |")
    return ("Each cell: naive server / echod. Policy: "
            f"{doc['policy']}; {doc['scale']} run, {doc['seconds']} s.\n\n" +
            head + "\n".join(rows) + "\n")


# ---------------------------------------------------------------- chart

W, H = 560, 230          # one panel
ML, MR, MT, MB = 58, 12, 44, 34
COLORS = {"naive": "#d62728", "echod": "#1f77b4"}


def _series(r):
    """Packets/s at the victim per bin, from the attack's first packet to
    the end of the capture."""
    cap = r["capture"]
    skip = int(r["attacker"]["start"] / cap["bin"])
    bins = cap["bins_in"][skip:]
    total = int((cap["seconds"] - r["attacker"]["start"]) / cap["bin"])
    bins += [0] * (total - len(bins))
    return [c / cap["bin"] for c in bins]


def _panel(name, a, x0, y0):
    out = [f'<g transform="translate({x0},{y0})">',
           f'<text x="{ML}" y="16" class="title">{escape(name)}</text>']
    pw, ph = W - ML - MR, H - MT - MB
    series = {}
    for side in ("naive", "echod"):
        series[side] = _series(a[side])
        width = a[side]["capture"]["bin"]
    n = max(2, max(len(s) for s in series.values()))
    for side in series:  # the shorter capture ended with its quiet tail
        series[side] += [0.0] * (n - len(series[side]))
    top = max([1.0] + [v for s in series.values() for v in s])
    decades = max(1, math.ceil(math.log10(top + 1)))

    def y(v):
        return MT + ph - ph * math.log10(v + 1) / decades

    def x(i):
        return ML + pw * i / (n - 1)
    out.append(f'<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" '
               'class="frame"/>')
    for d in range(decades + 1):
        yy = y(10 ** d - 1)
        label = ["0", "10", "100", "1k", "10k", "100k", "1M", "10M"][d] \
            if d < 8 else f"1e{d}"
        out.append(f'<line x1="{ML}" x2="{ML + pw}" y1="{yy:.1f}" '
                   f'y2="{yy:.1f}" class="grid"/>')
        out.append(f'<text x="{ML - 6}" y="{yy + 4:.1f}" class="ylabel">'
                   f'{label}</text>')
    seconds = (n - 1) * width
    step = next(st for st in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
                if seconds / st <= 8)
    t = 0.0
    while t <= seconds + 1e-9:
        xx = ML + pw * t / seconds
        out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{MT + ph}" '
                   f'y2="{MT + ph + 4}" class="axis"/>')
        out.append(f'<text x="{xx:.1f}" y="{MT + ph + 16}" class="xlabel">'
                   f'{t:g}</text>')
        t += step
    out.append(f'<text x="{ML + pw}" y="{H - 4}" class="xunit">seconds '
               'since the first forged packet</text>')
    out.append(f'<text x="12" y="{MT + ph / 2}" class="yunit" '
               f'transform="rotate(-90 12 {MT + ph / 2})">packets/s at the '
               'victim</text>')
    for side in ("naive", "echod"):
        s = series[side] or [0.0]
        pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s))
        total = a[side]["victim_packets"]
        out.append(f'<polyline class="series" data-side="{side}" '
                   f'data-attack="{escape(name)}" data-packets="{total}" '
                   f'stroke="{COLORS[side]}" points="{pts}"/>')
    for k, side in enumerate(("naive", "echod")):
        lx = ML + 190 * k
        out.append(f'<line x1="{lx}" x2="{lx + 18}" y1="29" y2="29" '
                   f'stroke="{COLORS[side]}" stroke-width="3"/>')
        out.append(f'<text x="{lx + 22}" y="33" class="legend">{side}: '
                   f'{a[side]["victim_packets"]:,} packets</text>')
    out.append("</g>")
    return out


def chart(doc, names):
    """Packets per second arriving at the victim over time, one panel per
    attack, the naive server and echod on one log scale."""
    names = [n for n in names if n in doc["attacks"]]
    cols = 2 if len(names) > 1 else 1
    rows = max(1, math.ceil(len(names) / cols))
    width, height = cols * W, rows * H + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}">',
           "<style>text{font-family:sans-serif;font-size:11px;fill:#222}"
           ".title{font-size:13px;font-weight:bold}"
           ".ylabel{text-anchor:end}.xlabel{text-anchor:middle}"
           ".xunit{text-anchor:end;fill:#555}"
           ".yunit{text-anchor:middle;fill:#555}"
           ".frame{fill:#fff;stroke:#999}.grid{stroke:#e4e4e4}"
           ".axis{stroke:#999}"
           ".series{fill:none;stroke-width:1.6;stroke-linejoin:round}"
           "</style>",
           f'<rect width="{width}" height="{height}" fill="#fafafa"/>',
           f'<text x="10" y="24" class="title">echod lab: the same forged '
           f'traffic against a naive echo server and against echod '
           f'(policy: {escape(doc["policy"])}; log scale)</text>']
    for k, name in enumerate(names):
        out += _panel(name, doc["attacks"][name], (k % cols) * W,
                      40 + (k // cols) * H)
    out.append("</svg>")
    return "\n".join(out) + "\n"
