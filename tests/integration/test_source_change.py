"""A source that changes during the copy is never published as SUCCESS with
bytes it did not hold at one moment.

apubid takes each source file's version before its copy (a local file's
size, modification and status change times, device and inode; FTP's SIZE
and MDTM; SFTP's size and modification time; HTTP's Content-Length, ETag
and Last-Modified) and asks again after it. A change is transient: the
file is copied again from its first byte on the next attempt, and a
partial file an attempt left is continued only from the same version.
Once `[transfer] retries` are spent, the task ends FAILED with a reason
starting "source changed during the copy: ".

What is checked, against the real daemon:

* a local source appended to, cut short, or rewritten in place (same
  size) while it is being copied: the first attempt reports the change,
  the next one publishes the source as it stands afterwards, whole, with
  the SHA-256 of the published bytes on the item;
* a local source a writer keeps rewriting, with retries = 2: FAILED with
  the reason above, nothing at the final name;
* an FTP (pyftpdlib) and an HTTP (nginx) source replaced between two
  attempts (the first one cut by stopping the server mid-transfer): the
  next attempt publishes the new version whole, from its first byte (no
  REST, no ranged GET), never the old prefix with the new tail;
* an HTTP source replaced while its download runs: the download of the
  old version completes, the check after it sees the new ETag, and the
  retry publishes the new version.

"During the copy" is made certain, not hoped for: the local sources are
large sparse files (cheap to make, a few hundred milliseconds to copy) and
the writer acts as soon as the staged file holds its first bytes, then
records how far the copy had got, which must be short of the end; remote
servers are throttled. Every wait has a deadline; only 127.0.0.1 is
contacted.
"""
import hashlib
import os
import re
import threading
import time
from pathlib import Path

import pytest

from conftest import hidden_entries, sha256
from servers import FtpServer, WebDavServer

MiB = 1 << 20
PASSWORD = "Pw-4sC9hQ2z"
CHANGED = "source changed during the copy: "


# ---- helpers ----------------------------------------------------------------

def make_sparse(path, size):
    """A `size`-byte file of random first and last MiB with a hole between:
    big enough that a copy takes a while, cheap to make."""
    with open(path, "wb") as f:
        f.write(os.urandom(MiB))
        f.truncate(size)
        f.seek(size - MiB)
        f.write(os.urandom(MiB))


def staged_size(root):
    """Largest file below `root` under a hidden (temporary or staging) name:
    how far the copy in progress has got, 0 when none is."""
    best = 0
    for dirpath, _, names in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for n in names:
            if n.startswith(".") or any(p.startswith(".") for p in rel.parts):
                try:
                    best = max(best, (Path(dirpath) / n).stat().st_size)
                except FileNotFoundError:
                    pass
    return best


def wait_until(predicate, timeout, what):
    end = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        assert time.monotonic() < end, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


def start_local(make_daemon, retries):
    return make_daemon(transfer={"retries": str(retries), "retry_delay": "0",
                                 "retry_max_delay": "1", "retry_max_time": "120"})


def during_copy(root, size, action, timeout=60):
    """Calls action() as soon as a staged file below `root` holds bytes, and
    returns how many it held then (0 < n < size: the copy was under way)."""
    end = time.monotonic() + timeout
    while True:
        n = staged_size(root)
        if n > 0:
            action()
            return n
        assert time.monotonic() < end, f"no copy started within {timeout}s"
        time.sleep(0.0005)


def finish(d, tid, timeout=120):
    st, dest = d.wait_for_status(tid, timeout)
    return st, d.view(tid)


def file_items(view):
    return [i for i in view["items"] if not i["is_dir"]]


def assert_published(d, view, published, expected_sha):
    """SUCCESS: the published file is the source as it stands (expected_sha)
    and its item carries the SHA-256 of the published bytes."""
    assert view["state"] == "succeeded", f"task ended {view['state']}: {view.get('reason')}"
    got = sha256(published)
    assert got == expected_sha, \
        "the published file is not the source as it stands after the change " \
        f"(published {got}, source {expected_sha})"
    items = file_items(view)
    assert len(items) == 1 and items[0]["sha256"] == got, \
        f"item sha256 {items[0]['sha256']} is not that of the published bytes {got}"
    assert hidden_entries(d.cdn) == []


