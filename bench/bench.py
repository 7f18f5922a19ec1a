#!/usr/bin/python3
"""`make bench`: echod against its unguarded build and the Go tutorial server.

Run from the repository root as /usr/bin/python3 bench/bench.py, after
`make all unguarded` (make bench does both). In one run, with the server
pinned to CPU 0 and the load generator (build/echo-bench, which verifies
every echoed byte) to CPU 1 where there are two CPUs:

  rounds   interleaved: each round starts each server afresh and measures
           TCP at 1 and 64 connections in two shapes (at most 256 KiB in
           flight per connection; and unbounded, each connection writing
           64 KiB chunks as fast as its socket takes them, then a
           half-close and its echo read to the server's FIN), the TCP
           rows also with echod's splice path (tcp-splice-pipes 16, the
           same binary; the default is the copy path), UDP at 64 and 1400
           bytes (64
           datagrams outstanding at most, sent as GSO writes) and at 64
           bytes one datagram per send; then starts all the servers at
           once for the TCP and UDP round trips, which take turns between
           them (paired samples: one round trip to each in turn, so every
           server sees the same moments of machine noise);
           the table shows the median of the rounds
  idle     RSS of all the server's processes holding 10,000 idle TCP
           connections (spread over 40 loopback /24s)
  cores    echod with 1 and 2 workers, neither pinned, 8 source prefixes
  attack   in two network namespaces the bench creates (198.18.0.0/15
           only): legitimate UDP and TCP from one client while a spoofed
           flood from 100,000 sources hits the server; bounded in count
           and time (as root only, else skipped with a note). A model of
           two hosts: the server's veth end receives in a NAPI thread
           pinned to the server's CPU (threaded NAPI), as a real server's
           NIC receives on the server host, while the flood's sender
           (AF_PACKET, qdisc bypassed: cheap per datagram) is load like
           any other and runs on the load CPU with the legitimate client.
           TCP is measured with no flood (before and after, the mean),
           under the flood at a closed port (the control: the flood's
           sending and the kernel's drop, nothing of the server process)
           and under the flood at the server
  xdp      the same namespaces and one for the flood alone: echod with
           and without xdp-prefilter under a source-port-19 flood and a
           100,000-source flood at the default rates, paced at
           --xdp-flood-rate and unpaced (bench/xdp_rows.py; as root only)

echod and the unguarded build run policy/bench.conf (the defaults with the
rate limits lifted), except in the attack row: policy/bench-attack.conf,
the defaults with only the legitimate client (198.18.0.2) rate-exempt, so
echod limits the flood as it would in service; the unguarded build has
the guards compiled out and echoes the whole flood. Prints a table, then one machine-readable line per
figure: "BENCH key=value ...", and writes the same, with the command, the
commit and the host, to one file per run under bench/results/
(YYYY-MM-DD-HHMM-COMMIT.md; --results DIR elsewhere, --results '' not at
all). Exit 1 if a run failed or an echo differed.
"""

import argparse
import contextlib
import datetime
import io
import ipaddress
import platform
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import xdp_rows

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "build" / "echo-bench"
POLICY = ROOT / "policy" / "bench.conf"
# The under-attack row: the defaults, only the legitimate client exempt.
ATTACK_POLICY = ROOT / "policy" / "bench-attack.conf"
# echod's splice path, for the TCP rows: policy/bench.conf with 16 pipes
# per worker, written at run time so the two policies cannot drift apart.
SPLICE_POLICY = ROOT / "build" / "bench" / "bench-splice.conf"
GO_SRC = ROOT / "bench" / "goecho" / "main.go"
GO_BIN = ROOT / "build" / "bench" / "go-echo"
RESULTS = ROOT / "bench" / "results"
BENCH_NET = ipaddress.ip_network("198.18.0.0/15")
IDLE_CONNS = 10000
IDLE_PREFIXES = 40  # 40 x 256 (the per-source cap) > 10,000
FLOOD_SOURCES = 100000
CLOSED_PORT = 20009  # in the server namespace: nothing listens there
FLOOD_SHORTFALL = 0.97  # a flood below this share of its rate: a note


