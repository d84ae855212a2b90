"""Load and durability: many clients at once, a kill -9 right after the
answers, a SIGTERM while tasks run, and restarts.

A TaskId is answered only once the task is committed, so whatever happens
to the process afterwards, every TaskId answered stays known and its task
reaches SUCCESS after a restart, with complete files and no temporary or
staging names left in the destination.
"""
import hashlib
import http.client
import os
import threading
import time
from pathlib import Path

import pytest

from conftest import (TASKID_RE, envelope, hidden_entries, parse_response, read_tree, sha256,
                      write_tree,
                      soap_headers)

MiB = 1 << 20


def make_sources(d, count, size, prefix="src", package_every=0, package_files=20):
    """count distinct sources under ingest/: files of `size` bytes, and when
    package_every = n, every n-th one a directory package of package_files
    files (size // package_files bytes each, every one fsync'ed by the
    daemon, so packages take a while). Returns {name: sha256 of the file, or
    {relative path: sha256} for a package}."""
    block = os.urandom(size)
    digests = {}
    for i in range(count):
        if package_every and i % package_every == package_every - 1:
            name = f"{prefix}-{i:03d}.pkg"
            files = {}
            part = size // package_files
            for j in range(package_files):
                rel = f"v{j % 3}/seg-{j:03d}.ts"
                head = f"{name}/{rel}".encode().ljust(64, b"#")
                data = head + block[:part]
                p = d.ingest / name / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
                files[rel] = hashlib.sha256(data).hexdigest()
            digests[name] = files
            continue
        name = f"{prefix}-{i:03d}.ts"
        head = f"{name}:{i}:".encode().ljust(64, b"#")
        data = head + block[64:-64] + head
        (d.ingest / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def submit_all(d, names, dest_dir):
    """LoadAsset for every name on one keep-alive connection; returns
    {TaskId: name}."""
    ids = {}
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
    try:
        for name in names:
            body = envelope("LoadAsset", [("SourceAssetUrl", f"file://{d.ingest}/{name}"),
                                          ("DestinationAsset", f"{dest_dir}/{name}")])
            conn.request("POST", "/apubi", body=body, headers=soap_headers())
            r = conn.getresponse()
            data = r.read()
            assert r.status == 200, f"LoadAsset {name}: HTTP {r.status}: {data[:500]!r}"
            tid = parse_response(data, "LoadAsset")["TaskId"]
            assert TASKID_RE.match(tid)
            ids[tid] = name
    finally:
        conn.close()
    return ids


def assert_all_published(d, ids, digests, dest_dir, timeout):
    done = d.wait_all(list(ids), timeout=timeout)
    failed = {t: s for t, s in done.items() if s[0] != "SUCCESS"}
    assert not failed, f"{len(failed)} tasks did not succeed, e.g. {next(iter(failed.items()))}"
    for tid, name in ids.items():
        p = d.cdn / dest_dir / name
        if isinstance(digests[name], dict):
            assert done[tid][1] == f"file://{d.cdn}/{dest_dir}/{name}/"
            got = {str(f.relative_to(p)): sha256(f) for f in p.rglob("*") if f.is_file()}
            assert got == digests[name], f"package {p} differs from its source"
            continue
        assert done[tid][1] == f"file://{d.cdn}/{dest_dir}/{name}"
        assert p.exists(), f"{p} missing after SUCCESS"
        assert sha256(p) == digests[name], f"{p} differs from its source"
    assert sorted(os.listdir(d.cdn / dest_dir)) == sorted(ids.values())
    assert hidden_entries(d.cdn) == [], "temporary or staging names left behind"


def test_many_concurrent_loads_get_distinct_ids_and_all_succeed(daemon):
    files = {f"c{i:03d}.ts": os.urandom(2048 + i) for i in range(200)}
    for name, data in files.items():
        (daemon.ingest / name).write_bytes(data)
    names = sorted(files)
    results, errors = {}, []
    lock = threading.Lock()

    def worker(chunk):
        try:
            ids = submit_all(daemon, chunk, "conc")
            with lock:
                results.update(ids)
        except BaseException as e:  # reported from the main thread
            with lock:
                errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(names[i::16],)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "client threads still running after 60s"
    assert not errors, errors[:3]
    assert len(results) == 200, f"{len(results)} distinct TaskIds for 200 loads"
    digests = {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}
    assert_all_published(daemon, results, digests, "conc", timeout=120)


def test_tasks_survive_kill_9_and_finish_after_restart(daemon):
    digests = make_sources(daemon, 100, 2 * MiB, package_every=10)
    ids = submit_all(daemon, sorted(digests), "crash")
    daemon.kill9()
    daemon.start()
    # Every TaskId answered before the crash is still known (no fault).
    for tid in ids:
        st, _ = daemon.status(tid)
        assert st in ("IN_PROGRESS", "SUCCESS"), f"{tid} is {st} after the crash"
    assert_all_published(daemon, ids, digests, "crash", timeout=120)


def test_sigterm_while_tasks_run_exits_cleanly_and_work_resumes(daemon):
    # Packages of many small files: each file is created and fsync'ed, so
    # the work lasts well beyond the moment the signal is sent.
    digests = make_sources(daemon, 12, 2 * MiB, prefix="term", package_every=1,
                           package_files=1000)
    ids = submit_all(daemon, sorted(digests), "term")
    # The point is to stop the daemon in the middle of work: check that it is.
    in_progress = [t for t in list(ids)[-4:] if daemon.status(t)[0] == "IN_PROGRESS"]
    assert in_progress, "test precondition: every task finished before SIGTERM was sent"
    t0 = time.monotonic()
    rc = daemon.stop(timeout=15)
    assert rc == 0, f"apubid exited {rc} on SIGTERM\n{daemon.log_tail()}"
    assert time.monotonic() - t0 < 15
    daemon.start()
    # About 15 s of work, several times that under the sanitizers.
    assert_all_published(daemon, ids, digests, "term", timeout=200)


def test_finished_tasks_stay_queryable_after_a_restart(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"kept")
    load = daemon.load(f"file://{daemon.ingest}/a.ts", "keep/a.ts")
    before = daemon.wait_for_status(load)
    purge = daemon.purge("keep/none.ts")
    assert daemon.wait_for_status(purge) == ("SUCCESS", None)
    daemon.restart()
    assert daemon.status(load) == before == ("SUCCESS", f"file://{daemon.cdn}/keep/a.ts")
    assert daemon.status(purge) == ("SUCCESS", None)


# ---- a stage an interrupted task left is not trusted blindly -----------------------
#
# A kill -9 followed by a machine crash can leave a file the store records
# done missing, short or zero-filled in a local stage (the stage is made
# durable only at the commit), and anything at all can be found in a stage
# left behind: files an earlier plan had, or files put there by hand. After
# the restart the published tree is exactly the source, byte for byte.

def _interrupted_package(make_daemon, tmp_path, source, root=None, extra=(), kill=True):
    """A package of twelve 1.5 MiB files (each large enough to be resumed)
    and a manifest, fetched from the FTP server `source` throttled to
    3 MiB/s into the local root or `root` (a URL; `extra` the servers it
    needs), and apubid killed with SIGKILL once four files are recorded
    done (left running when not `kill`). Returns (daemon, task id, tree)."""
    from test_remote import item_rows, start_daemon, transfer_conf, url, wait_until
    tree = {f"v{i % 2}/seg{i:02d}.ts": os.urandom(3 * MiB // 2 - 7 * i) for i in range(12)}
    tree["index.m3u8"] = b"#EXTM3U\n"
    write_tree(source.root / "repo/pkg", tree)
    d = start_daemon(make_daemon, sources=[url(source, "repo/", creds=False)], root=root,
                     transfer=transfer_conf(tmp_path, source, *extra, parallel=1))
    tid = d.load(url(source, "repo/pkg/"), "vod/pkg/")

    def done():
        return sum(1 for r in item_rows(d, tid) if r["state"] == 1 and not r["is_dir"])
    wait_until(lambda: done() >= 4, 120, "four files of the package recorded done")
    if not kill:
        return d, tid, tree
    d.kill9()
    assert done() < len(tree), "the package finished before apubid could be killed"
    return d, tid, tree


def test_files_recorded_done_but_lost_from_a_local_stage_are_copied_again(tmp_path,
                                                                          make_daemon):
    from servers import FtpServer
    from test_remote import PASSWORD, assert_items, item_rows, succeed
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=3 * MiB) as s:
        d, tid, tree = _interrupted_package(make_daemon, tmp_path, s)
        stage = d.cdn / "vod" / f".pkg.apubid-{tid}.stage"
        done = [r["path"] for r in item_rows(d, tid) if r["state"] == 1 and not r["is_dir"]]
        # What a power cut can leave of files written but not yet synced:
        # one short, one the right size but zero-filled, one gone.
        short, zeroed, gone = done[:3]
        with open(stage / short, "r+b") as f:
            f.truncate(len(tree[short]) // 2)
        (stage / zeroed).write_bytes(bytes(len(tree[zeroed])))
        (stage / gone).unlink()
        d.start()
        succeed(d, tid, timeout=120)
    assert read_tree(d.cdn / "vod/pkg") == tree
    assert hidden_entries(d.cdn) == []
    assert_items(d, tid, tree)
    log = d.log_text()
    for path in (short, zeroed, gone):
        assert f"the staged copy of {path} is not what was recorded" in log, path


def as_after_a_power_cut(path):
    """Makes the partial file `path`, marked by apubid as written in this
    boot, what a power cut can leave: zeros, written in another boot."""
    assert os.getxattr(path, "user.apubid.boot") == open(
        "/proc/sys/kernel/random/boot_id", "rb").read().strip()
    path.write_bytes(bytes(path.stat().st_size))
    os.setxattr(path, "user.apubid.boot", b"00000000-0000-0000-0000-000000000000")


def test_a_partial_file_from_before_a_crash_is_copied_again_not_continued(tmp_path,
                                                                           make_daemon):
    """A file cut in the middle is continued after its bytes only when they
    were written since the machine last started; bytes written before a
    crash may be zeros on the disk. The partial file is zero-filled and
    marked as written in another boot, as a power cut would leave it."""
    from servers import FtpServer
    from test_remote import PASSWORD, assert_items, item_rows, succeed, wait_until
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=3 * MiB) as s:
        d, tid, tree = _interrupted_package(make_daemon, tmp_path, s, kill=False)
        stage = d.cdn / "vod" / f".pkg.apubid-{tid}.stage"

        def partial():
            for r in item_rows(d, tid):
                p = stage / r["path"]
                if (not r["is_dir"] and r["state"] == 0 and r["version"] and p.exists()
                        and 256 << 10 <= p.stat().st_size < len(tree[r["path"]])):
                    return r["path"]
            return None
        path = wait_until(partial, 120, "a file half copied")
        d.kill9()
        as_after_a_power_cut(stage / path)
        d.start()
        succeed(d, tid, timeout=120)
    assert read_tree(d.cdn / "vod/pkg") == tree
    assert_items(d, tid, tree)
    for f in (d.cdn / "vod/pkg").rglob("*.ts"):
        assert "user.apubid.boot" not in os.listxattr(f), f"{f} is published with its mark"


def test_a_spool_file_from_before_a_crash_is_fetched_again_not_continued(tmp_path,
                                                                          make_daemon):
    """Between two servers a file passes through a spool file beside the
    store; one cut in the middle by a crash of the machine is treated as a
    local stage's file: its bytes may be zeros, so it is fetched again from
    its first byte, and the server's copy ends byte-identical."""
    from servers import FtpServer
    from test_remote import (PASSWORD, assert_items, item_rows, make_server, succeed, url,
                             wait_until)
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=3 * MiB) as s, \
            make_server("http", tmp_path) as dst:
        dst.path("cdn").mkdir()
        d, tid, tree = _interrupted_package(make_daemon, tmp_path, s, root=url(dst, "cdn/"),
                                            extra=[dst], kill=False)
        spool = Path(d.tmp) / f"spool-{tid}"

        def partial():
            by_seq = {r["seq"]: r for r in item_rows(d, tid)}
            for f in spool.glob("*") if spool.is_dir() else ():
                r = by_seq.get(int(f.name)) if f.name.isdigit() else None
                if (r and not r["is_dir"] and r["state"] == 0 and r["version"]
                        and 256 << 10 <= f.stat().st_size < len(tree[r["path"]])):
                    return f
            return None
        f = wait_until(partial, 120, "a file half fetched into the spool")
        d.kill9()
        as_after_a_power_cut(f)
        d.start()
        succeed(d, tid, timeout=120)
        assert read_tree(dst.path("cdn/vod/pkg")) == tree
    assert_items(d, tid, tree)
    assert not spool.exists(), f"{spool} is left behind"


def test_files_not_in_the_plan_never_leave_a_local_stage(tmp_path, make_daemon):
    from servers import FtpServer
    from test_remote import PASSWORD, assert_items, succeed
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=3 * MiB) as s:
        d, tid, tree = _interrupted_package(make_daemon, tmp_path, s)
        stage = d.cdn / "vod" / f".pkg.apubid-{tid}.stage"
        (stage / "stray.ts").write_bytes(b"not in the source")
        (stage / "v0/stray.ts").write_bytes(b"not in the source either")
        (stage / "old/deep").mkdir(parents=True)
        (stage / "old/deep/seg.ts").write_bytes(b"from another plan")
        os.symlink("/etc/passwd", stage / "v1/link.ts")
        d.start()
        succeed(d, tid, timeout=120)
    assert read_tree(d.cdn / "vod/pkg") == tree
    assert sorted(p.relative_to(d.cdn / "vod/pkg").as_posix()
                  for p in (d.cdn / "vod/pkg").rglob("*")) == sorted([*tree, "v0", "v1"])
    assert hidden_entries(d.cdn) == []
    assert_items(d, tid, tree)


