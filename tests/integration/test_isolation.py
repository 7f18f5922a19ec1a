"""What a compromised process can still reach, checked from outside.

gdb plays the attacker: attached as root to a sandboxed worker, it writes
the worker's memory or makes it call what an exploit would call. Each test
names the SECURITY.md promise it checks (the table "What each process can
still do"). Every process is stopped by pid at teardown.
"""

import os
import pty
import select
import shutil
import signal
import socket
import stat
import subprocess
import time

import pytest

from conftest import gdb
from conftest import (ECHOD_BIN, EXIT_OSERR, READY_TIMEOUT, ROOT, Echod,
                      children_of, comm, kill_pids, reader_of,
                      workers_of,
                      free_port, is_event, parse_logfmt,
                      run_echod, tcp_echo, wait_until)
from test_sandbox import (
    ENOSYS, EOPNOTSUPP, NR_LANDLOCK_CREATE_RULESET, without_syscall,
    _nobody_binary, as_nobody, assert_only_sockets_open,
    fd_access, needs_root, nobody,
    serves_tcp_udp, wait_worker_hardened)

GDB = shutil.which("gdb")
needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb is not installed")


def writable_shared_mappings(pid):
    """(range, perms, inode, path) of every writable MAP_SHARED mapping."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            perms = fields[1]
            if "w" in perms and perms[3] == "s":
                out.append((fields[0], perms, fields[4],
                            fields[5] if len(fields) > 5 else ""))
    return out


# ------------------------------------------------- 1. no shared memory


@needs_root
def test_no_writable_memory_shared_between_processes(policy, echod):
    d = echod(args=["-c", policy()], workers=3)
    pids = [d.pid] + d.workers()
    assert len(pids) == 4
    for pid in pids[1:]:
        wait_worker_hardened(pid)
    for pid in pids:
        assert writable_shared_mappings(pid) == [], pid
    assert d.stop() == 0


@needs_root
@needs_gdb
def test_garbage_in_one_workers_counters_spares_the_others(policy, echod):
    """Counters are reports, never inputs: a worker whose counters say a
    million connections are open still admits (its TCP guard keeps its own
    count), and so does the other worker."""
    d = echod(args=["-c", policy("tcp-max-connections 100\n")], workers=2)
    bad, good = d.workers()
    wait_worker_hardened(bad)
    out = gdb(bad, "set var counters->tcp_active = 1000000",
              "print counters->tcp_active")
    assert "= 1000000" in out, out
    echoed = refused = 0
    for i in range(40):
        # Workers are chosen by source prefix: one /24 per connection.
        s = socket.socket()
        try:
            s.settimeout(3)
            s.bind((f"127.0.{i + 1}.1", 0))
            s.connect(("127.0.0.1", d.port))
            s.sendall(b"x%d" % i)
            try:
                got = s.recv(16)
            except ConnectionResetError:
                got = b""
            if got:
                echoed += 1
            else:
                refused += 1
        finally:
            s.close()
    assert echoed == 40 and refused == 0, (echoed, refused)
    c = d.counters()
    assert c["tcp_refused_max"] == 0, c
    assert c["tcp_accepted"] == echoed, c
    assert d.stop() == 0


def test_tcp_cap_below_worker_count_is_refused(tmp_path):
    """Every worker needs a share of tcp-max-connections of at least one."""
    conf = tmp_path / "cap.conf"
    conf.write_text("tcp-max-connections 3\n")
    r = run_echod(["-c", str(conf), "-l", "127.0.0.1", "-p", free_port(),
                   "-w", "4"])
    assert r.returncode == 78, r.stderr
    assert b"tcp-max-connections 3 is split among 4 workers" in r.stderr


# ------------------------------------------------- 2. fds and access modes


def _read_until(fd, pred, timeout):
    """Read a pty master until pred(text so far); the text."""
    text, deadline = "", time.monotonic() + timeout
    while not pred(text):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got: {text!r}"
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                text += os.read(fd, 4096).decode(errors="replace")
            except OSError:  # EIO: the other side closed
                break
    return text


@needs_root
@needs_gdb
def test_stderr_on_a_terminal_is_write_only(policy):
    """Under `make run` stderr is the operator's terminal, open read-write:
    every echod process holds it write-only, and a worker that tries to
    read it gets EBADF, not what the operator types."""
    master, slave = pty.openpty()
    port = free_port()
    proc = subprocess.Popen(
        [str(ECHOD_BIN), "-c", policy(), "-l", "127.0.0.1", "-p", str(port),
         "-w", "2"], stdin=slave, stdout=slave, stderr=slave, cwd=str(ROOT))
    os.close(slave)
    pids = []
    try:
        _read_until(master, lambda t: "event=ready" in t, READY_TIMEOUT)
        pids = [proc.pid] + workers_of(proc.pid)
        assert len(pids) == 3
        for pid in pids:
            if pid != proc.pid:
                wait_worker_hardened(pid)
            assert os.readlink(f"/proc/{pid}/fd/2").startswith("/dev/pts/")
            assert fd_access(pid, 0) == "O_RDONLY", pid
            assert fd_access(pid, 1) == "O_WRONLY", pid
            assert_only_sockets_open(pid, worker=pid != proc.pid)
        os.write(master, b"secret typed by the operator\n")
        out = gdb(pids[1], "print (long)read(2, (char *)malloc(64), 64)",
                  "print *(int *)__errno_location()")
        assert "$1 = -1" in out and "$2 = 9" in out, out  # EBADF
        data = os.urandom(500)
        assert tcp_echo("127.0.0.1", port, data) == data
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(2) == 0
    finally:
        kill_pids(reversed(pids))
        proc.wait(5)
        os.close(master)


NSS_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pwd.h>
#include <sys/socket.h>
/* Like sssd's or ldap's NSS module: the lookup leaves a socket open. */
struct passwd *getpwnam(const char *name)
{
	struct passwd *(*real)(const char *) = dlsym(RTLD_NEXT, "getpwnam");
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	return real(name);
}
"""


