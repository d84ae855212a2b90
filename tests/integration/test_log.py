"""The log (stderr): one line per request naming the operation and the HTTP
status, and never a password from a URL; with [log] format = json one JSON
object per line; under systemd (stderr is the stream JOURNAL_STREAM names)
each line starts with its syslog priority.
"""
import json
import os
import re
import time

import pytest

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


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_never_shows_the_ftp_password(make_daemon, fmt):
    daemon = make_daemon(destination={"allow": FIXTURE_DEST_PREFIX}, log={"format": fmt})
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
    # The masked URLs are there, so the masking (not silence) hid them.
    assert "ftp://wfm:***@" in log or "ftp://publisher:***@" in log, log[-3000:]
    if fmt == "json":
        for line in log.splitlines():
            json.loads(line)


def test_json_format_writes_one_object_per_line_with_request_fields(make_daemon):
    d = make_daemon(log={"format": "json"})
    (d.ingest / "a.ts").write_bytes(b"a")
    tid = d.load(f"file://{d.ingest}/a.ts", "a.ts")
    d.wait_for_status(tid)
    assert d.status_reply("no-such-task")[0] == 500
    assert d.stop() == 0
    objs = [json.loads(line) for line in d.log_text().splitlines()]
    assert objs
    for o in objs:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["time"]), o
        assert o["level"] in ("error", "warn", "info", "debug"), o
        assert isinstance(o["message"], str), o
    loads = [o for o in objs if o.get("op") == "LoadAsset"]
    assert len(loads) == 1, objs
    load = loads[0]
    assert load["status"] == 200 and isinstance(load["ms"], int) and load["task"] == tid, load
    assert re.fullmatch(r"127\.0\.0\.1:\d+", load["peer"]), load
    assert load["message"].startswith(f"request op=LoadAsset status=200 ms={load['ms']} "), load
    fault = [o for o in objs if o.get("op") == "GetTaskStatus" and o["status"] == 500][0]
    assert fault["status"] == 500 and fault["level"] == "warn" and fault["fault"], fault


def test_format_is_reloaded_on_sighup(make_daemon):
    d = make_daemon()
    d.sections["log"]["format"] = "json"
    d.conf.write_text(d.config_text())
    d.proc.send_signal(__import__("signal").SIGHUP)
    assert lines_with(d, "applied", "log.format"), d.log_tail()
    assert d.status_reply("no-such-task")[0] == 500
    line = lines_with(d, "GetTaskStatus")[-1]
    assert json.loads(line)["status"] == 500, line


def journal_daemon(make_daemon, monkeypatch, **overrides):
    """An apubid whose stderr is the stream JOURNAL_STREAM names, as under
    systemd: the test's log file plays the journal."""
    d = make_daemon(start=False, **overrides)
    d.log_path.touch()
    st = os.stat(d.log_path)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    return d.start()


def test_journal_lines_start_with_their_syslog_priority(make_daemon, monkeypatch):
    d = journal_daemon(make_daemon, monkeypatch)
    assert d.status_reply("no-such-task")[0] == 500
    (d.ingest / "a.ts").write_bytes(b"a")
    d.wait_for_status(d.load(f"file://{d.ingest}/a.ts", "a.ts"))
    assert d.stop() == 0
    lines = d.log_text().splitlines()
    assert lines
    prio = {"error": "<3>", "warn": "<4>", "info": "<6>", "debug": "<7>"}
    for line in lines:
        m = re.match(r"<(\d)>(error|warn |info |debug) ", line)
        assert m, line
        assert prio[m.group(2).strip()] == f"<{m.group(1)}>", line
    # journald stamps each line itself.
    assert not any(re.match(r"<\d>\d{4}-", l) for l in lines), lines[:3]
    assert any(l.startswith("<6>info  request op=LoadAsset status=200") for l in lines), lines
    assert any(l.startswith("<4>warn  request op=GetTaskStatus status=500") for l in lines), lines


def test_journal_json_lines_carry_the_prefix_before_the_object(make_daemon, monkeypatch):
    d = journal_daemon(make_daemon, monkeypatch, log={"format": "json"})
    assert d.status_reply("no-such-task")[0] == 500
    assert d.stop() == 0
    lines = d.log_text().splitlines()
    for line in lines:
        assert re.match(r"<[3467]>\{", line), line
        json.loads(line[3:])
    assert any(l.startswith("<4>") and json.loads(l[3:]).get("status") == 500 for l in lines)


def test_no_prefix_when_stderr_is_not_the_journal_stream(make_daemon, monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    d = make_daemon()
    assert d.stop() == 0
    lines = d.log_text().splitlines()
    assert lines and not any(l.startswith("<") for l in lines), lines[:3]


def test_no_prefix_when_the_log_goes_to_a_file(make_daemon, monkeypatch, tmp_path):
    logfile = tmp_path / "file.log"
    d = journal_daemon(make_daemon, monkeypatch, log={"file": str(logfile)})
    assert d.stop() == 0
    lines = logfile.read_text().splitlines()
    assert lines and not any(l.startswith("<") for l in lines), lines[:3]
