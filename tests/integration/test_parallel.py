"""Several files of one task at once: `[transfer] parallel`, against real
servers on 127.0.0.1 (tests/integration/servers.py).

What is checked:

* a package published over each protocol (FTP and SFTP sources; FTP, SFTP
  and WebDAV roots; the local root) gives the same tree, byte for byte,
  and the same SHA-256 on every item, with parallel = 1 and parallel = 4;
* max_per_host holds across the parallel transfers of several tasks: the
  connections open at once to one server, counted at the server, never
  pass it, and do reach it;
* one FTP login per connection, not per file: a task logs in at most
  `parallel` times, counted as USER commands in pyftpdlib's log, both
  fetching a package and publishing one;
* a package fetched with parallel = 4 and cut in the middle of its large
  files is resumed (REST with an offset) and lands whole.
"""
import os
import re
import time
from pathlib import Path

import pytest

from conftest import hidden_entries, read_tree, write_tree
from servers import FtpServer, WebDavServer
from test_remote import (MiB, PASSWORD, _established, assert_items, describe,
                         log_since_last_start, make_server, start_daemon, succeed,
                         task_row, transfer_conf, url, wait_until)

# A small HLS package: 36 segments in three renditions, their playlists
# and a master, an empty file, and an empty directory made by the test.
PACKAGE = {f"v{i % 3}/seg{i:03d}.ts": os.urandom(20_000 + 37 * i) for i in range(36)}
PACKAGE.update({
    "master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv0/index.m3u8\n",
    "v0/index.m3u8": b"#EXTM3U\n#EXTINF:2,\nseg000.ts\n",
    "v1/index.m3u8": b"#EXTM3U\n#EXTINF:2,\nseg001.ts\n",
    "v2/index.m3u8": b"#EXTM3U\n#EXTINF:2,\nseg002.ts\n",
    "zero.bin": b"",
})


def item_digests(d, tid):
    """{path: (size, sha256)} of the task's file items."""
    from test_remote import item_rows
    return {r["path"]: (r["size"], r["sha256"]) for r in item_rows(d, tid) if not r["is_dir"]}


def users(log_text):
    return len(re.findall(r"<- USER ", log_text))


# ---- the same package, one file or four at a time -------------------------

@pytest.mark.parametrize("kind", ["ftp", "sftp"])
def test_package_from_a_server_is_the_same_with_parallel_1_and_4(kind, tmp_path, make_daemon):
    with make_server(kind, tmp_path) as s:
        write_tree(s.root / "repo/pkg", PACKAGE)
        (s.root / "repo/pkg/empty").mkdir()
        seen = []
        for parallel in (1, 4):
            d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                             transfer=transfer_conf(tmp_path, s, parallel=parallel))
            tid = d.load(url(s, "repo/pkg/"), "vod/pkg/")
            succeed(d, tid, timeout=120)
            assert read_tree(d.cdn / "vod/pkg") == PACKAGE, f"parallel = {parallel}"
            assert (d.cdn / "vod/pkg/empty").is_dir()
            assert hidden_entries(d.cdn) == []
            assert_items(d, tid, PACKAGE)
            seen.append(item_digests(d, tid))
            d.stop()
    assert seen[0] == seen[1]


@pytest.mark.parametrize("kind", ["ftp", "sftp", "http", "local"])
def test_package_to_a_root_is_the_same_with_parallel_1_and_4(kind, tmp_path, make_daemon):
    seen = []
    server = None if kind == "local" else make_server(kind, tmp_path)
    try:
        if server:
            server.start()
            server.path("cdn").mkdir()
        for parallel in (1, 4):
            root = url(server, "cdn/") if server else None
            transfer = (transfer_conf(tmp_path, server, parallel=parallel) if server
                        else {"parallel": str(parallel)})
            d = start_daemon(make_daemon, root=root, transfer=transfer)
            write_tree(d.ingest / "pkg", PACKAGE)
            tid = d.load(f"file://{d.ingest}/pkg/", f"p{parallel}/pkg/")
            succeed(d, tid, timeout=120)
            top = server.path("cdn") if server else d.cdn
            assert read_tree(top / f"p{parallel}/pkg") == PACKAGE, f"parallel = {parallel}"
            assert hidden_entries(top) == []
            assert_items(d, tid, PACKAGE)
            seen.append(item_digests(d, tid))
            d.stop()
    finally:
        if server:
            server.stop()
    assert seen[0] == seen[1]


# ---- connections -------------------------------------------------------------

