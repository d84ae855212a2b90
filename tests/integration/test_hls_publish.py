"""HLS and DASH packages published from an HTTP origin.

nginx (tests/integration/servers.py) serves, on 127.0.0.1, packages that
ffmpeg made the ways an origin meets them (the same recipes as
test_manifest_plan.py): HLS with TS segments, fMP4 with EXT-X-MAP, a
byte-range single-file variant, a master with two video renditions and an
audio group, AES-128 with a key file, DASH with SegmentTemplate and
SegmentTimeline, and SegmentTemplate without a timeline. A LoadAsset whose
SourceAssetUrl names the package's top manifest and whose
DestinationAsset is a directory publishes the whole presentation:

* the task ends SUCCESS and the published tree holds exactly the files the
  manifests name, each byte-identical to what nginx serves, with the
  SHA-256 of those bytes on its item in the task store;
* `[transfer] parallel` 1 and 4 publish identical trees;
* a manifest naming a file outside its directory, a missing segment (404),
  and a live playlist (no EXT-X-ENDLIST) fail the task with a reason that
  names the reference, the URL or the rule; a segment answering 503 sends
  the task to retry rather than failing it; in none of these cases is
  anything published at the destination;
* an HTTP source naming a directory is still refused at once.

Every wait has a deadline (liveness only); only 127.0.0.1 is contacted.
"""
import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import hidden_entries
from servers import WebDavServer
from test_manifest_plan import CODECS, FFMPEG, FFMPEG_TIMEOUT, PACKAGES, SOURCE, mpd_segments
from test_remote import attempt_rows, item_rows, task_row

# The packages published whole: every file ffmpeg wrote is named by the
# manifests, but for dash_template, where ffmpeg may write one audio chunk
# more than the MPD implies (checked in its own test).
WHOLE = ["hls_ts", "hls_fmp4", "hls_single_ts", "hls_master", "hls_aes",
         "dash_timeline_number"]
MADE = WHOLE + ["dash_template", "hls_live"]
# Liveness bounds: a package publishes in well under a second on loopback.
PUBLISH_TIMEOUT = 120


# ---- the origin ------------------------------------------------------------------

@pytest.fixture(scope="module")
def origin_root(tmp_path_factory):
    """The origin's document root: vod/NAME/ per package, written by
    ffmpeg, and vod/escape/ hand-written (a playlist naming a segment of
    another package, outside its own directory)."""
    if not FFMPEG:
        pytest.fail("ffmpeg is missing: make deps-check installs it")
    root = tmp_path_factory.mktemp("origin")
    keys = tmp_path_factory.mktemp("keys")
    (keys / "keyinfo").write_text(f"enc.key\n{keys / 'enc.key'}\n")
    (keys / "enc.key").write_bytes(bytes(range(16)))
    for name in MADE:
        d = root / "vod" / name
        d.mkdir(parents=True)
        args = [a.replace("{keyinfo}", str(keys / "keyinfo")) for a in PACKAGES[name][1]]
        cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1"] + \
            SOURCE + CODECS + args
        r = subprocess.run(cmd, cwd=d, capture_output=True, timeout=FFMPEG_TIMEOUT)
        assert r.returncode == 0, f"ffmpeg for {name}: {r.stderr.decode(errors='replace')}"
    shutil.copy(keys / "enc.key", root / "vod" / "hls_aes" / "enc.key")
    esc = root / "vod" / "escape"
    esc.mkdir()
    (esc / "seg0.ts").write_bytes(b"\x47" * 188)
    (esc / "index.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXTINF:1.0,\nseg0.ts\n#EXTINF:1.0,\n../hls_ts/index1.ts\n#EXT-X-ENDLIST\n")
    (esc / "query.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXTINF:1.0,\nseg0.ts?token=1\n#EXT-X-ENDLIST\n")
    return root


def package_copy(root, name, as_name):
    """A copy of package `name` under vod/`as_name`/, to break without
    touching the original."""
    d = root / "vod" / as_name
    if not d.exists():
        shutil.copytree(root / "vod" / name, d)
    return d


@pytest.fixture
def origin(origin_root, tmp_path):
    """nginx serving the origin root, without authentication; one segment
    of vod/busy/ answers 503 while the file busy.flag is in the root."""
    busy = ("location = /vod/busy/index2.ts { if (-f $document_root/busy.flag) "
            "{ return 503; } }")
    with WebDavServer(tmp_path / "nginx", root=origin_root, auth=False, locations=busy) as s:
        yield s


