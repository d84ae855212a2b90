"""Store faults: one daemon per store, a full disk, a deleted store file.

* A second apubid started on the store of a running one refuses to start
  (exit 1, naming the store and the pid holding its lock) and touches
  nothing: the first keeps serving. apubictl's store commands work beside
  the running daemon, since they never take that lock.
* The store on a small filesystem of its own (a tmpfs the test mounts; the
  CDN root stays elsewhere) filled up while a load runs: the worker keeps
  its task and records it once space is back, so the task ends SUCCESS
  without a restart; meanwhile LoadAsset and PurgeAsset get a Server fault
  with HTTP 503 and Retry-After, never a TaskId, and /healthz answers 503
  with the store's error, then 200 again. SIGTERM still stops a worker
  waiting for the store; the task then resumes at the next start.
* The store file deleted (or replaced) under the running daemon: SQLite
  would go on writing into the deleted file, so a TaskId answered then
  would be gone at the next start; submissions get 503 instead, and
  /healthz says why.

The tmpfs tests need root (mount); every wait has a deadline.
"""
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import APUBID, Daemon, assert_fault, post
from servers import FtpServer

REPO = Path(__file__).resolve().parents[2]
APUBICTL = os.environ.get("APUBICTL", str(REPO / "apubictl"))
PASSWORD = "Fu11-d1sk-pw"
KiB = 1 << 10


def health(d):
    r = post(d.port, None, {}, path="/healthz", method="GET")
    return r.status, r.body.decode("utf-8", "replace")


def wait_until(predicate, timeout, what, d=None):
    end = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout}s waiting for {what}"
                        + (f"\n{d.log_tail()}" if d else ""))
        time.sleep(0.1)


def assert_refused_503(reply, version=11):
    """A submission the store cannot take: Server (Receiver) fault, 503,
    Retry-After, and no TaskId."""
    f = assert_fault(reply, "Server" if version == 11 else "Receiver", 503, version)
    assert reply.headers.get("Retry-After", "").isdigit(), \
        f"503 without Retry-After: {dict(reply.headers)}"
    assert b"TaskId" not in reply.body, reply.body[:500]
    return f