def test_max_per_host_holds_across_the_parallel_files_of_several_tasks(tmp_path, make_daemon):
    """Three tasks of eight slow files each, four files at a time per task,
    four workers: at most two connections to the server at any moment, and
    two at some moment (the limit is used, not just kept)."""
    files = {f"repo/p{t}/f{i}.ts": os.urandom(256 << 10) for t in range(3) for i in range(8)}
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=1 * MiB) as s:
        write_tree(s.root, files)
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)], workers=4,
                         transfer=transfer_conf(tmp_path, s, max_per_host=2, parallel=4))
        tids = [d.load(url(s, f"repo/p{t}/"), f"p{t}/") for t in range(3)]
        peak, end = 0, time.monotonic() + 120
        while True:
            peak = max(peak, _established(s.port))
            if all(d.status(t)[0] != "IN_PROGRESS" for t in tids):
                break
            assert time.monotonic() < end, "the three loads did not finish within 120s"
            time.sleep(0.01)
    for t, tid in enumerate(tids):
        assert d.status(tid)[0] == "SUCCESS", describe(d, tid)
        assert read_tree(d.cdn / f"p{t}") == {
            k.split("/", 2)[2]: v for k, v in files.items() if k.startswith(f"repo/p{t}/")}
    assert peak == 2, f"{peak} connections at once to one server with max_per_host = 2"


@pytest.mark.parametrize("direction", ["source", "root"])
def test_an_ftp_task_logs_in_at_most_parallel_times(direction, tmp_path, make_daemon):
    """60 files, three at a time: one login per connection, so at most
    three USER commands for the whole task, whatever the number of files
    (and whatever a probe of a missing name answers)."""
    tree = {f"d{i % 4}/f{i:02d}.ts": os.urandom(4096 + i) for i in range(60)}
    with FtpServer(tmp_path, password=PASSWORD) as s:
        if direction == "source":
            write_tree(s.root / "repo/pkg", tree)
            d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                             transfer=transfer_conf(tmp_path, s, parallel=3))
            tid = d.load(url(s, "repo/pkg/"), "vod/pkg/")
            succeed(d, tid, timeout=120)
            assert read_tree(d.cdn / "vod/pkg") == tree
        else:
            s.path("cdn").mkdir()
            d = start_daemon(make_daemon, root=url(s, "cdn/"),
                             transfer=transfer_conf(tmp_path, s, parallel=3))
            write_tree(d.ingest / "pkg", tree)
            # Twice: the second publish finds its directories there and
            # replaces a package, which is where refused commands come.
            for _ in range(2):
                before = users(s.log())
                tid = d.load(f"file://{d.ingest}/pkg/", "vod/pkg/")
                succeed(d, tid, timeout=120)
                assert 1 <= users(s.log()) - before <= 3, \
                    f"{users(s.log()) - before} logins for one task with parallel = 3"
            assert read_tree(s.path("cdn/vod/pkg")) == tree
            assert_items(d, tid, tree)
            return
        log = s.log()
    assert_items(d, tid, tree)
    assert 1 <= users(log) <= 3, f"{users(log)} logins for one task with parallel = 3"


# ---- a cut -------------------------------------------------------------------------

def test_package_cut_while_four_files_move_is_resumed_and_lands_whole(tmp_path, make_daemon):
    """Four files of 6 MiB at 6 MiB/s each (large enough to be resumed,
    not copied again): the server goes away while all four move, comes back,
    and the next attempt continues them (REST with an offset)."""
    size = 6 * MiB
    tree = {f"big{i}.ts": os.urandom(size) for i in range(4)}
    tree["index.m3u8"] = b"#EXTM3U\n"
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=6 * MiB) as s:
        write_tree(s.root / "repo/pkg", tree)
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                         transfer=transfer_conf(tmp_path, s, retries=6, parallel=4))
        tid = d.load(url(s, "repo/pkg/"), "vod/pkg/")

        def staged():
            total = 0
            for dirpath, _, names in os.walk(d.cdn):
                total += sum(os.path.getsize(Path(dirpath) / n) for n in names)
            return total
        got = wait_until(lambda: staged() >= size and staged(), 60, "a quarter of the package")
        assert got < 4 * size, "the package finished before it could be cut"
        s.stop()
        time.sleep(1.5)
        s.start()
        succeed(d, tid, timeout=120)
        after = log_since_last_start(s)
    assert read_tree(d.cdn / "vod/pkg") == tree
    assert hidden_entries(d.cdn) == []
    assert_items(d, tid, tree)
    assert task_row(d, tid)["attempts"] >= 2, describe(d, tid)
    rests = [int(x) for x in re.findall(r"<- REST (\d+)", after)]
    assert any(r > 0 for r in rests), "no REST with an offset: nothing was resumed"