def start(make_daemon, origin, parallel=None, retries="3"):
    """apubid with the origin's vod/ as an allowed source and quick retries."""
    d = make_daemon(start=False)
    d.sections["source"]["allow"] = [f"file://{d.ingest}/", origin.url("vod/")]
    d.sections["transfer"] = {"retries": retries, "retry_delay": "1",
                              "retry_max_delay": "2", "retry_max_time": "120",
                              "connect_timeout": "5", "stall_timeout": "10"}
    if parallel is not None:
        d.sections["transfer"]["parallel"] = str(parallel)
    d.conf.write_text(d.config_text())
    return d.start()


# ---- the task store and the trees ------------------------------------------------

def tree(root):
    """{relative path: SHA-256} of every file below root."""
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def served(origin, name, paths):
    """{path: SHA-256} of each path of package `name` as nginx answers it."""
    import urllib.request
    out = {}
    for p in paths:
        with urllib.request.urlopen(origin.url(f"vod/{name}/{p}"), timeout=30) as r:
            out[p] = hashlib.sha256(r.read()).hexdigest()
    return out


def publish(d, origin, name, top, dest):
    tid = d.load(origin.url(f"vod/{name}/{top}"), dest)
    st, where = d.wait_for_status(tid, PUBLISH_TIMEOUT)
    assert st == "SUCCESS", f"{name} ended {st}: {task_row(d, tid)['reason']}\n{d.log_tail()}"
    return tid, where


def failed(d, tid, timeout=PUBLISH_TIMEOUT):
    st, where = d.wait_for_status(tid, timeout)
    assert st == "FAILED", f"task ended {st}, expected FAILED\n{d.log_tail()}"
    assert where is None
    reason = task_row(d, tid)["reason"]
    assert reason
    return reason


def assert_published(d, origin, origin_root, tid, name, dest):
    """The tree at `dest` is the package as nginx serves it, file for file,
    and each item carries the SHA-256 of its bytes."""
    got = tree(d.cdn / dest)
    assert got, f"nothing published for {name}"
    assert got == served(origin, name, got), f"{name}: a file differs from what nginx serves"
    items = {r["path"]: r for r in item_rows(d, tid) if not r["is_dir"]}
    assert set(items) == set(got)
    for path, digest in got.items():
        assert items[path]["state"] == 1 and items[path]["sha256"] == digest, path
    assert hidden_entries(d.cdn) == []
    return got


# ---- packages published whole ----------------------------------------------------

@pytest.mark.parametrize("name", WHOLE)
def test_package_is_published_whole_and_byte_identical(make_daemon, origin, origin_root,
                                                        name):
    d = start(make_daemon, origin)
    top = PACKAGES[name][0]
    tid, where = publish(d, origin, name, top, f"pkg/{name}/")
    assert where.endswith(f"pkg/{name}/")
    got = assert_published(d, origin, origin_root, tid, name, f"pkg/{name}")
    written = {str(p.relative_to(origin_root / "vod" / name))
               for p in (origin_root / "vod" / name).rglob("*") if p.is_file()}
    assert set(got) == written


def test_master_brings_every_rendition_and_the_audio_group(make_daemon, origin,
                                                           origin_root):
    d = start(make_daemon, origin)
    tid, _ = publish(d, origin, "hls_master", "master.m3u8", "pkg/master/")
    got = tree(d.cdn / "pkg/master")
    master = (d.cdn / "pkg/master/master.m3u8").read_text()
    assert "#EXT-X-MEDIA:TYPE=AUDIO" in master and 'GROUP-ID="group_aud"' in master
    for v in ("stream_0", "stream_1", "stream_audio"):
        assert f"{v}/index.m3u8" in got
        assert any(p.startswith(f"{v}/seg") for p in got), v
    # The top manifest is the last file copied, after the playlists it names.
    files = [r for r in item_rows(d, tid) if not r["is_dir"]]
    assert files[-1]["path"] == "master.m3u8"
    assert all(not r["path"].endswith(".m3u8") for r in files[:-4])


def test_aes_package_carries_its_key(make_daemon, origin, origin_root):
    d = start(make_daemon, origin)
    publish(d, origin, "hls_aes", "index.m3u8", "pkg/aes/")
    assert (d.cdn / "pkg/aes/enc.key").read_bytes() == bytes(range(16))
    assert 'METHOD=AES-128,URI="enc.key"' in (d.cdn / "pkg/aes/index.m3u8").read_text()


def test_byte_range_variant_fetches_its_one_file_once(make_daemon, origin, origin_root):
    d = start(make_daemon, origin)
    tid, _ = publish(d, origin, "hls_single_ts", "index.m3u8", "pkg/single/")
    assert sorted(tree(d.cdn / "pkg/single")) == ["index.m3u8", "index.ts"]
    gets = [line for line in origin.access_log().splitlines()
            if '"GET /vod/hls_single_ts/index.ts ' in line]
    assert len(gets) == 1, gets


