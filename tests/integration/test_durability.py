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

from conftest import (TASKID_RE, envelope, hidden_entries, parse_response, sha256,
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
