#!/usr/bin/python3
"""The reflection-attack lab: each classic attack on an echo service, run
against a naive server and against echod, side by side (`make lab`; the
exercise sheet is docs/lab.md).

For every attack and each server (the naive one and echod with its
built-in policy; with --policy, echod with the built-in policy and echod
with the file, and the naive server with --naive-too), the lab starts the
server in srv1 (fraggle: srv1-srv3) of the namespaces in topo.py, starts
bounded captures (capture.py: at the victim and at srv1 for UDP attacks,
at srv1 and at the legitimate client for TCP ones) and a legitimate
client, runs the attack from the attacker's namespace, and reads the
result off the wire, the server's counters (SIGUSR1, event=counters), its
log, /proc (memory) and what the legitimate client got.

Each run writes OUT/<UTC time>-<policy>/ (policy: "builtin" or the file's
name; never another run's directory) and then points OUT/latest at it:
results.json, table.md (report.py), chart.svg, chart.png (headless
chromium), pcap/ATTACK-SERVER-VANTAGE.pcap, logs/ATTACK-SERVER.log.

results.json: {"version": 2, "run" (the directory's name), "policy",
"sides" {key: label} in order (naive, echod, custom), "scale" (full or
short), "seconds", "pcap_bound", "attacks": {NAME: {"kind", SIDE: R}}},
where each R holds
  attacker           what the attacker sent (sent: packets or connections,
                     sent_bytes, start: s after the capture began; per
                     attack: window, held...)
  victim_packets, victim_bytes, victim_addresses   what reached the victim
                     from the servers (UDP attacks; None for TCP ones,
                     whose victim is the server), and how many of its
                     addresses it hit; victim_sent: what the victim sent
  loop_length        loops: packets both ways between server and victim
  ratio              per kind (ratio()): reflection and amplification:
                     {value: bytes at the victim / bytes sent}; loops:
                     {self_sustaining, rate_at_stop}; TCP: None
  memory_growth_kib, rss_kib [before, after]   the server's processes
  legit              {sent, echoed} of the legitimate client
  counters           the server's counters that moved (SIGUSR1)
  stopped_by         echod: what stopped it (stopped_by()); naive: None
  log, log_lines     the server's log from this attack, and its length
  capture            the first vantage's capture.py output (bins)
  pcap               {vantage: {path, packets kept, seen, bound, in, out}}
  worked, why        the verdict: did the attack get what it wanted?

Everything is bounded in count and time; the namespaces and processes go
on exit, on Ctrl-C and on SIGTERM (an unfinished run's directory goes
with them), and a run whose driver died is cleaned up by the next one.
Needs root.
"""

import argparse
import json
import os
import random
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import report  # noqa: E402
import topo  # noqa: E402
from topo import (ATK, ATK_EXTRA, LEGIT, LEGIT6, SRV, SRV6,  # noqa: E402
                  SRV_BCAST, SRV_NETS, VIC)
import netns  # noqa: E402
from conftest import (Echod, children_of, parse_logfmt,  # noqa: E402
                      rss_kib)

PORT = 7
EPHEMERAL = 40000
NAIVE_NOFILE = 1024  # the usual default soft limit

# Each pcap: the first 500 packets, then one in 100, at most 1,000 packets
# of at most 192 bytes (headers and the start of the payload): at most
# 24 + 1000 * (16 + 192) = 208,024 bytes a file.
PCAP_BOUND = dict(pcap_first=500, pcap_every=100, pcap_max=1000,
                  snaplen=192)
PCAP_MAX_BYTES = 24 + PCAP_BOUND["pcap_max"] * (16 + PCAP_BOUND["snaplen"])

# Where each attack is watched from: UDP attacks at the victim and at the
# server under attack (srv1); TCP attacks, whose victim is the server, at
# srv1 and at the legitimate client.
VANTAGES = {"udp": (("victim", "vic"), ("server", "srv1")),
            "tcp": (("server", "srv1"), ("client", "legit"))}

# Counts and times of each attack: the full lab, and the short form that
# `make test` runs (same attacks, smaller floods and windows).
SCALE = {
    "full": dict(loop_s=2.0, srcport_n=20, fraggle_n=50, reflect_n=10000,
                 reflect_pps=10000, spoof_n=100000, spoof_pps=20000,
                 slow_conns=16, slow_bytes=2 << 20, loris_conns=1100,
                 loris_hold=3.0, flood_conns=2000),
    "short": dict(loop_s=0.6, srcport_n=5, fraggle_n=10, reflect_n=5000,
                  reflect_pps=10000, spoof_n=10000, spoof_pps=10000,
                  slow_conns=8, slow_bytes=1 << 20, loris_conns=1100,
                  loris_hold=1.0, flood_conns=1500),
}