def test_dash_template_without_timeline_publishes_what_the_mpd_implies(make_daemon, origin,
                                                                       origin_root):
    d = start(make_daemon, origin)
    tid, _ = publish(d, origin, "dash_template", "manifest.mpd", "pkg/dash/")
    got = assert_published(d, origin, origin_root, tid, "dash_template", "pkg/dash")
    counts = mpd_segments(origin_root, "dash_template")
    for rep, n in counts.items():
        chunks = [p for p in got if p.startswith(f"chunk-stream{rep}-")]
        assert len(chunks) == n, (rep, sorted(chunks))
        assert f"init-stream{rep}.m4s" in got
    # What ffmpeg wrote beyond the MPD (one audio chunk at most) stays out.
    extra = set(tree(origin_root / "vod/dash_template")) - set(got)
    assert len(extra) <= 1, extra


def test_manifest_is_published_as_planned_not_fetched_again(make_daemon, origin, origin_root):
    d = start(make_daemon, origin)
    publish(d, origin, "hls_ts", "index.m3u8", "pkg/once/")
    gets = [line for line in origin.access_log().splitlines()
            if '"GET /vod/hls_ts/index.m3u8 ' in line]
    assert len(gets) == 1, gets


def test_parallel_one_and_four_publish_identical_trees(make_daemon, origin, origin_root):
    trees = []
    for parallel in (1, 4):
        d = start(make_daemon, origin, parallel=parallel)
        tid, _ = publish(d, origin, "hls_master", "master.m3u8", f"pkg/p{parallel}/")
        trees.append(tree(d.cdn / f"pkg/p{parallel}"))
        d.stop()
    assert trees[0] == trees[1]
    assert len(trees[0]) > 10


def test_package_is_published_to_a_webdav_root(make_daemon, origin, origin_root, tmp_path):
    with WebDavServer(tmp_path / "dav") as dav:
        dav.path("cdn").mkdir()
        d = make_daemon(start=False)
        d.sections["source"]["allow"] = [f"file://{d.ingest}/", origin.url("vod/")]
        d.sections["destination"] = {"root": dav.url("cdn/")}
        d.sections["transfer"] = {"retries": "3", "retry_delay": "1"}
        d.conf.write_text(d.config_text())
        os.chmod(d.conf, 0o600)
        d.start()
        tid, _ = publish(d, origin, "hls_fmp4", "index.m3u8", "pkg/dav/")
        got = tree(dav.path("cdn/pkg/dav"))
        assert got == tree(origin_root / "vod/hls_fmp4")
        items = {r["path"]: r["sha256"] for r in item_rows(d, tid) if not r["is_dir"]}
        assert items == got


def test_republishing_replaces_the_package(make_daemon, origin, origin_root):
    d = start(make_daemon, origin)
    publish(d, origin, "hls_ts", "index.m3u8", "pkg/again/")
    (d.cdn / "pkg/again/stale.ts").write_bytes(b"old")
    tid, _ = publish(d, origin, "hls_ts", "index.m3u8", "pkg/again/")
    assert "stale.ts" not in tree(d.cdn / "pkg/again")
    assert_published(d, origin, origin_root, tid, "hls_ts", "pkg/again")


# ---- refusals and failures: nothing published ------------------------------------

def assert_nothing_at(d, dest):
    assert not (d.cdn / dest).exists(), f"{dest} was published"
    assert hidden_entries(d.cdn) == [], "a stage was left behind"


def test_reference_outside_the_manifest_directory_fails_naming_it(make_daemon, origin,
                                                                   origin_root):
    d = start(make_daemon, origin)
    tid = d.load(origin.url("vod/escape/index.m3u8"), "pkg/escape/")
    reason = failed(d, tid)
    assert "../hls_ts/index1.ts" in reason, reason
    assert task_row(d, tid)["attempts"] == 1
    assert_nothing_at(d, "pkg/escape")


def test_reference_with_a_query_is_held_to_the_source_rules(make_daemon, origin, origin_root):
    d = start(make_daemon, origin)
    tid = d.load(origin.url("vod/escape/query.m3u8"), "pkg/query/")
    reason = failed(d, tid)
    assert "seg0.ts?token=1" in reason and "query" in reason, reason
    assert_nothing_at(d, "pkg/query")


