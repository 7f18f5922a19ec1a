"""rate-exempt: sources in these prefixes skip the rate limits (UDP's
per-source, byte and global rates; TCP's connect and byte rates) and
nothing else. Over loopback: 127.0.0.0/8 is all on lo, so one test binds
an exempt source (127.0.30.1) and a neighbour outside the prefix, in the
same /24 (127.0.30.2), and judges echod by what each gets back, by its
counters and by its log lines. Each test fails if the exemption is removed
(the exempt source is throttled) or widened (the neighbour is not, or an
exempt source gets past a check other than a rate)."""

import socket
import time

from conftest import (closed_promptly, echo_timed, is_event, parse_logfmt,
                      recv_exact, udp_socket, udp_socket_on_denied_port)

HOST = "127.0.0.1"
EXEMPT, NEIGHBOUR = "127.0.30.1", "127.0.30.2"
RATES = ("udp-rate 10/s burst 10\n"
         "udp-global-rate 20/s burst 20\n"
         "tcp-connect-rate 2/m burst 2\n"
         "tcp-byte-rate 64k/s burst 64k\n"
         f"rate-exempt {EXEMPT} ::1/128\n")
N = 200
WINDOW = 25  # outstanding datagrams: well inside the socket buffers


def udp_from(src):
    return udp_socket(host=src)