class Interrupted(Exception):
    pass


def _on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


# ---------------------------------------------------------------- helpers


class Capture:
    """capture.py on one host's interface, from start to stop(): on the
    victim's, counting what the servers' networks send it; on a server's
    or the legitimate client's, counting everything. Each keeps a bounded
    pcap (capture.py's --pcap; PCAP_BOUND below)."""

    def __init__(self, lab, host, t0, max_seconds, pcap):
        peers = SRV_NETS if host == "vic" else ["0.0.0.0/0", "::/0"]
        argv = lab.topo[host].exec_argv(
            ["/usr/bin/python3", HERE / "capture.py", "--iface", topo.IFACE,
             "--t0", repr(t0), "--bin", "0.05",
             "--max-seconds", max_seconds, "--max-packets", 1_000_000,
             "--pcap", pcap] +
            [f"--{k.replace('_', '-')}={v}" for k, v in PCAP_BOUND.items()] +
            [x for n in peers for x in ("--peer", n)])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        lab.captures.append(self.proc)
        line = self.proc.stderr.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"capture did not start: {line!r} "
                               f"{self.proc.stderr.read()!r}")

    def stop(self):
        out, err = self.proc.communicate(timeout=20)  # closes stdin
        if self.proc.returncode != 0:
            raise RuntimeError(f"capture failed: {err.decode()}")
        return json.loads(out)


class LegitUdp:
    """A legitimate client in `legit`: one datagram every 50 ms to srv1
    (IPv4, and IPv6 if asked), each with its own payload, as a person or a
    monitor would send; success = share of them echoed."""

    def __init__(self, lab, v6=False, pps=20):
        self.targets = [(SRV[0], PORT, socket.AF_INET, LEGIT)]
        if v6:
            self.targets.append((SRV6[0], PORT, socket.AF_INET6, LEGIT6))
        self.socks = {}
        for _, _, fam, src in self.targets:
            s = lab.topo["legit"].socket(fam, socket.SOCK_DGRAM)
            lab.socks.append(s)
            s.bind((src, EPHEMERAL))
            s.setblocking(False)
            self.socks[fam] = s
        self.pps = pps
        self.sent, self.seen = 0, set()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _drain(self):
        for s in self.socks.values():
            while True:
                try:
                    self.seen.add(s.recv(2048))
                except (BlockingIOError, ConnectionRefusedError):
                    break

    def _run(self):
        t0 = time.monotonic()
        while not self.stopping.is_set():
            host, port, fam, _ = self.targets[self.sent % len(self.targets)]
            try:
                self.socks[fam].sendto(b"legit %06d" % self.sent,
                                       (host, port))
            except OSError:
                pass
            self.sent += 1
            self._drain()
            self.stopping.wait(max(0.0, t0 + self.sent / self.pps -
                                   time.monotonic()))
        deadline = time.monotonic() + 0.5
        while len(self.seen) < self.sent and time.monotonic() < deadline:
            select.select(list(self.socks.values()), [], [], 0.05)
            self._drain()

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        for s in self.socks.values():
            s.close()
        return {"sent": self.sent, "echoed": len(self.seen)}


def legit_tcp(lab, tries=2, timeout=1):
    """`tries` runs of echo-client from `legit` to srv1 (TCP), each with its
    own line; success = exit status 0 (exact echo within `timeout` s)."""
    ok = 0
    for i in range(tries):
        r = subprocess.run(
            lab.topo["legit"].exec_argv([lab.client, "-t", timeout,
                                         SRV[0]]),
            input=b"legit %d\n" % i, capture_output=True,
            timeout=timeout + 5)
        ok += r.returncode == 0
    return {"sent": tries, "echoed": ok}


def server_rss(d):
    """KiB of the server's processes (echod: supervisor and workers)."""
    return rss_kib(d.pid) + sum(rss_kib(p) for p in children_of(d.pid))