class BenchError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Server:
    """One server process; stderr drained by a thread so it never blocks."""

    def __init__(self, kind, argv, host, port):
        self.kind, self.host, self.port = kind, host, port
        self.lines = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(argv, cwd=str(ROOT),
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        threading.Thread(target=self._drain, daemon=True).start()
        self._wait_ready()

    def _drain(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            if " event=ready " in f" {line} ":
                self.ready.set()

    def _wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        if self.kind != "go":
            if not self.ready.wait(timeout):
                self.stop()
                raise BenchError(f"{self.kind} not ready:\n"
                                 + "".join(self.lines[-5:]))
            return
        while time.monotonic() < deadline:  # Go logs nothing when ready
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection((self.host, self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BenchError("the Go server did not start")

    def alive(self):
        return self.proc.poll() is None

    def pids(self):
        """The server's process and its descendants."""
        pids, todo = [], [self.proc.pid]
        parents = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    stat = Path(f"/proc/{d}/stat").read_text()
                    parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]),
                                       []).append(int(d))
                except OSError:
                    pass
        while todo:
            p = todo.pop()
            pids.append(p)
            todo.extend(parents.get(p, []))
        return pids

    def counters(self, timeout=3.0):
        """echod only: SIGUSR1, then the fields of the next event=counters
        line."""
        start = len(self.lines)
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[start:]:
                if " event=counters " in f" {line} ":
                    return {k: int(v) for k, v in
                            (w.split("=", 1) for w in line.split()
                             if "=" in w) if v.isdigit()}
            time.sleep(0.02)
        raise BenchError(f"{self.kind}: no counters line after SIGUSR1")

    def rss_kib(self):
        """VmRSS summed over the server and its descendants."""
        pids = self.pids()
        total = 0
        for p in pids:
            try:
                for line in Path(f"/proc/{p}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def parse_kv(line):
    return dict(w.split("=", 1) for w in line.split() if "=" in w)


def run_load(args, cpus, prefix=(), timeout=60):
    argv = list(prefix) + (["taskset", "-c", cpus] if cpus else []) + \
        [str(BENCH)] + [str(a) for a in args]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: exit {r.returncode}: "
                         f"{r.stderr.strip()}")
    return parse_kv(r.stdout.strip().splitlines()[-1])


def free_port(host="127.0.0.1"):
    for _ in range(100):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((host, 0))
            port = t.getsockname()[1]
            u.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise BenchError("no free port")


def server_argv(kind, host, port, workers=1, cpus=None, prefix=(),
                policy=POLICY):
    pin = ["taskset", "-c", cpus] if cpus else []
    if kind == "go":
        return list(prefix) + pin + [str(GO_BIN), f"{host}:{port}"]
    if kind == "splice":
        policy = SPLICE_POLICY
    binary = ROOT / "build" / ("unguarded/echod" if kind == "unguarded"
                               else "echod")
    return list(prefix) + pin + [str(binary), "-c", str(policy),
                                 "-w", str(workers), "-l", f"{host}:{port}"]


def start(kind, cpus, host="127.0.0.1", workers=1, prefix=(), policy=POLICY):
    port = free_port() if host == "127.0.0.1" else 20007
    return Server(kind, server_argv(kind, host, port, workers, cpus, prefix,
                                    policy), host, port)


def build_go():
    if shutil.which("go") is None:
        return "golang-go is not installed: the Go column is skipped"
    GO_BIN.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOCACHE=str(ROOT / "build" / "go-cache"),
               GOPATH=str(ROOT / "build" / "gopath"), GO111MODULE="off",
               GOFLAGS="")
    r = subprocess.run(["go", "build", "-o", str(GO_BIN), str(GO_SRC)],
                       env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return f"go build failed: {r.stderr.strip()[:200]}"
    return None


# ---- the measurements ----

# UDP throughput load: 4 sockets (distinct source ports on 127.0.0.1, one
# source address, so policy/bench.conf's lifted per-source rates apply),
# at most 64 outstanding each (256 in all: the server's one socket buffer,
# 208 KiB by default, holds them without drops), each batch sent as one UDP
# GSO write (-g) so the one load CPU is not the bottleneck. On loopback a
# GSO write reaches a socket with UDP_GRO (echod's) as one buffer, a socket
# without it (the Go server's) as separate datagrams: the row without -g
# shows every server the same load, one datagram per send.
UDP_SOCKETS = 4
UDP_EACH = ["-w", 64] + ["-b", "127.0.0.1"] * UDP_SOCKETS
UDP_LOAD = UDP_EACH + ["-g"]

# Sequential round trips per RTT figure: p99 is then the 200th worst of
# 20,000 rather than the 50th of 5,000, so one stray scheduling delay on a
# shared machine moves it less (5,000 moved echod's p99 between 140 and
# 530 us from round to round). Even 20,000 in a row per server left the
# p99s of one server 150-780 us apart from round to round, wider than any
# difference between servers: the tail is this VM's wake-up latency, and
# it drifts over seconds. So the servers' round trips take turns, one
# each in turn (echo-bench with several targets), and each server's p99
# is drawn from the same stretch of time as the others'.
RTT_N = 20000

ROUND_METRICS = [
    # key, label, unit, echo-bench args, result field
    ("tcp1", "TCP, 1 connection", "MB/s", ["tcp", "-c", 1], "mb_per_s"),
    ("tcp64", "TCP, 64 connections", "MB/s", ["tcp", "-c", 64], "mb_per_s"),
    ("tcp1_unbounded", "TCP unbounded writes, 1 connection", "MB/s",
     ["tcp", "-u", "-c", 1], "mb_per_s"),
    ("tcp64_unbounded", "TCP unbounded writes, 64 connections", "MB/s",
     ["tcp", "-u", "-c", 64], "mb_per_s"),
    ("udp64", "UDP, 64 B datagrams/s", "dgram/s",
     ["udp", "-s", 64] + UDP_LOAD, "per_s"),
    ("udp64_each", "UDP 64 B, one datagram per send", "dgram/s",
     ["udp", "-s", 64] + UDP_EACH, "per_s"),
    ("udp1400", "UDP, 1400 B datagrams/s", "dgram/s",
     ["udp", "-s", 1400] + UDP_LOAD, "per_s"),
    ("tcp_rtt_p50", "TCP RTT p50", "us", ["tcp-rtt", "-n", RTT_N], "p50_us"),
    ("tcp_rtt_p99", "TCP RTT p99", "us", None, "p99_us"),
    ("udp_rtt_p50", "UDP RTT p50", "us", ["udp-rtt", "-n", RTT_N], "p50_us"),
    ("udp_rtt_p99", "UDP RTT p99", "us", None, "p99_us"),
]
RTT_KEYS = {"tcp_rtt_p50", "tcp_rtt_p99", "udp_rtt_p50", "udp_rtt_p99"}
CPU_ROWS = [(k + "_cpu", f"{label}: server CPU (ms per GB echoed)")
            for k, label, _, _, _ in ROUND_METRICS[:4]]
LOWER_IS_BETTER = {k for k, _ in CPU_ROWS} | {
    "tcp_rtt_p50", "tcp_rtt_p99", "udp_rtt_p50", "udp_rtt_p99", "idle_rss"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_busy_jiffies(cpu):
    """Ticks CPU `cpu` spent working (user, nice, system, irq, softirq):
    not idle, not waiting for I/O, not stolen by the hypervisor."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            t = [int(x) for x in line.split()[1:8]]
            return t[0] + t[1] + t[2] + t[5] + t[6]
    raise BenchError(f"/proc/stat has no cpu{cpu}")


def one_round(kind, seconds, srv_cpu, load_cpu, results):
    """The throughput rows, this server alone (the splice path: TCP's).
    With the server pinned to one CPU, each TCP row also records that
    CPU's working time per GB echoed: the load generator's CPU sets the
    MB/s on this machine, so what a server saves shows only there."""
    s = start(kind, srv_cpu)
    per_cpu = srv_cpu is not None and srv_cpu.isdigit()
    try:
        for key, _, _, args, field in ROUND_METRICS:
            if key in RTT_KEYS or (kind == "splice" and
                                   not key.startswith("tcp")):
                continue
            busy = cpu_busy_jiffies(srv_cpu) if per_cpu else 0
            last = run_load(args + ["-d", seconds, s.host, s.port], load_cpu)
            results.setdefault((kind, key), []).append(float(last[field]))
            if per_cpu and key.startswith("tcp"):
                busy = cpu_busy_jiffies(srv_cpu) - busy
                gb = float(last["bytes"]) / 1e9
                results.setdefault((kind, key + "_cpu"), []).append(
                    busy * 1000.0 / CLOCK_TICKS / gb)
        if not s.alive():
            raise BenchError(f"{kind} died during the round")
    finally:
        s.stop()


def rtt_round(kinds, srv_cpu, load_cpu, results, n=RTT_N):
    """The round-trip rows: all the servers up at once (each pinned to the
    server CPU), their round trips taking turns, in the order of kinds."""
    servers = []
    try:
        for kind in kinds:
            servers.append(start(kind, srv_cpu))
        targets = [str(a) for s in servers for a in (s.host, s.port)]
        for mode in ("tcp-rtt", "udp-rtt"):
            argv = (["taskset", "-c", load_cpu] if load_cpu else []) + \
                [str(BENCH), mode, "-n", str(n)] + targets
            r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise BenchError(f"{' '.join(argv)}: exit {r.returncode}: "
                                 f"{r.stderr.strip()}")
            lines = [parse_kv(x) for x in r.stdout.strip().splitlines()]
            if len(lines) != len(servers):
                raise BenchError(f"{mode}: {len(lines)} result lines for "
                                 f"{len(servers)} servers")
            proto = mode.split("-")[0]
            for s, kv in zip(servers, lines):
                if kv["target"] != f"{s.host}:{s.port}":
                    raise BenchError(f"{mode}: line for {kv['target']} "
                                     f"where {s.host}:{s.port} was due")
                for q in ("p50", "p99"):
                    results.setdefault((s.kind, f"{proto}_rtt_{q}"),
                                       []).append(float(kv[f"{q}_us"]))
        for s in servers:
            if not s.alive():
                raise BenchError(f"{s.kind} died during the round trips")
    finally:
        for s in servers:
            s.stop()


def idle_rss(kind, srv_cpu, load_cpu, results, notes):
    s = start(kind, srv_cpu)
    before = s.rss_kib()
    binds = []
    for i in range(IDLE_PREFIXES):
        binds += ["-b", f"127.77.{i}.1"]
    argv = (["taskset", "-c", load_cpu] if load_cpu else []) + \
        [str(BENCH), "idle", "-c", IDLE_CONNS] + binds + [s.host, s.port]
    p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        kv = parse_kv(p.stdout.readline())
        rss = s.rss_kib() if s.alive() else None
        opened = int(kv.get("open", 0))
    finally:
        p.stdin.close()
        p.wait(30)
        alive = s.alive()
        s.stop()
    if rss is None or not alive:
        last = s.lines[-1].strip() if s.lines else "no message"
        notes.append(f"{kind}: died while holding idle connections "
                     f"({opened} were echoed; its last words: {last})")
        results[(kind, "idle_rss")] = [float("nan")]
        return
    if opened < IDLE_CONNS:
        notes.append(f"{kind}: only {opened} of {IDLE_CONNS} idle "
                     f"connections were served")
    results[(kind, "idle_rss")] = [rss / 1024.0]
    results[(kind, "idle_open")] = [float(opened)]
    results[(kind, "idle_rss_before")] = [before / 1024.0]


def cores(seconds, results):
    """echod with 1 and 2 workers, unpinned, 8 source prefixes."""
    binds = []
    for i in range(8):
        binds += ["-b", f"127.78.{i}.1"]
    for workers in (1, 2):
        s = start("echod", None, workers=workers)
        try:
            r = run_load(["udp", "-s", 64, "-w", 16, "-g", "-d", seconds]
                         + binds
                         + [s.host, s.port], None)
            results[("echod", f"cores_udp64_w{workers}")] = [float(r["per_s"])]
            r = run_load(["tcp", "-c", 64, "-d", seconds] + binds
                         + [s.host, s.port], None)
            results[("echod", f"cores_tcp64_w{workers}")] = [
                float(r["mb_per_s"])]
        finally:
            s.stop()


# ---- under attack, in namespaces ----

class Namespaces:
    """srv (198.18.0.1) and cli (198.18.0.2) joined by a veth pair; srv
    routes all of 198.18.0.0/15 back through cli, so spoofed sources need
    one neighbour entry, and cli drops the replies (no forwarding)."""

    def __init__(self):
        tag = f"echod-b-{os.getpid()}"
        self.srv, self.cli = f"{tag}-srv", f"{tag}-cli"
        self.made = []
        for ns in (self.srv, self.cli):
            self.sh("ip", "netns", "add", ns)
            self.made.append(ns)
            self.sh("ip", "-n", ns, "link", "set", "lo", "up")
        self.sh("ip", "link", "add", "ebv-s", "netns", self.srv, "type",
                "veth", "peer", "name", "ebv-c", "netns", self.cli)
        for ns, dev, addr in ((self.srv, "ebv-s", "198.18.0.1/24"),
                              (self.cli, "ebv-c", "198.18.0.2/24")):
            assert ipaddress.ip_interface(addr).ip in BENCH_NET
            self.sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            self.sh("ip", "-n", ns, "link", "set", dev, "up")
        self.sh("ip", "-n", self.srv, "route", "add", "198.18.0.0/15",
                "via", "198.18.0.2")
        for key in ("all", "default", "ebv-s"):
            self.sh("ip", "netns", "exec", self.srv, "sysctl", "-qw",
                    f"net.ipv4.conf.{key}.rp_filter=0")

    @staticmethod
    def sh(*argv):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise BenchError(f"{' '.join(argv)}: {r.stderr.strip()}")

    def exec_prefix(self, ns):
        return ["ip", "netns", "exec", ns]

    def server_receive_on(self, cpu):
        """Run the server side's receive work on cpu, as a server host's
        NIC does on its own CPUs: GRO on ebv-s puts the veth in NAPI mode,
        threaded NAPI gives it a kernel thread (napi/ebv-s-ID), pinned to
        cpu. Without it a veth delivers each packet in the sender's
        softirq, on the sender's CPU. Returns the thread ids, or raises
        BenchError saying what is missing."""
        if shutil.which("ethtool") is None:
            raise BenchError("ethtool is missing")
        before = set(napi_threads())
        # The veth hands a packet to its NAPI only if it may be merged:
        # from a socket (the flood's AF_PACKET frames and UDP are; TCP's
        # segments, which carry their own destructor, stay inline) and
        # with UDP GRO forwarding on at the receiving end.
        self.sh(*self.exec_prefix(self.srv), "ethtool", "-K", "ebv-s",
                "gro", "on", "rx-udp-gro-forwarding", "on")
        self.sh(*self.exec_prefix(self.srv), "sh", "-c",
                "echo 1 > /sys/class/net/ebv-s/threaded")
        ours = sorted(set(napi_threads()) - before)
        if not ours:
            raise BenchError("no NAPI thread appeared for ebv-s")
        for tid in ours:
            self.sh("taskset", "-pc", cpu, str(tid))
        return ours

    def mac(self, ns, dev):
        """dev's MAC address in namespace ns."""
        r = subprocess.run(self.exec_prefix(ns) + [
            "cat", f"/sys/class/net/{dev}/address"], capture_output=True,
            text=True, timeout=10)
        if r.returncode != 0:
            raise BenchError(f"{dev}'s address: {r.stderr.strip()}")
        return r.stdout.strip()

    def delete(self):
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def napi_threads():
    """Ids of the kernel's threaded-NAPI threads for a device named ebv-s
    (whatever its namespace: kernel threads' names are global)."""
    out = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and Path(f"/proc/{d}/comm").read_text() \
                    .startswith("napi/ebv-s-"):
                out.append(int(d))
        except OSError:
            pass
    return out


def attack(kinds, rounds, seconds, srv_cpu, load_cpu, flood_rate, results,
           notes):
    if os.geteuid() != 0 or shutil.which("ip") is None:
        notes.append("attack row skipped: needs root and iproute2 "
                     "(network namespaces)")
        return
    try:
        ns = Namespaces()
    except BenchError as e:
        notes.append(f"attack row skipped: {e}")
        return
    notes.append("attack row: policy/bench-attack.conf (the defaults, only "
                 "the legitimate client 198.18.0.2 rate-exempt); the "
                 "unguarded build has no guards and echoes the whole flood")
    cli = ns.exec_prefix(ns.cli)
    flood_seconds = 2 * seconds + 1.5
    # Two hosts on one machine. A veth delivers each packet in the
    # sender's softirq, on the sender's CPU, so without more the server
    # kernel's receive work for the flood would run on the load CPU (the
    # legitimate client's), and a real server's would not. The server's
    # veth end gets a NAPI thread pinned to the server's CPU instead, as a
    # NIC's receive runs on the server host: the flood's kernel work is
    # the server's, the flood's sending is load like every other load
    # (the load CPU), and the control (the same flood at a closed port)
    # measures what the sending costs the client.
    if srv_cpu:
        try:
            ns.server_receive_on(srv_cpu)
            notes.append("attack row: the server veth's receive work runs "
                         f"in a NAPI thread pinned to CPU {srv_cpu}")
        except BenchError as e:
            notes.append(f"attack row: no threaded NAPI ({e}): the "
                         "server kernel's receive work for the flood runs "
                         "on the load CPU")
    flood_pin = ["taskset", "-c", load_cpu] if load_cpu else []
    server_mac = ns.mac(ns.srv, "ebv-s")

    def flood(host, port, secs):
        return subprocess.Popen(
            cli + flood_pin + [
                str(BENCH), "flood", "-S", str(FLOOD_SOURCES), "-F",
                "198.18.4.0", "-r", str(flood_rate), "-d", str(secs),
                "-n", str(int(flood_rate * secs)), "-s", "64",
                "-i", "ebv-c", "-m", server_mac, host, str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def flood_done(p, secs, kind, what):
        out, err = p.communicate(timeout=secs + 10)
        if p.returncode != 0:
            raise BenchError(f"flood: {err.strip()}")
        r = parse_kv(out.strip().splitlines()[-1])
        if float(r["per_s"]) < FLOOD_SHORTFALL * flood_rate:
            notes.append(f"attack row: the flood {what} reached "
                         f"{float(r['per_s']):.0f}/s of its {flood_rate}/s "
                         f"({kind})")
        return r

    try:
        for kind in [k for _ in range(rounds) for k in kinds]:
            s = start(kind, srv_cpu, host="198.18.0.1",
                      prefix=ns.exec_prefix(ns.srv), policy=ATTACK_POLICY)
            try:
                target = [s.host, s.port]
                udp = ["udp", "-s", 64, "-w", 32, "-r", 20000, "-d", seconds]
                tcp = ["tcp", "-c", 1, "-d", seconds]
                base_udp = run_load(udp + target, load_cpu, cli)
                base_tcp = run_load(tcp + target, load_cpu, cli)
                # The control: the same flood at a port nobody listens
                # on costs the load CPU the flood's sending and the
                # server's CPU the kernel's drop, and the server process
                # nothing; the ratio to it is the server process's share.
                secs = seconds + 1.0
                ctl = flood(s.host, CLOSED_PORT, secs)
                time.sleep(0.5)  # let the flood reach its rate
                ctl_tcp = run_load(tcp + target, load_cpu, cli)
                flood_done(ctl, secs, kind, "at the closed port")
                hit = flood(s.host, s.port, flood_seconds)
                time.sleep(0.5)
                hit_udp = run_load(udp + target, load_cpu, cli)
                hit_tcp = run_load(tcp + target, load_cpu, cli)
                fl = flood_done(hit, flood_seconds, kind, "at the server")
                # Unloaded again after the flood: one 2 s TCP run here
                # moves by a third between runs, so "unloaded" is the
                # mean of one run before and one after the floods.
                after_tcp = run_load(tcp + target, load_cpu, cli)
                alive = s.alive()
            finally:
                s.stop()
            if not alive:
                notes.append(f"{kind} died under the flood")
            results.setdefault((kind, "attack_udp_pct"), []).append(
                float(hit_udp["echoed_pct"]))
            results.setdefault((kind, "attack_udp_base_pct"), []).append(
                float(base_udp["echoed_pct"]))
            results.setdefault((kind, "attack_tcp_ratio"), []).append(
                float(hit_tcp["mb_per_s"]) / float(ctl_tcp["mb_per_s"]))
            unloaded = (float(base_tcp["mb_per_s"]) +
                        float(after_tcp["mb_per_s"])) / 2
            results.setdefault((kind, "attack_tcp_unloaded_ratio"), []).append(
                float(hit_tcp["mb_per_s"]) / unloaded)
            results.setdefault((kind, "attack_tcp_base_mbs"), []).append(
                unloaded)
            results.setdefault((kind, "attack_tcp_mbs"), []).append(
                float(hit_tcp["mb_per_s"]))
            results.setdefault((kind, "attack_tcp_control_mbs"), []).append(
                float(ctl_tcp["mb_per_s"]))
            results.setdefault((kind, "attack_flood_pps"), []).append(
                float(fl["per_s"]))
    finally:
        ns.delete()


# ---- report ----

def fmt(key, v):
    if v != v:  # NaN
        return "died"
    if "rtt" in key:
        return f"{v:.0f}" if v >= 100 else f"{v:.1f}"
    if key.startswith("udp") or key.startswith("cores_udp"):
        return f"{v / 1000:.0f}k" if v >= 1000 else f"{v:.0f}"
    if key == "idle_rss":
        return f"{v:.1f} MiB"
    if key.endswith("_pct"):
        return f"{v:.1f}%"
    if key.endswith("_ratio"):
        return f"{v:.2f}x"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def paired_ratio(results, kind, key):
    """The round trips are paired (the servers took turns within a round):
    the median over rounds of that round's ratio, in the "echod Nx"
    sense (above 1 is echod ahead), keeps the rounds' shared noise out."""
    return statistics.median(
        theirs / mine for mine, theirs in zip(results[("echod", key)],
                                              results[(kind, key)]))


def report(kinds, results, notes, cmd):
    med = {k: statistics.median(v) for k, v in results.items()}
    names = {"echod": "echod", "unguarded": "echod unguarded",
             "splice": "echod, splice path", "go": "Go tutorial server"}
    rows = [(k, f"{label} ({unit})") for k, label, unit, _, _ in ROUND_METRICS]
    rows += CPU_ROWS
    rows += [("idle_rss", f"RSS, {IDLE_CONNS:,} idle TCP connections"),
             ("attack_udp_pct", "under attack: legit UDP echoed"),
             ("attack_tcp_ratio",
              "under attack: legit TCP vs the same flood at a closed port"),
             ("attack_tcp_unloaded_ratio",
              "under attack: legit TCP vs no flood")]
    head = "| metric | " + " | ".join(names[k] for k in kinds) + " |"
    print(head)
    print("|---" * (len(kinds) + 1) + "|")
    for key, label in rows:
        cells = []
        for k in kinds:
            v = med.get((k, key))
            if v is None:
                cells.append("—")
                continue
            cell = fmt(key, v)
            mine = med.get(("echod", key))
            if k != "echod" and mine is not None and v == v and v > 0 \
                    and mine == mine and not key.startswith("attack"):
                ratio = v / mine if key in LOWER_IS_BETTER else mine / v
                if key in RTT_KEYS:  # paired: the median of each round's
                    ratio = paired_ratio(results, k, key)
                cell += f" (echod {ratio:.2f}x)"
            cells.append(cell)
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    xdp_rows.report(med)
    for w in (1, 2):
        u, t = med.get(("echod", f"cores_udp64_w{w}")), \
            med.get(("echod", f"cores_tcp64_w{w}"))
        if u is not None:
            print(f"cores: echod, {w} worker{'s' if w > 1 else ''}, "
                  f"unpinned, 8 source prefixes: UDP 64 B {fmt('udp', u)}/s, "
                  f"TCP 64 connections {t:.0f} MB/s")
    for n in notes:
        print(f"note: {n}")
    print(f"command: {cmd}")
    for k in kinds[1:]:
        for key in sorted(RTT_KEYS):
            if (k, key) in results and ("echod", key) in results:
                print(f"BENCH server={k} metric={key}_paired_echod_ratio "
                      f"median={paired_ratio(results, k, key):.3f}")
    for (k, key), vals in sorted(results.items()):
        print(f"BENCH server={k} metric={key} median={statistics.median(vals):.3f}"
              f" rounds={len(vals)} values="
              + ",".join(f"{v:.3f}" for v in vals))


def git_commit():
    """The short commit measured, "-dirty" if the tree had changes."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=str(ROOT),
                              capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--",
                                     ".", ":!bench/results") else "")


def host():
    """One line: the kernel, the CPU model and how many CPUs."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"Linux {platform.release()}, {model}, "
            f"{os.cpu_count()} CPUs")


def write_splice_policy():
    """The splice column's policy: bench.conf with the splice path on."""
    SPLICE_POLICY.parent.mkdir(parents=True, exist_ok=True)
    SPLICE_POLICY.write_text(POLICY.read_text() + "\n# The splice path "
                             "(bench.py).\ntcp-splice-pipes 16\n")


def save_results(text, cmd, directory=RESULTS, when=None, commit=None,
                 machine=None, title="make bench"):
    """The run's report as bench/results/YYYY-MM-DD-HHMM-COMMIT.md (a
    second run within the minute gets -2, -3, ...): the command, the
    commit, the host, the tables and notes, then the BENCH lines in a
    block of their own. Its path."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    commit = commit or git_commit()
    directory.mkdir(parents=True, exist_ok=True)
    base = f"{when:%Y-%m-%d-%H%M}-{commit}"
    path, n = directory / f"{base}.md", 2
    while path.exists():
        path, n = directory / f"{base}-{n}.md", n + 1
    lines = text.rstrip("\n").split("\n")
    machine_lines = [l for l in lines if l.startswith("BENCH ")]
    prose = [l for l in lines
             if not l.startswith("BENCH ") and not l.startswith("command: ")]
    path.write_text(
        f"# {title}, {when:%Y-%m-%d %H:%M} UTC, commit {commit}\n\n"
        f"    {cmd}\n\n"
        f"Host: {machine or host()}.\n\n"
        + "\n".join(prose).strip("\n") + "\n\n"
        + "```\n" + "\n".join(machine_lines) + "\n```\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--flood-rate", type=int, default=100000,
                    help="spoofed datagrams per second (bounded)")
    ap.add_argument("--xdp-flood-rate", type=int, default=130000,
                    help="the XDP rows' paced flood, datagrams per second")
    ap.add_argument("--quick", action="store_true",
                    help="1 round of 1 s, no idle/cores/attack rows")
    ap.add_argument("--results", default=str(RESULTS),
                    help="directory for this run's results file "
                         "('' for none)")
    ap.add_argument("--skip", default="",
                    help="comma list of: idle,cores,attack,xdp,go,"
                         "unguarded,splice")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.seconds = 1, 1.0
        a.skip += ",idle,cores,attack,xdp"
    skip = set(a.skip.split(","))
    for need in (BENCH, ROOT / "build/echod", ROOT / "build/unguarded/echod"):
        if not need.exists():
            sys.exit(f"bench: {need} is missing: run make bench")
    notes = []
    kinds = ["echod"]
    if "unguarded" not in skip:
        kinds.append("unguarded")
    if "splice" not in skip:
        write_splice_policy()
        kinds.append("splice")
    if "go" not in skip:
        why = build_go()
        if why:
            notes.append(why)
        else:
            kinds.append("go")
    ncpu = len(os.sched_getaffinity(0))
    srv_cpu, load_cpu = ("0", "1") if ncpu >= 2 else (None, None)
    if not srv_cpu:
        notes.append("one CPU: server and load are not pinned")
    notes.append(f"load average at start: {os.getloadavg()[0]:.2f}")
    results = {}
    # The splice path is a TCP column only: its rows, no round trips,
    # idle or attack rows (the same binary as echod's).
    whole = [k for k in kinds if k != "splice"]
    t0 = time.monotonic()
    try:
        # A warm-up round, not recorded: in every run measured here the
        # first server of the first round was the slowest of its rounds
        # (caches, page faults, the CPU waking up), whichever it was.
        for kind in kinds:
            log(f"bench: warm-up round (not recorded): {kind}")
            one_round(kind, min(a.seconds, 1.0), srv_cpu, load_cpu, {})
        rtt_round(whole, srv_cpu, load_cpu, {}, n=2000)
        for r in range(a.rounds):
            # Each round starts with a different server, so none is always
            # measured first or right after the same neighbour.
            order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
            for kind in order:
                log(f"bench: round {r + 1}/{a.rounds}: {kind}")
                one_round(kind, a.seconds, srv_cpu, load_cpu, results)
            log(f"bench: round {r + 1}/{a.rounds}: round trips, taking "
                f"turns: {', '.join(k for k in order if k != 'splice')}")
            rtt_round([k for k in order if k != "splice"], srv_cpu,
                      load_cpu, results)
        if "idle" not in skip:
            for kind in whole:
                log(f"bench: idle connections: {kind}")
                idle_rss(kind, srv_cpu, load_cpu, results, notes)
        if "cores" not in skip:
            log("bench: 1 and 2 workers")
            cores(a.seconds, results)
        if "attack" not in skip:
            log("bench: under attack")
            attack(whole, a.rounds, a.seconds, srv_cpu, load_cpu,
                   a.flood_rate, results, notes)
        if "xdp" not in skip:
            log("bench: under attack, with and without the XDP prefilter")
            xdp_rows.run(sys.modules[__name__], a.seconds, srv_cpu,
                         load_cpu, a.xdp_flood_rate, results, notes)
    except (BenchError, subprocess.TimeoutExpired) as e:
        log(f"bench: FAILED: {e}")
        return 1
    notes.append(f"load average at end: {os.getloadavg()[0]:.2f}; "
                 f"{time.monotonic() - t0:.0f} s in all")
    cmd = "make bench" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'"
                          if sys.argv[1:] else "")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report(kinds, results, notes, cmd)
    print(out.getvalue(), end="")
    if a.results:
        log(f"bench: results in {save_results(out.getvalue(), cmd, Path(a.results))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