@needs_root
def socket_inodes(pid):
    """The socket inodes (as text) of pid's descriptors."""
    targets = (os.readlink(f"/proc/{pid}/fd/{fd}")
               for fd in os.listdir(f"/proc/{pid}/fd"))
    return {t[8:-1] for t in targets if t.startswith("socket:")}


def unix_peers():
    """{inode: peer inode} of every connected unix socket (ss -x)."""
    out = subprocess.run(["ss", "-xan"], capture_output=True, text=True,
                         timeout=10).stdout
    peers = {}
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[5].isdigit() and f[7].isdigit():
            peers[f[5]] = f[7]
    return peers


def test_lookup_sockets_do_not_reach_the_sandbox(policy, tmp_path, spawn):
    """A user lookup that leaves sockets open (an NSS module for sssd or
    LDAP, played by an LD_PRELOAD shim) runs before stray fds close."""
    cc = shutil.which("cc") or pytest.skip("no C compiler")
    src, lib = tmp_path / "nss.c", tmp_path / "nss.so"
    src.write_text(NSS_SHIM)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src),
                    "-ldl"], check=True, timeout=60)
    os.chmod(tmp_path, 0o755)
    port = free_port()
    d = spawn(["env", f"LD_PRELOAD={lib}", ECHOD_BIN, "-c", policy(), "-l",
               "127.0.0.1", "-p", port, "-w", "1"], port)
    assert os.readlink(f"/proc/{d.pid}/exe") == str(ECHOD_BIN)
    maps = open(f"/proc/{d.pid}/maps").read()
    assert str(lib) in maps, "the shim was not loaded"
    reader = reader_of(d.pid)
    to_reader = {peer for local, peer in unix_peers().items()
                 if local in socket_inodes(reader)}
    assert len(to_reader) == 1, to_reader
    for pid in [d.pid] + d.workers():
        if pid != d.pid:
            wait_worker_hardened(pid)
        assert_only_sockets_open(pid, worker=pid != d.pid)
        # The supervisor's one unix socket is its end of the reader's pair.
        inodes = socket_inodes(pid) - to_reader
        with open("/proc/net/unix") as f:
            held = [l for l in f if l.split()[6] in inodes]
        assert held == [], f"pid {pid} holds unix sockets: {held}"
    assert d.stop() == 0