@pytest.mark.parametrize("kind", ["ftp", "http"])
def test_files_not_in_the_plan_never_leave_a_stage_on_a_remote_root(kind, tmp_path,
                                                                    make_daemon):
    from servers import FtpServer
    from test_remote import PASSWORD, assert_items, make_server, succeed, url
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=3 * MiB) as s, \
            make_server(kind, tmp_path) as dst:
        dst.path("cdn").mkdir()
        d, tid, tree = _interrupted_package(make_daemon, tmp_path, s, root=url(dst, "cdn/"),
                                            extra=[dst])
        stage = dst.path("cdn/vod") / f".pkg.apubid-{tid}.stage"
        assert stage.is_dir(), "no stage on the server to plant files in"
        (stage / "stray.ts").write_bytes(b"not in the source")
        (stage / "v0").mkdir(exist_ok=True)
        (stage / "v0/stray.ts").write_bytes(b"not in the source either")
        (stage / "old/deep").mkdir(parents=True)
        (stage / "old/deep/seg.ts").write_bytes(b"from another plan")
        d.start()
        succeed(d, tid, timeout=120)
        published = dst.path("cdn/vod/pkg")
        assert read_tree(published) == tree
        assert sorted(p.relative_to(published).as_posix()
                      for p in published.rglob("*")) == sorted([*tree, "v0", "v1"])
        assert hidden_entries(dst.path("cdn")) == []
    assert_items(d, tid, tree)
    assert "not in the task's plan: removed before the commit" in d.log_text()


def test_a_file_found_short_on_a_remote_stage_is_sent_again_and_no_record_is_lost(
        tmp_path, make_daemon):
    """A file recorded done but short on the server's stage is caught by the
    listing before the commit and sent again; the files sent in the same
    attempt keep their recorded SHA-256 through the task's items being
    written back."""
    from servers import FtpServer
    from test_remote import PASSWORD, assert_items, item_rows, make_server, succeed, url
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=3 * MiB) as s, \
            make_server("ftp", tmp_path) as dst:
        dst.path("cdn").mkdir()
        d, tid, tree = _interrupted_package(make_daemon, tmp_path, s, root=url(dst, "cdn/"),
                                            extra=[dst])
        stage = dst.path("cdn/vod") / f".pkg.apubid-{tid}.stage"
        done = [r["path"] for r in item_rows(d, tid) if r["state"] == 1 and not r["is_dir"]]
        with open(stage / done[0], "r+b") as f:
            f.truncate(len(tree[done[0]]) // 3)
        d.start()
        succeed(d, tid, timeout=120)
        assert read_tree(dst.path("cdn/vod/pkg")) == tree
    assert_items(d, tid, tree)
    assert "short transfer to" in d.log_text()
