"""One order per destination, against the real daemon.

A task does not start while an earlier-accepted, unfinished task (queued,
delayed by a [staging] rule, running or waiting to retry) has an
overlapping destination; the CDN ends as if every task had run alone, in
acceptance order. Unrelated destinations still run side by side.

Slow loads come from a real FTP server (pyftpdlib on 127.0.0.1) throttled
to a known rate, so a purge or a second load is accepted while the first
load is still copying; a source "down then up" is the same server stopped
and started again on its port.
"""
import os
import random
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import APUBID, read_tree, write_tree
from servers import FtpServer

APUBICTL = os.environ.get("APUBICTL", str(Path(APUBID).parent / "apubictl"))
RATE = 200_000  # bytes/s of the throttled FTP server


def start(make_daemon, ftp=None, workers=4, **sections):
    """A started apubid whose sources may come from its ingest/ and `ftp`."""
    d = make_daemon(start=False, **sections)
    allow = [f"file://{d.ingest}/"]
    if ftp is not None:
        allow.append(ftp.url("", credentials=False))
    d.sections["source"]["allow"] = allow
    d.sections["workers"]["count"] = str(workers)
    d.sections["transfer"] = {"retries": "8", "retry_delay": "1", "retry_max_delay": "1",
                              "retry_max_time": "120", "connect_timeout": "5",
                              "stall_timeout": "20"}
    d.conf.write_text(d.config_text())
    return d.start()


def state(d, tid):
    return d.view(tid)["state"]


