"""`make install` / `make uninstall` into a DESTDIR, `make deb` installed
into a throw-away root (an overlay of / in a private mount namespace) and
run from there, and the scale-out examples in dist/ checked by their own
tools."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import Echod, ECHOD_BIN, free_port

ROOT = Path(__file__).resolve().parents[2]

INSTALLED = {
    # path under DESTDIR (PREFIX=/usr/local): mode
    "usr/local/sbin/echod": 0o755,
    "usr/local/bin/echo-client": 0o755,
    "etc/echod/echod.conf": 0o644,
    "usr/local/share/man/man8/echod.8": 0o644,
    "usr/local/share/man/man5/echod.conf.5": 0o644,
    "usr/local/share/man/man1/echo-client.1": 0o644,
    "usr/local/lib/systemd/system/echod.service": 0o644,
    "usr/local/lib/systemd/system/echod.socket": 0o644,
    "usr/local/share/doc/echod/README.md": 0o644,
    "usr/local/share/doc/echod/SECURITY.md": 0o644,
    "usr/local/share/doc/echod/docs/design.md": 0o644,
    "usr/local/share/doc/echod/docs/fuzzing.md": 0o644,
    "usr/local/share/doc/echod/docs/hacking.md": 0o644,
    "usr/local/share/doc/echod/docs/lab.md": 0o644,
    "usr/local/share/doc/echod/docs/operations.md": 0o644,
    "usr/local/share/doc/echod/docs/performance.md": 0o644,
    "usr/local/share/doc/echod/docs/scale-out.md": 0o644,
    "usr/local/share/doc/echod/examples/keepalived/keepalived.conf": 0o644,
    "usr/local/share/doc/echod/examples/kubernetes/echod.yaml": 0o644,
}

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="mounts an overlay root: needs root")


def make(*args, timeout=300):
    r = subprocess.run(["make", "-s", "--no-print-directory", *args],
                       cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def tree(top):
    """{relative path: (mode, is_dir)} of everything below top."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(top))] = (stat.S_IMODE(st.st_mode),
                                            stat.S_ISDIR(st.st_mode))
    return out


def file_capabilities(path):
    try:
        return os.getxattr(path, "security.capability")
    except OSError:
        return None


def test_install_tree_modes_and_no_capabilities(tmp_path):
    dest = tmp_path / "root"
    make("install", f"DESTDIR={dest}")
    got = tree(dest)
    files = {p: mode for p, (mode, is_dir) in got.items() if not is_dir}
    assert files == INSTALLED
    for p, (mode, is_dir) in got.items():
        if is_dir:
            assert mode == 0o755, p
    for binary in ("usr/local/sbin/echod", "usr/local/bin/echo-client"):
        # Neither setuid nor file capabilities: port 7 comes from the
        # socket unit, and the rest from running as root under systemd.
        assert file_capabilities(dest / binary) is None, binary
        assert os.stat(dest / binary).st_uid == os.geteuid()

    unit = (dest / "usr/local/lib/systemd/system/echod.service").read_text()
    assert "ExecStart=/usr/local/sbin/echod -c /etc/echod/echod.conf" in unit
    assert "file:/usr/local/share/doc/echod/SECURITY.md" in unit

    installed_echod = dest / "usr/local/sbin/echod"
    r = subprocess.run([installed_echod, "-c", dest / "etc/echod/echod.conf",
                        "-t"], capture_output=True, text=True, timeout=10)
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr
    conf = (dest / "etc/echod/echod.conf").read_text()
    assert "\nchroot /run/echod/empty\n" in conf

    make("uninstall", f"DESTDIR={dest}")
    left = {p for p, (_, is_dir) in tree(dest).items() if not is_dir}
    assert left == set()
    assert not (dest / "etc/echod").exists()
    assert not (dest / "usr/local/share/doc/echod").exists()


