"""Several workers: all serve, and a killed worker is replaced."""

import os
import signal

from conftest import (is_event, parse_logfmt, tcp_echo, udp_echo,
                      wait_until)


def _serves(d):
    data = os.urandom(30_000)
    assert tcp_echo("127.0.0.1", d.port, data) == data
    assert tcp_echo("::1", d.port, data) == data
    assert udp_echo("127.0.0.1", d.port, data[:1000]) == (
        data[:1000], ("127.0.0.1", d.port))
    assert udp_echo("::1", d.port, data[:1000]) == (data[:1000], ("::1", d.port))


def test_two_workers_echo(echod):
    d = echod(workers=2)
    assert len(d.workers()) == 2
    started = [l for l in d.log_lines() if is_event(l, "worker_started")]
    assert len(started) == 2
    _serves(d)


def test_killed_worker_is_replaced(echod):
    d = echod(workers=2)
    original = d.workers()
    assert len(original) == 2
    _serves(d)
    # Kill each worker in turn, so whichever serves loopback is hit.
    for n, victim in enumerate(original, start=1):
        before = set(d.workers())
        mark = len(d.log_lines())
        os.kill(victim, signal.SIGKILL)
        died = d.wait_event("worker_died", timeout=5, start=mark)
        f = parse_logfmt(died)
        assert f["pid"] == str(victim)
        assert f["signal"] == "KILL"
        new = wait_until(
            lambda: set(d.workers()) - before - {victim}
            if len(d.workers()) == 2 else None,
            timeout=5, what="a replacement worker")
        assert len(new) == 1
        assert victim not in d.workers()
        _serves(d)
        c = d.counters()
        assert c["worker_restarts"] == n
    assert not set(d.workers()) & set(original)
    assert d.stop() == 0