def wait_state(d, tid, wanted, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        v = d.view(tid)
        if v["state"] in wanted:
            return v
        assert time.monotonic() < deadline, f"task {tid} still {v['state']}\n{d.log_tail()}"
        time.sleep(0.05)


def wait_running(d, tid, timeout=30):
    """Until the task runs and has copied some bytes."""
    deadline = time.monotonic() + timeout
    while True:
        v = d.view(tid)
        if v["state"] == "running" and v["progress"]["bytes_done"] > 0:
            return v
        assert v["state"] in ("queued", "running"), f"task {tid} is {v['state']}: {v['reason']}"
        assert time.monotonic() < deadline, f"task {tid} not running\n{d.log_tail()}"
        time.sleep(0.05)


def all_succeed(d, tids, timeout=90):
    done = d.wait_all(tids, timeout=timeout)
    bad = {t: s for t, (s, _) in done.items() if s != "SUCCESS"}
    assert not bad, f"not SUCCESS: {bad}\n" + "\n".join(
        f"{t}: {d.view(t)['reason']}" for t in bad)


def ran_after(d, first, second):
    """True when `second` first ran after `first` had ended for good."""
    fv, sv = d.view(first), d.view(second)
    end = max(e["at"] for e in fv["history"] if e["state"] == "succeeded")
    # `second`'s runs since its (last) acceptance: an operator's retry
    # counts as one.
    hist = sv["history"]
    since = max(i for i, e in enumerate(hist)
                if e["detail"] in ("accepted", "queued again by an operator"))
    begin = min(e["at"] for e in hist[since:] if e["state"] == "running")
    assert begin >= end, (fv["history"], sv["history"])
    return True


def metric(d, name):
    status, body = d.get("/metrics")
    assert status == 200
    m = re.search(rb"^" + re.escape(name.encode()) + rb" (\d+)$", body, re.M)
    assert m, f"{name} missing from /metrics"
    return int(m.group(1))


def slow_package(ftp, name, size=600_000):
    """A three-file package on the throttled server: about size/RATE seconds."""
    files = {f"{name}/index.m3u8": b"#EXTM3U\n", f"{name}/v1/seg1.ts": os.urandom(size // 2),
             f"{name}/v1/seg2.ts": os.urandom(size // 2)}
    write_tree(ftp.root, files)
    return {k[len(name) + 1:]: v for k, v in files.items()}


def test_purge_sent_while_the_package_loads_leaves_nothing(tmp_path, make_daemon):
    with FtpServer(tmp_path, throttle_bytes_per_sec=RATE) as ftp:
        slow_package(ftp, "show")
        d = start(make_daemon, ftp)
        load = d.load(ftp.url("show/"), "show/")
        wait_running(d, load)
        purge = d.purge("show/")
        # The purge is held behind the load, IN_PROGRESS to the WFM.
        v = d.view(purge)
        assert v["state"] == "queued" and v["status"] == "IN_PROGRESS", v
        assert v["waiting_for"] == load, v
        assert d.status(purge)[0] == "IN_PROGRESS"
        assert metric(d, "apubid_tasks_held") == 1
        assert d.view(load)["waiting_for"] is None
        all_succeed(d, [load, purge])
    assert not (d.cdn / "show").exists(), read_tree(d.cdn)
    assert read_tree(d.cdn) == {}
    assert metric(d, "apubid_tasks_held") == 0
    assert ran_after(d, load, purge)
    note = d.view(purge)["note"] or ""
    assert "nothing to purge" not in note, note


def test_purge_of_one_file_inside_a_loading_package(tmp_path, make_daemon):
    with FtpServer(tmp_path, throttle_bytes_per_sec=RATE) as ftp:
        files = slow_package(ftp, "show")
        d = start(make_daemon, ftp)
        load = d.load(ftp.url("show/"), "show/")
        wait_running(d, load)
        purge = d.purge("show/v1/seg1.ts")
        assert d.view(purge)["waiting_for"] == load
        all_succeed(d, [load, purge])
    del files["v1/seg1.ts"]
    assert read_tree(d.cdn / "show") == files


def test_two_loads_of_one_destination_the_later_ones_bytes_stay(tmp_path, make_daemon):
    big = os.urandom(800_000)
    small = b"the later, smaller version\n"
    with FtpServer(tmp_path, throttle_bytes_per_sec=RATE) as ftp:
        write_tree(ftp.root, {"big.ts": big})
        d = start(make_daemon, ftp)
        (d.ingest / "small.ts").write_bytes(small)
        first = d.load(ftp.url("big.ts"), "movie.ts")
        wait_running(d, first)
        second = d.load(f"file://{d.ingest}/small.ts", "movie.ts")
        assert d.view(second)["waiting_for"] == first
        all_succeed(d, [first, second])
    assert (d.cdn / "movie.ts").read_bytes() == small


def test_a_load_waiting_to_retry_holds_newer_tasks(tmp_path, make_daemon):
    ftp = FtpServer(tmp_path)  # not started: connection refused
    try:
        write_tree(ftp.root, {"pkg/a.ts": os.urandom(50_000)})
        d = start(make_daemon, ftp)
        first = d.load(ftp.url("pkg/"), "pkg/")
        wait_state(d, first, ("retry",))
        (d.ingest / "pkg").mkdir()
        (d.ingest / "pkg" / "b.ts").write_bytes(b"newer")
        second = d.load(f"file://{d.ingest}/pkg/", "pkg/")
        purge = d.purge("pkg/")
        time.sleep(1.5)  # the workers are idle: nothing but the rule holds these
        assert state(d, second) == "queued" and d.view(second)["waiting_for"] == first
        assert state(d, purge) == "queued" and d.view(purge)["waiting_for"] == first
        assert not (d.cdn / "pkg").exists()
        ftp.start()
        all_succeed(d, [first, second, purge])
    finally:
        ftp.stop()
    assert not (d.cdn / "pkg").exists(), read_tree(d.cdn)


def test_a_slow_load_does_not_hold_back_an_unrelated_destination(tmp_path, make_daemon):
    with FtpServer(tmp_path, throttle_bytes_per_sec=RATE) as ftp:
        slow_package(ftp, "slow", size=2_000_000)
        d = start(make_daemon, ftp)
        slow = d.load(ftp.url("slow/"), "show/")
        wait_running(d, slow)
        (d.ingest / "fast.ts").write_bytes(b"fast")
        fast = d.load(f"file://{d.ingest}/fast.ts", "show2/fast.ts")
        assert d.view(fast)["waiting_for"] is None
        assert d.wait_for_status(fast, timeout=30)[0] == "SUCCESS"
        assert state(d, slow) == "running", "the unrelated load waited for the slow one"
        all_succeed(d, [slow])


def test_cancel_of_the_first_releases_the_second(tmp_path, make_daemon):
    d = start(make_daemon, staging={
        "enabled": "yes", "rule": ["name=never op=LoadAsset dest=held/first.ts delay=forever"]})
    (d.ingest / "one.ts").write_bytes(b"one")
    write_tree(d.ingest, {"pkg/two.ts": b"two"})
    first = d.load(f"file://{d.ingest}/one.ts", "held/first.ts")
    second = d.load(f"file://{d.ingest}/pkg/", "held/")
    time.sleep(1.5)
    assert state(d, second) == "queued"
    assert d.view(second)["waiting_for"] == first
    p = subprocess.run([APUBICTL, "-c", str(d.conf), "show", second], capture_output=True,
                       text=True, timeout=30, cwd=d.tmp)
    assert p.returncode == 0, p.stderr
    assert re.search(r"waiting for:\s+" + first, p.stdout), p.stdout
    p = subprocess.run([APUBICTL, "-c", str(d.conf), "cancel", first], capture_output=True,
                       text=True, timeout=30, cwd=d.tmp)
    assert p.returncode == 0, p.stderr
    assert d.wait_for_status(second, timeout=30)[0] == "SUCCESS"
    assert d.status(first)[0] == "FAILED"
    assert read_tree(d.cdn) == {"held/two.ts": b"two"}


def test_operator_retry_goes_behind_tasks_accepted_before_it(tmp_path, make_daemon):
    with FtpServer(tmp_path) as ftp:
        d = start(make_daemon, ftp, staging={
            "enabled": "yes", "rule": ["name=later op=LoadAsset dest=pkg/ delay=3s"]})
        failed = d.load(ftp.url("a.ts"), "pkg/a.ts")  # not on the server yet
        assert d.wait_for_status(failed)[0] == "FAILED"
        write_tree(d.ingest, {"pkg/one.ts": b"one", "pkg/two.ts": b"two"})
        whole = d.load(f"file://{d.ingest}/pkg/", "pkg/")  # held 3 s by the rule
        write_tree(ftp.root, {"a.ts": b"a, at last"})
        p = subprocess.run([APUBICTL, "-c", str(d.conf), "retry", failed], capture_output=True,
                           text=True, timeout=30, cwd=d.tmp)
        assert p.returncode == 0, p.stderr
        # The retry is a new acceptance: behind the package load.
        assert d.view(failed)["waiting_for"] == whole
        all_succeed(d, [whole, failed])
        assert ran_after(d, whole, failed)
    assert read_tree(d.cdn) == {"pkg/one.ts": b"one", "pkg/two.ts": b"two",
                                "pkg/a.ts": b"a, at last"}


def test_kill9_with_a_load_and_a_purge_queued_leaves_nothing(tmp_path, make_daemon):
    with FtpServer(tmp_path, throttle_bytes_per_sec=RATE) as ftp:
        slow_package(ftp, "show", size=1_000_000)
        d = start(make_daemon, ftp)
        load = d.load(ftp.url("show/"), "show/")
        wait_running(d, load)
        purge = d.purge("show/")
        assert d.view(purge)["waiting_for"] == load
        d.kill9()
        d.start()
        # After the restart the load is queued again, still ahead of the purge.
        all_succeed(d, [load, purge])
        assert ran_after(d, load, purge)
    assert read_tree(d.cdn) == {}
    assert not (d.cdn / "show").exists()


def test_random_loads_and_purges_end_as_the_sequential_model(tmp_path, make_daemon):
    """A few hundred loads and purges over a handful of overlapping
    destinations, accepted in a known order by several clients' worth of
    back-to-back requests: the CDN must end as if they ran one by one."""
    rng = random.Random(20261205)
    d = start(make_daemon, workers=4)
    dests = ["a/", "a/x.ts", "a/sub/", "a/sub/y.ts", "b.ts", "c/", "c/deep/z.ts", "a2/"]
    model = {}
    tids = []

    def under(prefix):
        return [k for k in model if k == prefix or k.startswith(prefix + "/")]

    for i in range(300):
        dest = rng.choice(dests)
        rel = dest.rstrip("/")
        if rng.random() < 0.3:
            tids.append(d.purge(dest))
            for k in under(rel):
                del model[k]
            continue
        src = d.ingest / f"s{i}"
        if dest.endswith("/"):
            files = {f"f{j}.ts": f"{i}/{j}\n".encode() for j in range(rng.randint(1, 3))}
            if rng.random() < 0.5:
                files["sub/y.ts"] = f"{i}/y\n".encode()
            write_tree(src, files)
            tids.append(d.load(f"file://{src}/", dest))
            for k in under(rel):
                del model[k]
            for k, v in files.items():
                model[f"{rel}/{k}"] = v
        else:
            src.write_bytes(f"{i}\n".encode())
            tids.append(d.load(f"file://{src}", dest))
            for k in under(rel):
                del model[k]
            model[rel] = f"{i}\n".encode()
    all_succeed(d, tids, timeout=180)
    assert read_tree(d.cdn) == model