def test_reference_outside_the_allowed_prefix_is_refused(make_daemon, origin, origin_root):
    d = make_daemon(start=False)
    # Only the master playlist itself is allowed, not the directory.
    d.sections["source"]["allow"] = [f"file://{d.ingest}/",
                                     origin.url("vod/hls_master/master.m3u8")]
    d.conf.write_text(d.config_text())
    d.start()
    tid = d.load(origin.url("vod/hls_master/master.m3u8"), "pkg/prefix/")
    reason = failed(d, tid)
    assert "not under an allowed source prefix" in reason, reason
    assert re.search(r"/vod/hls_master/stream_\w+/index\.m3u8", reason), reason
    assert_nothing_at(d, "pkg/prefix")


def test_missing_segment_fails_with_its_url(make_daemon, origin, origin_root):
    src = package_copy(origin_root, "hls_ts", "missing")
    (src / "index3.ts").unlink()
    d = start(make_daemon, origin)
    tid = d.load(origin.url("vod/missing/index.m3u8"), "pkg/missing/")
    reason = failed(d, tid)
    assert "/vod/missing/index3.ts" in reason and "404" in reason, reason
    assert task_row(d, tid)["attempts"] == 1, "a 404 is permanent"
    assert_nothing_at(d, "pkg/missing")


def test_segment_answering_503_is_retried_not_failed(make_daemon, origin, origin_root):
    package_copy(origin_root, "hls_ts", "busy")
    flag = origin_root / "busy.flag"
    flag.write_text("")
    try:
        d = start(make_daemon, origin, retries="50")
        tid = d.load(origin.url("vod/busy/index.m3u8"), "pkg/busy/")
        deadline = time.monotonic() + PUBLISH_TIMEOUT
        while task_row(d, tid)["attempts"] < 2:
            assert time.monotonic() < deadline, f"no second attempt\n{d.log_tail()}"
            assert d.status(tid)[0] == "IN_PROGRESS", task_row(d, tid)["reason"]
            time.sleep(0.1)
        assert d.status(tid)[0] == "IN_PROGRESS"
        errors = [r["error"] for r in attempt_rows(d, tid)]
        assert errors and "/vod/busy/index2.ts" in errors[0] and "503" in errors[0], errors
        # Retrying: nothing at the destination, the stage kept for the resume.
        assert not (d.cdn / "pkg/busy").exists()
    finally:
        flag.unlink()
    # Once the origin answers again, the retried task publishes the package.
    st, _ = d.wait_for_status(tid, PUBLISH_TIMEOUT)
    assert st == "SUCCESS", task_row(d, tid)["reason"]
    log = origin.access_log().splitlines()
    assert_published(d, origin, origin_root, tid, "busy", "pkg/busy")
    # The retry resumed: each segment that arrived before is not fetched
    # again; the playlist is read once per attempt and published as read.
    segments = [p for p in tree(d.cdn / "pkg/busy") if p.endswith(".ts") and p != "index2.ts"]
    assert segments
    for seg in segments:
        gets = [line for line in log if f'"GET /vod/busy/{seg} ' in line]
        assert len(gets) == 1, (seg, gets)
    attempts = task_row(d, tid)["attempts"]
    plays = [line for line in log if '"GET /vod/busy/index.m3u8 ' in line]
    assert len(plays) == attempts, (attempts, plays)


def test_missing_manifest_is_a_source_that_does_not_exist(make_daemon, origin):
    d = start(make_daemon, origin)
    tid = d.load(origin.url("vod/nothing/index.m3u8"), "pkg/nothing/")
    reason = failed(d, tid)
    assert reason.startswith("source asset does not exist") and \
        "/vod/nothing/index.m3u8" in reason, reason
    assert task_row(d, tid)["attempts"] == 1
    assert_nothing_at(d, "pkg/nothing")


def test_live_playlist_is_refused_with_its_reason(make_daemon, origin, origin_root):
    text = (origin_root / "vod/hls_live/index.m3u8").read_text()
    assert "#EXT-X-ENDLIST" not in text
    d = start(make_daemon, origin)
    tid = d.load(origin.url("vod/hls_live/index.m3u8"), "pkg/live/")
    reason = failed(d, tid)
    assert "live" in reason and "EXT-X-ENDLIST" in reason, reason
    assert_nothing_at(d, "pkg/live")


def test_http_directory_source_is_still_refused(make_daemon, origin):
    d = start(make_daemon, origin)
    status, _, body = d.load_reply(origin.url("vod/hls_ts/"), "pkg/dir/")
    assert status != 200
    assert b"a directory source is not supported over http" in body
    assert b".m3u8 or .mpd manifest" in body
    assert_nothing_at(d, "pkg/dir")