def assert_change_reported(view, what):
    """The first attempt ended on the change, naming `what` and the file."""
    log = view["attempt_log"]
    assert log and log[0]["error"], f"no error on the first attempt: {log}"
    err = log[0]["error"]
    assert err.startswith(CHANGED), f"first attempt ended {err!r}"
    assert re.search(what, err), f"{what!r} not in {err!r}"
    assert "; file " in err, f"the file is not named in {err!r}"


class Writer(threading.Thread):
    """Rewrites a file again and again (a few bytes at its start, growing
    and shrinking it by one byte) until stopped."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.halt = threading.Event()
        self.writes = 0

    def run(self):
        fd = os.open(self.path, os.O_WRONLY)
        size = os.fstat(fd).st_size
        try:
            while not self.halt.is_set():
                os.pwrite(fd, os.urandom(4096), 0)
                os.ftruncate(fd, size + (self.writes % 2))
                self.writes += 1
                time.sleep(0.002)
        finally:
            os.close(fd)

    def stop(self):
        self.halt.set()
        self.join(10)


# ---- local sources ------------------------------------------------------------

SIZE = 512 * MiB


def test_local_source_appended_during_the_copy_is_published_whole_with_its_sha256(
        tmp_path, make_daemon):
    d = start_local(make_daemon, retries=3)
    src = d.ingest / "movie.ts"
    make_sparse(src, SIZE)
    tail = os.urandom(8 * MiB)

    def append():
        with open(src, "ab") as f:
            f.write(tail)

    tid = d.load(f"file://{src}", "movie.ts")
    at = during_copy(d.cdn, SIZE, append)
    assert at < SIZE, "the copy was over before the source changed"
    st, view = finish(d, tid)
    assert st == "SUCCESS", f"ended {st}: {view.get('reason')}\n{d.log_tail()}"
    assert (d.cdn / "movie.ts").stat().st_size == SIZE + len(tail)
    assert_published(d, view, d.cdn / "movie.ts", sha256(src))
    assert_change_reported(view, rf"size {SIZE} -> {SIZE + len(tail)}")
    assert view["attempts"] >= 2


def test_local_source_cut_short_during_the_copy_is_published_as_it_stands(tmp_path,
                                                                          make_daemon):
    d = start_local(make_daemon, retries=3)
    src = d.ingest / "movie.ts"
    make_sparse(src, SIZE)
    tid = d.load(f"file://{src}", "movie.ts")
    at = during_copy(d.cdn, SIZE, lambda: os.truncate(src, SIZE // 2))
    assert at < SIZE // 2, "the copy had passed the cut before the source changed"
    st, view = finish(d, tid)
    assert st == "SUCCESS", f"ended {st}: {view.get('reason')}\n{d.log_tail()}"
    assert (d.cdn / "movie.ts").stat().st_size == SIZE // 2
    assert_published(d, view, d.cdn / "movie.ts", sha256(src))
    assert_change_reported(view, rf"size {SIZE} -> {SIZE // 2}")


def test_local_source_rewritten_in_place_during_the_copy_is_published_whole(tmp_path,
                                                                            make_daemon):
    d = start_local(make_daemon, retries=3)
    src = d.ingest / "movie.ts"
    make_sparse(src, SIZE)
    before = sha256(src)

    def rewrite():
        # Same size, other bytes: at the start (already copied) and at the
        # end (not yet copied), so the old copy would be neither version.
        with open(src, "r+b") as f:
            f.write(os.urandom(MiB))
            f.seek(SIZE - MiB)
            f.write(os.urandom(MiB))

    tid = d.load(f"file://{src}", "movie.ts")
    at = during_copy(d.cdn, SIZE, rewrite)
    assert at < SIZE - MiB, "the copy was over before the source changed"
    st, view = finish(d, tid)
    after = sha256(src)
    assert after != before and os.path.getsize(src) == SIZE
    assert st == "SUCCESS", f"ended {st}: {view.get('reason')}\n{d.log_tail()}"
    assert_published(d, view, d.cdn / "movie.ts", after)
    assert_change_reported(view, r"modification time \S+ -> \S+")


def test_local_source_that_keeps_changing_fails_naming_the_change_and_the_file(tmp_path,
                                                                               make_daemon):
    d = start_local(make_daemon, retries=2)
    src = d.ingest / "live.ts"
    make_sparse(src, 128 * MiB)
    w = Writer(src)
    w.start()
    try:
        wait_until(lambda: w.writes > 5, 10, "the writer to start")
        tid = d.load(f"file://{src}", "live.ts")
        st, view = finish(d, tid)
    finally:
        w.stop()
    assert st == "FAILED", f"ended {st} while its source kept changing\n{d.log_tail()}"
    reason = view["reason"]
    assert reason.startswith(CHANGED), f"reason {reason!r}"
    assert f"; file {src}" in reason, f"the file is not named in {reason!r}"
    assert re.search(r"(size|modification time|status change time) \S+ -> ", reason), reason
    assert view["attempts"] == 2, f"{view['attempts']} attempts with retries = 2"
    assert all(a["error"].startswith(CHANGED) for a in view["attempt_log"]), view["attempt_log"]
    assert not (d.cdn / "live.ts").exists(), "a changing source was published"
    # What a retry would continue from is emptied: no byte of a version
    # that did not last is kept.
    assert staged_size(d.cdn) == 0, hidden_entries(d.cdn)


def test_local_package_file_changed_during_the_copy_names_it_in_the_reason(tmp_path,
                                                                           make_daemon):
    d = start_local(make_daemon, retries=1)
    pkg = d.ingest / "show"
    (pkg / "v1").mkdir(parents=True)
    (pkg / "master.m3u8").write_bytes(b"#EXTM3U\nv1/seg.ts\n")
    seg = pkg / "v1" / "seg.ts"
    make_sparse(seg, SIZE)
    tid = d.load(f"file://{pkg}/", "show/")
    def append():
        with open(seg, "ab") as f:
            f.write(b"x" * 4096)

    during_copy(d.cdn, SIZE, append)
    st, view = finish(d, tid)
    assert st == "FAILED"
    reason = view["reason"]
    assert reason.startswith(f"{CHANGED}size {SIZE} -> {SIZE + 4096}"), reason
    assert reason.endswith(f"; file {seg} (gave up after 1 attempt)"), reason
    assert not (d.cdn / "show").exists()


# ---- remote sources ---------------------------------------------------------------

def remote_conf(retries=6):
    return {"retries": str(retries), "retry_delay": "1", "retry_max_delay": "1",
            "retry_max_time": "120", "connect_timeout": "5", "stall_timeout": "10"}


def start_remote(make_daemon, server):
    d = make_daemon(start=False)
    d.sections["source"]["allow"] = [f"file://{d.ingest}/", server.url("repo/", credentials=False)]
    d.sections["transfer"] = remote_conf()
    d.conf.write_text(d.config_text())
    os.chmod(d.conf, 0o600)
    return d.start()


def progress(d, tid):
    try:
        done = d.view(tid)["progress"]["bytes_done"] or 0
    except Exception:
        done = 0
    return max(done, staged_size(d.cdn))


def replaced_between_attempts(server, make_daemon, old_size, new_size):
    """Starts a download of repo/big.ts, stops the server once a quarter has
    come, replaces the file with new bytes of `new_size`, starts the server
    again and waits for the task. Returns (daemon, view, new bytes)."""
    old = os.urandom(old_size)
    new = os.urandom(new_size)
    (server.root / "repo").mkdir(parents=True, exist_ok=True)
    (server.root / "repo/big.ts").write_bytes(old)
    # A minute old, so that the new version's modification time differs
    # even to FTP's MDTM, which counts whole seconds.
    os.utime(server.root / "repo/big.ts", (time.time() - 60, time.time() - 60))
    d = start_remote(make_daemon, server)
    tid = d.load(server.url("repo/big.ts"), "big.ts")
    got = wait_until(lambda: progress(d, tid) >= old_size // 4 and progress(d, tid), 30,
                     "a quarter of the download")
    assert got < old_size, "the download finished before it could be cut"
    server.stop()
    tmp = server.root / "repo/.big.ts.new"
    tmp.write_bytes(new)
    os.replace(tmp, server.root / "repo/big.ts")
    time.sleep(1.5)
    server.start()
    st, view = finish(d, tid, timeout=90)
    assert st == "SUCCESS", f"ended {st}: {view.get('reason')}\n{d.log_tail()}"
    return d, view, new


@pytest.mark.parametrize("mlst", [True, False], ids=["mlst", "size_mdtm"])
@pytest.mark.parametrize("new_size", [24 * MiB, 20 * MiB], ids=["same_size", "shorter"])
def test_ftp_source_replaced_between_attempts_is_published_new_and_whole(new_size, mlst, tmp_path,
                                                                        make_daemon):
    """A server with MLST is asked for a file's version with it; one
    without (500) with SIZE and MDTM: a replaced file is seen either way."""
    off = () if mlst else ("MLST", "MLSD")
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=6 * MiB,
                   commands_off=off) as s:
        start_mark = len(s.log())
        d, view, new = replaced_between_attempts(s, make_daemon, 24 * MiB, new_size)
        after = s.log()[start_mark:]
    if mlst:
        assert "<- MLST /" in after and "<- MDTM" not in after, after[-3000:]
    else:
        assert "<- MDTM /" in after and "<- SIZE /" in after, after[-3000:]
        assert after.count("<- MLST") <= view["attempts"], "MLST asked again after a 500"
    after_restart = after[after.rfind("start #"):] if "start #" in after else after
    published = (d.cdn / "big.ts").read_bytes()
    assert published == new, "the published file is not the new version whole"
    assert_published(d, view, d.cdn / "big.ts", hashlib.sha256(new).hexdigest())
    rests = [int(x) for x in re.findall(r"<- REST (\d+)", after_restart)]
    assert not any(r > 0 for r in rests), \
        f"the new version was resumed from byte {max(rests)} of the old one"
    assert view["attempts"] >= 2


@pytest.mark.parametrize("new_size", [24 * MiB, 20 * MiB], ids=["same_size", "shorter"])
def test_http_source_replaced_between_attempts_is_published_new_and_whole(new_size, tmp_path,
                                                                        make_daemon):
    with WebDavServer(tmp_path, password=PASSWORD, limit_rate=6 * MiB) as s:
        d, view, new = replaced_between_attempts(s, make_daemon, 24 * MiB, new_size)
        access = s.access_log()
    assert (d.cdn / "big.ts").read_bytes() == new, \
        "the published file is not the new version whole"
    assert_published(d, view, d.cdn / "big.ts", hashlib.sha256(new).hexdigest())
    assert not re.search(r'"GET /repo/big\.ts HTTP/1\.1" 206 ', access), \
        "a ranged GET continued the old version's partial file with the new one"
    assert view["attempts"] >= 2


def test_http_source_replaced_during_its_download_is_published_as_the_new_version(
        tmp_path, make_daemon):
    size = 12 * MiB
    old, new = os.urandom(size), os.urandom(size)
    with WebDavServer(tmp_path, password=PASSWORD, limit_rate=4 * MiB) as s:
        (s.root / "repo").mkdir()
        (s.root / "repo/big.ts").write_bytes(old)
        os.utime(s.root / "repo/big.ts", (time.time() - 60, time.time() - 60))
        d = start_remote(make_daemon, s)
        tid = d.load(s.url("repo/big.ts"), "big.ts")
        at = wait_until(lambda: staged_size(d.cdn), 30, "the download to start")
        assert at < size
        # Replaced by rename: nginx goes on sending the old file it has
        # open, so the download itself completes, consistent and old.
        tmp = s.root / "repo/.big.ts.new"
        tmp.write_bytes(new)
        os.replace(tmp, s.root / "repo/big.ts")
        st, view = finish(d, tid, timeout=90)
    assert st == "SUCCESS", f"ended {st}: {view.get('reason')}\n{d.log_tail()}"
    assert (d.cdn / "big.ts").read_bytes() == new
    assert_published(d, view, d.cdn / "big.ts", hashlib.sha256(new).hexdigest())
    assert_change_reported(view, r'ETag "[^"]+" -> "[^"]+"')