def drain(s, want):
    """The replies already queued on s, each one of `want`, removed."""
    got = 0
    while True:
        try:
            data = s.recv(2048, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return got
        assert data in want, data
        want.discard(data)
        got += 1


def judged(d, total):
    """Once echod has received `total` datagrams it has answered them: a
    worker replies to SIGUSR1 between batches, after their echoes."""
    c = d.counters_when(lambda c: c["udp_received"] >= total)
    assert c["udp_received"] == total, c
    return c


def echoed(d, s, n, tag, base=0):
    """Send n distinct datagrams from s, WINDOW at a time, each window
    judged before the next; how many came back, byte for byte. base: the
    datagrams echod received before."""
    got = 0
    for start in range(0, n, WINDOW):
        batch = [b"%s-%d" % (tag, i)
                 for i in range(start, min(n, start + WINDOW))]
        for payload in batch:
            s.sendto(payload, (HOST, d.port))
        judged(d, base + start + len(batch))
        got += drain(s, set(batch))
    return got


def drop_lines(d, event="udp_drop"):
    return [parse_logfmt(l) for l in d.log_lines() if is_event(l, event)]


def test_udp_exempt_source_gets_every_echo_neighbour_the_burst(echod):
    d = echod(policy_text=RATES, listen=(HOST, "[::1]"))
    t0 = time.monotonic()
    with udp_from(EXEMPT) as ex, udp_from(NEIGHBOUR) as nb:
        assert echoed(d, ex, N, b"exempt") == N
        nb_got = echoed(d, nb, N, b"neighbour", base=N)
    took = time.monotonic() - t0
    # The burst of 10, and what 10/s refilled meanwhile: never all.
    assert 10 <= nb_got <= 10 + int(took * 10) + 1, (nb_got, took)
    # IPv6: ::1/128 is exempt too.
    with udp_socket(socket.AF_INET6) as s6:
        s6.settimeout(2)
        for i in range(N):
            s6.sendto(b"v6-%d" % i, ("::1", d.port))
            assert s6.recv(64) == b"v6-%d" % i
    c = d.counters_when(lambda c: c["udp_rate_exempt"] == 2 * N
                        and c["udp_received"] == 3 * N)
    assert c["udp_rate_exempt"] == 2 * N
    assert c["udp_echoed"] == 2 * N + nb_got
    assert c["udp_drop_rate"] == N - nb_got
    # 400 exempt datagrams at once spent none of the global burst (20).
    assert c["udp_drop_global_rate"] == 0
    # Only the neighbour's /24 holds an entry in the rate table.
    assert c["udp_table_entries"] == 1
    peers = {l["peer"].rsplit(":", 1)[0] for l in drop_lines(d)}
    assert peers == {NEIGHBOUR}, peers


def test_udp_exempt_source_does_not_spend_the_global_cap(echod):
    """A flood from many prefixes spends udp-global-rate; the exempt
    source is neither stopped by it nor counted in it."""
    d = echod(policy_text="udp-global-rate 20/s burst 20\n"
                          f"rate-exempt {EXEMPT}\n", listen=(HOST,))
    flood = [udp_from(f"127.0.{100 + i}.1") for i in range(40)]
    try:
        for s in flood:  # 40 /24s, one datagram each: over the cap of 20
            s.sendto(b"flood", (HOST, d.port))
        judged(d, 40)
        spent = sum(drain(s, {b"flood"}) for s in flood)
    finally:
        for s in flood:
            s.close()
    assert 20 <= spent <= 21, spent
    with udp_from(EXEMPT) as ex:
        assert echoed(d, ex, N, b"exempt", base=40) == N
    c = d.counters_when(lambda c: c["udp_rate_exempt"] == N)
    assert c["udp_drop_global_rate"] == 40 - spent
    assert c["udp_rate_exempt"] == N


def test_udp_exempt_source_still_gets_every_other_check(echod):
    d = echod(policy_text=RATES + "rate-exempt 127.0.31.0/24\n"
                                  "deny 127.0.31.0/24\n", listen=(HOST,))
    # A source port the default list denies: no echo, counted as port.
    with udp_socket_on_denied_port(EXEMPT) as s:
        s.sendto(b"from a denied port", (HOST, d.port))
        judged(d, 1)
        assert drain(s, set()) == 0
    # Exempt and denied: the deny list wins.
    with udp_from("127.0.31.1") as s:
        assert echoed(d, s, 1, b"denied", base=1) == 0
    # The loop guard: one payload 5 times within 100 ms is held.
    with udp_from(EXEMPT) as s:
        for _ in range(5):
            s.sendto(b"loop", (HOST, d.port))
        judged(d, 7)
        got = 0
        while True:
            try:
                assert s.recv(64, socket.MSG_DONTWAIT) == b"loop"
            except BlockingIOError:
                break
            got += 1
    assert got == 4
    c = d.counters_when(lambda c: c["udp_rate_exempt"] == 4)
    assert c["udp_drop_loop"] == 1
    assert c["udp_drop_deny"] == 1
    assert c["udp_drop_port"] == 1
    assert c["udp_rate_exempt"] == 4


def test_log_only_exempt_source_is_no_would_drop(echod):
    """enforce log-only: the neighbour's datagrams over the rate are
    echoed and counted as would-drop; the exempt source's are not rated,
    so none of them is a would-drop."""
    d = echod(policy_text="enforce log-only\n" + RATES, listen=(HOST,))
    with udp_from(EXEMPT) as ex, udp_from(NEIGHBOUR) as nb:
        assert echoed(d, ex, 50, b"exempt") == 50
        assert d.counters()["udp_would_drop"] == 0
        assert echoed(d, nb, 50, b"neighbour", base=50) == 50
    c = d.counters_when(lambda c: c["udp_rate_exempt"] == 50)
    assert 30 <= c["udp_would_drop"] <= 40, c["udp_would_drop"]
    assert c["udp_drop_rate"] == 0
    assert c["udp_echoed"] == 100
    assert c["udp_rate_exempt"] == 50
    peers = {l["peer"].rsplit(":", 1)[0] for l in
             drop_lines(d, "udp_would_drop")}
    assert peers == {NEIGHBOUR}, peers


def tcp_from(src, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((src, 0))
    s.connect((HOST, port))
    return s


def tcp_echo_from(src, port, payload):
    with tcp_from(src, port) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return recv_exact(s, len(payload) + 1, timeout=5)


def test_tcp_exempt_source_skips_connect_rate_not_the_cap(echod):
    d = echod(policy_text=RATES + "tcp-max-connections-per-source 3\n",
              listen=(HOST,))
    for i in range(10):  # 2/m allows 2
        assert tcp_echo_from(EXEMPT, d.port, b"c%d" % i) == b"c%d" % i
    for i in range(2):
        assert tcp_echo_from(NEIGHBOUR, d.port, b"n%d" % i) == b"n%d" % i
    with tcp_from(NEIGHBOUR, d.port) as s:
        assert closed_promptly(s), "neighbour's third connection served"
    # The per-source cap still holds for the exempt source.
    held = [tcp_from(EXEMPT, d.port) for _ in range(3)]
    try:
        for i, s in enumerate(held):
            s.sendall(b"h%d" % i)
            assert recv_exact(s, 2) == b"h%d" % i
        with tcp_from(EXEMPT, d.port) as s:
            assert closed_promptly(s), "exempt source past its cap served"
    finally:
        for s in held:
            s.close()
    c = d.counters_when(lambda c: c["tcp_refused_per_source"] == 1)
    assert c["tcp_refused_rate"] == 1
    assert c["tcp_refused_per_source"] == 1
    assert c["tcp_rate_exempt"] == 13
    refused = [l for l in d.log_lines() if is_event(l, "tcp_refused")]
    assert any("reason=rate" in l and NEIGHBOUR in l for l in refused)
    assert any("reason=per_source" in l and EXEMPT in l for l in refused)
    assert not any("reason=rate" in l and EXEMPT in l for l in refused)


def test_tcp_exempt_source_is_not_paced(echod):
    """tcp-byte-rate 64k/s burst 64k would take 7 s for 512 KiB; the
    exempt source gets it at once, never throttled."""
    d = echod(policy_text=RATES, listen=(HOST,))
    data = bytes(range(256)) * 2048
    with tcp_from(EXEMPT, d.port) as s:
        got, took = echo_timed(s, data)
    assert got == data
    assert took < 4.0, f"512 KiB took {took:.2f}s: paced"
    assert d.counters()["tcp_throttled"] == 0
