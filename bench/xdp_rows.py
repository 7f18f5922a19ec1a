"""The XDP prefilter's rows of `make bench`: echod (one worker) with and
without `xdp-prefilter` under two floods (198.18.0.0/15 only, bounded in
count and time):

  port     spoofed datagrams from 100,000 sources, all from source port 19
           (which the guards refuse), policy/bench.conf (rates lifted);
           a legitimate client sends 1000 datagrams/s
  sources  spoofed datagrams from 100,000 sources (390 /24s) from
           ephemeral ports, the built-in policy (udp-rate 100/s burst 200
           per /24) without the global cap (which the flood would spend
           for everyone, the legitimate client included, with or without
           the prefilter); a legitimate client sends 90 datagrams/s,
           within its own prefix's rate

The flood comes from a namespace of its own over a veth of its own (fld:
ebf-f -> ebf-s), the legitimate client from the bench's cli namespace
(ebv-c -> ebv-s), and the prefilter is attached to both server ends: the
flood's queue and receive work are not the legitimate client's path, so
what the client loses is what the server lost. Each case runs twice: with
the flood paced at --xdp-flood-rate, the same offered rate with and without
the prefilter, and unpaced (the highest rate this machine offers).

The flood runs alone for WARMUP_S first, so that the buckets' bursts are
spent and what is measured is the steady state; then, while the
legitimate client runs, each row counts: the flood offered (what ebf-f
sent or its peer's full queue dropped), the shares of it dropped by the
XDP program (xdp_udp_drop_*), lost at echod's full socket buffer
(UdpRcvbufErrors in the server's namespace), read by echod (udp_received
beyond the legitimate datagrams) and, as a BENCH line, lost on the way
(the rest, to within the counters' skew); the worker's CPU, and the time
it was runnable but waited for its CPU (other jobs); the share of the
legitimate datagrams echoed.

bench.py calls run() with itself as `b` (its Server, run_load, parse_kv,
Namespaces, BENCH, ROOT, POLICY) and report() with the medians.
"""

import os
import subprocess
import time

HOST, PORT = "198.18.0.1", 20007
FLOOD_SOURCES = 100000
FLOOD_MAX = 10_000_000  # datagrams; the time bound ends it first
SERVER_IFACES = ("ebv-s", "ebf-s")
PACE_SHORTFALL = 0.97  # a paced flood below this share of its rate: a note
WARMUP_S = 3.0  # the flood alone first: the buckets' bursts are spent

CASES = [
    # key, label, policy ("bench": policy/bench.conf), flood args, legit rate
    ("port", "source-port-19 flood, bench policy", "bench", ["-P", "19"],
     1000),
    ("sources", "100,000 spoofed sources, udp-rate 100/s per /24",
     "udp-global-rate unlimited\n", [], 90),
]
PACES = [("paced", "paced"), ("max", "unpaced")]  # key, label
METRICS = [
    # key, column, format
    ("flood_pps", "flood offered (dgram/s)", lambda v: f"{v / 1000:.0f}k"),
    ("xdp_pct", "dropped by XDP", lambda v: f"{v:.1f}%"),
    ("sockbuf_pct", "lost at the socket buffer", lambda v: f"{v:.1f}%"),
    ("reached_pct", "read by echod", lambda v: f"{v:.1f}%"),
    ("worker_cpu_pct", "worker CPU", lambda v: f"{v:.1f}%"),
    ("worker_waiting_pct", "worker waiting for CPU 0", lambda v: f"{v:.1f}%"),
    ("legit_pct", "legit UDP echoed", lambda v: f"{v:.1f}%"),
]


def _cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _runqueue_ns(pid):
    """Time pid spent runnable but waiting for its CPU (schedstat)."""
    return int(open(f"/proc/{pid}/schedstat").read().split()[1])


# The supervisor's children that serve no traffic (comm names).
HELPERS = ("echod-reader", "echod-keeper")


def _comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def _worker(b, pid):
    """The supervisor's one worker: its child but the policy reader and
    the metrics keeper."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        kids = [int(k) for k in f.read().split()
                if _comm(int(k)) not in HELPERS]
    if len(kids) != 1:
        raise b.BenchError(f"expected one worker, found {kids}")
    return kids[0]


def _udp_snmp(b, ns, netns):
    """The Udp: line of /proc/net/snmp in netns, as a dict."""
    r = subprocess.run(ns.exec_prefix(netns) + ["cat", "/proc/net/snmp"],
                       capture_output=True, text=True, timeout=10)
    rows = [l.split() for l in r.stdout.splitlines() if l.startswith("Udp:")]
    if len(rows) != 2:
        raise b.BenchError(f"no Udp lines in {netns}'s /proc/net/snmp")
    return dict(zip(rows[0][1:], (int(v) for v in rows[1][1:])))


def shares(sent, legit_sent, c0, c1, snmp0, snmp1):
    """Where `sent` flood datagrams went, in % of sent, from echod's
    counters and the server namespace's Udp counters before and after."""
    xdp = sum(c1[k] - c0.get(k, 0) for k in c1
              if k.startswith("xdp_udp_drop_"))
    sockbuf = snmp1["RcvbufErrors"] - snmp0["RcvbufErrors"]
    read = max(0, c1["udp_received"] - c0["udp_received"] - legit_sent)
    pct = lambda n: 100.0 * n / max(1, sent)  # noqa: E731
    return {"xdp_pct": pct(xdp), "sockbuf_pct": pct(sockbuf),
            "reached_pct": pct(read),
            "lost_on_the_way_pct": pct(sent - xdp - sockbuf - read)}


class FloodNamespaces:
    """The bench's srv and cli namespaces, and fld, the flood's, joined
    to srv by a veth of its own (198.18.1.0/24). srv routes the rest of
    198.18.0.0/15 (the spoofed sources) back through fld, which drops the
    echoes (no forwarding)."""

    def __init__(self, b):
        self.ns = b.Namespaces()
        self.srv, self.cli = self.ns.srv, self.ns.cli
        self.fld = self.srv.replace("-srv", "-fld")
        try:
            sh = self.ns.sh
            sh("ip", "netns", "add", self.fld)
            self.ns.made.append(self.fld)
            sh("ip", "-n", self.fld, "link", "set", "lo", "up")
            sh("ip", "link", "add", "ebf-s", "netns", self.srv, "type",
               "veth", "peer", "name", "ebf-f", "netns", self.fld)
            for netns, dev, addr in ((self.srv, "ebf-s", "198.18.1.1/24"),
                                     (self.fld, "ebf-f", "198.18.1.2/24")):
                sh("ip", "-n", netns, "addr", "add", addr, "dev", dev)
                sh("ip", "-n", netns, "link", "set", dev, "up")
            sh("ip", "-n", self.srv, "route", "replace", "198.18.0.0/15",
               "via", "198.18.1.2")
            sh("ip", "-n", self.fld, "route", "add", "198.18.0.0/24", "via",
               "198.18.1.1")
            sh("ip", "netns", "exec", self.srv, "sysctl", "-qw",
               "net.ipv4.conf.ebf-s.rp_filter=0")
        except Exception:
            self.ns.delete()
            raise

    def exec_prefix(self, netns):
        return self.ns.exec_prefix(netns)

    def delete(self):
        self.ns.delete()


def _policy(b, key, base, prefilter):
    path = b.ROOT / "build" / "bench" / f"xdp-{key}-{int(prefilter)}.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = b.POLICY.read_text() if base == "bench" else base
    if prefilter:
        text += "\nxdp-prefilter " + " ".join(SERVER_IFACES) + "\n"
    path.write_text(text)
    return path


def _attached(b, s, notes):
    att = [l.split("event=")[1].strip() for l in s.lines
           if " event=xdp_attached " in f" {l} "]
    if len(att) != len(SERVER_IFACES):
        raise b.BenchError(f"the prefilter attached to {len(att)} of "
                           f"{len(SERVER_IFACES)} interfaces")
    for a in att:
        note = "XDP rows: " + a
        if note not in notes:
            notes.append(note)