def test_install_keeps_the_operators_policy(tmp_path):
    """An existing policy is never overwritten (the shipped one goes beside
    it, and install says so); uninstall leaves an edited one, and says so,
    and removes one nobody edited."""
    dest = tmp_path / "root"
    conf = dest / "etc/echod/echod.conf"
    make("install", f"DESTDIR={dest}")
    shipped = conf.read_text()
    conf.write_text(shipped + "deny 198.51.100.0/24\n")
    r = make("install", f"DESTDIR={dest}")
    assert conf.read_text() == shipped + "deny 198.51.100.0/24\n"
    assert (dest / "etc/echod/echod.conf.dist").read_text() == shipped
    assert f"kept your {conf}" in r.stderr and "echod.conf.dist" in r.stderr
    r = make("uninstall", f"DESTDIR={dest}")
    assert conf.read_text() == shipped + "deny 198.51.100.0/24\n"
    assert f"kept {conf}" in r.stderr
    left = {p for p, (_, d) in tree(dest).items() if not d}
    assert left == {"etc/echod/echod.conf"}
    conf.write_text(shipped)  # back as shipped: install and uninstall alike
    r = make("install", f"DESTDIR={dest}")
    assert not (dest / "etc/echod/echod.conf.dist").exists() and not r.stderr
    make("uninstall", f"DESTDIR={dest}")
    assert not (dest / "etc").exists() or not any((dest / "etc").rglob("*.conf"))


def test_install_honours_prefix(tmp_path):
    dest = tmp_path / "root"
    make("install", f"DESTDIR={dest}", "PREFIX=/opt/echod",
         "SYSCONFDIR=/opt/echod/etc")
    assert os.access(dest / "opt/echod/sbin/echod", os.X_OK)
    assert (dest / "opt/echod/etc/echod/echod.conf").is_file()
    assert (dest / "opt/echod/share/man/man8/echod.8").is_file()
    unit = (dest / "opt/echod/lib/systemd/system/echod.service").read_text()
    assert "ExecStart=/opt/echod/sbin/echod " in unit
    assert not (dest / "usr").exists() and not (dest / "etc").exists()
    make("uninstall", f"DESTDIR={dest}", "PREFIX=/opt/echod",
         "SYSCONFDIR=/opt/echod/etc")
    assert {p for p, (_, d) in tree(dest).items() if not d} == set()


# ------------------------------------------------------------- the package


class OverlayRoot:
    """A copy-on-write view of / whose changes land in tmp_path: every
    command runs in its own mount namespace, so nothing is mounted on the
    host and the changes vanish with tmp_path."""

    def __init__(self, tmp_path):
        self.top = tmp_path / "overlay"
        for d in ("upper", "work", "merged"):
            (self.top / d).mkdir(parents=True)
        self.upper = self.top / "upper"

    def argv(self, *command):
        t = self.top
        script = (
            f"mount -t overlay overlay -o lowerdir=/,upperdir={t}/upper,"
            f"workdir={t}/work {t}/merged && "
            f"mount -t proc proc {t}/merged/proc && "
            f"mount --bind /dev {t}/merged/dev && "
            f"mount -t tmpfs -o mode=0755 tmpfs {t}/merged/run && "
            f'exec chroot {t}/merged "$@"')
        return ["unshare", "-m", "--propagation", "private", "sh", "-c",
                script, "overlay", *[str(c) for c in command]]

    def run(self, *command, input=None):
        return subprocess.run(self.argv(*command), capture_output=True,
                              text=True, timeout=60, input=input)


