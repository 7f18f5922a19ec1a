"""echod as clients that nobody here wrote see it: ncat and socat echo
byte for byte over TCP and UDP, IPv4 and IPv6, and nmap's version scan
names the service "echo" on both protocols."""

import os
import re
import select
import shutil
import subprocess

import pytest

HOSTS = [("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")]


def needs(tool):
    return pytest.mark.skipif(shutil.which(tool) is None,
                              reason=f"{tool} is not installed")


def run(argv, data=b"", timeout=20):
    r = subprocess.run(argv, input=data, capture_output=True,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


@needs("ncat")
@pytest.mark.parametrize("host, _", HOSTS)
def test_ncat_tcp_whole_stream(echod, host, _):
    """ncat sends 256 KiB, half-closes, and gets every byte back."""
    d = echod()
    data = os.urandom(256 * 1024)
    # Without --no-shutdown, ncat half-closes at EOF and reads to echod's FIN.
    rc, out, err = run(["ncat", "-w", "5", host, str(d.port)], data)
    assert rc == 0, err
    assert out == data


@needs("ncat")
@pytest.mark.parametrize("host, _", HOSTS)
def test_ncat_udp_datagram(echod, host, _):
    d = echod()
    data = b"ncat over udp " + os.urandom(32).hex().encode() + b"\n"
    # As a person types: stdin stays open until the echo is read (ncat
    # may leave as soon as stdin ends, before a reply could arrive).
    p = subprocess.Popen(["ncat", "-u", host, str(d.port)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        p.stdin.write(data)
        p.stdin.flush()
        out = b""
        while len(out) < len(data):
            ready, _, _ = select.select([p.stdout], [], [], 5)
            assert ready, f"no echo within 5 s; got {out!r}"
            chunk = os.read(p.stdout.fileno(), 4096)
            assert chunk, f"ncat ended; got {out!r}"
            out += chunk
        assert out == data
    finally:
        p.stdin.close()
        p.kill()
        p.wait(5)
    c = d.counters()
    assert c["udp_echoed"] == 1 and c["udp_bytes_out"] == len(data), c


@needs("socat")
@pytest.mark.parametrize("host, bracketed", HOSTS)
def test_socat_tcp_and_udp(echod, host, bracketed):
    d = echod()
    data = os.urandom(64 * 1024)
    rc, out, err = run(["socat", "-t", "5", "-",
                        f"TCP:{bracketed}:{d.port}"], data)
    assert rc == 0, err
    assert out == data
    dgram = b"socat over udp\n"
    rc, out, err = run(["socat", "-t", "2", "-",
                        f"UDP:{bracketed}:{d.port}"], dgram)
    assert out == dgram, (rc, err)


@needs("nmap")
def test_nmap_identifies_echo(echod):
    """nmap's version probes (nmap-service-probes) name the service on TCP
    and UDP; one scan of both (intensity 3 is the lowest that matches
    the UDP echo) takes about 20 s, mostly nmap's wait for a banner."""
    d = echod()
    rc, out, err = run(["nmap", "-n", "-Pn", "-sT", "-sU", "-sV",
                        "--version-intensity", "3", "-p", str(d.port),
                        "127.0.0.1"], timeout=120)
    assert rc == 0, err
    found = dict(re.findall(rf"^{d.port}/(tcp|udp)\s+open\s+(\S+)",
                            out.decode(), re.M))
    assert found == {"tcp": "echo", "udp": "echo"}, out.decode()
