"""Dropping privileges: [server] user.

Started as root with user = nobody, apubid binds (a port below 1024
included) and loads what only root may read, then becomes nobody for good
- real, effective and saved ids, no supplementary group of root's, no
capabilities - and only then opens its store. Everything it creates
belongs to nobody: the store must lie in a directory nobody can write, and
so must the destination root. These tests need root; the directories live
under /tmp (pytest's own are private to root) and nothing but 127.0.0.1
is contacted.
"""
import os
import pwd
import shutil
import socket
import time
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import APUBID, Daemon

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def make_dropped():
    """make_dropped(writable=True, **overrides) -> a Daemon with user =
    nobody, not started, in a directory nobody can traverse; with
    `writable`, its store directory and cdn/ belong to nobody."""
    base = Path(tempfile.mkdtemp(prefix="apubid-priv-", dir="/tmp"))
    base.chmod(0o755)
    daemons = []

    def make(writable=True, **overrides):
        overrides.setdefault("server", {}).setdefault("user", "nobody")
        d = Daemon(base / f"d{len(daemons)}", overrides)
        d.tmp.chmod(0o755)
        if writable:
            os.chown(d.tmp, NOBODY.pw_uid, NOBODY.pw_gid)
            os.chown(d.cdn, NOBODY.pw_uid, NOBODY.pw_gid)
        daemons.append(d)
        return d

    yield make
    problems = []
    for d in daemons:
        if d.proc is not None:
            rc = d.stop()
            if rc != 0:
                problems.append(f"apubid in {d.tmp} exited {rc} on SIGTERM\n{d.log_tail()}")
    shutil.rmtree(base, ignore_errors=True)
    if problems:
        pytest.fail("\n".join(problems))


def proc_status(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.split()
    return out


def test_runs_as_nobody_and_still_serves_and_publishes(make_dropped):
    d = make_dropped().start()
    uid, gid = str(NOBODY.pw_uid), str(NOBODY.pw_gid)
    # The port accepts connections from the bind on, before the drop: wait
    # for the line the drop writes.
    deadline = time.monotonic() + 30
    while f"running as user nobody (uid {uid}, gid {gid})" not in d.log_text():
        assert time.monotonic() < deadline, d.log_tail()
        time.sleep(0.05)
    st = proc_status(d.proc.pid)
    assert st["Uid"] == [uid] * 4, st["Uid"]   # real, effective, saved, filesystem
    assert st["Gid"] == [gid] * 4, st["Gid"]
    assert "0" not in st["Groups"], st["Groups"]
    assert int(st["CapEff"][0], 16) == 0 and int(st["CapPrm"][0], 16) == 0
    assert f"running as user nobody (uid {uid}, gid {gid})" in d.log_text()

    (d.ingest / "pkg").mkdir()
    (d.ingest / "pkg" / "index.m3u8").write_bytes(b"#EXTM3U\n")
    (d.ingest / "pkg" / "seg1.ts").write_bytes(b"x" * 100000)
    d.publish(f"file://{d.ingest}/pkg/", "pkg/")
    for p in [d.cdn / "pkg", d.cdn / "pkg" / "seg1.ts", d.tmp / "apubid.db"]:
        assert p.stat().st_uid == NOBODY.pw_uid, p
    assert (d.cdn / "pkg" / "seg1.ts").read_bytes() == b"x" * 100000
    d.remove("pkg/")
    assert not (d.cdn / "pkg").exists()
    # Still nobody after serving.
    assert proc_status(d.proc.pid)["Uid"] == [uid] * 4


def test_binds_a_privileged_port_before_dropping(make_dropped):
    port = None
    for candidate in range(980, 700, -7):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port = candidate
            break
    if port is None:
        pytest.skip("no free port below 1024")
    d = make_dropped()
    d.port = port
    d.url = f"http://127.0.0.1:{port}/apubi"
    d.sections["server"]["listen"] = f"127.0.0.1:{port}"
    d.conf.write_text(d.config_text())
    d.start()
    assert proc_status(d.proc.pid)["Uid"][1] == str(NOBODY.pw_uid)
    status, _, body = d.post(None, path="/apubi?wsdl", method="GET")
    assert status == 200, body[:300]


def conf_line(d, prefix):
    return [l.startswith(prefix) for l in d.config_text().splitlines()].index(True) + 1


def test_a_store_nobody_cannot_write_stops_the_start(make_dropped):
    """Checked as nobody before anything is bound or opened: the store's
    directory and the destination root, both root's, are both reported."""
    d = make_dropped(writable=False)
    for args in (["-n", "-f", str(d.conf)], ["-f", str(d.conf)]):
        p = subprocess.run([APUBID] + args, cwd=d.tmp, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30)
        err = p.stderr.decode()
        assert p.returncode == 1, err
        assert err == (f"apubid: {d.conf}:{conf_line(d, 'path = ')}: the store's directory "
                       f"{d.tmp} is not writable by user nobody: Permission denied\n"
                       f"apubid: {d.conf}:{conf_line(d, 'root = ')}: [destination] root "
                       f"{d.cdn} is not writable by user nobody: Permission denied\n"), err
    assert not (d.tmp / "apubid.db").exists()


def test_an_ingest_directory_nobody_cannot_read_is_reported(make_dropped):
    d = make_dropped()
    d.ingest.chmod(0o700)
    p = subprocess.run([APUBID, "-n", "-f", str(d.conf)], cwd=d.tmp, capture_output=True,
                       timeout=30)
    assert p.returncode == 1, p
    assert p.stderr.decode() == (
        f"apubid: {d.conf}:{conf_line(d, 'allow = file://')}: [source] allow {d.ingest} "
        "is not readable by user nobody: Permission denied\n"), p.stderr
    # Root could read it: the check is made as the user apubid will run as.
    d.ingest.chmod(0o755)
    p = subprocess.run([APUBID, "-n", "-f", str(d.conf)], cwd=d.tmp, capture_output=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr


def test_user_that_does_not_exist_is_a_configuration_error(make_dropped):
    d = make_dropped(server={"user": "no-such-apubid-user"})
    p = subprocess.run([APUBID, "-n", "-f", str(d.conf)], capture_output=True, timeout=30)
    assert p.returncode == 1
    assert b"user 'no-such-apubid-user' does not exist" in p.stderr, p.stderr


def test_running_as_root_without_user_warns(make_daemon):
    d = make_daemon()
    assert "running as root: set [server] user" in d.log_text()