def settled(d, quiet=0.3, timeout=3.0):
    """The server's counters once they stop moving for `quiet` s."""
    deadline = time.monotonic() + timeout
    last, since = d.counters(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        c = d.counters()
        if c != last:
            last, since = c, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def tcp_socket(lab, src):
    s = lab.topo["atk"].socket(socket.AF_INET, socket.SOCK_STREAM)
    lab.socks.append(s)
    s.setblocking(False)
    s.bind((src, 0))
    return s


def open_connections(lab, sources, n, timeout=3.0):
    """n non-blocking connects to srv1:7 from the sources in turn; the
    sockets whose handshake completed within `timeout`."""
    pending = []
    for i in range(n):
        s = tcp_socket(lab, sources[i % len(sources)])
        s.connect_ex((SRV[0], PORT))
        pending.append(s)
    done = []
    poller = select.poll()
    by_fd = {s.fileno(): s for s in pending}
    for fd in by_fd:
        poller.register(fd, select.POLLOUT)
    deadline = time.monotonic() + timeout
    while by_fd and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            poller.unregister(fd)
            s = by_fd.pop(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                done.append(s)
    return done


def still_open(socks):
    """How many of socks the server has not closed."""
    n = 0
    for s in socks:
        try:
            if s.recv(65536, socket.MSG_PEEK) != b"":
                n += 1
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def paced(lab, pkts, dst, pps):
    """Send forged packets one by one at `pps` from the attacker."""
    with netns.RawSender(lab.topo["atk"]) as raw:
        t0 = lab.attack_starts()
        for i, p in enumerate(pkts):
            time.sleep(max(0.0, t0 + i / pps - time.monotonic()))
            raw.send(p, dst)
    return len(pkts)


# ---------------------------------------------------------------- attacks
#
# Each attack(lab, side) runs the attack and returns what the attacker did:
# sent (packets or connections), sent_bytes (IP bytes it put on the wire),
# optionally legit (when the legitimate client is part of the attack) and
# release (a function that lets go of what the attacker holds, called
# after the lab has measured the servers).


def _loop(lab, side, service, sport):
    """One datagram forged from the victim's `service` on port `sport` to
    srv1's echo: the two services answer each other until someone stops.
    The lab stops the victim's service after loop_s seconds."""
    peer = lab.start_server("vic", [lab.naive, "-s", 30,
                                    f"{service}:{sport}"])
    pkt = netns.ipv4_udp(VIC, SRV[0], sport, PORT, b"CA-1996-01")
    with netns.RawSender(lab.topo["atk"]) as raw:
        t_send = lab.attack_starts()
        raw.send(pkt, SRV[0])
    time.sleep(lab.p["loop_s"])
    t_stop = time.monotonic()
    peer.stop()
    return {"sent": 1, "sent_bytes": len(pkt),
            "window": [round(t_send - lab.t0, 3), round(t_stop - lab.t0, 3)]}


def attack_chargen_loop(lab, side):
    return _loop(lab, side, "udp-chargen", 19)


def attack_echo_loop(lab, side):
    return _loop(lab, side, "udp-echo", 7)


def attack_echo_loop_high(lab, side):
    return _loop(lab, side, "udp-echo", 7007)


def attack_srcport(lab, side):
    n = lab.p["srcport_n"]
    pkts = [netns.ipv4_udp(VIC, SRV[0], sport, PORT, b"from port %d #%d" %
                           (sport, i))
            for i in range(n) for sport in (7, 13, 17, 19, 37)]
    sent = paced(lab, pkts, SRV[0], 100)
    return {"sent": sent, "sent_bytes": sum(map(len, pkts[:sent]))}


def attack_fraggle(lab, side):
    n = lab.p["fraggle_n"]
    pkts = [netns.ipv4_udp(VIC, SRV_BCAST, EPHEMERAL, PORT,
                           b"fraggle %04d" % i) for i in range(n)]
    sent = paced(lab, pkts, SRV_BCAST, 100)
    return {"sent": sent, "sent_bytes": sum(map(len, pkts[:sent]))}


def attack_reflection(lab, side):
    n, pps = lab.p["reflect_n"], lab.p["reflect_pps"]
    pkts = [netns.ipv4_udp(VIC, SRV[0], EPHEMERAL + i % 16, PORT,
                           b"reflect me %06d " % i + b"." * 48)
            for i in range(n)]
    with netns.RawSender(lab.topo["atk"]) as raw:
        lab.attack_starts()
        sent, secs = raw.flood(pkts, SRV[0], pps=pps, max_seconds=n / pps + 3)
    return {"sent": sent, "sent_bytes": sum(map(len, pkts[:sent])),
            "seconds": round(secs, 3)}


def attack_spoofed_sources(lab, side):
    """n datagrams, each from its own address in the victim's site
    (2001:db8:0:200::/56, outside the victim's own /64): every answer lands
    in that site. Carpet bombing: no one address gets much."""
    n, pps = lab.p["spoof_n"], lab.p["spoof_pps"]
    rng = random.Random(0x19818)
    srcs = set()
    while len(srcs) < n:
        srcs.add("2001:db8:0:2%02x:%x:%x:%x:%x" % (
            rng.randrange(1, 256), *(rng.getrandbits(16) for _ in range(4))))
    pkts = [netns.ipv6_udp(src, SRV6[0], EPHEMERAL, PORT,
                           b"spoofed %06d" % i)
            for i, src in enumerate(sorted(srcs))]
    rng.shuffle(pkts)
    with netns.RawSender(lab.topo["atk"], socket.AF_INET6) as raw:
        lab.attack_starts()
        sent, secs = raw.flood(pkts, SRV6[0], pps=pps,
                               max_seconds=n / pps + 5)
    return {"sent": sent, "sent_bytes": sum(map(len, pkts[:sent])),
            "seconds": round(secs, 3), "sources": n}


def attack_slow_readers(lab, side):
    """Connections that send and never read their echo: whatever the
    server does not refuse to hold, it holds in memory."""
    n, quota = lab.p["slow_conns"], lab.p["slow_bytes"]
    lab.attack_starts()
    socks = []
    for s in open_connections(lab, [ATK], n):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        socks.append(s)
    left = {s: quota for s in socks}
    chunk = b"x" * 65536
    sent = 0
    last_progress = time.monotonic()
    deadline = last_progress + 5.0
    poller = select.poll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLOUT)
    while left and time.monotonic() < deadline and \
            time.monotonic() - last_progress < 0.5:
        for fd, _ in poller.poll(100):
            s = by_fd[fd]
            if s not in left:
                continue
            try:
                k = s.send(chunk[:left[s]])
            except BlockingIOError:
                continue
            except OSError:
                del left[s]
                poller.unregister(fd)
                continue
            sent += k
            left[s] -= k
            last_progress = time.monotonic()
            if left[s] == 0:
                del left[s]
                poller.unregister(fd)
    legit = legit_tcp(lab)
    return {"sent": len(socks), "sent_bytes": sent,
            "attempted_bytes": n * quota, "legit": legit,
            "release": lambda: [s.close() for s in socks]}


def _hold_connections(lab, sources, n, hold, trickle):
    lab.attack_starts()
    socks = open_connections(lab, sources, n)
    t_end = time.monotonic() + hold
    legit = None
    while True:
        if trickle:
            for s in socks:
                try:
                    s.send(b"X")
                except OSError:
                    pass
        if legit is None:
            legit = legit_tcp(lab)  # while every slot is held
        left = t_end - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(1.0, left))
    return {"sent": n, "sent_bytes": 0, "connected": len(socks),
            "held": still_open(socks), "legit": legit,
            "release": lambda: [s.close() for s in socks]}


