"""[notify]: apubid POSTs the JSON view of every task that reaches a final
state to a receiver, retries with backoff while the receiver is down or
answers an error, gives up after [notify] retries attempts, and never
shows the URL's password.

The receiver is a real HTTP server (http.server in a thread of the test)
on 127.0.0.1 that records every POST and answers from a script of status
codes. The notification's state is read back from the task's view,
GET /tasks/{id}.json.
"""
import base64
import http.client
import http.server
import json
import threading
import time

import pytest

from conftest import free_port


class Receiver:
    """An HTTP server on 127.0.0.1:`port` recording POSTs. `codes` is the
    status of the first answers, in order; after them every answer is
    `then`."""

    def __init__(self, port=None, codes=(), then=200):
        self.port = port or free_port()
        self.codes = list(codes)
        self.then = then
        self.posts = []  # (path, headers dict, body bytes, status answered)
        self.lock = threading.Lock()
        self.server = None
        self.thread = None

    def start(self):
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with rec.lock:
                    code = rec.codes.pop(0) if rec.codes else rec.then
                    rec.posts.append((self.path, dict(self.headers), body, code))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def url(self, userinfo=""):
        return f"http://{userinfo}127.0.0.1:{self.port}/hooks/apubid"

    def received(self):
        with self.lock:
            return list(self.posts)

    def wait_posts(self, n, timeout=20):
        deadline = time.monotonic() + timeout
        while len(self.received()) < n:
            if time.monotonic() > deadline:
                pytest.fail(f"receiver got {len(self.received())} POSTs, expected {n}")
            time.sleep(0.05)
        return self.received()


