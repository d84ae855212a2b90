"""The log (stderr): one line per request naming the operation and the HTTP
status, and never a password from a URL.
"""
import re
import time

from conftest import FIXTURE_DEST_PREFIX, FIXTURES, parse_response, soap_headers


def lines_with(d, *words, timeout=5):
    """Log lines holding every word (status codes as whole numbers); waits
    briefly, since a line may be written just after the answer."""
    pats = [re.compile(rf"(?<![0-9A-Za-z]){re.escape(w)}(?![0-9A-Za-z])") for w in words]
    deadline = time.monotonic() + timeout
    while True:
        found = [l for l in d.log_text().splitlines() if all(p.search(l) for p in pats)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_log_has_a_line_per_request_with_operation_and_status(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"a")
    tid = daemon.load(f"file://{daemon.ingest}/a.ts", "a.ts")
    daemon.wait_for_status(tid)
    daemon.purge("a.ts")
    for _ in range(3):
        assert daemon.status_reply("no-such-task")[0] == 500
    assert daemon.load_reply(f"file://{daemon.ingest}/nope.ts", "b.ts")[0] == 500
    assert lines_with(daemon, "LoadAsset", "200"), daemon.log_tail()
    assert lines_with(daemon, "PurgeAsset", "200"), daemon.log_tail()
    assert lines_with(daemon, "GetTaskStatus", "200"), daemon.log_tail()
    assert len(lines_with(daemon, "GetTaskStatus", "500")) >= 3, daemon.log_tail()
    assert lines_with(daemon, "LoadAsset", "500"), daemon.log_tail()


def test_log_never_shows_the_ftp_password(make_daemon):
    daemon = make_daemon(destination={"allow": FIXTURE_DEST_PREFIX})
    (daemon.ingest / "feature.ts").write_bytes(b"m")
    raw = (FIXTURES / "load-file-ftp.xml").read_bytes()
    # As sent: ftp source and ftp destination, both with a password.
    status, _, _ = daemon.post(raw, soap_headers())
    assert status == 500
    # With a local source, so the ftp destination goes all the way through.
    local = raw.replace(b"ftp://wfm:s3cr3t-src@MEDIASTORE:21/outbox/feature.ts",
                        f"file://{daemon.ingest}/feature.ts".encode())
    status, _, body = daemon.post(local, soap_headers())
    assert status == 200, body
    tid = parse_response(body, "LoadAsset")["TaskId"]
    assert daemon.wait_for_status(tid)[0] == "SUCCESS"
    daemon.purge("ftp://publisher:s3cr3t-dst@ORIGIN:21/srv/vod/feature_20240517143000.ts")
    assert daemon.stop() == 0
    log = daemon.log_text()
    assert log.strip(), "nothing was logged"
    assert "s3cr3t" not in log, [l for l in log.splitlines() if "s3cr3t" in l][:5]
