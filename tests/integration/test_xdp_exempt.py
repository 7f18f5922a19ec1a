"""rate-exempt over a veth pair (198.18.0.0/15 only), with and without the
XDP prefilter, as an attacker sees it: datagrams forged "from" an exempt
address are echoed unthrottled, to that address; forged from its
neighbour outside the prefix (same /24), they are held to the burst, by
the guard alone or by the prefilter's bucket and then the guard. The
prefilter's bucket must not drop what the guard would pass: with it, the
exempt address still gets every echo and xdp_udp_drop_rate counts only
the neighbour's.

Needs root (namespaces, raw sockets, XDP); skipped with the reason otherwise.
"""

import os
import socket

import pytest

import netns
from conftest import wait_until
from test_abuse import (CLI4, CLI6, EPHEMERAL, LEGIT4, PORT, SRV4, VICTIM4, net,
                        nsd, socks, udp_in)

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: network namespaces, "
                                       "raw sockets, XDP")

_fixtures = (net, nsd, socks)  # imported for pytest, used by name

N = 400       # forged datagrams from each of the two sources
PPS = 4000    # well within what one worker drains: none lost to the buffer
POLICY = ("udp-rate 10/s burst 10\n"
          "udp-loop-guard off\n"
          f"rate-exempt {VICTIM4}/32\n")


@pytest.mark.parametrize("prefilter", [False, True],
                         ids=["guard", "xdp-prefilter"])
def test_forged_exempt_source_is_echoed_unthrottled_to_it_alone(
        net, nsd, socks, prefilter):
    p = net(cli=(CLI4 + "/24", VICTIM4 + "/24", LEGIT4 + "/24",
                 CLI6 + "/64"))
    d = nsd(p.srv, POLICY + ("xdp-prefilter vsrv mode generic\n"
                             if prefilter else ""))
    if prefilter:
        d.wait_event("xdp_attached")
    exempt = udp_in(p.cli, socks, VICTIM4, EPHEMERAL)
    neighbour = udp_in(p.cli, socks, LEGIT4, EPHEMERAL)
    for s in (exempt, neighbour):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    packets = []
    for i in range(N):
        for src in (VICTIM4, LEGIT4):
            packets.append(netns.ipv4_udp(src, SRV4, EPHEMERAL, PORT,
                                          b"forged %s %04d" % (src.encode(),
                                                               i),
                                          ip_checksum=False))
    snmp0 = p.srv.snmp()
    with netns.RawSender(p.cli) as raw:
        sent, _ = raw.flood(packets, SRV4, pps=PPS, max_seconds=5.0)
    assert sent == 2 * N

    def all_judged():
        c = d.counters()
        lost = p.srv.snmp()["RcvbufErrors"] - snmp0["RcvbufErrors"]
        return c if (c["udp_received"] + c["xdp_udp_drop_rate"] + lost
                     >= sent and c["udp_rate_exempt"] + lost >= N) else None

    c = wait_until(all_judged, 5.0, interval=0.05,
                   what="every forged datagram judged")
    lost = p.srv.snmp()["RcvbufErrors"] - snmp0["RcvbufErrors"]
    to_exempt = [data for _, data, _ in netns.drain([exempt], 0.3)]
    to_neighbour = [data for _, data, _ in netns.drain([neighbour], 0.3)]
    print(f"prefilter={prefilter}: exempt got {len(to_exempt)}, neighbour "
          f"{len(to_neighbour)}, lost {lost}, counters "
          f"{ {k: v for k, v in c.items() if v and 'udp' in k} }")
    assert lost == 0
    # Unthrottled, byte for byte, to the forged source: every one of N.
    assert sorted(to_exempt) == sorted(
        b"forged %s %04d" % (VICTIM4.encode(), i) for i in range(N))
    assert c["udp_rate_exempt"] == N
    # The neighbour: its burst and what 10/s refilled in the flood's time.
    assert 10 <= len(to_neighbour) <= 10 + 5, len(to_neighbour)
    assert c["udp_echoed"] == N + len(to_neighbour)
    if prefilter:
        # The bucket (twice the guard's) dropped only the neighbour's.
        assert 0 < c["xdp_udp_drop_rate"] <= N - 20
        assert c["udp_received"] == 2 * N - c["xdp_udp_drop_rate"]
    else:
        assert c["xdp_udp_drop_rate"] == 0
        assert c["udp_drop_rate"] == N - len(to_neighbour)
