#!/usr/bin/python3
"""The reflection-attack lab: each classic attack on an echo service, run
against a naive server and against echod, side by side (`make lab`).

For every attack and each server (first the naive one, then echod with its
default policy or --policy), the lab starts the server in srv1 (fraggle:
srv1-srv3) of the namespaces in topo.py, starts a bounded capture on the
victim's interface and a legitimate client, runs the attack from the
attacker's namespace, and reads the result off the wire (capture.py), the
server's counters (SIGUSR1, event=counters), /proc (memory) and what the
legitimate client got. Then it writes results.json, table.md and chart.svg
into --out and prints the table.

results.json: {"version": 1, "policy", "scale" (full or short), "seconds",
"attacks": {NAME: {"kind", "naive": R, "echod": R}}}, where each R holds
  attacker           what the attacker sent (sent, sent_bytes, start: s
                     after the capture began; per attack: window, held...)
  victim_packets, victim_bytes, victim_addresses   what reached the victim
                     from the servers (capture), and how many of its
                     addresses it hit; victim_sent: what the victim sent
  loop_length        loops: packets both ways between server and victim
  amplification      bytes at the victim per byte the attacker sent
  memory_growth_kib, rss_kib [before, after]   the server's processes
  legit              {sent, echoed} of the legitimate client
  counters           the server's counters that moved (SIGUSR1)
  capture            capture.py's whole output (bins for the chart)
  worked, why        the verdict: did the attack get what it wanted?

Everything is bounded in count and time; the namespaces and processes go
on exit, on Ctrl-C and on SIGTERM (the lab writes no file but its three
results, at the end), and a run whose driver died is cleaned up by the
next one. Needs root.
"""

import argparse
import json
import os
import random
import resource
import select
import signal
import socket
import subprocess
import sys
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
from conftest import Echod, children_of, rss_kib  # noqa: E402

PORT = 7
EPHEMERAL = 40000
NAIVE_NOFILE = 1024  # the usual default soft limit

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
    """capture.py on the victim's interface, from start to stop()."""

    def __init__(self, lab, t0, max_seconds):
        argv = lab.topo["vic"].exec_argv(
            ["/usr/bin/python3", HERE / "capture.py", "--iface", topo.IFACE,
             "--t0", repr(t0), "--bin", "0.05",
             "--max-seconds", max_seconds, "--max-packets", 1_000_000] +
            [x for n in SRV_NETS for x in ("--peer", n)])
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
# judges it: loop, reflection, amplification, memory, lockout), charted?)
ATTACKS = {
    "chargen-loop": (attack_chargen_loop, 1, "v4", "loop", True),
    "echo-loop": (attack_echo_loop, 1, "v4", "loop", True),
    "echo-loop-high": (attack_echo_loop_high, 1, "v4", "loop", True),
    "srcport": (attack_srcport, 1, "v4", "reflection", True),
    "fraggle": (attack_fraggle, 3, "v4", "amplification", True),
    "reflection": (attack_reflection, 1, "v4", "reflection", True),
    "spoofed-sources": (attack_spoofed_sources, 1, "v6", "reflection", True),
    "slow-readers": (attack_slow_readers, 1, None, "memory", False),
    "slowloris": (attack_slowloris, 1, None, "lockout", False),
    "conn-flood": (attack_conn_flood, 1, None, "lockout", False),
}


# ---------------------------------------------------------------- verdicts


def verdict(kind, r):
    """(worked: bool, why) for one side's measurements r."""
    legit = r["legit"]
    legit_ok = legit["sent"] > 0 and legit["echoed"] >= 0.9 * legit["sent"]
    if kind == "loop":
        # Looping in the second half of the window: it would have gone on.
        bins, width = r["capture"]["bins_in"], r["capture"]["bin"]
        start, stop = r["attacker"]["window"]
        tail = sum(bins[int((start + stop) / 2 / width):int(stop / width)])
        if tail > 0 or not legit_ok:
            return True, (f"still looping when the lab stopped it "
                          f"({r['loop_length']} packets)")
        # A loop that ran a while before something broke it still gave the
        # attacker that many packets for one; a guard ends it in a few.
        if r["loop_length"] >= 20:
            return True, (f"ran {r['loop_length']} packets, then a drop "
                          "broke it")
        return False, f"died by itself after {r['loop_length']} packets"
    if kind in ("reflection", "amplification"):
        ratio = r["victim_packets"] / max(1, r["attacker"]["sent"])
        if kind == "amplification":
            if ratio >= 1.5:
                return True, f"{ratio:.1f} answers per forged datagram"
            if ratio <= 0.1 and legit_ok:
                return False, f"{ratio:.2f} answers per forged datagram"
        elif ratio >= 0.9:
            return True, f"{100 * ratio:.0f}% of the forged datagrams reflected"
        if ratio > 0.1 or not legit_ok:
            return True, (f"{100 * ratio:.1f}% reflected, legitimate client "
                          f"{legit['echoed']}/{legit['sent']}")
        return False, (f"{100 * ratio:.1f}% reflected, legitimate client "
                       f"{legit['echoed']}/{legit['sent']}")
    if kind == "memory":
        grew = r["memory_growth_kib"] * 1024
        attempted = r["attacker"]["attempted_bytes"]
        if grew >= 0.25 * attempted or not legit_ok:
            return True, (f"memory grew {grew >> 10} KiB for "
                          f"{attempted >> 10} KiB sent")
        return False, f"memory grew {grew >> 10} KiB, legitimate client served"
    if kind == "lockout":
        if not legit_ok:
            return True, (f"legitimate client locked out "
                          f"({legit['echoed']}/{legit['sent']})")
        return False, (f"legitimate client served; attacker holds "
                       f"{r['attacker']['held']} connections")
    raise ValueError(kind)


