"""Socket-activation launcher for test_sandbox.py: what systemd does.

usage: sockact_launch.py [--listen-pid self|N] [--listen-fds auto|VALUE]
                         [--no-listen-env] SPEC... -- PROGRAM ARG...

Each SPEC makes one fd; the first goes to fd 3, the next to fd 4, ...:
  tcp,HOST,PORT        listening TCP socket (IPv6 ones get IPV6_V6ONLY)
  udp,HOST,PORT        bound UDP socket (IPv6 ones get IPV6_V6ONLY)
  udpbig,HOST,PORT     the same with a 16 MiB receive buffer, as
                       systemd's ReceiveBuffer=16M sets it (root only)
  udpqueued,HOST,PORT  bound UDP socket with one datagram ("queued before
                       start\n") already waiting, sent before anyone asked
                       for packet info: systemd without PassPacketInfo=yes
  tcp6dual,HOST,PORT   listening IPv6 TCP socket with IPV6_V6ONLY off
  tcpbound,HOST,PORT   bound TCP socket that is not listening
  udpunbound           UDP socket that is not bound
  unix                 listening AF_UNIX stream socket (abstract name)
  file                 a regular file (read-only, /etc/hostname-like)
  pipe                 the read end of a pipe
  dir                  a directory (/), opened O_RDONLY|O_DIRECTORY

Then LISTEN_PID (default: this very process, which the exec keeps) and
LISTEN_FDS (default: the number of SPECs) are set and PROGRAM replaces this
process with os.execve, so the pid the test sees is PROGRAM's pid.
With --no-listen-env neither is set: the fds are merely inherited.
"""

import fcntl
import os
import socket
import sys
import tempfile

SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; not in Python's socket


def make(spec):
    parts = spec.split(",")
    kind = parts[0]
    if kind in ("tcp", "udp", "udpbig", "udpqueued", "tcp6dual",
                "tcpbound"):
        host, port = parts[1], int(parts[2])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        stype = (socket.SOCK_DGRAM if kind in ("udp", "udpbig", "udpqueued")
                 else socket.SOCK_STREAM)
        s = socket.socket(family, stype)
        if kind == "udpbig":
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY,
                         0 if kind == "tcp6dual" else 1)
        s.bind((host, port))
        if kind in ("tcp", "tcp6dual"):
            s.listen(128)
        if kind == "udpqueued":
            with socket.socket(family, socket.SOCK_DGRAM) as c:
                c.sendto(b"queued before start\n", (host, port))
        return s.detach()
    if kind == "udpunbound":
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM).detach()
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("\0echod-test-%d" % os.getpid())
        s.listen(1)
        return s.detach()
    if kind == "file":
        f = tempfile.TemporaryFile()
        f.write(b"not a socket\n")
        f.flush()
        return os.dup(f.fileno())
    if kind == "dir":
        return os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    if kind == "pipe":
        r, _w = os.pipe()
        return r
    raise SystemExit(f"sockact_launch: unknown spec {spec!r}")


def main(argv):
    listen_pid, listen_fds, listen_env = "self", "auto", True
    try:
        sep = argv.index("--")
    except ValueError:
        raise SystemExit(__doc__)
    opts, program = argv[:sep], argv[sep + 1:]
    specs = []
    i = 0
    while i < len(opts):
        if opts[i] == "--listen-pid":
            listen_pid = opts[i + 1]
            i += 2
        elif opts[i] == "--no-listen-env":
            listen_env = False
            i += 1
        elif opts[i] == "--listen-fds":
            listen_fds = opts[i + 1]
            i += 2
        else:
            specs.append(opts[i])
            i += 1
    if not program:
        raise SystemExit(__doc__)

    # Make every fd first, park it high, then move it into place: the
    # fresh fds may themselves be numbered 3, 4, ...
    parked = []
    for spec in specs:
        fd = make(spec)
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
        os.close(fd)
        parked.append(high)
    for n, high in enumerate(parked):
        os.dup2(high, 3 + n, inheritable=True)
        os.close(high)

    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    if listen_env:
        env["LISTEN_PID"] = (str(os.getpid()) if listen_pid == "self"
                             else listen_pid)
        env["LISTEN_FDS"] = (str(len(specs)) if listen_fds == "auto"
                             else listen_fds)
    os.execve(program[0], program, env)


if __name__ == "__main__":
    main(sys.argv[1:])