def _link(b, ns, netns, dev):
    """Packets dev sent, and dropped for a full queue at its peer."""
    base = f"/sys/class/net/{dev}/statistics/"
    r = subprocess.run(ns.exec_prefix(netns) + [
        "cat", base + "tx_packets", base + "tx_dropped"],
        capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise b.BenchError(f"{dev} statistics: {r.stderr.strip()}")
    return sum(int(v) for v in r.stdout.split())


def _snapshot(b, ns, s, worker):
    """Everything a row counts, read together."""
    return {"flood": _link(b, ns, ns.fld, "ebf-f"),
            "echod": s.counters(),
            "server": _udp_snmp(b, ns, ns.srv),
            "client": _udp_snmp(b, ns, ns.cli),
            "ticks": _cpu_ticks(worker), "waited": _runqueue_ns(worker),
            "t": time.monotonic()}


def _one(b, ns, case, prefilter, rate, seconds, srv_cpu, load_cpu, notes):
    key, _, base, flood_args, legit_rate = case
    pin = lambda cpu: ["taskset", "-c", cpu] if cpu else []  # noqa: E731
    argv = ns.exec_prefix(ns.srv) + pin(srv_cpu) + [
        str(b.ROOT / "build" / "echod"), "-c",
        str(_policy(b, key, base, prefilter)), "-w", "1", "-l",
        f"{HOST}:{PORT}"]
    flood_s = WARMUP_S + seconds + 1.5
    pace = ["-r", str(rate)] if rate else []
    s = b.Server("echod", argv, HOST, PORT)
    try:
        if prefilter:
            _attached(b, s, notes)
        worker = _worker(b, s.proc.pid)
        flood = subprocess.Popen(
            ns.exec_prefix(ns.fld) + pin(load_cpu) + [
                str(b.BENCH), "flood", "-S", str(FLOOD_SOURCES), "-F",
                "198.18.4.0", "-d", str(flood_s), "-n", str(FLOOD_MAX),
                "-s", "64"] + pace + flood_args + [HOST, str(PORT)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(WARMUP_S)  # past the buckets' bursts: the steady state
        a = _snapshot(b, ns, s, worker)
        legit = b.run_load(["udp", "-s", 64, "-w", 32, "-r", legit_rate,
                            "-d", seconds, HOST, PORT], load_cpu,
                           ns.exec_prefix(ns.cli))
        z = _snapshot(b, ns, s, worker)
        out, err = flood.communicate(timeout=flood_s + 10)
        if flood.returncode != 0:
            raise b.BenchError(f"flood: {err.strip()}")
        if z["t"] - a["t"] >= flood_s - WARMUP_S:
            raise b.BenchError("the flood ended before the client did")
    finally:
        s.stop()
    lost_by_client = z["client"]["RcvbufErrors"] - a["client"]["RcvbufErrors"]
    if lost_by_client:
        notes.append(f"XDP rows: the legitimate client's own socket "
                     f"dropped {lost_by_client} echoes ({key})")
    elapsed = z["t"] - a["t"]
    sent = z["flood"] - a["flood"]
    if rate and sent < PACE_SHORTFALL * rate * elapsed:
        notes.append(f"XDP rows: the {key} flood reached "
                     f"{sent / elapsed:.0f}/s of its {rate}/s pace "
                     f"(prefilter {int(prefilter)})")
    r = shares(sent, int(legit["sent"]), a["echod"], z["echod"],
               a["server"], z["server"])
    r.update({
        "flood_pps": sent / elapsed,
        "worker_cpu_pct": 100.0 * (z["ticks"] - a["ticks"])
        / os.sysconf("SC_CLK_TCK") / elapsed,
        "worker_waiting_pct": (z["waited"] - a["waited"]) / 1e7 / elapsed,
        "legit_pct": float(legit["echoed_pct"]),
    })
    return r


def run(b, seconds, srv_cpu, load_cpu, flood_rate, results, notes):
    """Every case, paced and unpaced, with and without the prefilter, in
    one set of namespaces."""
    if os.geteuid() != 0:
        notes.append("XDP rows skipped: need root (namespaces, XDP)")
        return
    ns = FloodNamespaces(b)
    results[("echod", "xdp_pace")] = [float(flood_rate)]
    try:
        for case in CASES:
            for pace, _ in PACES:
                for prefilter in (False, True):
                    r = _one(b, ns, case, prefilter,
                             flood_rate if pace == "paced" else 0, seconds,
                             srv_cpu, load_cpu, notes)
                    for metric, value in r.items():
                        results[("echod", f"xdp_{case[0]}_{pace}_"
                                 f"{int(prefilter)}_{metric}")] = [value]
    finally:
        ns.delete()


def report(med):
    """The rows, as a table of their own (nothing if they did not run)."""
    first = f"xdp_{CASES[0][0]}_{PACES[0][0]}_0_flood_pps"
    if ("echod", first) not in med:
        return
    flood_rate = med[("echod", "xdp_pace")]
    print("| under attack, 1 worker, veth | "
          + " | ".join(col for _, col, _ in METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    for key, label, _, _, _ in CASES:
        for pace, pace_label in PACES:
            if pace == "paced":
                pace_label = f"paced at {flood_rate / 1000:.0f}k/s"
            for prefilter in (0, 1):
                cells = [fmt(med[("echod",
                                  f"xdp_{key}_{pace}_{prefilter}_{m}")])
                         for m, _, fmt in METRICS]
                which = "XDP prefilter" if prefilter else "no prefilter"
                print(f"| {label}, {pace_label}, {which} | "
                      + " | ".join(cells) + " |")
    print()