# ---------------------------------------------------------------- the lab


class Lab:
    def __init__(self, args):
        self.echod = str(Path(args.echod).resolve())
        self.naive = str(Path(args.naive).resolve())
        self.client = str(Path(args.client).resolve())
        self.policy = str(Path(args.policy).resolve()) if args.policy \
            else None
        self.p = SCALE["short" if args.short else "full"]
        self.servers = []   # Echod objects (echod, naive, victim services)
        self.captures = []  # capture.py processes (Popen)
        self.socks = []
        self.topo = None

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
        return [self.echod] + (["-c", self.policy] if self.policy else [])

    def run_side(self, name, side):
        fn, hosts, legit_kind, kind, _ = ATTACKS[name]
        servers = [self.start_server(f"srv{i + 1}", self.server_argv(side))
                   for i in range(hosts)]
        main = servers[0]
        rss0 = sum(server_rss(d) for d in servers)
        c0 = main.counters()
        t0 = self.t0 = time.monotonic()
        cap = Capture(self, t0, max_seconds=40)
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
        captured = cap.stop()
        for d in servers:
            d.kill_all()
            self.servers.remove(d)
        moved = {k: v - c0.get(k, 0) for k, v in counters.items()
                 if v != c0.get(k, 0) and k not in ("ts", "pid")}
        r = {
            "attacker": attacker,
            "victim_packets": captured["in"]["packets"],
            "victim_bytes": captured["in"]["bytes"],
            "victim_addresses": captured["in"]["addresses"],
            "victim_sent": captured["out"]["packets"],
            "loop_length": None,
            "amplification": round(captured["in"]["bytes"] /
                                   attacker["sent_bytes"], 2)
            if attacker["sent_bytes"] and kind != "memory" else None,
            "memory_growth_kib": rss1 - rss0,
            "rss_kib": [rss0, rss1],
            "legit": legit_result,
            "counters": moved,
            "seconds": round(elapsed, 2),
            "capture": captured,
        }
        if kind == "loop":
            r["loop_length"] = captured["in"]["packets"] + \
                captured["out"]["packets"]
        r["worked"], r["why"] = verdict(kind, r)
        return r

    def run(self, names, out):
        topo.clean_stale()
        t_start = time.monotonic()
        self.topo = topo.Topology()
        results = {}
        for name in names:
            results[name] = {}
            for side in ("naive", "echod"):
                r = self.run_side(name, side)
                results[name][side] = r
                print(f"lab: {name:16} {side:5}: {r['why']} "
                      f"({r['seconds']:.1f} s)", flush=True)
        doc = {
            "version": 1,
            "policy": self.policy or "built-in (policy/echod.conf)",
            "scale": "short" if self.p is SCALE["short"] else "full",
            "seconds": round(time.monotonic() - t_start, 1),
            "attacks": {n: {"kind": ATTACKS[n][3], **results[n]}
                        for n in names},
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
        table = report.table(doc)
        (out / "table.md").write_text(table)
        (out / "chart.svg").write_text(report.chart(
            doc, [n for n in names if ATTACKS[n][4]]))
        print()
        print(table)
        print(f"lab: {doc['seconds']} s; results: {out / 'results.json'}, "
              f"table: {out / 'table.md'}, chart: {out / 'chart.svg'}")
        return doc

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attack", help="one attack or a comma-separated list "
                    f"({', '.join(ATTACKS)}); default: all")
    ap.add_argument("--policy", help="policy file for echod (default: the "
                    "built-in policy)")
    ap.add_argument("--out", default="build/lab")
    ap.add_argument("--echod", default="build/echod")
    ap.add_argument("--naive", default="build/lab/naive")
    ap.add_argument("--client", default="build/echo-client")
    ap.add_argument("--short", action="store_true",
                    help="smaller floods and windows (make test)")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every attack worked against the "
                    "naive server and failed against echod")
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
              "sudo make lab", file=sys.stderr)
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
        bad = [f"{n}: naive: {a['naive']['why']}; echod: {a['echod']['why']}"
               for n, a in doc["attacks"].items()
               if not a["naive"]["worked"] or a["echod"]["worked"]]
        for b in bad:
            print(f"lab: check failed: {b}", file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