@pytest.fixture
def receivers():
    made = []

    def make(**kw):
        r = Receiver(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def wait_notification(d, tid, want, timeout=30):
    """Polls the task's view until its notification is in state `want`;
    returns the notification object."""
    deadline = time.monotonic() + timeout
    while True:
        n = d.view(tid)["notification"]
        if n["state"] == want:
            return n
        if time.monotonic() > deadline:
            pytest.fail(f"notification of {tid} is {n}, not {want} after {timeout}s\n{d.log_tail()}")
        time.sleep(0.05)


def notify_daemon(make_daemon, url, **notify):
    settings = {"url": url, "retry_delay": "1", "retry_max_delay": "1", "timeout": "5"}
    settings.update({k: str(v) for k, v in notify.items()})
    return make_daemon(notify=settings)


def test_successful_load_is_posted_once_with_its_items(make_daemon, receivers):
    r = receivers().start()
    d = notify_daemon(make_daemon, r.url())
    (d.ingest / "show").mkdir()
    (d.ingest / "show" / "a.ts").write_bytes(b"A" * 1000)
    (d.ingest / "show" / "index.m3u8").write_bytes(b"#EXTM3U\n")
    tid = d.load(f"file://{d.ingest}/show/", "show/")
    assert d.wait_for_status(tid)[0] == "SUCCESS"
    path, headers, body, _ = r.wait_posts(1)[0]
    assert path == "/hooks/apubid"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("apubid/")
    doc = json.loads(body)
    assert doc["id"] == tid
    assert doc["status"] == "SUCCESS"
    assert doc["state"] == "succeeded"
    assert sorted(i["path"] for i in doc["items"] if not i["is_dir"]) == ["a.ts", "index.m3u8"]
    assert all(i["state"] == "done" for i in doc["items"])
    # The receiver sees the notification itself as still pending.
    assert doc["notification"]["state"] == "pending"
    n = wait_notification(d, tid, "delivered")
    assert n["attempts"] == 1
    assert n["last_error"] is None
    time.sleep(1.5)
    assert len(r.received()) == 1, "a delivered notification was sent again"


def test_failed_task_is_posted_with_its_reason(make_daemon, receivers):
    r = receivers().start()
    closed = free_port()
    d = make_daemon(notify={"url": r.url()},
                    source={"allow": f"ftp://127.0.0.1:{closed}/in/"},
                    transfer={"retries": "1", "connect_timeout": "2"})
    tid = d.load(f"ftp://127.0.0.1:{closed}/in/a.ts", "a.ts")
    assert d.wait_for_status(tid)[0] == "FAILED"
    doc = json.loads(r.wait_posts(1)[0][2])
    assert doc["id"] == tid
    assert doc["status"] == "FAILED"
    assert doc["state"] == "failed"
    assert doc["reason"], doc
    assert doc["reason"] == d.view(tid)["reason"]
    wait_notification(d, tid, "delivered")


def test_receiver_down_at_first_gets_it_later(make_daemon, receivers):
    port = free_port()  # nothing listens there yet: connections are refused
    r = receivers(port=port)
    d = notify_daemon(make_daemon, r.url(), retries=30)
    (d.ingest / "a.ts").write_bytes(b"x" * 100)
    tid = d.load(f"{d.ingest}/a.ts", "a.ts")
    assert d.wait_for_status(tid)[0] == "SUCCESS"
    deadline = time.monotonic() + 20
    while True:
        n = d.view(tid)["notification"]
        if n["state"] == "pending" and n["attempts"] >= 2:
            break
        assert n["state"] == "pending", n
        if time.monotonic() > deadline:
            pytest.fail(f"no retries seen: {n}\n{d.log_tail()}")
        time.sleep(0.05)
    assert str(port) in n["last_error"], n
    assert n["next_attempt"], n
    r.start()
    n = wait_notification(d, tid, "delivered")
    assert n["attempts"] > 2, n
    assert n["delivered_at"], n
    posts = r.wait_posts(1)
    time.sleep(1.5)
    assert len(r.received()) == 1
    assert json.loads(posts[0][2])["id"] == tid


def test_receiver_answering_503_is_retried_until_it_accepts(make_daemon, receivers):
    r = receivers(codes=[503, 503]).start()
    d = notify_daemon(make_daemon, r.url())
    (d.ingest / "a.ts").write_bytes(b"x")
    tid = d.load(f"{d.ingest}/a.ts", "a.ts")
    n = wait_notification(d, tid, "delivered")
    assert n["attempts"] == 3
    assert [p[3] for p in r.received()] == [503, 503, 200]
    assert all(json.loads(p[2])["id"] == tid for p in r.received())
    log = d.log_text()
    assert "503 Service Unavailable" in log
    assert f"task {tid}: notification delivered" in log


def test_notification_fails_after_its_retries(make_daemon, receivers):
    r = receivers(then=500).start()
    d = notify_daemon(make_daemon, r.url(), retries=2)
    (d.ingest / "a.ts").write_bytes(b"x")
    tid = d.load(f"{d.ingest}/a.ts", "a.ts")
    assert d.wait_for_status(tid)[0] == "SUCCESS"
    n = wait_notification(d, tid, "failed")
    assert n["attempts"] == 2
    assert "500 Internal Server Error" in n["last_error"], n
    assert r.url() in n["last_error"], n
    time.sleep(2)
    assert len(r.received()) == 2, "a given-up notification was sent again"
    # The task itself is untouched by its notification's fate.
    assert d.status(tid)[0] == "SUCCESS"


def test_url_password_is_sent_but_never_shown(make_daemon, receivers):
    r = receivers(codes=[401]).start()
    d = notify_daemon(make_daemon, r.url("wfm:n0tify-s3cret@"))
    (d.ingest / "a.ts").write_bytes(b"x")
    tid = d.load(f"{d.ingest}/a.ts", "a.ts")
    n = wait_notification(d, tid, "delivered")
    assert n["attempts"] == 2
    auth = r.received()[-1][1]["Authorization"]
    assert base64.b64decode(auth.split()[1]) == b"wfm:n0tify-s3cret"
    view = json.dumps(d.view(tid))
    log = d.log_text()
    assert "n0tify-s3cret" not in view
    assert "n0tify-s3cret" not in log
    assert "wfm:***@127.0.0.1" in log
    d.stop()
    assert "n0tify-s3cret" not in d.log_text()


def test_stop_is_prompt_while_a_receiver_hangs(make_daemon):
    """A receiver that accepts the connection but never answers must not
    hold up SIGTERM for the POST's whole timeout."""
    import socket
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    try:
        port = lsock.getsockname()[1]
        d = make_daemon(notify={"url": f"http://127.0.0.1:{port}/hook", "timeout": "60"})
        (d.ingest / "a.ts").write_bytes(b"x")
        tid = d.load(f"{d.ingest}/a.ts", "a.ts")
        assert d.wait_for_status(tid)[0] == "SUCCESS"
        lsock.settimeout(10)
        conn, _ = lsock.accept()  # the POST is in flight now
        t0 = time.monotonic()
        assert d.stop() == 0
        # Measured: 0.2 to 1.2 s. The bound is ten times that and more, and
        # still far from the POST's 60 s, which is what is ruled out here.
        assert time.monotonic() - t0 < 20
        conn.close()
        # Still pending in the store: delivered at the next start.
        import sqlite3
        db = sqlite3.connect(d.tmp / "apubid.db", timeout=5)
        state, = db.execute("SELECT notify_state FROM task WHERE id = ?", (tid,)).fetchone()
        db.close()
        assert state == 1
    finally:
        lsock.close()