NSS_MODULE_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pwd.h>
/* Like glibc for a "passwd: files systemd" line: a lookup that misses in
 * /etc/passwd loads a module (MODULE, with whatever it needs: libm for
 * libnss_systemd) and keeps it mapped for good. */
struct passwd *getpwnam(const char *name)
{
	struct passwd *(*real)(const char *) = dlsym(RTLD_NEXT, "getpwnam");
	dlopen(MODULE, RTLD_NOW | RTLD_NODELETE);
	return real(name);
}
"""


def echod_pids(d):
    """Every process of d: supervisor, workers, reader, keeper, metrics."""
    return [d.pid] + children_of(d.pid) + children_of(d.keeper_pid())


@needs_root
def test_no_nss_module_is_mapped(policy, tmp_path, spawn):
    """The user lookup runs in a child that exits: no echod process maps
    an NSS module (a test module the lookup loads, and the host's own
    libnss_*), nor libm, which libnss_systemd brings and echod never
    uses."""
    cc = shutil.which("cc") or pytest.skip("no C compiler")
    src, shim = tmp_path / "nss.c", tmp_path / "nss.so"
    mod_src, mod = tmp_path / "mod.c", tmp_path / "libnss_echodtest.so.2"
    mod_src.write_text("int echodtest_module;\n")
    src.write_text(NSS_MODULE_SHIM)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(mod), str(mod_src),
                    "-lm", "-Wl,--no-as-needed"], check=True, timeout=60)
    subprocess.run([cc, "-shared", "-fPIC", f'-DMODULE="{mod}"', "-o",
                    str(shim), str(src), "-ldl"], check=True, timeout=60)
    os.chmod(tmp_path, 0o755)
    port, mport = free_port(), free_port()
    d = spawn(["env", f"LD_PRELOAD={shim}", ECHOD_BIN, "-c",
               policy(f"metrics 127.0.0.1:{mport}\n"), "-l", "127.0.0.1",
               "-p", port, "-w", "2"], port)
    wait_until(lambda: d.metrics_pid() is not None, 5, what="metrics")
    pids = echod_pids(d)
    assert len(pids) == 6, pids  # supervisor, 2 workers, reader, keeper,
    #                              and the metrics process
    for pid in pids:
        with open(f"/proc/{pid}/maps") as f:
            maps = f.read()
        assert str(shim) in maps, f"pid {pid}: the shim was not loaded"
        for lib in ("libnss_", "/libm.so", "/libm-"):
            assert lib not in maps, f"pid {pid} ({comm(pid)}) maps {lib}"
    assert tcp_echo("127.0.0.1", port, b"no nss") == b"no nss"
    assert d.stop() == 0


# ------------------------------------------------- 3. file capabilities


@needs_root
def test_make_setcap_limits_who_can_run_it(tmp_path):
    """make setcap: owner root, group SETCAP_GROUP, mode 0750, and the
    capabilities; a user outside the group cannot run it."""
    build = tmp_path / "b"
    build.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(build, 0o755)
    binary = build / "echod"
    shutil.copy2(ECHOD_BIN, binary)
    r = subprocess.run(["make", "-s", "-C", str(ROOT), "-o", str(binary),
                        f"BUILD={build}", "SETCAP_GROUP=nogroup", "setcap"],
                       capture_output=True, timeout=60)
    if r.returncode != 0 and b"Operation not supported" in r.stderr:
        pytest.skip("no file capabilities on this filesystem")
    assert r.returncode == 0, r.stderr
    st = os.stat(binary)
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert st.st_uid == 0 and st.st_gid == 65534
    caps = subprocess.run(["getcap", str(binary)], capture_output=True,
                          timeout=10).stdout.decode()
    assert "cap_net_bind_service" in caps and "cap_setpcap" in caps, caps
    uid, _ = nobody()

    def outsider():  # not setpriv: it execs while still holding its caps
        os.setgroups([])
        os.setgid(54321)
        os.setuid(uid)

    with pytest.raises(PermissionError):
        subprocess.run([str(binary), "-t"], preexec_fn=outsider, timeout=10,
                       capture_output=True)
    bad = subprocess.run(["make", "-s", "-C", str(ROOT), "-o", str(binary),
                          f"BUILD={build}", "SETCAP_GROUP=no-such-group-x",
                          "setcap"], capture_output=True, timeout=60)
    assert bad.returncode != 0
    assert b"group 'no-such-group-x' does not exist" in bad.stderr


@needs_root
@pytest.mark.parametrize("port", [25, 443, 1023])
def test_file_capabilities_bind_only_the_echo_port(public_bin_dir, port):
    binary = _nobody_binary(public_bin_dir, "cap_net_bind_service=ep")
    r = subprocess.run(as_nobody([binary, "-l", "127.0.0.1", "-p", port,
                                  "-w", "1"]),
                       capture_output=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    log = r.stderr.decode()
    assert r.returncode == EXIT_OSERR, log
    f = parse_logfmt(next(l for l in log.splitlines()
                          if is_event(l, "hardening_failed")))
    assert f["step"] == "privileged_port", log
    assert f"port {port}:" in f["msg"], log
    assert not any(is_event(l, "listening") for l in log.splitlines())


# ------------------------------------------------- 10. -t


@needs_root
def test_check_refuses_root_user(policy):
    r = run_echod(["-t", "-c", policy(), "-u", "root"])
    assert r.returncode == EXIT_OSERR, r
    assert b"step=user" in r.stderr and r.stdout == b"", r


@needs_root
def test_check_refuses_chroot_not_empty(chroot_dir, policy):
    with open(os.path.join(chroot_dir, "leftover"), "w"):
        pass
    r = run_echod(["-t", "-c", policy()])
    assert r.returncode == EXIT_OSERR, r
    assert b"step=chroot" in r.stderr and b"is not empty" in r.stderr, r


@needs_root
def test_check_does_not_create_the_chroot(tmp_path):
    root = tmp_path / "absent"
    conf = tmp_path / "c.conf"
    conf.write_text(f"chroot {root}\n")
    r = run_echod(["-t", "-c", conf])
    assert (r.returncode, r.stdout) == (0, b"ok\n"), r
    assert not root.exists()


def test_check_refuses_fd_limit():
    r = subprocess.run(["prlimit", "--nofile=100:100", str(ECHOD_BIN), "-t"],
                       capture_output=True, timeout=10)
    assert r.returncode == EXIT_OSERR, r
    assert b"event=fd_limit" in r.stderr, r
    assert b"raise LimitNOFILE" in r.stderr, r


@pytest.mark.parametrize("kind", ["fifo", "chardev", "directory"])
def test_check_refuses_policy_not_a_regular_file(tmp_path, kind):
    path = {"fifo": tmp_path / "fifo", "chardev": "/dev/zero",
            "directory": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    t0 = time.monotonic()
    r = run_echod(["-t", "-c", path], timeout=5)
    assert time.monotonic() - t0 < 3
    assert r.returncode == 78, r
    assert b"not a regular file" in r.stderr, r


# ------------------------------------------------- 5. a violation names itself


def _one_worker(echod, policy):
    """echod with one hardened worker: (d, worker pid, log mark)."""
    d = echod(args=["-c", policy()], workers=1)
    [w] = d.workers()
    wait_worker_hardened(w)
    return d, w, len(d.log_lines())


def _violation(d, pid, call, mark):
    """gdb makes pid call `call`; the event=sandbox_violation line."""
    gdb(pid, "handle SIGSYS nostop noprint pass", f"call {call}")
    return parse_logfmt(d.wait_for_line(
        lambda l: is_event(l, "sandbox_violation"), 5.0, mark,
        "event=sandbox_violation"))


@needs_root
@needs_gdb
@pytest.mark.parametrize("call, name, nr", [
    ("(int)socket(2, 1, 0)", "socket", 41),
    ("(int)getuid()", "getuid", 102),
    # Replacing the handler is itself a violation: it cannot be replaced.
    ("(long)signal(31, (void *)1)", "rt_sigaction", 13),
], ids=["socket", "getuid", "replace-handler"])
def test_worker_violation_is_named_and_worker_replaced(policy, echod, call,
                                                        name, nr):
    d, victim, mark = _one_worker(echod, policy)
    v = _violation(d, victim, call, mark)
    assert (v["role"], v["worker"], v["syscall"], v["nr"]) == \
        ("worker", "0", name, str(nr)), v
    assert v["level"] == "error"
    died = parse_logfmt(d.wait_for_line(
        lambda l: is_event(l, "worker_died"), 5.0, mark, "worker_died"))
    assert died["pid"] == str(victim) and died["signal"] == "SIGSYS", died
    new = wait_until(lambda: [p for p in d.workers() if p != victim] or None,
                     5.0, what="a replacement worker")
    wait_worker_hardened(new[0])
    serves_tcp_udp(d.port)
    assert d.stop() == 0


@needs_root
@needs_gdb
def test_trapped_call_never_runs(policy, echod):
    """A worker's kill(supervisor, SIGUSR1) would make the supervisor log
    event=counters: the trap stops it before it runs."""
    d, victim, mark = _one_worker(echod, policy)
    v = _violation(d, victim, f"(int)kill({d.pid}, 10)", mark)
    assert v["syscall"] == "kill", v
    d.wait_for_line(lambda l: is_event(l, "worker_died"), 5.0, mark,
                    "worker_died")
    assert not any(is_event(l, "counters") for l in d.log_lines()[mark:])
    assert d.stop() == 0


# ------------------------------------------------- 6. optional calls: ENOSYS


@needs_root
@needs_gdb
def test_optional_syscalls_get_enosys_and_worker_lives(policy, echod):
    d, w, _ = _one_worker(echod, policy)
    out = gdb(w, "handle SIGSYS nostop noprint pass",
              "print (long)syscall(435, 0, 0)",        # clone3
              "print *(int *)__errno_location()",
              "print (long)syscall(334, 0, 0, 0, 0)",  # rseq
              "print *(int *)__errno_location()")
    assert "$1 = -1" in out and "$2 = 38" in out, out  # ENOSYS
    assert "$3 = -1" in out and "$4 = 38" in out, out
    assert d.workers() == [w]
    assert not any(is_event(l, "sandbox_violation") for l in d.log_lines())
    serves_tcp_udp(d.port)
    assert d.stop() == 0


# ------------------------------------------------- 7. narrower filters


@needs_root
@needs_gdb
@pytest.mark.parametrize("call, name", [
    ("(int)kill(-1, 15)", "kill"),                   # every process
    ("(int)kill(1, 9)", None),                       # allowed signal...
    ("(int)kill(1, 2)", "kill"),                     # SIGINT: not sent
    ("(long)syscall(56, 0x10000011, 0, 0, 0, 0)", "clone"),  # CLONE_NEWUSER
    ("(long)syscall(302, 1, 7, 0, 0)", "prlimit64"),  # another pid
], ids=["kill-all", "kill-pid1-sigkill", "kill-sigint", "clone-newuser",
        "prlimit-other"])
def test_supervisor_filter_checks_arguments(policy, echod, call, name):
    d = echod(args=["-c", policy()], workers=1)
    mark = len(d.log_lines())
    if name is None:
        # kill(1, SIGKILL) passes the filter (pid and signal are in
        # range) and the kernel refuses it: EPERM, and the supervisor lives.
        out = gdb(d.pid, f"print {call}", "print *(int *)__errno_location()")
        assert "$1 = -1" in out and "$2 = 1" in out, out
        assert d.stop() == 0
        return
    v = _violation(d, d.pid, call, mark)
    assert (v["role"], v["syscall"]) == ("main", name), v
    assert d.proc.wait(5) == -31  # SIGSYS, the whole service stops
    d._reader.join(2.0)


@needs_root
@needs_gdb
@pytest.mark.parametrize("how", [0, 2], ids=["SHUT_RD", "SHUT_RDWR"])
def test_worker_shutdown_only_write_half(policy, echod, how):
    d, w, mark = _one_worker(echod, policy)
    v = _violation(d, w, f"(int)shutdown(3, {how})", mark)
    assert v["syscall"] == "shutdown", v
    assert d.stop() == 0


# ------------------------------------------------- 8. Landlock


def kernel_landlock_abi():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    v = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint(1))
    return max(v, 0)


@needs_root
def test_startup_line_reports_landlock_level(policy, echod):
    abi = kernel_landlock_abi()
    d = echod(args=["-c", policy("landlock required\n" if abi else "")],
              workers=1)
    sb = parse_logfmt(d.wait_event("sandboxed"))
    assert sb["landlock"] == (f"abi{abi}" if abi else "none"), sb
    unavailable = [l for l in d.log_lines()
                   if is_event(l, "landlock_unavailable")]
    assert len(unavailable) == (0 if abi else 1), unavailable
    assert d.stop() == 0


@needs_root
@pytest.mark.parametrize("errno", [ENOSYS, EOPNOTSUPP])
def test_kernel_without_landlock(policy, errno):
    """Where the kernel has no Landlock (ENOSYS: not built; EOPNOTSUPP:
    disabled at boot), echod says so in one line and serves; with
    'landlock required' it refuses at step landlock, before serving."""
    port = free_port()
    base = without_syscall(NR_LANDLOCK_CREATE_RULESET, errno) + [
        str(ECHOD_BIN), "-l", "127.0.0.1", "-p", str(port), "-w", "1"]
    r = subprocess.run(base + ["-c", policy("landlock required\n")],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=10, cwd=str(ROOT))
    if r.returncode == 77:
        pytest.skip("the seccomp() filter in this test is x86_64 only")
    log = r.stderr.decode()
    failed = [parse_logfmt(l) for l in log.splitlines()
              if is_event(l, "hardening_failed")]
    assert r.returncode == EXIT_OSERR, log
    assert [f["step"] for f in failed] == ["landlock"], log
    assert "landlock required" in failed[0]["msg"], log
    assert not any(is_event(l, "ready") for l in log.splitlines()), log

    d = Echod(base + ["-c", policy()], port, None)
    try:
        d.wait_ready()
        assert parse_logfmt(d.wait_event("sandboxed"))["landlock"] == "none"
        warned = [l for l in d.log_lines()
                  if is_event(l, "landlock_unavailable")]
        assert len(warned) == 1, d.log_text()
        assert tcp_echo("127.0.0.1", port, b"no landlock") == b"no landlock"
        assert d.stop() == 0
    finally:
        d.kill_all()


@pytest.mark.parametrize("text, code", [("landlock required\n", 0),
                                        ("landlock optional\n", 0),
                                        ("landlock maybe\n", 78),
                                        ("landlock\n", 78)])
def test_landlock_keyword(tmp_path, text, code):
    conf = tmp_path / "l.conf"
    conf.write_text(f"chroot {tmp_path}/absent\n{text}")
    r = run_echod(["-t", "-c", conf])
    assert r.returncode == code, r
    if code:
        assert f"{conf}:2: ".encode() in r.stderr, r


@needs_root
@needs_gdb
def test_landlock_stands_behind_seccomp(public_bin_dir, spawn):
    """With seccomp only logging (`sandbox-violation log`), an echod that
    runs as nobody without chroot still cannot open a file nobody may read,
    /etc/hostname: Landlock refuses it on its own."""
    abi = kernel_landlock_abi()
    if abi == 0:
        pytest.skip("this kernel offers no Landlock")
    binary = _nobody_binary(public_bin_dir)
    conf = public_bin_dir / "log.conf"
    conf.write_text("sandbox-violation log\n")
    os.chmod(conf, 0o644)
    assert os.stat("/etc/hostname").st_mode & 0o004  # others may read it
    port = free_port()
    d = spawn(as_nobody([binary, "-c", conf, "-l", "127.0.0.1", "-p", port,
                         "-w", "1"]), port)
    [w] = d.workers()
    wait_worker_hardened(w)
    out = gdb(w, 'print (int)open("/etc/hostname", 0)',
              "print *(int *)__errno_location()")
    assert "$1 = -1" in out and "$2 = 13" in out, out  # EACCES
    assert d.workers() == [w]
    assert d.stop() == 0


# ------------------------------------------------- 9. memory bound

GDB_ALLOCATE = """
set $chunk = 16 << 20
set $held = (char **)malloc(64 * sizeof(char *))
set $n = 0
while $n < 64
  set $p = (char *)malloc($chunk)
  if $p == 0
    loop_break
  end
  call (void *)memset($p, 1, $chunk)
  set $held[$n] = $p
  set $n = $n + 1