def attack_slowloris(lab, side):
    """Many connections from four addresses, each sending a byte a second:
    never idle, never done, each holding a slot."""
    return _hold_connections(lab, ATK_EXTRA, lab.p["loris_conns"],
                             lab.p["loris_hold"], trickle=True)


def attack_conn_flood(lab, side):
    """As many connections as fast as one address can open them."""
    return _hold_connections(lab, [ATK], lab.p["flood_conns"], 0.5,
                             trickle=False)


# name: (function, server hosts, legitimate UDP client (None: the attack
# runs echo-client itself; "v4"; "v6": both families), kind (how verdict()
# judges it: loop, reflection, amplification, memory, lockout))
ATTACKS = {
    "chargen-loop": (attack_chargen_loop, 1, "v4", "loop"),
    "echo-loop": (attack_echo_loop, 1, "v4", "loop"),
    "echo-loop-high": (attack_echo_loop_high, 1, "v4", "loop"),
    "srcport": (attack_srcport, 1, "v4", "reflection"),
    "fraggle": (attack_fraggle, 3, "v4", "amplification"),
    "reflection": (attack_reflection, 1, "v4", "reflection"),
    "spoofed-sources": (attack_spoofed_sources, 1, "v6", "reflection"),
    "slow-readers": (attack_slow_readers, 1, None, "memory"),
    "slowloris": (attack_slowloris, 1, None, "lockout"),
    "conn-flood": (attack_conn_flood, 1, None, "lockout"),
}


# ---------------------------------------------------------------- verdicts

