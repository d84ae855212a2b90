"""SHA-256 of every published file, as the task view reports it.

Small local files are hashed as they are copied; files of 8 MiB and more
are copied by the kernel while a second thread hashes the destination
behind the copy. Either way the item's checksum must be that of the bytes
published, and a resumed copy must hash the part an earlier attempt wrote.
"""
import hashlib
import json
import os

from conftest import post

BIG = 20 * 1024 * 1024 + 12345  # not a multiple of any buffer size


def _items(d, task_id):
    status, _, body = post(d.port, None, path=f"/tasks/{task_id}.json", method="GET")
    assert status == 200, body[:400]
    view = json.loads(body)
    return {i["path"]: i for i in view["items"]}, view


def test_checksums_of_small_and_large_local_files_match_the_published_bytes(daemon):
    src = daemon.ingest / "pkg"
    src.mkdir()
    big = os.urandom(BIG)
    small = b"#EXTM3U\n" * 100
    (src / "video.ts").write_bytes(big)
    (src / "index.m3u8").write_bytes(small)
    task_id = daemon.load(str(src) + "/", "pkg/")
    assert daemon.wait_for_status(task_id, timeout=60)[0] == "SUCCESS"
    assert (daemon.cdn / "pkg" / "video.ts").read_bytes() == big
    items, view = _items(daemon, task_id)
    assert items["video.ts"]["size"] == BIG
    assert items["video.ts"]["sha256"] == hashlib.sha256(big).hexdigest()
    assert items["index.m3u8"]["sha256"] == hashlib.sha256(small).hexdigest()
    assert view["progress"]["bytes_done"] == BIG + len(small)


def test_checksum_of_a_single_large_file(daemon):
    data = os.urandom(BIG)
    (daemon.ingest / "big.ts").write_bytes(data)
    task_id = daemon.load(str(daemon.ingest / "big.ts"), "big.ts")
    assert daemon.wait_for_status(task_id, timeout=60)[0] == "SUCCESS"
    assert (daemon.cdn / "big.ts").read_bytes() == data
    items, _ = _items(daemon, task_id)
    assert items[""]["sha256"] == hashlib.sha256(data).hexdigest()