def ctl(*args):
    assert os.access(APUBICTL, os.X_OK), f"{APUBICTL} is not built"
    env = {k: v for k, v in os.environ.items() if not k.startswith("APUBICTL_")}
    return subprocess.run([APUBICTL, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=60, stdin=subprocess.DEVNULL)


# ---- one store, one daemon ----------------------------------------------

def test_second_daemon_on_the_same_store_is_refused_and_the_first_keeps_serving(
        tmp_path, make_daemon):
    first = make_daemon()
    (first.ingest / "a.ts").write_bytes(b"a" * 1000)
    first.publish(f"file://{first.ingest}/a.ts", "a.ts")
    store = f"{first.tmp}/apubid.db"

    second = Daemon(tmp_path / "second", {"store": {"path": store}})
    p = subprocess.run([APUBID, "-f", str(second.conf)], cwd=second.tmp,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, f"second apubid started on a used store:\n{p.stderr}"
    want = (f"store {store} is in use by apubid pid {first.proc.pid} "
            f"(lock {store}.lock)")
    assert want in p.stderr, p.stderr
    # It stopped before recovering anything or starting workers.
    assert "queued again" not in p.stderr and "workers started" not in p.stderr, p.stderr
    assert Path(f"{store}.lock").read_text().strip() == str(first.proc.pid)

    # The first one still serves, and publishes.
    (first.ingest / "b.ts").write_bytes(b"b" * 2000)
    first.publish(f"file://{first.ingest}/b.ts", "b.ts")
    assert (first.cdn / "b.ts").read_bytes() == b"b" * 2000
    assert health(first)[0] == 200

    # apubid -n checks a configuration beside the running daemon.
    p = subprocess.run([APUBID, "-n", "-f", str(second.conf)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr

    # apubictl's store commands never take the lock.
    p = ctl("--store", store, "tasks")
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("succeeded") == 2, p.stdout
    tid = p.stdout.splitlines()[1].split()[0]
    p = ctl("--store", store, "show", tid)
    assert p.returncode == 0 and tid in p.stdout, p.stdout + p.stderr


def test_the_store_is_free_again_once_the_daemon_stopped(tmp_path, make_daemon):
    first = make_daemon()
    store = f"{first.tmp}/apubid.db"
    assert first.stop() == 0
    second = Daemon(tmp_path / "second", {"store": {"path": store}})
    second.start()
    try:
        (second.ingest / "c.ts").write_bytes(b"c")
        second.publish(f"file://{second.ingest}/c.ts", "c.ts")
    finally:
        assert second.stop() == 0, second.log_tail()


def test_a_killed_daemon_leaves_no_lock_behind(daemon):
    daemon.kill9()
    daemon.start()
    (daemon.ingest / "k.ts").write_bytes(b"k")
    daemon.publish(f"file://{daemon.ingest}/k.ts", "k.ts")


# ---- a full disk under the store ----------------------------------------

@pytest.fixture
def small_fs():
    """A 4 MiB tmpfs of its own, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = Path(tempfile.mkdtemp(prefix="apubid-storefs-", dir="/tmp"))
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a tmpfs: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)
        shutil.rmtree(mnt, ignore_errors=True)


def fill(directory):
    """Writes directory/filler until the filesystem is full; returns it.

    Unbuffered writes straight to the descriptor: a buffered file would
    keep the bytes a full disk refused and raise again when closed."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (64 * KiB, 1):      # big blocks, then what is left byte by byte
            block = b"\0" * size
            try:
                while True:
                    os.write(fd, block)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def start_package_load(s, make_daemon, small_fs):
    """A daemon whose store lies on small_fs, loading a package from the
    throttled FTP server `s` (six files, about three seconds); returns
    (daemon, TaskId, {relative path: bytes}) once a first file of the
    package is recorded."""
    files = {f"pkg/seg{i}.ts": os.urandom(96 * KiB) for i in range(6)}
    for rel, data in files.items():
        p = s.path(f"repo/{rel}")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    d = make_daemon(start=False)
    d.sections["store"]["path"] = f"{small_fs}/apubid.db"
    d.sections["source"]["allow"] = [f"file://{d.ingest}/", s.url("repo/", credentials=False)]
    d.sections["transfer"] = {"retries": "3", "retry_delay": "1",
                              "connect_timeout": "5", "stall_timeout": "30"}
    d.conf.write_text(d.config_text())
    d.start()
    assert os.stat(d.cdn).st_dev != os.stat(small_fs).st_dev
    tid = d.load(s.url("repo/pkg/"), "pkg/")
    wait_until(lambda: any(it["state"] == "done" for it in d.view(tid)["items"]), 30,
               "a first file of the package to be recorded", d)
    return d, tid, files


def test_full_store_disk_refuses_submissions_and_the_running_load_finishes_once_freed(
        tmp_path, make_daemon, small_fs):
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=192 * KiB) as s:
        d, tid, files = start_package_load(s, make_daemon, small_fs)
        filler = fill(small_fs)
        try:
            # The worker's next write fails: /healthz says why.
            status, body = wait_until(
                lambda: (lambda h: h if h[0] == 503 else None)(health(d)), 30,
                "/healthz to report the full store", d)
            assert "store" in body and "does not take writes" in body, body
            assert "database or disk is full (No space left on device)" in body, body
            # Submissions are refused, never answered a TaskId.
            (d.ingest / "new.ts").write_bytes(b"n")
            for _ in range(3):
                assert_refused_503(d.load_reply(f"file://{d.ingest}/new.ts", "new.ts"))
            assert_refused_503(d.purge_reply("pkg/"))
            # The worker cannot record the next file: it keeps the task
            # (not failed, not let go) while the disk is full.
            wait_until(lambda: f"task {tid}: cannot record" in d.log_text(), 30,
                       "the worker to find it cannot record", d)
            time.sleep(1.5)
            assert d.status(tid)[0] == "IN_PROGRESS"
            assert d.view(tid)["state"] == "running"
        finally:
            filler.unlink()

        st, dest = d.wait_for_status(tid, timeout=60)
        assert st == "SUCCESS", f"{st}\n{d.log_tail()}"
        for rel, data in files.items():
            assert (d.cdn / rel).read_bytes() == data, rel
        wait_until(lambda: health(d)[0] == 200, 15, "/healthz to be 200 again", d)
        # Submissions are taken again, and carried out.
        d.publish(f"file://{d.ingest}/new.ts", "new.ts")

    log = d.log_text()
    assert log.count(f"task {tid}: cannot record") == 1, \
        "one warning when recording starts failing, not one per try\n" + d.log_tail()
    assert f"task {tid}: a file done recorded after" in log, d.log_tail()
    assert log.count("store: new tasks are refused") == 1, d.log_tail()
    assert "store: new tasks are accepted again" in log
    assert "redone at the next start" not in log


def test_sigterm_stops_a_worker_waiting_for_a_full_store_and_the_task_resumes(
        tmp_path, make_daemon, small_fs):
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=192 * KiB) as s:
        d, tid, files = start_package_load(s, make_daemon, small_fs)
        filler = fill(small_fs)
        try:
            wait_until(lambda: f"task {tid}: cannot record" in d.log_text(), 30,
                       "the worker to find it cannot record", d)
            t0 = time.monotonic()
            assert d.stop(timeout=15) == 0, d.log_tail()
            assert time.monotonic() - t0 < 10, "SIGTERM waited for the store"
        finally:
            filler.unlink()
        # The task was left running in the store: the next start queues it
        # again and finishes it.
        d.start()
        st, _ = d.wait_for_status(tid, timeout=60)
        assert st == "SUCCESS", f"{st}\n{d.log_tail()}"
        for rel, data in files.items():
            assert (d.cdn / rel).read_bytes() == data, rel
    assert "store: 1 interrupted tasks queued again" in d.log_text(), d.log_tail()


# ---- a store file deleted or replaced ----------------------------------

@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_store_file_gone_refuses_submissions_and_healthz_says_why(daemon, how):
    (daemon.ingest / "a.ts").write_bytes(b"a")
    daemon.publish(f"file://{daemon.ingest}/a.ts", "a.ts")
    store = daemon.tmp / "apubid.db"
    if how == "deleted":
        store.unlink()
    else:
        copy = daemon.tmp / "apubid.db.copy"
        shutil.copyfile(store, copy)
        os.rename(copy, store)

    for _ in range(2):
        assert_refused_503(daemon.load_reply(f"file://{daemon.ingest}/a.ts", "b.ts"))
    assert_refused_503(daemon.purge_reply("a.ts"))
    assert_refused_503(daemon.load_reply(f"file://{daemon.ingest}/a.ts", "b.ts", version=12), 12)
    status, body = health(daemon)
    assert status == 503, body
    assert f"store file {store} was deleted or replaced since apubid opened it" in body, body
    assert "store: new tasks are refused" in wait_until(
        lambda: "store: new tasks are refused" in daemon.log_text() and daemon.log_text(), 10,
        "the monitor to log the refusal", daemon)
    assert not (daemon.cdn / "b.ts").exists()