# What stopped an attack in echod, from the counter that moved most: the
# policy keyword behind it, and the event and reason of the log line echod
# writes for it (the first few per source and reason; the counters and
# the summaries carry the rest).
ALWAYS = "always on (no keyword)"
STOPPERS = {
    "udp_drop_port": ("udp-deny-source-ports", "udp_drop", "port"),
    "udp_drop_loop": ("udp-loop-guard", "udp_drop", "loop"),
    # Never answers a broadcast or multicast address, nor a source no
    # answer may go to: no policy can turn these off.
    "udp_drop_bad_dest": (ALWAYS, "udp_drop", "bad_dest"),
    "udp_drop_bad_source": (ALWAYS, "udp_drop", "bad_source"),
    "udp_drop_deny": ("deny", "udp_drop", "deny"),
    "udp_drop_table": ("rate-table-size", "udp_drop", "table"),
    "udp_drop_rate": ("udp-rate", "udp_drop", "rate"),
    "udp_drop_global_rate": ("udp-global-rate", "udp_drop", "global_rate"),
    "udp_drop_oversize": ("udp-max-datagram", "udp_drop", "oversize"),
    "tcp_refused_per_source": ("tcp-max-connections-per-source",
                               "tcp_refused", "per_source"),
    "tcp_refused_rate": ("tcp-connect-rate", "tcp_refused", "rate"),
    "tcp_refused_per_aggregate": ("tcp-max-connections-per-aggregate",
                                  "tcp_refused", "per_aggregate"),
    "tcp_refused_aggregate_rate": ("tcp-aggregate-connect-rate",
                                   "tcp_refused", "aggregate_rate"),
    "tcp_refused_max": ("tcp-max-connections", "tcp_refused", "max"),
    "tcp_refused_table": ("rate-table-size", "tcp_refused", "table"),
    "tcp_refused_deny": ("deny", "tcp_refused", "deny"),
    # Makes room for a newcomer when a worker is full.
    "tcp_evicted_largest": ("tcp-max-connections", "tcp_evicted",
                            "largest"),
    "tcp_evicted_slow": ("tcp-min-rate", "tcp_evicted", "slow"),
}
# slow-readers moves no counter: echod stops reading (backpressure).
BACKPRESSURE = "tcp-buffer"

STOP_WINDOW = 0.2  # s before the lab stopped a loop: its rate then


def stopped_by(kind, moved, lines):
    """What stopped the attack in echod: {counter, count, keyword, event,
    reason, log (the first of its log lines for it in this run, or None),
    log_lines}, or None. slow-readers moves no counter: echod stops reading
    what the peer does not read back (backpressure, `tcp-buffer`), which
    has no counter and no log line; its effect is the memory column."""
    guard = {k: v for k, v in moved.items() if k in STOPPERS and v > 0}
    if not guard:
        if kind == "memory":
            return {"counter": None, "count": None, "keyword": BACKPRESSURE,
                    "event": None, "reason": "backpressure", "log": None,
                    "log_lines": 0}
        return None
    counter = max(sorted(guard), key=guard.get)
    keyword, event, reason = STOPPERS[counter]
    logged = [line for line in lines
              if parse_logfmt(line).get("event") == event and
              parse_logfmt(line).get("reason") == reason]
    return {"counter": counter, "count": guard[counter], "keyword": keyword,
            "event": event, "reason": reason,
            "log": logged[0] if logged else None,
            "log_lines": len(logged)}


def loop_state(r):
    """(self-sustaining, packets/s at the victim in the last STOP_WINDOW
    before the lab stopped the victim's service)."""
    bins, width = r["capture"]["bins_in"], r["capture"]["bin"]
    start, stop = r["attacker"]["window"]
    # Still looping in the second half of the window: it would have gone
    # on without the lab.
    tail = sum(bins[int((start + stop) / 2 / width):int(stop / width)])
    last = sum(bins[int((stop - STOP_WINDOW) / width):int(stop / width)])
    return tail > 0, round(last / STOP_WINDOW)


def ratio(kind, r):
    """The figure each kind of attack is about, defined per kind:
    reflection and amplification: bytes at the victim / bytes the attacker
    sent; a loop: whether it sustains itself, and its rate when the lab
    stopped it (never a ratio: one packet started it, and the packets it
    made depend only on how long the lab let it run)."""
    if kind == "loop":
        alive, rate = loop_state(r)
        if alive:
            return {"kind": "loop", "self_sustaining": True,
                    "rate_at_stop": rate,
                    "text": f"self-sustaining: {rate:,} packets/s at the "
                    "victim when the lab stopped it"}
        n = r["loop_length"]
        return {"kind": "loop", "self_sustaining": False, "rate_at_stop": 0,
                "text": "no loop: the forged datagram got no answer" if n == 0
                else f"not self-sustaining: ended after {n} packets"}
    if kind in ("reflection", "amplification"):
        v = r["victim_bytes"] / max(1, r["attacker"]["sent_bytes"])
        return {"kind": kind, "value": round(v, 4),
                "text": f"{v:.2f}× (bytes at the victim / bytes the "
                "attacker sent)"}
    return None


