"""Publishing and purging: LoadAsset, GetTaskStatus and PurgeAsset doing
their job on the local filesystem, in SOAP 1.1 and 1.2.

A load copies a file or a directory tree from ingest/ into cdn/ byte for
byte, names included (non-ASCII UTF-8 too), replaces what was there, and
leaves no temporary names behind. GetTaskStatus answers the location, and
PurgeAsset accepts exactly that value back.
"""
import http.client
import os
import urllib.parse

import pytest

from conftest import (NO_ACTION, TASKID_RE, Raw, envelope,
                      envelope_version, hidden_entries, parse_response, read_tree,
                      soap_headers, write_tree)

NESTED = {
    "master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv1/index.m3u8\n",
    "v1/index.m3u8": b"#EXTM3U\nseg-0001.ts\n",
    "v1/seg-0001.ts": os.urandom(70_000),
    "v1/audio/café-日本.ts": os.urandom(5_000),
    "v1/audio/deeper/still/x.bin": b"",
    "日本語/ファイル.txt": "données".encode("utf-8"),
}


def test_load_answers_an_upper_case_uuid_task_id(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"a")
    tid = daemon.load(f"file://{daemon.ingest}/a.ts", "a.ts")
    assert TASKID_RE.match(tid)
    daemon.wait_for_status(tid)


def test_every_load_gets_its_own_task_id(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"a")
    ids = [daemon.load(f"file://{daemon.ingest}/a.ts", f"n{i}/a.ts") for i in range(5)]
    assert len(set(ids)) == 5
    daemon.wait_all(ids)


def test_published_file_is_byte_identical_and_status_names_its_location(daemon):
    data = os.urandom(300_000)
    (daemon.ingest / "movie.ts").write_bytes(data)
    dest = daemon.publish(f"file://{daemon.ingest}/movie.ts", "movies/movie.ts")
    assert dest == f"file://{daemon.cdn}/movies/movie.ts"
    assert (daemon.cdn / "movies" / "movie.ts").read_bytes() == data
    assert hidden_entries(daemon.cdn) == []


def test_source_given_as_an_absolute_path_is_published(daemon):
    (daemon.ingest / "plain.ts").write_bytes(b"plain path")
    daemon.publish(str(daemon.ingest / "plain.ts"), "plain.ts")
    assert (daemon.cdn / "plain.ts").read_bytes() == b"plain path"


def test_load_status_is_in_progress_or_final_and_destination_only_on_success(daemon):
    (daemon.ingest / "a.ts").write_bytes(os.urandom(1000))
    tid = daemon.load(f"file://{daemon.ingest}/a.ts", "x/a.ts")
    st, dest = daemon.status(tid)
    assert st in ("IN_PROGRESS", "SUCCESS")
    if st == "IN_PROGRESS":
        assert dest is None, "DestinationAsset sent for a task still IN_PROGRESS"
    st, dest = daemon.wait_for_status(tid)
    assert (st, dest) == ("SUCCESS", f"file://{daemon.cdn}/x/a.ts")
    # Asking again answers the same.
    assert daemon.status(tid) == (st, dest)


def test_nested_directory_is_published_with_structure_and_names_preserved(daemon):
    write_tree(daemon.ingest / "pkg", NESTED)
    dest = daemon.publish(f"file://{daemon.ingest}/pkg/", "vod/pkg/")
    assert dest == f"file://{daemon.cdn}/vod/pkg/"
    assert read_tree(daemon.cdn / "vod" / "pkg") == NESTED
    assert hidden_entries(daemon.cdn) == []


def test_existing_directory_without_trailing_slash_is_a_directory_asset(daemon):
    write_tree(daemon.ingest / "pkg", NESTED)
    dest = daemon.publish(f"file://{daemon.ingest}/pkg", "vod/pkg")
    assert dest.endswith("/"), f"directory asset answered as {dest!r}"
    assert urllib.parse.unquote(dest) == f"file://{daemon.cdn}/vod/pkg/"
    assert read_tree(daemon.cdn / "vod" / "pkg") == NESTED


