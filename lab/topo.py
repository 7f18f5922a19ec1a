"""The lab's network: seven namespaces around a router, and their cleanup.

    atk  198.18.1.2/24 (+ .10-.13)  2001:db8:0:100::2/64  the attacker
    vic  198.18.2.2/24              2001:db8:0:200::2/64  the victim (and
                                    its site 2001:db8:0:200::/56)
    legit 198.18.3.2/24             2001:db8:0:300::2/64  a legitimate client
    srv1..srv3  198.18.0.1-3/24 brd 198.18.0.255, 2001:db8::1-3/64, on one
                bridge: the servers' LAN (srv1 is the server under attack;
                fraggle also starts servers on srv2 and srv3)
    rtr  the router between them: forwards everything, checks no source
         (no BCP 38: that is what lets the attacker forge), and forwards
         directed broadcasts into the LAN (bc_forwarding), as old routers
         did.

Each host routes only 198.18.0.0/15 and 2001:db8::/32, via rtr, and rtr
knows nothing else: nothing can leave the lab. Namespaces are named
echod-lab-<driver pid>-<host>; a run whose driver is gone is stale, and
the next run kills what is left in its namespaces and deletes them. Runs
whose drivers live are never touched: several may run at once.
"""

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" /
                       "integration"))
import netns  # noqa: E402  (tests/integration/netns.py)

PREFIX = "echod-lab-"

SRV = ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
SRV6 = ["2001:db8::1", "2001:db8::2", "2001:db8::3"]
SRV_BCAST = "198.18.0.255"
SRV_NETS = ["198.18.0.0/24", "2001:db8::/64"]
ATK, ATK6 = "198.18.1.2", "2001:db8:0:100::2"
ATK_EXTRA = ["198.18.1.10", "198.18.1.11", "198.18.1.12", "198.18.1.13"]
VIC, VIC6 = "198.18.2.2", "2001:db8:0:200::2"
VIC_SITE6 = "2001:db8:0:200::/56"
LEGIT, LEGIT6 = "198.18.3.2", "2001:db8:0:300::2"

# host: (IPv4 address/len, router's IPv4, IPv6 address/len, router's IPv6)
LINKS = {
    "atk": (ATK + "/24", "198.18.1.1", ATK6 + "/64", "2001:db8:0:100::1"),
    "vic": (VIC + "/24", "198.18.2.1", VIC6 + "/64", "2001:db8:0:200::1"),
    "legit": (LEGIT + "/24", "198.18.3.1", LEGIT6 + "/64",
              "2001:db8:0:300::1"),
}
RTR_LAN, RTR_LAN6 = "198.18.0.254", "2001:db8::fe"
IFACE = "eth0"  # every host's interface


def _owner_alive(pid, path):
    """Is the process that made `path` (named after its pid) still there?
    Only if a process `pid` exists and started before `path` last changed:
    a later one only reused the number. Any live owner counts, whatever it
    runs (the tests build the topology from pytest)."""
    if pid == os.getpid():
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f
                         if line.startswith("btime "))
        changed = os.stat(path).st_mtime
    except (OSError, StopIteration, ValueError, IndexError):
        return False
    return btime + start_ticks / os.sysconf("SC_CLK_TCK") <= changed + 1


def _kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def netns_pids(name):
    r = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                       text=True, timeout=10)
    return [int(p) for p in r.stdout.split()]


def clean_stale(log=print):
    """Remove what runs of the lab whose driver is gone left behind: the
    processes inside their namespaces (each started by that run) and the
    namespaces. Returns what was removed."""
    removed = []
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        names = []
    for name in sorted(names):
        m = re.match(re.escape(PREFIX) + r"(\d+)-", name)
        if not m or _owner_alive(int(m.group(1)), f"/run/netns/{name}"):
            continue
        _kill_pids(netns_pids(name))
        subprocess.run(["ip", "netns", "del", name], capture_output=True,
                       timeout=10)
        removed.append(name)
    if removed:
        log(f"lab: removed a stale run: {' '.join(removed)}")
    return removed