end
printf "chunks=%d\\n", $n
shell cat /proc/{pid}/status > {peak}
set $i = 0
while $i < $n
  call (void)free($held[$i])
  set $i = $i + 1
end
"""


def vm_rss_kib(path):
    with open(path) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@needs_root
@needs_gdb
def test_worker_memory_is_bounded(policy, echod, tmp_path):
    """A worker made to allocate (16 MiB at a time, touched) gets NULL at
    its RLIMIT_DATA, derived from the policy, long before 1 GiB; at its
    peak the worker holds less than that bound (its own resident memory:
    the host's MemAvailable also moves with gdb and every other process,
    too noisy to assert on); the service goes on."""
    d = echod(args=["-c", policy("tcp-max-connections 8\ntcp-buffer 4k\n"
                                 "rate-table-size 1024\n")], workers=1)
    bound = int(parse_logfmt(d.wait_event("sandboxed"))["worker_memory"])
    [w] = d.workers()
    wait_worker_hardened(w)
    with open(f"/proc/{w}/limits") as f:
        line = next(l for l in f if l.startswith("Max data size"))
    assert line.split()[3:5] == [str(bound), str(bound)], line
    assert bound < 64 << 20, bound
    script = tmp_path / "alloc.gdb"
    peak = tmp_path / "status"
    script.write_text(GDB_ALLOCATE.format(pid=w, peak=peak))
    out = subprocess.run([GDB, "-nx", "-batch", "-p", str(w), "-x",
                          str(script)], capture_output=True, timeout=60,
                         stdin=subprocess.DEVNULL).stdout.decode()
    chunks = int(out.split("chunks=")[1].split()[0])
    assert 0 < chunks * (16 << 20) <= bound, out
    peak_kib = vm_rss_kib(peak)
    print(f"bound {bound} B, {chunks} chunks of 16 MiB, "
          f"worker VmRSS at its peak {peak_kib} KiB")
    assert peak_kib * 1024 < bound + (32 << 20), peak_kib
    assert d.workers() == [w]
    serves_tcp_udp(d.port)
    assert d.stop() == 0


# ------------------------------------------------- docs


def test_security_table_names_tests_that_exist():
    """Each row of SECURITY.md's "What each process can still do" names
    tests, and every one named exists."""
    import re
    text = (ROOT / "SECURITY.md").read_text()
    table = text.split("## What each process can still do")[1]
    table = table.split("\n## ")[0]
    rows = [l for l in table.splitlines()
            if l.startswith("| ") and not l.startswith("| process")]
    assert len(rows) >= 10
    for row in rows:
        named = re.findall(r"`((?:tests/unit/)?test_\w+\.[cp]y?)(?:::(\w+))?`",
                           row)
        assert named, f"no test named in: {row}"
        for path, func in named:
            f = ROOT / path if path.startswith("tests/") else \
                ROOT / "tests" / "integration" / path
            assert f.exists(), path
            if func:
                assert re.search(rf"^def {func}\(", f.read_text(), re.M), \
                    f"{path}::{func}"