def test_single_file_with_non_ascii_name_is_published_and_purged(daemon):
    name = "café-日本.ts"
    data = os.urandom(20_000)
    (daemon.ingest / name).write_bytes(data)
    dest = daemon.publish(f"file://{daemon.ingest}/{name}", f"vod/{name}")
    assert urllib.parse.unquote(dest) == f"file://{daemon.cdn}/vod/{name}"
    assert os.listdir(daemon.cdn / "vod") == [name]
    assert (daemon.cdn / "vod" / name).read_bytes() == data
    daemon.remove(dest)
    assert not (daemon.cdn / "vod" / name).exists()


def test_percent_encoded_source_url_is_decoded(daemon):
    (daemon.ingest / "café x.ts").write_bytes(b"encoded")
    daemon.publish(f"file://{daemon.ingest}/caf%C3%A9%20x.ts", "enc.ts")
    assert (daemon.cdn / "enc.ts").read_bytes() == b"encoded"


def test_republishing_a_directory_replaces_it(daemon):
    v1 = {"a.ts": b"one", "b.ts": b"gone after v2", "sub/c.ts": b"gone too"}
    v2 = {"a.ts": b"two", "d/e.ts": b"new"}
    write_tree(daemon.ingest / "v1", v1)
    write_tree(daemon.ingest / "v2", v2)
    daemon.publish(f"file://{daemon.ingest}/v1/", "pkg/")
    assert read_tree(daemon.cdn / "pkg") == v1
    daemon.publish(f"file://{daemon.ingest}/v2/", "pkg/")
    assert read_tree(daemon.cdn / "pkg") == v2
    assert hidden_entries(daemon.cdn) == []


def test_republishing_a_file_replaces_its_content(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"first version, longer than the second")
    (daemon.ingest / "b.ts").write_bytes(b"second")
    daemon.publish(f"file://{daemon.ingest}/a.ts", "m.ts")
    daemon.publish(f"file://{daemon.ingest}/b.ts", "m.ts")
    assert (daemon.cdn / "m.ts").read_bytes() == b"second"
    assert sorted(os.listdir(daemon.cdn)) == ["m.ts"]


def test_ftp_destination_under_an_allowed_prefix_lands_under_the_root(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"ftp dest")
    dest = daemon.publish(f"file://{daemon.ingest}/a.ts",
                          "ftp://user:password@CDN:21/data/cdn/x/y.ts")
    assert (daemon.cdn / "x" / "y.ts").read_bytes() == b"ftp dest"
    assert dest == f"file://{daemon.cdn}/x/y.ts"
    # The same asset can be purged by the ftp URL it was loaded with.
    daemon.remove("ftp://user:password@CDN:21/data/cdn/x/y.ts")
    assert not (daemon.cdn / "x" / "y.ts").exists()


def test_destination_given_under_the_root_url_lands_under_the_root(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"root url")
    dest = daemon.publish(f"file://{daemon.ingest}/a.ts", f"file://{daemon.cdn}/r/a.ts")
    assert (daemon.cdn / "r" / "a.ts").read_bytes() == b"root url"
    assert dest == f"file://{daemon.cdn}/r/a.ts"


def test_public_url_is_answered_and_accepted_back(make_daemon):
    pub = "http://cdn.example.com/vod/"
    d = make_daemon(destination={"public_url": pub})
    (d.ingest / "a.ts").write_bytes(b"public")
    write_tree(d.ingest / "pkg", {"x.ts": b"x", "y/z.ts": b"z"})
    assert d.publish(f"file://{d.ingest}/a.ts", "dir/a.ts") == pub + "dir/a.ts"
    assert d.publish(f"file://{d.ingest}/pkg/", "pkg/") == pub + "pkg/"
    # A destination given under the public URL lands under the root.
    assert d.publish(f"file://{d.ingest}/a.ts", pub + "other/a.ts") == pub + "other/a.ts"
    assert (d.cdn / "other" / "a.ts").read_bytes() == b"public"
    d.remove(pub + "dir/a.ts")
    d.remove(pub + "pkg/")
    assert not (d.cdn / "dir" / "a.ts").exists()
    assert not (d.cdn / "pkg").exists()
    assert (d.cdn / "other" / "a.ts").exists()


def test_purge_removes_exactly_the_file_status_returned(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"a")
    (daemon.ingest / "b.ts").write_bytes(b"b")
    dest_a = daemon.publish(f"file://{daemon.ingest}/a.ts", "dir/a.ts")
    daemon.publish(f"file://{daemon.ingest}/b.ts", "dir/b.ts")
    daemon.remove(dest_a)
    assert not (daemon.cdn / "dir" / "a.ts").exists()
    assert (daemon.cdn / "dir" / "b.ts").read_bytes() == b"b"
    assert hidden_entries(daemon.cdn) == []