class Topology:
    """Builds the namespaces in __init__; delete() removes them (after the
    caller has killed its processes and closed its sockets)."""

    HOSTS = ["rtr", "srv1", "srv2", "srv3", "atk", "vic", "legit"]

    def __init__(self):
        for a in SRV + SRV6 + [ATK, ATK6, VIC, VIC6, LEGIT, LEGIT6] + \
                ATK_EXTRA:
            netns.check_address(a)
        self.ns = {}
        try:
            for h in self.HOSTS:
                self.ns[h] = netns.Netns(h, name=f"{PREFIX}{os.getpid()}-{h}")
                for key in ("net.ipv6.conf.all.accept_dad",
                            "net.ipv6.conf.default.accept_dad",
                            "net.ipv4.conf.all.rp_filter",
                            "net.ipv4.conf.default.rp_filter"):
                    self.ns[h].sysctl(key, 0)
            self._router()
            self._lan()
            for h, link in LINKS.items():
                self._host_link(h, *link)
            for a in ATK_EXTRA:
                self.ns["atk"].ip("addr", "add", a + "/24", "dev", IFACE)
            self.check()
        except Exception:
            self.delete()
            raise

    def __getitem__(self, host):
        return self.ns[host]

    def _router(self):
        r = self.ns["rtr"]
        r.sysctl("net.ipv4.ip_forward", 1)
        r.sysctl("net.ipv6.conf.all.forwarding", 1)
        r.sysctl("net.ipv4.conf.all.bc_forwarding", 1)
        r.ip("link", "add", "br-srv", "type", "bridge")
        r.ip("addr", "add", RTR_LAN + "/24", "brd", "+", "dev", "br-srv")
        r.ip("addr", "add", RTR_LAN6 + "/64", "dev", "br-srv", "nodad")
        r.ip("link", "set", "br-srv", "up")
        r.sysctl("net.ipv4.conf.br-srv.bc_forwarding", 1)
        r.sysctl("net.ipv4.conf.br-srv.rp_filter", 0)

    def _lan(self):
        r = self.ns["rtr"]
        for i, h in enumerate(["srv1", "srv2", "srv3"]):
            port = f"to-{h}"
            r.ip("link", "add", port, "type", "veth", "peer", "name", IFACE,
                 "netns", self.ns[h].name)
            r.ip("link", "set", port, "master", "br-srv", "up")
            ns = self.ns[h]
            ns.ip("addr", "add", SRV[i] + "/24", "brd", "+", "dev", IFACE)
            ns.ip("addr", "add", SRV6[i] + "/64", "dev", IFACE, "nodad")
            ns.ip("link", "set", IFACE, "up")
            ns.ip("route", "add", "198.18.0.0/15", "via", RTR_LAN)
            ns.ip("-6", "route", "add", "2001:db8::/32", "via", RTR_LAN6)

    def _host_link(self, h, addr, gw, addr6, gw6):
        r, ns = self.ns["rtr"], self.ns[h]
        port = f"to-{h}"
        r.ip("link", "add", port, "type", "veth", "peer", "name", IFACE,
             "netns", ns.name)
        r.ip("addr", "add", gw + "/24", "dev", port)
        r.ip("addr", "add", gw6 + "/64", "dev", port, "nodad")
        r.ip("link", "set", port, "up")
        r.sysctl(f"net.ipv4.conf.{port}.rp_filter", 0)
        # bc_forwarding applies where a directed broadcast comes in.
        r.sysctl(f"net.ipv4.conf.{port}.bc_forwarding", 1)
        ns.ip("addr", "add", addr, "dev", IFACE)
        ns.ip("addr", "add", addr6, "dev", IFACE, "nodad")
        ns.ip("link", "set", IFACE, "up")
        ns.ip("route", "add", "198.18.0.0/15", "via", gw)
        ns.ip("-6", "route", "add", "2001:db8::/32", "via", gw6)
        if h == "vic":  # the victim's whole site is behind its address
            r.ip("-6", "route", "add", VIC_SITE6, "via", addr6.split("/")[0])

    def check(self):
        """Refuse to run unless every address and route in every namespace
        lies in the lab's ranges (or is loopback or link-local): no
        default route, no way out."""
        local = [ipaddress.ip_network(n) for n in
                 ("127.0.0.0/8", "::1/128", "fe80::/10", "ff00::/8")]
        allowed = [ipaddress.ip_network(n) for n in
                   ("198.18.0.0/15", "2001:db8::/32")]

        def inside(net):
            return any(net.subnet_of(n) for n in allowed + local
                       if n.version == net.version)
        for h, ns in self.ns.items():
            addrs = json.loads(ns.ip("-j", "addr", "show").stdout)
            for link in addrs:
                for a in link.get("addr_info", []):
                    net = ipaddress.ip_network(
                        f"{a['local']}/{a['prefixlen']}", strict=False)
                    if not inside(net):
                        raise RuntimeError(f"{h}: address {net} outside "
                                           "the lab's ranges")
            for fam in ("-4", "-6"):
                for table in ("main", "local"):
                    routes = json.loads(ns.ip("-j", fam, "route", "show",
                                              "table", table).stdout)
                    for r in routes:
                        dst = r["dst"]
                        if dst == "default" or not inside(
                                ipaddress.ip_network(dst, strict=False)):
                            raise RuntimeError(f"{h}: route to {dst} "
                                               "outside the lab's ranges")

    def delete(self):
        for h in reversed(self.HOSTS):
            ns = self.ns.get(h)
            if ns is not None:
                _kill_pids(netns_pids(ns.name))
                ns.delete()
        # What is still there: a namespace a signal left made but not
        # recorded (Ctrl-C during `ip netns add`), or one whose `ip netns
        # del` failed while other runs' namespaces came and went (seen
        # once in make test). Named by this run: delete it, retrying.
        for h in self.HOSTS:
            name = f"{PREFIX}{os.getpid()}-{h}"
            for attempt in range(5):
                if not os.path.exists(f"/run/netns/{name}"):
                    break
                _kill_pids(netns_pids(name))
                subprocess.run(["ip", "netns", "del", name],
                               capture_output=True, timeout=10)
                if attempt:
                    time.sleep(0.1)