def verdict(kind, r):
    """(worked: bool, why) for one side's measurements r."""
    legit = r["legit"]
    legit_ok = legit["sent"] > 0 and legit["echoed"] >= 0.9 * legit["sent"]
    stop = r.get("stopped_by")
    by = f" ({stop['counter']}: {stop['keyword']})" if stop and \
        stop["counter"] else ""
    if kind == "loop":
        if r["ratio"]["self_sustaining"] or not legit_ok:
            return True, (f"still looping when the lab stopped it "
                          f"({r['ratio']['rate_at_stop']:,} packets/s, "
                          f"{r['loop_length']:,} packets)")
        # A loop that ran a while before something broke it still gave the
        # attacker that many packets for one; a guard ends it in a few.
        if r["loop_length"] >= 20:
            return True, (f"ran {r['loop_length']} packets, then a drop "
                          "broke it")
        if r["loop_length"] == 0:
            return False, "no loop: the forged datagram got no answer" + by
        return False, (f"the loop ended after {r['loop_length']} packets" +
                       by)
    if kind in ("reflection", "amplification"):
        ratio_p = r["victim_packets"] / max(1, r["attacker"]["sent"])
        if kind == "amplification":
            if ratio_p >= 1.5:
                return True, f"{ratio_p:.1f} answers per forged datagram"
            if ratio_p <= 0.1 and legit_ok:
                return False, (f"{ratio_p:.2f} answers per forged "
                               "datagram" + by)
        elif ratio_p >= 0.9:
            return True, (f"{100 * ratio_p:.0f}% of the forged datagrams "
                          "reflected")
        if ratio_p > 0.1 or not legit_ok:
            return True, (f"{100 * ratio_p:.1f}% reflected, legitimate "
                          f"client {legit['echoed']}/{legit['sent']}")
        return False, (f"{100 * ratio_p:.1f}% reflected, legitimate client "
                       f"{legit['echoed']}/{legit['sent']}" + by)
    if kind == "memory":
        grew = r["memory_growth_kib"] * 1024
        attempted = r["attacker"]["attempted_bytes"]
        if grew >= 0.25 * attempted or not legit_ok:
            return True, (f"memory grew {grew >> 10} KiB for "
                          f"{attempted >> 10} KiB sent")
        return False, (f"memory grew {grew >> 10} KiB, legitimate client "
                       "served")
    if kind == "lockout":
        if not legit_ok:
            return True, (f"legitimate client locked out "
                          f"({legit['echoed']}/{legit['sent']})")
        return False, (f"legitimate client served; attacker holds "
                       f"{r['attacker']['held']} connections" + by)
    raise ValueError(kind)


# ---------------------------------------------------------------- the lab

BUILTIN = "built-in (policy/echod.conf)"


def policy_tag(path):
    """The run directory's policy part: 'builtin', or the file's name."""
    if not path:
        return "builtin"
    stem = "".join(c if c.isalnum() or c in "._-" else "_"
                   for c in Path(path).name)
    return stem.removesuffix(".conf") or "policy"