def test_purge_of_a_directory_removes_the_whole_tree(daemon):
    write_tree(daemon.ingest / "pkg", NESTED)
    (daemon.ingest / "keep.ts").write_bytes(b"keep")
    dest = daemon.publish(f"file://{daemon.ingest}/pkg/", "vod/pkg/")
    daemon.publish(f"file://{daemon.ingest}/keep.ts", "vod/pkg-keep.ts")
    daemon.remove(dest)
    assert not (daemon.cdn / "vod" / "pkg").exists()
    assert (daemon.cdn / "vod" / "pkg-keep.ts").read_bytes() == b"keep"
    assert hidden_entries(daemon.cdn) == []


def test_purge_by_relative_path_removes_the_asset(daemon):
    write_tree(daemon.ingest / "pkg", {"a.ts": b"a"})
    daemon.publish(f"file://{daemon.ingest}/pkg/", "Test_01/pkg/")
    (daemon.ingest / "f.mp4").write_bytes(b"f")
    daemon.publish(f"file://{daemon.ingest}/f.mp4", "Test_01/f.mp4")
    daemon.remove("Test_01/f.mp4")
    daemon.remove("Test_01/pkg/")
    assert not (daemon.cdn / "Test_01" / "f.mp4").exists()
    assert not (daemon.cdn / "Test_01" / "pkg").exists()


def test_purge_of_absent_asset_succeeds(daemon):
    tid = daemon.purge("nothing/here.ts")
    assert daemon.wait_for_status(tid) == ("SUCCESS", None)
    tid = daemon.purge("nothing/dir/")
    assert daemon.wait_for_status(tid) == ("SUCCESS", None)


def test_purge_task_in_success_carries_no_destination_asset(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"a")
    daemon.publish(f"file://{daemon.ingest}/a.ts", "a.ts")
    tid = daemon.purge("a.ts")
    assert daemon.wait_for_status(tid) == ("SUCCESS", None)
    assert not (daemon.cdn / "a.ts").exists()


def test_metadata_with_unknown_content_is_accepted(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"meta")
    meta = Raw('<Title xmlns="urn:x">Film</Title><x:any xmlns:x="urn:y" k="v"><deep/></x:any>')
    tid = daemon.load(f"file://{daemon.ingest}/a.ts", "meta.ts", meta=meta)
    assert daemon.wait_for_status(tid)[0] == "SUCCESS"
    tid = daemon.load(f"file://{daemon.ingest}/a.ts", "meta2.ts", meta=Raw(""))
    assert daemon.wait_for_status(tid)[0] == "SUCCESS"
    assert (daemon.cdn / "meta2.ts").read_bytes() == b"meta"


def test_values_are_trimmed_of_surrounding_whitespace(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"trim")
    tid = daemon.load(f"\n   file://{daemon.ingest}/a.ts \t\n", "\n  trim/a.ts\n")
    assert daemon.wait_for_status(tid) == ("SUCCESS", f"file://{daemon.cdn}/trim/a.ts")
    tid = daemon.purge("  trim/a.ts\r\n")
    assert daemon.wait_for_status(tid)[0] == "SUCCESS"
    assert not (daemon.cdn / "trim" / "a.ts").exists()


@pytest.mark.parametrize("action", [NO_ACTION, '""', '"urn:whatever#LoadAsset"', "nonsense"],
                         ids=["absent", "empty", "quoted", "unquoted"])
def test_soapaction_is_ignored(daemon, action):
    (daemon.ingest / "a.ts").write_bytes(b"a")
    body = envelope("LoadAsset", [("SourceAssetUrl", f"file://{daemon.ingest}/a.ts"),
                                  ("DestinationAsset", "a.ts")])
    status, _, resp = daemon.post(body, soap_headers(11, action))
    assert status == 200, resp
    assert TASKID_RE.match(parse_response(resp, "LoadAsset")["TaskId"])


def test_soap11_answers_are_soap11_text_xml(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"a")
    status, headers, body = daemon.load_reply(f"file://{daemon.ingest}/a.ts", "a.ts")
    assert status == 200
    assert "text/xml" in headers.get("Content-Type", "")
    assert envelope_version(body) == 11


def test_soap12_requests_get_soap12_answers(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"twelve")
    status, headers, body = daemon.load_reply(f"file://{daemon.ingest}/a.ts", "s12/a.ts",
                                              version=12)
    assert status == 200, body
    assert "application/soap+xml" in headers.get("Content-Type", "")
    assert envelope_version(body) == 12
    tid = parse_response(body, "LoadAsset")["TaskId"]
    assert TASKID_RE.match(tid)
    st, dest = daemon.wait_for_status(tid, version=12)
    assert (st, dest) == ("SUCCESS", f"file://{daemon.cdn}/s12/a.ts")
    status, headers, body = daemon.status_reply(tid, version=12)
    assert "application/soap+xml" in headers.get("Content-Type", "")
    assert envelope_version(body) == 12
    ptid = daemon.purge(dest, version=12)
    assert daemon.wait_for_status(ptid, version=12)[0] == "SUCCESS"
    assert not (daemon.cdn / "s12" / "a.ts").exists()


def test_keep_alive_connection_serves_several_requests(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"a")
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=15)
    try:
        conn.connect()
        sock = conn.sock
        bodies = [
            envelope("LoadAsset", [("SourceAssetUrl", f"file://{daemon.ingest}/a.ts"),
                                   ("DestinationAsset", "ka/a.ts")]),
            envelope("PurgeAsset", [("DestinationAsset", "ka/none.ts")]),
            envelope("LoadAsset", [("SourceAssetUrl", f"file://{daemon.ingest}/a.ts"),
                                   ("DestinationAsset", "ka/b.ts")]),
        ]
        ids = []
        for i, body in enumerate(bodies):
            conn.request("POST", "/apubi", body=body, headers=soap_headers())
            r = conn.getresponse()
            data = r.read()
            assert r.status == 200, data
            op = "LoadAsset" if b"<LoadAsset" in body else "PurgeAsset"
            ids.append(parse_response(data, op)["TaskId"])
            assert conn.sock is sock, f"connection was closed after request {i + 1}"
        for tid in ids:
            conn.request("POST", "/apubi", body=envelope("GetTaskStatus", [("TaskId", tid)]),
                         headers=soap_headers())
            r = conn.getresponse()
            data = r.read()
            assert r.status == 200, data
            assert parse_response(data, "GetTaskStatus")["Status"] in ("IN_PROGRESS", "SUCCESS")
            assert conn.sock is sock, "connection was closed after a GetTaskStatus"
    finally:
        conn.close()
    daemon.wait_all(ids)


def test_directory_with_non_ascii_name_round_trips_through_purge(daemon):
    write_tree(daemon.ingest / "café-日本", {"a.ts": b"a", "b/é.ts": b"e"})
    dest = daemon.publish(f"file://{daemon.ingest}/café-日本/", "vod/café-日本/")
    assert urllib.parse.unquote(dest) == f"file://{daemon.cdn}/vod/café-日本/"
    assert read_tree(daemon.cdn / "vod" / "café-日本") == {"a.ts": b"a", "b/é.ts": b"e"}
    daemon.remove(dest)
    assert not (daemon.cdn / "vod" / "café-日本").exists()
    assert hidden_entries(daemon.cdn) == []


def test_load_whose_source_vanished_ends_failed_without_destination(make_daemon):
    d = make_daemon(workers={"count": "1"})
    # Keep the only worker busy with a package of many files, queue a load
    # behind it, and delete that load's source before the worker reaches it.
    write_tree(d.ingest / "busy", {f"f{i:04d}.ts": b"x" * 1024 for i in range(1500)})
    (d.ingest / "gone.ts").write_bytes(b"gone")
    busy = d.load(f"file://{d.ingest}/busy/", "busy/")
    tid = d.load(f"file://{d.ingest}/gone.ts", "gone.ts")
    (d.ingest / "gone.ts").unlink()
    assert d.status(busy)[0] == "IN_PROGRESS", "test precondition: the worker was not busy"
    assert d.wait_for_status(tid, timeout=60) == ("FAILED", None)
    assert d.wait_for_status(busy, timeout=60)[0] == "SUCCESS"
    assert not (d.cdn / "gone.ts").exists()
    assert hidden_entries(d.cdn) == []
