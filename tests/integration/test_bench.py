"""`make bench`'s parts: the load generator verifies every echoed byte (so a
wrong server fails instead of winning), and the unguarded comparison build
cannot become a production server (SECURITY.md, "The benchmark build")."""

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import (ROOT, EXIT_OSERR, Echod, free_port, run_echod,
                      workers_of)

BENCH = ROOT / "build" / "echo-bench"
UNGUARDED = ROOT / "build" / "unguarded" / "echod"
BENCH_POLICY = ROOT / "policy" / "bench.conf"
ATTACK_POLICY = ROOT / "policy" / "bench-attack.conf"

sys.path.insert(0, str(ROOT / "bench"))
import bench as bench_py  # noqa: E402  (the driver: its Namespaces)
import xdp_rows  # noqa: E402


def bench(*args, timeout=30):
    r = subprocess.run([str(BENCH)] + [str(a) for a in args],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    fields = {}
    if r.stdout.strip():
        fields = dict(w.split("=", 1)
                      for w in r.stdout.split() if "=" in w)
    return r.returncode, fields, r.stderr


def seccomp_mode(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Seccomp:"):
            return int(line.split()[1])
    raise AssertionError("no Seccomp line")


class CorruptingServer:
    """Echoes TCP and UDP on 127.0.0.1, but flips one byte after the first
    `clean` bytes of each connection and in every 100th datagram."""

    def __init__(self, clean=100000):
        self.clean = clean
        self.tcp, self.udp = self._tcp_udp_pair()
        self.port = self.tcp.getsockname()[1]
        self.tcp.listen(8)
        self.stopping = False
        for target in (self._accept, self._datagrams):
            threading.Thread(target=target, daemon=True).start()

    @staticmethod
    def _tcp_udp_pair():
        """TCP and UDP sockets on one port: the kernel picks it for TCP,
        and another one if that number is taken for UDP."""
        for _ in range(50):
            tcp = socket.socket()
            tcp.bind(("127.0.0.1", 0))
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind(("127.0.0.1", tcp.getsockname()[1]))
                return tcp, udp
            except OSError:
                tcp.close()
                udp.close()
        raise RuntimeError("no port free for both TCP and UDP in 50 tries")

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._stream, args=(c,),
                             daemon=True).start()

    def _stream(self, c):
        seen = 0
        with c:
            while True:
                try:
                    data = bytearray(c.recv(65536))
                except OSError:
                    return
                if not data:
                    return
                if seen <= self.clean < seen + len(data):
                    data[self.clean - seen] ^= 0x01
                seen += len(data)
                try:
                    c.sendall(data)
                except OSError:
                    return

    def _datagrams(self):
        n = 0
        while not self.stopping:
            try:
                data, peer = self.udp.recvfrom(65536)
            except OSError:
                return
            data = bytearray(data)
            n += 1
            if n % 100 == 0:
                data[-1] ^= 0x01
            self.udp.sendto(bytes(data), peer)

    def close(self):
        self.stopping = True
        self.tcp.close()
        self.udp.close()


def test_every_mode_verifies_a_real_echod(echod):
    d = echod(policy_text=BENCH_POLICY.read_text(), listen=("127.0.0.1",))
    rc, f, err = bench("tcp", "-c", 4, "-d", 0.5, "127.0.0.1", d.port)
    assert rc == 0, err
    assert f["verified"] == "yes" and int(f["bytes"]) > 1_000_000
    # Unbounded writes: every byte sent comes back before the FIN.
    before = d.counters()
    rc, f, err = bench("tcp", "-u", "-c", 4, "-d", 0.5, "127.0.0.1", d.port)
    assert rc == 0, err
    assert f["verified"] == "yes" and int(f["bytes"]) > 1_000_000
    c = d.counters_when(lambda c: c["tcp_closed"] == before["tcp_closed"] + 4)
    assert c["tcp_bytes_out"] - before["tcp_bytes_out"] == int(f["bytes"])
    rc, f, err = bench("udp", "-s", 64, "-d", 0.5, "127.0.0.1", d.port)
    assert rc == 0, err
    assert int(f["received"]) > 1000
    assert int(f["received"]) == int(f["sent"]) - int(f["unanswered"])
    # GSO batches (-g) from 4 sockets: the server sees, counts and echoes
    # separate 64-byte datagrams, each verified.
    before = d.counters()
    rc, f, err = bench("udp", "-s", 64, "-g", "-w", 64,
                       *["-b", "127.0.0.1"] * 4, "-d", 0.5,
                       "127.0.0.1", d.port)
    assert rc == 0, err
    assert f["gso"] == "yes" and f["sockets"] == "4"
    assert int(f["received"]) > 1000
    c = d.counters()
    assert c["udp_bytes_in"] - before["udp_bytes_in"] == \
        64 * (c["udp_received"] - before["udp_received"])
    assert c["udp_received"] - before["udp_received"] >= int(f["received"])
    for mode in ("tcp-rtt", "udp-rtt"):
        rc, f, err = bench(mode, "-n", 200, "127.0.0.1", d.port)
        assert rc == 0, err
        assert int(f["lost"]) == 0 and float(f["p99_us"]) > 0
    c = d.counters()
    assert c["udp_echoed"] >= 1200 and c["tcp_bytes_out"] > 1_000_000


def test_a_wrong_echo_fails_the_run():
    srv = CorruptingServer()
    try:
        rc, _, err = bench("tcp", "-c", 1, "-d", 3, "127.0.0.1", srv.port)
        assert rc == 1, err
        assert "differs near byte" in err
        rc, _, err = bench("tcp", "-u", "-c", 1, "-d", 3, "127.0.0.1",
                           srv.port)
        assert rc == 1, err
        assert "differs near byte" in err
        rc, _, err = bench("udp", "-s", 64, "-w", 8, "-d", 3, "127.0.0.1",
                           srv.port)
        assert rc == 1, err
        assert "differs" in err
        rc, _, err = bench("udp", "-s", 64, "-w", 8, "-g", "-d", 3,
                           "127.0.0.1", srv.port)
        assert rc == 1, err
        assert "differs" in err
    finally:
        srv.close()


def test_unbounded_writes_fail_on_a_short_echo():
    """A server whose echo is right but holds back the last 1000 bytes and
    closes on the client's FIN without them: the unbounded mode's FIN check
    fails the run."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)

    def serve():
        c, _ = lst.accept()
        held = b""
        with c:
            while True:
                try:
                    data = c.recv(65536)
                except OSError:
                    return
                if not data:
                    return  # the client's FIN: close, the rest unsent
                held += data
                try:
                    c.sendall(held[:-1000])
                except OSError:
                    return
                held = held[-1000:]

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        rc, _, err = bench("tcp", "-u", "-c", 1, "-d", 0.5, "127.0.0.1",
                           lst.getsockname()[1])
        assert rc == 1, err
        assert "FIN after" in err, err
    finally:
        lst.close()
        t.join(5)


def test_round_trips_take_turns_between_targets(echod):
    """Several targets: one round trip to each in turn, one verified result
    line per target in the order given, and each server sees exactly its
    share (its own counters say so)."""
    a = echod(policy_text=BENCH_POLICY.read_text(), listen=("127.0.0.1",))
    b = echod(policy_text=BENCH_POLICY.read_text(), listen=("127.0.0.1",))
    before = [a.counters(), b.counters()]
    rc, _, err = bench("udp-rtt", "-n", 300, "127.0.0.1", a.port,
                       "127.0.0.1", b.port)
    assert rc == 0, err
    r = subprocess.run([str(BENCH), "tcp-rtt", "-n", "200", "127.0.0.1",
                        str(a.port), "127.0.0.1", str(b.port)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = [dict(w.split("=", 1) for w in x.split())
             for x in r.stdout.splitlines()]
    assert [x["target"] for x in lines] == [f"127.0.0.1:{a.port}",
                                            f"127.0.0.1:{b.port}"]
    assert all(x["count"] == "200" and x["lost"] == "0" and
               x["verified"] == "yes" and float(x["p99_us"]) > 0
               for x in lines)
    for d, was in zip((a, b), before):
        c = d.counters_when(
            lambda c, was=was: c["udp_echoed"] - was["udp_echoed"] >= 300)
        assert c["udp_echoed"] - was["udp_echoed"] == 300
        assert c["tcp_bytes_out"] - was["tcp_bytes_out"] == 200 * 64


def test_round_trips_taking_turns_still_verify_every_echo(echod):
    d = echod(policy_text=BENCH_POLICY.read_text(), listen=("127.0.0.1",))
    srv = CorruptingServer()
    try:
        rc, _, err = bench("udp-rtt", "-n", 300, "127.0.0.1", d.port,
                           "127.0.0.1", srv.port)
        assert rc == 1, err
        assert "differs" in err
    finally:
        srv.close()


def test_only_the_round_trip_modes_take_several_targets():
    rc, _, err = bench("udp", "-d", 0.1, "127.0.0.1", 7, "127.0.0.1", 8)
    assert rc == 64 and "only tcp-rtt and udp-rtt" in err
    rc, _, err = bench("udp-rtt", "127.0.0.1", 7, "127.0.0.1")
    assert rc == 64 and "need HOST and PORT" in err
    rc, _, err = bench("udp-rtt", *["127.0.0.1", 7] * 5)
    assert rc == 64 and "at most 4 targets" in err


def test_paired_ratio_is_the_median_of_each_rounds_ratio():
    res = {("echod", "udp_rtt_p99"): [100.0, 400.0, 200.0],
           ("unguarded", "udp_rtt_p99"): [110.0, 300.0, 240.0]}
    # rounds: 1.10, 0.75, 1.20 -> 1.10; the ratio of medians would be 1.20
    assert bench_py.paired_ratio(res, "unguarded", "udp_rtt_p99") == \
        pytest.approx(1.10)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                    reason="the server CPU is measured only when pinned")
def test_tcp_rows_record_the_server_cpus_work_per_gb():
    """The load's one CPU sets a TCP row's MB/s on a two-CPU machine, so
    each TCP row also records the pinned server CPU's working time per GB
    echoed; the UDP rows do not (a datagram count, not bytes)."""
    bench_py.write_splice_policy()
    res = {}
    bench_py.one_round("splice", "0.3", "0", "1", res)
    tcp = [k for k, *_ in bench_py.ROUND_METRICS[:4]]
    for key in tcp:
        ms = res[("splice", key + "_cpu")]
        # CPU 0 works while it echoes: some ms per GB (the suite's other
        # tests share the CPU, so no tight upper bound here).
        assert len(ms) == 1 and 20 < ms[0] < 100_000, (key, ms)
    assert sorted(k for _, k in res) == sorted(tcp + [k + "_cpu"
                                                      for k in tcp])
    res = {("echod", "tcp64_cpu"): [400.0], ("splice", "tcp64_cpu"): [300.0]}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bench_py.report(["echod", "splice"], res, [], "make bench")
    # Less CPU per GB is better: the splice column shows echod at 0.75x.
    assert ("| TCP, 64 connections: server CPU (ms per GB echoed) | 400 | "
            "300 (echod 0.75x) |") in out.getvalue()


def test_paths_report_puts_each_shape_beside_the_copy_path():
    import paths
    res = {}
    for kind, mbs in (("echod", 2000.0), ("splice", 1500.0)):
        for key, _, _ in paths.SHAPES:
            res[(kind, key, "mbs")] = [mbs]
            res[(kind, key, "cpu")] = [400.0 if kind == "echod" else 300.0]
            res[(kind, key, "load")] = [99.0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        paths.report(["echod", "splice"], res, ["a note"])
    text = out.getvalue()
    row = "| 64 connections, 256 KiB in flight each (make bench) | "
    assert text.count(row) == 3  # MB/s, CPU and the load; no calls, no share
    assert row + "2000 | 1500 (0.75x copy) |" in text
    assert row + "400 | 300 |" in text
    assert "system calls" not in text
    assert "BENCH server=splice metric=c64u_mbs median=1500.000" in text


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                    reason="bench-paths pins the server and the load")
def test_paths_measures_each_figure_from_a_real_echod(tmp_path):
    """bench-paths' figures for one short load: the share spliced comes
    from echod's counters (0% on the copy path, all of it with free
    pipes), the waits from /proc, the system calls from perf if there."""
    import shutil
    import paths
    bench_py.write_splice_policy()
    res = {}
    for kind in ("echod", "splice"):
        s = bench_py.start(kind, "0")
        try:
            paths.measure(s, ["-c", 1, "-w", 65536], "0.3", res, kind,
                          "c1w64k", tmp_path)
        finally:
            s.stop()
    assert res[("echod", "c1w64k", "spliced")] == [0.0]
    assert res[("splice", "c1w64k", "spliced")] == [100.0]
    for kind in ("echod", "splice"):
        figures = {w for k, _, w in res if k == kind}
        assert {"mbs", "cpu", "load", "sleeps"} <= figures
        assert ("calls" in figures) == (shutil.which("perf") is not None)
        assert res[(kind, "c1w64k", "mbs")][0] > 10
        # A 64 KiB round trip at a time: the server waits for each one.
        assert res[(kind, "c1w64k", "sleeps")][0] > 1
        if "calls" in figures:
            assert res[(kind, "c1w64k", "calls")][0] > 1


def test_each_run_writes_its_own_results_file(tmp_path):
    """make bench keeps each run as bench/results/DATE-TIME-COMMIT.md: the
    command, the commit, the host, the table and the BENCH lines; a
    second run in the same minute gets a file of its own."""
    import datetime
    res = {("echod", "udp_rtt_p99"): [100.0, 400.0, 200.0],
           ("unguarded", "udp_rtt_p99"): [110.0, 300.0, 240.0]}
    cmd = "make bench BENCH_ARGS='--quick'"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bench_py.report(["echod", "unguarded"], res, ["a note"], cmd)
    when = datetime.datetime(2026, 12, 7, 14, 5,
                             tzinfo=datetime.timezone.utc)
    first = bench_py.save_results(out.getvalue(), cmd, tmp_path, when,
                                  "abc1234", "Linux 6.1, a CPU, 2 CPUs")
    second = bench_py.save_results(out.getvalue(), cmd, tmp_path, when,
                                   "abc1234", "Linux 6.1, a CPU, 2 CPUs")
    assert first.name == "2026-12-07-1405-abc1234.md"
    assert second.name == "2026-12-07-1405-abc1234-2.md"
    text = first.read_text()
    assert text.startswith(
        "# make bench, 2026-12-07 14:05 UTC, commit abc1234\n\n"
        f"    {cmd}\n\nHost: Linux 6.1, a CPU, 2 CPUs.\n")
    assert "| metric | echod | echod unguarded |" in text
    assert "| UDP RTT p99 (us) | 200 | 240 (echod 1.10x) |" in text
    assert "note: a note" in text
    assert "BENCH server=unguarded metric=udp_rtt_p99 median=240.000" in \
        text.split("```")[1]
    assert text.count("make bench BENCH_ARGS") == 1


class SlowServer:
    """Echoes each UDP datagram on 127.0.0.1 `delay` seconds late."""

    def __init__(self, delay):
        self.delay = delay
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        threading.Thread(target=self._datagrams, daemon=True).start()

    def _datagrams(self):
        while True:
            try:
                data, peer = self.udp.recvfrom(65536)
            except OSError:
                return
            threading.Timer(self.delay, self._reply, (data, peer)).start()

    def _reply(self, data, peer):
        try:
            self.udp.sendto(data, peer)
        except OSError:
            pass

    def close(self):
        self.udp.close()


def test_the_last_echoes_are_waited_for_not_counted_lost():
    """Echoes 150 ms late: the datagrams sent in the last 150 ms are still
    received (the run drains them) and nothing is counted unanswered."""
    srv = SlowServer(0.15)
    try:
        rc, f, err = bench("udp", "-s", 64, "-w", 8, "-r", 40, "-d", 1,
                           "127.0.0.1", srv.port)
    finally:
        srv.close()
    assert rc == 0, err
    assert int(f["sent"]) >= 30
    assert f["received"] == f["sent"] and f["unanswered"] == "0", f
    assert f["echoed_pct"] == "100.00"


def test_xdp_rows_account_for_every_flood_datagram():
    """The shares of the flood: XDP drops (every reason), socket buffer
    losses, what echod read beyond the legitimate datagrams, the rest."""
    c0 = {"udp_received": 50, "xdp_udp_drop_rate": 10,
          "xdp_udp_drop_port": 0}
    c1 = {"udp_received": 50 + 300 + 20, "xdp_udp_drop_rate": 410,
          "xdp_udp_drop_port": 100, "udp_drop_rate": 7}
    r = xdp_rows.shares(1000, 20, c0, c1, {"RcvbufErrors": 5},
                        {"RcvbufErrors": 105})
    assert r == {"xdp_pct": 50.0, "sockbuf_pct": 10.0, "reached_pct": 30.0,
                 "lost_on_the_way_pct": 10.0}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")
def test_xdp_rows_find_the_worker_beside_the_policy_reader(echod):
    """The XDP rows read one worker's CPU time: with a policy file the
    supervisor also has a policy reader, which is not that worker."""
    d = echod(args=["-c", str(BENCH_POLICY)], workers=1,
              listen=("127.0.0.1",))
    assert len(Path(f"/proc/{d.pid}/task/{d.pid}/children").read_text()
               .split()) == 2  # the worker and the policy reader
    assert xdp_rows._worker(bench_py, d.pid) == workers_of(d.pid)[0]


def test_xdp_rows_flood_has_its_own_veth():
    """The flood's namespace reaches the server over ebf-s and the echoes
    to its spoofed sources go back that way; the legitimate client's
    address stays on ebv-s. Deleted with every namespace."""
    ns = xdp_rows.FloodNamespaces(bench_py)
    try:
        made = list(ns.ns.made)
        assert len(made) == 3
        for dst, dev in (("198.18.4.1", "ebf-s"), ("198.19.138.1", "ebf-s"),
                         ("198.18.0.2", "ebv-s")):
            out = subprocess.run(["ip", "-n", ns.srv, "route", "get", dst],
                                 capture_output=True, text=True,
                                 check=True).stdout
            assert f" dev {dev} " in out, (dst, out)
        out = subprocess.run(["ip", "-n", ns.fld, "route", "get",
                              "198.18.0.1"], capture_output=True, text=True,
                             check=True).stdout
        assert " dev ebf-f " in out, out
    finally:
        ns.delete()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True,
                            text=True, check=True).stdout
    assert not any(n in listed for n in made)


def test_flood_refuses_addresses_outside_the_bench_range():
    for target, first in (("192.0.2.1", "198.18.4.0"),
                          ("198.18.0.1", "10.0.0.0"),
                          ("198.18.0.1", "198.19.255.0")):  # runs past /15
        rc, _, err = bench("flood", "-S", 1000, "-F", first, "-n", 10,
                           target, 7)
        assert rc == 64, err
        assert "198.18.0.0/15" in err


RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind(("198.18.0.1", 20011))
s.settimeout(3.0)
print("ready", flush=True)
seen = []
try:
    while len(seen) < int(sys.argv[1]):
        data, peer = s.recvfrom(2048)
        seen.append(f"{peer[0]}:{peer[1]}:{len(data)}")
except socket.timeout:
    pass
print(" ".join(seen), flush=True)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")
def test_server_receive_work_runs_in_a_napi_thread_on_the_server_cpu():
    """The attack row's two-host model: ebv-s gets a NAPI thread of its
    own, pinned to the server's CPU, and it is the one that receives the
    flood (its CPU time grows while frames arrive). Gone with the
    namespaces."""
    cpu = str(max(os.sched_getaffinity(0)))
    ns = bench_py.Namespaces()
    try:
        tids = ns.server_receive_on(cpu)
        assert tids and set(tids) <= set(bench_py.napi_threads())
        threaded = subprocess.run(
            ns.exec_prefix(ns.srv) + ["cat",
                                      "/sys/class/net/ebv-s/threaded"],
            capture_output=True, text=True, check=True).stdout.strip()
        assert threaded == "1"
        for tid in tids:
            assert os.sched_getaffinity(tid) == {int(cpu)}

        def ticks():
            return sum(sum(int(x) for x in Path(f"/proc/{t}/stat").read_text()
                           .rsplit(")", 1)[1].split()[11:13])
                       for t in tids)

        was = ticks()
        r = subprocess.run(ns.exec_prefix(ns.cli) + [
            str(BENCH), "flood", "-S", "100", "-F", "198.18.4.0", "-n",
            "200000", "-d", "3", "-r", "200000", "-s", "64", "-i", "ebv-c",
            "-m", ns.mac(ns.srv, "ebv-s"), "198.18.0.1", "20011"],
            capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert ticks() > was
    finally:
        ns.delete()
    assert not set(tids) & set(bench_py.napi_threads())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")
def test_packet_flood_frames_are_valid_datagrams_from_each_source():
    """flood -i/-m (the attack row's: AF_PACKET, the qdisc bypassed, the
    IP header and checksum its own) to the server's MAC as the bench reads
    it: the server namespace's kernel delivers every frame (it drops a bad
    checksum or a wrong MAC) as a 64-byte datagram from one of the -S
    sources, each source used."""
    ns = bench_py.Namespaces()
    try:
        mac = ns.mac(ns.srv, "ebv-s")
        link = subprocess.run(["ip", "-n", ns.srv, "link", "show", "ebv-s"],
                              capture_output=True, text=True,
                              check=True).stdout
        assert f"link/ether {mac} " in link
        rx = subprocess.Popen(ns.exec_prefix(ns.srv) + [
            sys.executable, "-c", RECEIVER, "300"], stdout=subprocess.PIPE,
            text=True)
        try:
            assert rx.stdout.readline().strip() == "ready"
            r = subprocess.run(ns.exec_prefix(ns.cli) + [
                str(BENCH), "flood", "-S", "100", "-F", "198.18.4.0", "-n",
                "300", "-r", "20000", "-s", "64", "-i", "ebv-c", "-m", mac,
                "198.18.0.1", "20011"], capture_output=True, text=True,
                timeout=30)
            assert r.returncode == 0, r.stderr
            assert "sent=300 " in r.stdout, r.stdout
            seen = rx.communicate(timeout=10)[0].split()
        finally:
            rx.kill()
            rx.wait()
    finally:
        ns.delete()
    assert len(seen) == 300
    assert {s.split(":")[2] for s in seen} == {"64"}
    assert {s.split(":")[0] for s in seen} == {
        f"198.18.4.{i}" for i in range(100)}


def test_packet_flood_needs_the_targets_mac():
    for extra in (["-i", "lo"], ["-i", "lo", "-m", "02:00:00:00:00"],
                  ["-i", "lo", "-m", "02:00:00:00:00:0g"]):
        rc, _, err = bench("flood", "-S", 10, "-F", "198.18.4.0", "-n", 10,
                           *extra, "198.18.0.1", 7)
        assert rc == 64, err
        assert "-m" in err, err


def test_the_ordinary_build_has_no_unguarded_code():
    assert b"unguarded_build" not in (ROOT / "build" / "echod").read_bytes()
    assert b"unguarded_build" in UNGUARDED.read_bytes()


def test_unguarded_build_refuses_anything_but_loopback_and_bench_range():
    for addr in ("0.0.0.0", "192.0.2.1", "[::]"):
        r = subprocess.run([str(UNGUARDED), "-w", "1", "-l", f"{addr}:7"],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == EXIT_OSERR, r.stderr
        assert "step=unguarded_build" in r.stderr


def test_unguarded_build_warns_and_runs_without_seccomp(echod):
    port = free_port()
    d = Echod([str(UNGUARDED), "-c", str(BENCH_POLICY), "-w", "1",
               "-l", f"127.0.0.1:{port}"], port, None)
    try:
        d.wait_ready()
        assert "event=unguarded_build" in d.log_text()
        worker = workers_of(d.pid)[0]
        assert seccomp_mode(worker) == 0
        rc, f, err = bench("udp-rtt", "-n", 50, "127.0.0.1", port)
        assert rc == 0, err
    finally:
        d.kill_all()
    # ... while the ordinary build under the same policy is filtered.
    g = echod(policy_text=BENCH_POLICY.read_text(), listen=("127.0.0.1",))
    assert seccomp_mode(workers_of(g.pid)[0]) == 2


def test_no_io_uring_in_either_allowlist():
    """SECURITY.md: io_uring's queued operations bypass seccomp, so no
    allowlist may contain it (make bench measures echod without it)."""
    for name in ("seccomp-worker.list", "seccomp-supervisor.list"):
        text = (ROOT / "policy" / name).read_text()
        words = {line.split("#")[0].split()[0]
                 for line in text.splitlines() if line.split("#")[0].split()}
        assert not {w for w in words if w.startswith("io_uring")}, name


def test_make_install_refuses_the_unguarded_build(tmp_path):
    r = subprocess.run(["make", "-s", "install", "BUILD=build/unguarded",
                        "EXTRA_CFLAGS=-DECHOD_BENCH_UNGUARDED",
                        f"DESTDIR={tmp_path}"], cwd=str(ROOT),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0
    assert "bench-only unguarded build; refusing" in r.stderr
    assert not list(tmp_path.rglob("echod"))


def test_attack_policy_is_the_defaults_with_one_client_exempt():
    """The under-attack row's policy lifts no rate for anyone but the
    bench's legitimate client: its only directive is that one address."""
    lines = [l.split("#")[0].split() for l in
             ATTACK_POLICY.read_text().splitlines()]
    assert [w for w in lines if w] == [["rate-exempt", "198.18.0.2"]]
    r = run_echod(["-t", "-c", ATTACK_POLICY])
    assert r.returncode == 0, r.stderr