class Lab:
    def __init__(self, args):
        self.echod = str(Path(args.echod).resolve())
        self.naive = str(Path(args.naive).resolve())
        self.client = str(Path(args.client).resolve())
        self.policy = str(Path(args.policy).resolve()) if args.policy \
            else None
        self.p = SCALE["short" if args.short else "full"]
        self.no_slide = args.no_slide
        # The servers each attack runs against, in order: side key, label.
        self.sides = {}
        if not self.policy or args.naive_too:
            self.sides["naive"] = "naive server (lab/naive.c)"
        self.sides["echod"] = f"echod, policy {BUILTIN}"
        if self.policy:
            self.sides["custom"] = f"echod, policy {self.policy}"
        self.servers = []   # Echod objects (echod, naive, victim services)
        self.captures = []  # capture.py processes (Popen)
        self.socks = []
        self.topo = None
        self.work = None    # the run's directory until it is complete

    def attack_starts(self):
        """Called by each attack just before its first forged packet or
        connection: the chart's time 0."""
        self.t_attack = time.monotonic()
        return self.t_attack

    def start_server(self, host, argv):
        d = Echod(self.topo[host].exec_argv([str(a) for a in argv]), PORT,
                  self.policy)
        self.servers.append(d)
        d.wait_ready()
        return d

    def server_argv(self, side):
        if side == "naive":
            return [self.naive, "-n", NAIVE_NOFILE, "-s", 60,
                    "udp-echo:7", "tcp-echo:7"]
        if side == "custom":
            return [self.echod, "-c", self.policy]
        return [self.echod]

    def run_side(self, name, side):
        fn, hosts, legit_kind, kind = ATTACKS[name]
        servers = [self.start_server(f"srv{i + 1}", self.server_argv(side))
                   for i in range(hosts)]
        main = servers[0]
        rss0 = sum(server_rss(d) for d in servers)
        c0 = main.counters()
        log0 = len(main.log_lines())
        t0 = self.t0 = time.monotonic()
        proto = "tcp" if kind in ("memory", "lockout") else "udp"
        caps = {v: Capture(self, host, t0, 40, self.work / "pcap" /
                           f"{name}-{side}-{v}.pcap")
                for v, host in VANTAGES[proto]}
        legit = LegitUdp(self, v6=legit_kind == "v6") if legit_kind else None
        self.t_attack = None
        attacker = fn(self, side)
        attacker["start"] = round(self.t_attack - t0, 3)
        legit_result = attacker.pop("legit", None) or legit.stop()
        release = attacker.pop("release", None)
        # The datagrams in flight, judged; TCP attackers still hold theirs.
        counters = main.counters() if release else settled(main)
        rss1 = sum(server_rss(d) for d in servers)
        elapsed = time.monotonic() - t0
        if release:
            release()
        captured = {v: c.stop() for v, c in caps.items()}
        for d in servers:
            d.kill_all()
            self.servers.remove(d)
        lines = main.log_lines()[log0:]
        log = Path("logs") / f"{name}-{side}.log"
        (self.work / log).write_text("".join(f"{line}\n" for line in lines))
        moved = {k: v - c0.get(k, 0) for k, v in counters.items()
                 if v != c0.get(k, 0) and k not in ("ts", "pid")}
        first = captured[VANTAGES[proto][0][0]]
        at_victim = proto == "udp"
        r = {
            "attacker": attacker,
            "victim_packets": first["in"]["packets"] if at_victim else None,
            "victim_bytes": first["in"]["bytes"] if at_victim else None,
            "victim_addresses": first["in"]["addresses"] if at_victim
            else None,
            "victim_sent": first["out"]["packets"] if at_victim else None,
            "loop_length": None,
            "memory_growth_kib": rss1 - rss0,
            "rss_kib": [rss0, rss1],
            "legit": legit_result,
            "counters": moved,
            "stopped_by": None if side == "naive" else
            stopped_by(kind, moved, lines),
            "log": str(log),
            "log_lines": len(lines),
            "seconds": round(elapsed, 2),
            "capture": first,
            "pcap": {v: {**c["pcap"],
                         "path": str(Path(c["pcap"]["path"]).relative_to(
                             self.work)),
                         "in": c["in"]["packets"], "out": c["out"]["packets"]}
                     for v, c in captured.items()},
        }
        if kind == "loop":
            r["loop_length"] = first["in"]["packets"] + \
                first["out"]["packets"]
        r["ratio"] = ratio(kind, r)
        r["worked"], r["why"] = verdict(kind, r)
        return r

    def run(self, names, base):
        topo.clean_stale()
        t_start = time.monotonic()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        self.work = base / f".partial-{stamp}-{os.getpid()}"
        (self.work / "pcap").mkdir(parents=True)
        (self.work / "logs").mkdir()
        self.topo = topo.Topology()
        results = {}
        for name in names:
            results[name] = {}
            for side in self.sides:
                r = self.run_side(name, side)
                results[name][side] = r
                print(f"lab: {name:16} {side:6}: {r['why']} "
                      f"({r['seconds']:.1f} s)", flush=True)
        run_dir = self._claim(base, f"{stamp}-{policy_tag(self.policy)}")
        doc = {
            "version": 2,
            "run": run_dir.name,
            "policy": self.policy or BUILTIN,
            "sides": self.sides,
            "scale": "short" if self.p is SCALE["short"] else "full",
            "seconds": round(time.monotonic() - t_start, 1),
            "pcap_bound": {**PCAP_BOUND, "max_bytes": PCAP_MAX_BYTES},
            "attacks": {n: {"kind": ATTACKS[n][3], **results[n]}
                        for n in names},
        }
        work = self.work
        (work / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
        table = report.table(doc)
        (work / "table.md").write_text(table)
        svg = report.chart(doc, names)
        (work / "chart.svg").write_text(svg)
        png = None if self.no_slide else \
            render_png(work / "chart.svg", *report.svg_size(svg))
        os.rename(work, run_dir)
        self.work = None
        latest = base / "latest"
        tmp = base / f".latest-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name)
        os.replace(tmp, latest)
        print()
        print(table)
        print(f"lab: {doc['seconds']} s; results: {run_dir / 'results.json'}"
              f", table: {run_dir / 'table.md'}, chart: "
              f"{run_dir / 'chart.svg'}" +
              (f", slide: {run_dir / 'chart.png'}" if png else
               " (no slide)") +
              f", captures: {run_dir / 'pcap'}; {latest} -> {run_dir.name}")
        return doc

    @staticmethod
    def _claim(base, name):
        """A directory name no other run has: NAME, else NAME-2, ..."""
        for k in range(1, 1000):
            d = base / (name if k == 1 else f"{name}-{k}")
            try:
                d.mkdir()
            except FileExistsError:
                continue
            d.rmdir()  # os.rename(work, d) takes its place
            return d
        raise RuntimeError(f"no free run directory for {name} in {base}")

    def cleanup(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        for d in self.servers:
            d.kill_all()
        for p in self.captures:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        if self.topo is not None:
            self.topo.delete()
        if self.work is not None:  # an unfinished run leaves nothing
            shutil.rmtree(self.work, ignore_errors=True)


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-quic", "--no-first-run",
                  "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1"]


def render_png(svg, width, height):
    """chart.png beside svg, as headless chromium draws it at the SVG's
    own size (root needs --no-sandbox); None without chromium."""
    chromium = shutil.which("chromium")
    if chromium is None:
        print("lab: no chart.png: chromium is not installed",
              file=sys.stderr)
        return None
    png = svg.resolve().with_suffix(".png")
    with tempfile.TemporaryDirectory(prefix="echod-lab-chromium-") as prof:
        r = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={prof}",
             f"--window-size={width},{height}", f"--screenshot={png}",
             svg.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, cwd=prof)
    if r.returncode != 0 or not png.exists():
        # The figures stand without their picture: say so, go on.
        print(f"lab: chromium could not draw {svg}: "
              f"{r.stderr.strip()[-2000:]}", file=sys.stderr)
        return None
    return png


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attack", help="one attack or a comma-separated list "
                    f"({', '.join(ATTACKS)}); default: all")
    ap.add_argument("--policy", help="also run echod with this policy file, "
                    "against echod with the built-in policy")
    ap.add_argument("--naive-too", action="store_true",
                    help="with --policy: also run the naive server")
    ap.add_argument("--out", default="build/lab",
                    help="each run writes OUT/<UTC time>-<policy>/ and "
                    "points OUT/latest at it (default: build/lab)")
    ap.add_argument("--echod", default="build/echod")
    ap.add_argument("--naive", default="build/lab/naive")
    ap.add_argument("--client", default="build/echo-client")
    ap.add_argument("--short", action="store_true",
                    help="smaller floods and windows (make test)")
    ap.add_argument("--no-slide", action="store_true",
                    help="no chart.png (chromium takes seconds)")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every attack worked against the "
                    "naive server and failed against echod with the "
                    "built-in policy")
    ap.add_argument("--clean", action="store_true",
                    help="only remove what a stale run left, then exit")
    args = ap.parse_args()
    names = list(ATTACKS)
    if args.attack:
        names = args.attack.split(",")
        bad = [n for n in names if n not in ATTACKS]
        if bad:
            ap.error(f"unknown attack {', '.join(bad)}; one of: "
                     f"{', '.join(ATTACKS)}")
    if os.geteuid() != 0:
        print("lab: needs root (network namespaces, raw sockets, port 7): "
              "run it as root", file=sys.stderr)
        return 1
    if args.clean:
        topo.clean_stale()
        return 0
    for path in (args.echod, args.naive, args.client):
        if not os.access(path, os.X_OK):
            print(f"lab: {path} not built (make lab builds it)",
                  file=sys.stderr)
            return 1
    if args.policy:
        r = subprocess.run([args.echod, "-c", args.policy, "-t"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"lab: echod refuses the policy: {r.stderr.strip()}",
                  file=sys.stderr)
            return 1
    # One connection per slot of the lockout attacks, and then some.
    resource.setrlimit(resource.RLIMIT_NOFILE, (16384, 16384))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    lab = Lab(args)
    try:
        doc = lab.run(names, Path(args.out))
    except Interrupted as e:
        print(f"\nlab: {e}: stopped, cleaning up", file=sys.stderr)
        return 130
    finally:
        # No second signal may cut the clean-up short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        lab.cleanup()
    if args.check:
        bad = []
        for n, a in doc["attacks"].items():
            if "naive" in a and not a["naive"]["worked"]:
                bad.append(f"{n}: naive: {a['naive']['why']}")
            if a["echod"]["worked"]:
                bad.append(f"{n}: echod: {a['echod']['why']}")
        for b in bad:
            print(f"lab: check failed: {b}", file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
