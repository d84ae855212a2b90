"""SIGHUP: apubid opens its log file again and reads its configuration
again, applies what may change at run time, names in a warning what needs
a restart, and refuses a file that no longer parses without changing
anything; it keeps serving throughout, and SIGTERM still stops it cleanly
(the fixture requires exit code 0).
"""
import json
import os
import signal
import socket
import stat
import time

import pytest

from conftest import free_port
from test_notify import Receiver, wait_notification


def sighup(d, settings=None, drop=None):
    """Rewrites the daemon's configuration with `settings` ({section:
    {key: value}}) applied and the (section, key) pairs in `drop` removed,
    then sends SIGHUP."""
    for section, kv in (settings or {}).items():
        d.sections.setdefault(section, {}).update(kv)
    for section, key in (drop or ()):
        d.sections.get(section, {}).pop(key, None)
    d.conf.write_text(d.config_text())
    d.proc.send_signal(signal.SIGHUP)


def read(path):
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def wait_text(path, text, count=1, timeout=10, d=None):
    """Waits until `text` occurs `count` times in the file at `path`."""
    deadline = time.monotonic() + timeout
    while read(path).count(text) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} not seen {count} times in {path}:\n{read(path)[-3000:]}")
        time.sleep(0.05)


def poke(port):
    """Opens and closes a connection without a request: apubid logs it at
    debug level."""
    socket.create_connection(("127.0.0.1", port), timeout=5).close()


DEBUG_POKE = "debug connection closed before a request"


def test_sighup_switches_debug_lines_on_and_off(make_daemon):
    d = make_daemon(log={"level": "info"})
    poke(d.port)
    time.sleep(0.5)
    assert DEBUG_POKE not in d.log_text()

    sighup(d, {"log": {"level": "debug"}})
    wait_text(d.log_path, "reload: applied log.level")
    poke(d.port)
    wait_text(d.log_path, DEBUG_POKE)

    sighup(d, {"log": {"level": "info"}})
    wait_text(d.log_path, "reload: applied log.level", 2)
    mark = len(d.log_text())
    poke(d.port)
    time.sleep(0.7)
    assert DEBUG_POKE not in d.log_text()[mark:]


def test_sighup_after_rotation_writes_a_new_log_file(make_daemon):
    d = make_daemon(start=False)
    logfile = d.tmp / "logs" / "apubid.log"
    logfile.parent.mkdir()
    d.sections["log"]["file"] = str(logfile)
    d.conf.write_text(d.config_text())
    d.start()
    wait_text(logfile, "listening on")
    assert "listening on" not in d.log_text(), "the log still went to stderr"

    # What logrotate does: rename the file away, then SIGHUP.
    rotated = logfile.with_name("apubid.log.1")
    logfile.rename(rotated)
    d.proc.send_signal(signal.SIGHUP)
    wait_text(logfile, "reload:")
    assert stat.S_IMODE(os.stat(logfile).st_mode) & 0o037 == 0
    (d.ingest / "a.ts").write_bytes(b"x")
    tid = d.load(f"{d.ingest}/a.ts", "a.ts")
    assert d.wait_for_status(tid)[0] == "SUCCESS"
    wait_text(logfile, f"task {tid} succeeded")
    assert tid not in read(rotated)

    # Another file named at run time takes over; removing the key sends
    # the log back to stderr.
    other = d.tmp / "logs" / "other.log"
    sighup(d, {"log": {"file": str(other)}})
    wait_text(other, "reload: applied log.file")
    sighup(d, drop=[("log", "file")])
    wait_text(d.log_path, "reload: applied log.file")
    assert "reload: applied log.file" not in read(logfile)
    d.stop()
    assert "apubid stopped" in d.log_text()
    assert "apubid stopped" not in read(other)


def test_restart_only_change_is_named_and_not_applied(make_daemon):
    d = make_daemon()
    old_port = d.port
    new_port = free_port()
    sighup(d, {"server": {"listen": f"127.0.0.1:{new_port}"}, "workers": {"count": "2"},
               "transfer": {"retries": "7"}})
    wait_text(d.log_path, "changed: restart apubid to apply them")
    log = d.log_text()
    assert ("warn  reload: server.listen, workers.count changed: restart apubid to apply them"
            in log), log[-2000:]
    assert "reload: applied transfer.retries" in log
    # Still where it was, and nowhere else.
    (d.ingest / "a.ts").write_bytes(b"x")
    tid = d.load(f"{d.ingest}/a.ts", "a.ts")
    assert d.wait_for_status(tid)[0] == "SUCCESS"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", new_port), timeout=2).close()
    assert d.port == old_port


def test_broken_config_is_refused_whole_and_serving_goes_on(make_daemon):
    d = make_daemon(log={"level": "info"})
    d.sections["log"]["level"] = "debug"
    d.conf.write_text(d.config_text() + "[transfer\nretries = 3\n")
    d.proc.send_signal(signal.SIGHUP)
    wait_text(d.log_path, "the running configuration is kept")
    log = d.log_text()
    line = [l for l in log.splitlines() if "the running configuration is kept" in l][0]
    assert " error " in line
    assert f"{d.conf}:" in line and "a section header must end with ']'" in line
    # Nothing of the broken file was applied: still at info level.
    poke(d.port)
    (d.ingest / "a.ts").write_bytes(b"x")
    tid = d.load(f"{d.ingest}/a.ts", "a.ts")
    assert d.wait_for_status(tid)[0] == "SUCCESS"
    assert DEBUG_POKE not in d.log_text()
    # Once fixed, the next SIGHUP applies it.
    sighup(d)
    wait_text(d.log_path, "reload: applied log.level")


def test_notify_url_added_at_run_time_notifies_the_next_task(make_daemon):
    r = Receiver().start()
    try:
        d = make_daemon()
        (d.ingest / "a.ts").write_bytes(b"x")
        before = d.load(f"{d.ingest}/a.ts", "a.ts")
        assert d.wait_for_status(before)[0] == "SUCCESS"
        sighup(d, {"notify": {"url": r.url(), "retry_delay": "1"}})
        wait_text(d.log_path, "reload: applied notify.url, notify.retry_delay")
        after = d.load(f"{d.ingest}/a.ts", "b.ts")
        assert d.wait_for_status(after)[0] == "SUCCESS"
        wait_notification(d, after, "delivered")
        r.wait_posts(1)
        time.sleep(1)
        assert [json.loads(p[2])["id"] for p in r.received()] == [after]
        assert d.view(before)["notification"]["state"] == "none"
    finally:
        r.stop()


def test_sighup_without_changes_says_so(make_daemon):
    d = make_daemon()
    d.proc.send_signal(signal.SIGHUP)
    wait_text(d.log_path, "no setting that can be reloaded changed")
    assert "restart apubid" not in d.log_text()
