"""GET /healthz: 200 "ok" while the store takes writes and every worker is
alive (HEAD: the same status without a body); 503 with the reason when the store is made read-only (no write bit
on its file: store_health counts that as read-only even for root), and 200
again once it is writable; 503 too while a local destination root is gone
(renamed away, unmounted), and 200 once it is back. A failing probe is
logged once, not once per probe. With [auth], /healthz needs credentials
like every other route.
"""
import base64
import os
import subprocess

from conftest import post


def health(d, headers=None):
    r = post(d.port, None, headers or {}, path="/healthz", method="GET")
    return r.status, r.headers.get("Content-Type", ""), r.body.decode("utf-8", "replace")


def test_fresh_daemon_is_healthy(daemon):
    status, ctype, body = health(daemon)
    assert status == 200, body
    assert ctype.startswith("text/plain"), ctype
    assert body == "ok\n"
    r = post(daemon.port, None, {}, path="/healthz", method="HEAD")
    assert r.status == 200 and r.body == b"", r


def test_read_only_store_is_503_with_the_reason_until_restored(daemon):
    store = daemon.tmp / "apubid.db"
    assert health(daemon)[0] == 200
    mode = os.stat(store).st_mode & 0o777
    os.chmod(store, 0o444)
    try:
        for _ in range(3):
            status, ctype, body = health(daemon)
            assert status == 503, body
            assert ctype.startswith("text/plain"), ctype
            assert "store" in body and "read-only" in body, body
        # A load balancer probing with HEAD sees the same status, no body.
        r = post(daemon.port, None, {}, path="/healthz", method="HEAD")
        assert r.status == 503 and r.body == b"", r
    finally:
        os.chmod(store, mode)
    status, _, body = health(daemon)
    assert status == 200 and body == "ok\n", body
    log = daemon.log_text()
    assert log.count("health check: store:") == 1, "a failing probe is logged once per change"
    assert "health check: healthy again" in log
    # The 503s were answered and logged as requests like any other.
    assert log.count("op=healthz status=503") == 4


def test_healthz_needs_credentials_under_auth(tmp_path, make_daemon):
    pw = "he4lth secret"
    p = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=pw.encode() + b"\n",
                       capture_output=True, check=True, timeout=30)
    users = tmp_path / "users"
    users.write_text(f"dave:{p.stdout.decode().strip()}\n")
    users.chmod(0o600)
    d = make_daemon(auth={"users_file": str(users)})
    assert health(d)[0] == 401
    good = {"Authorization": "Basic " + base64.b64encode(f"dave:{pw}".encode()).decode()}
    assert health(d, good)[0] == 200


def test_destination_root_gone_is_503_until_it_returns(daemon):
    assert health(daemon)[0] == 200
    away = daemon.tmp / "cdn-away"
    daemon.cdn.rename(away)
    try:
        status, _, body = health(daemon)
        assert status == 503, body
        assert body == f"unhealthy: destination: root {daemon.cdn}: No such file or directory\n"
        # A file in its place is no root either.
        daemon.cdn.write_bytes(b"")
        status, _, body = health(daemon)
        assert status == 503 and "Not a directory" in body, body
        daemon.cdn.unlink()
    finally:
        away.rename(daemon.cdn)
    status, _, body = health(daemon)
    assert status == 200 and body == "ok\n", body
    log = daemon.log_text()
    assert log.count("health check: destination:") == 1, log[-2000:]
    assert "health check: healthy again" in log