def test_lintian_finds_no_error(deb):
    if shutil.which("lintian") is None:
        pytest.skip("lintian missing")
    changes = list(deb.parent.glob("echod_*.changes"))
    r = subprocess.run(["lintian", "--fail-on", "error,warning", *changes],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_root
def test_deb_installs_and_runs_in_a_throwaway_root(deb, tmp_path):
    root = OverlayRoot(tmp_path)
    r = root.run("dpkg-query", "-W", "echod")
    assert r.returncode != 0, "echod is already installed on this host"
    (root.upper / "tmp").mkdir()
    shutil.copy(deb, root.upper / "tmp")
    # --no-triggers: man-db would rebuild its index of every page here.
    r = root.run("dpkg", "--no-triggers", "-i", f"/tmp/{deb.name}")
    assert r.returncode == 0, r.stdout + r.stderr

    # The system user, with no login and no home.
    r = root.run("getent", "passwd", "echod")
    assert r.returncode == 0, r.stderr
    name, _, uid, _, _, home, shell = r.stdout.strip().split(":")
    assert 0 < int(uid) < 1000 and home == "/nonexistent"
    assert shell.endswith("nologin") or shell == "/bin/false"
    # Enabled through the socket unit only.
    wants = root.upper / "etc/systemd/system"
    assert (wants / "sockets.target.wants/echod.socket").is_symlink()
    assert not (wants / "multi-user.target.wants/echod.service").exists()
    # The policy is a conffile, and what the unit reads.
    r = root.run("dpkg-query", "-W", "-f", "${Conffiles}", "echod")
    assert r.stdout.split()[0] == "/etc/echod/echod.conf", r.stdout
    r = root.run("/usr/sbin/echod", "-c", "/etc/echod/echod.conf", "-t")
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr

    # The installed binary serves, as root, hardened: it chroots into the
    # unit's /run/echod/empty and becomes the package's user.
    port = free_port()
    d = Echod(root.argv("/usr/sbin/echod", "-c", "/etc/echod/echod.conf",
                        "-l", "127.0.0.1", "-p", port, "-w", "1"),
              port, None)
    try:
        line = d.wait_event("sandboxed", 10)
        assert "user=echod" in line and "chroot=/run/echod/empty" in line
        d.wait_ready()
        r = root.run("/usr/bin/echo-client", "-p", port, "127.0.0.1",
                     input="from the package\n")
        assert (r.returncode, r.stdout) == (0, "from the package\n"), r.stderr
        r = root.run("/usr/bin/echo-client", "-u", "-p", port, "127.0.0.1",
                     input="udp too\n")
        assert (r.returncode, r.stdout) == (0, "udp too\n"), r.stderr
        assert d.stop() == 0
    finally:
        d.kill_all()

    r = root.run("dpkg", "--purge", "echod")
    assert r.returncode == 0, r.stdout + r.stderr
    r = root.run("sh", "-c", "ls /etc/echod /usr/sbin/echod "
                 "/etc/systemd/system/sockets.target.wants/echod.socket")
    assert r.stdout == "", r.stdout


# ------------------------------------------------------- scale-out examples


def test_keepalived_accepts_the_example():
    if shutil.which("keepalived") is None:
        pytest.skip("keepalived missing")
    conf = ROOT / "dist/keepalived/keepalived.conf"
    r = subprocess.run(["keepalived", "-t", "-f", conf], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    text = conf.read_text()
    # Both protocols, and a UDP check that wants its own payload back.
    assert "protocol TCP" in text and "protocol UDP" in text
    assert text.count("payload 6563") == text.count("require_reply 6563")


def test_kubernetes_example_parses_and_its_policy_passes(tmp_path):
    docs = list(yaml.safe_load_all(
        (ROOT / "dist/kubernetes/echod.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Namespace", "ConfigMap", "DaemonSet"}
    pod = kinds["DaemonSet"]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    ports = {(p["containerPort"], p["protocol"])
             for p in pod["containers"][0]["ports"]}
    assert ports == {(7, "TCP"), (7, "UDP"), (9107, "TCP")}
    policy = tmp_path / "echod.conf"
    policy.write_text(kinds["ConfigMap"]["data"]["echod.conf"])
    r = subprocess.run([ECHOD_BIN, "-c", policy, "-t"], capture_output=True,
                       text=True, timeout=10)
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr
