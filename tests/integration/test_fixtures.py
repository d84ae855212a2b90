"""The WFM's own messages: the raw envelopes in tests/fixtures/, posted as a
curl would post them, byte for byte (quirks included: the unused ns2
declaration, a newline before </DestinationAsset>, "dir/ " with a trailing
space, an empty <MetaData/>).

SOAP 1.1 fixtures go out as text/xml; charset=utf-8, once with SOAPAction ""
and once without SOAPAction; SOAP 1.2 as application/soap+xml.
"""
import pytest

from conftest import (FIXTURE_DEST_PREFIX, FIXTURES, NO_ACTION, TASKID_RE, assert_fault, envelope_version,
                      parse_fault, parse_response, soap_headers)

ACTIONS = pytest.mark.parametrize("action", ['""', NO_ACTION], ids=["soapaction-empty",
                                                                   "soapaction-absent"])
FTP_SOURCE_FILE = b"ftp://wfm:s3cr3t-src@MEDIASTORE:21/outbox/feature.ts"
FTP_DEST_NAME = "feature_20240517143000.ts"
ASSET_DIR = "Spring_Promo_2024"


@pytest.fixture
def daemon(make_daemon):
    """The suite's daemon, taking the fixtures' FTP destinations as its root."""
    return make_daemon(destination={"allow": FIXTURE_DEST_PREFIX})


def fixture(name):
    return (FIXTURES / name).read_bytes()


def post_fixture(d, body, action='""', version=11):
    return d.post(body, soap_headers(version, action))


def task_id_of(reply, op):
    status, _, body = reply
    assert status == 200, f"HTTP {status}: {body[:800]!r}"
    tid = parse_response(body, op)["TaskId"]
    assert TASKID_RE.match(tid), tid
    return tid


@ACTIONS
def test_get_task_status_fixture_gets_the_reference_unknown_task_fault(daemon, action):
    reply = post_fixture(daemon, fixture("get-task-status.xml"), action)
    got = assert_fault(reply, "Server", 500)
    want = parse_fault(fixture("response-fault-unknown-task.xml"))
    assert (got.code, got.code_ns, got.string, got.message) == \
        (want.code, want.code_ns, want.string, want.message)
    assert got.string == "Task Id does not exist"


@ACTIONS
@pytest.mark.parametrize("name", ["purge-file.xml", "purge-dir.xml"])
def test_purge_fixture_of_absent_asset_succeeds(daemon, action, name):
    tid = task_id_of(post_fixture(daemon, fixture(name), action), "PurgeAsset")
    assert daemon.wait_for_status(tid) == ("SUCCESS", None)


@ACTIONS
def test_purge_file_fixture_removes_the_file_despite_the_trailing_newline(daemon, action):
    d = daemon.cdn / ASSET_DIR
    d.mkdir()
    (d / "promo_1080p.mp4").write_bytes(b"mp4")
    (d / "promo_720p.mp4").write_bytes(b"other")
    tid = task_id_of(post_fixture(daemon, fixture("purge-file.xml"), action), "PurgeAsset")
    assert daemon.wait_for_status(tid)[0] == "SUCCESS"
    assert not (d / "promo_1080p.mp4").exists()
    assert (d / "promo_720p.mp4").read_bytes() == b"other"


@ACTIONS
def test_purge_dir_fixture_removes_the_directory_despite_the_trailing_space(daemon, action):
    d = daemon.cdn / ASSET_DIR
    (d / "sub").mkdir(parents=True)
    (d / "master.m3u8").write_bytes(b"#EXTM3U\n")
    (d / "sub" / "seg.ts").write_bytes(b"ts")
    (daemon.cdn / "neighbour.ts").write_bytes(b"stay")
    tid = task_id_of(post_fixture(daemon, fixture("purge-dir.xml"), action), "PurgeAsset")
    assert daemon.wait_for_status(tid)[0] == "SUCCESS"
    assert not d.exists()
    assert (daemon.cdn / "neighbour.ts").read_bytes() == b"stay"


@ACTIONS
@pytest.mark.parametrize("name", ["load-file-ftp.xml", "load-dir-ftp.xml"])
def test_ftp_load_fixtures_from_a_server_not_allowed_are_refused(daemon, action, name):
    reply = post_fixture(daemon, fixture(name), action)
    f = assert_fault(reply, "Client", 500)
    assert "not under an allowed source prefix" in f.string
    assert "ftp://wfm:***@mediastore:21/outbox/" in f.string.lower()
    assert b"s3cr3t" not in reply.body


def test_soap12_load_fixture_is_refused_with_a_sender_fault(daemon):
    reply = post_fixture(daemon, fixture("load-soap12.xml"), version=12)
    f = assert_fault(reply, "Sender", 400, version=12)
    assert "not under an allowed source prefix" in f.string
    assert "ftp" in f.string


@ACTIONS
def test_load_file_fixture_with_a_local_source_publishes_to_its_ftp_destination(daemon, action):
    (daemon.ingest / "feature.ts").write_bytes(b"\x47" * 188 * 100)
    body = fixture("load-file-ftp.xml")
    assert FTP_SOURCE_FILE in body
    body = body.replace(FTP_SOURCE_FILE, f"file://{daemon.ingest}/feature.ts".encode())
    tid = task_id_of(post_fixture(daemon, body, action), "LoadAsset")
    st, dest = daemon.wait_for_status(tid)
    assert st == "SUCCESS"
    assert dest == f"file://{daemon.cdn}/{FTP_DEST_NAME}"
    assert (daemon.cdn / FTP_DEST_NAME).read_bytes() == b"\x47" * 188 * 100


def test_load_soap12_fixture_with_a_local_source_publishes(daemon):
    (daemon.ingest / "feature.ts").write_bytes(b"soap12 feature")
    body = fixture("load-soap12.xml").replace(FTP_SOURCE_FILE,
                                              str(daemon.ingest / "feature.ts").encode())
    status, headers, resp = post_fixture(daemon, body, version=12)
    assert status == 200, resp
    assert "application/soap+xml" in headers.get("Content-Type", "")
    assert envelope_version(resp) == 12
    tid = parse_response(resp, "LoadAsset")["TaskId"]
    st, dest = daemon.wait_for_status(tid, version=12)
    assert (st, dest) == ("SUCCESS", f"file://{daemon.cdn}/{ASSET_DIR}/feature.ts")
    assert (daemon.cdn / ASSET_DIR / "feature.ts").read_bytes() == b"soap12 feature"


def test_purge_fixtures_remove_what_a_load_published(daemon):
    # Publish the two assets the purge fixtures name, then purge them with
    # the fixtures themselves.
    (daemon.ingest / "promo_1080p.mp4").write_bytes(b"mp4")
    (daemon.ingest / "pkg").mkdir()
    (daemon.ingest / "pkg" / "a.ts").write_bytes(b"a")
    daemon.publish(f"file://{daemon.ingest}/promo_1080p.mp4",
                   f"{ASSET_DIR}/promo_1080p.mp4")
    tid = task_id_of(post_fixture(daemon, fixture("purge-file.xml")), "PurgeAsset")
    assert daemon.wait_for_status(tid)[0] == "SUCCESS"
    assert not (daemon.cdn / ASSET_DIR / "promo_1080p.mp4").exists()
    daemon.publish(f"file://{daemon.ingest}/pkg/", f"{ASSET_DIR}/")
    assert (daemon.cdn / ASSET_DIR / "a.ts").read_bytes() == b"a"
    tid = task_id_of(post_fixture(daemon, fixture("purge-dir.xml")), "PurgeAsset")
    assert daemon.wait_for_status(tid)[0] == "SUCCESS"
    assert not (daemon.cdn / ASSET_DIR).exists()
