"""apubictl, the operator's tool, against the real daemon.

Client half (load, purge, status over SOAP): its output and exit status -
0 done, 1 the task FAILED (--wait), 2 usage, 3 SOAP fault, 4 no answer
(connection, TLS, 401), 5 --wait timed out - over HTTP, HTTPS (server
checked, client certificates) and with Basic and Digest authentication.
Store half (tasks, show, retry, cancel, prune): it opens the daemon's store
through the daemon's own apubid.conf (-c), beside the running daemon, and
what it changes the daemon honours. Only 127.0.0.1 is contacted.
"""
import fcntl
import http.server
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, TASKID_RE, free_port
from servers import FtpServer
from test_auth import crypt_sha512, ha1, write_private
from test_tls import Pki

APUBICTL = os.environ.get("APUBICTL", str(REPO / "apubictl"))
RUN_TIMEOUT = 90  # seconds for one apubictl run

ALICE_PW = "c0rrect horse:battery"  # Basic only (users_file)
BOB_PW = "d1gest-only pass"         # Digest only (digest_file)


def ctl(*args, env=None, timeout=RUN_TIMEOUT, cwd=None):
    """Runs apubictl; returns the CompletedProcess (text). The caller's
    APUBICTL_* variables never leak in."""
    assert os.access(APUBICTL, os.X_OK), f"{APUBICTL} is not built"
    e = {k: v for k, v in os.environ.items() if not k.startswith("APUBICTL_")}
    e.update(env or {})
    return subprocess.run([APUBICTL, *map(str, args)], capture_output=True, text=True,
                          env=e, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)


def explain(p):
    return f"exit {p.returncode}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}"


def expect(p, code):
    assert p.returncode == code, f"expected exit {code}, got {explain(p)}"
    return p


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


# ---- client commands ------------------------------------------------------

def test_load_wait_publishes_and_prints_task_id_then_destination(daemon):
    (daemon.ingest / "movie.ts").write_bytes(b"x" * 4096)
    p = expect(ctl("-u", daemon.url, "load", daemon.ingest / "movie.ts", "films/movie.ts",
                   "--wait"), 0)
    lines = p.stdout.splitlines()
    assert len(lines) == 2, explain(p)
    assert TASKID_RE.match(lines[0]), explain(p)
    assert lines[1] == f"{daemon.root_url}films/movie.ts", explain(p)
    assert (daemon.cdn / "films/movie.ts").read_bytes() == b"x" * 4096
    assert daemon.status(lines[0]) == ("SUCCESS", lines[1])


def test_load_without_wait_prints_only_the_task_id_and_status_answers(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"a")
    p = expect(ctl("-u", daemon.url, "load", daemon.ingest / "a.ts", "a.ts"), 0)
    tid = p.stdout.strip()
    assert TASKID_RE.match(tid), explain(p)
    daemon.wait_for_status(tid)
    s = expect(ctl("-u", daemon.url, "status", tid), 0)
    assert s.stdout.splitlines() == ["SUCCESS", f"{daemon.root_url}a.ts"], explain(s)


def test_relative_source_is_taken_from_the_current_directory(daemon):
    (daemon.ingest / "rel.ts").write_bytes(b"rel")
    expect(ctl("-u", daemon.url, "load", "rel.ts", "rel.ts", "--wait", cwd=daemon.ingest), 0)
    assert (daemon.cdn / "rel.ts").read_bytes() == b"rel"


def test_purge_wait_removes_the_asset(daemon):
    (daemon.cdn / "old.ts").write_bytes(b"old")
    p = expect(ctl("-u", daemon.url, "purge", "old.ts", "--wait"), 0)
    assert TASKID_RE.match(p.stdout.splitlines()[0]), explain(p)
    assert not (daemon.cdn / "old.ts").exists()


def test_load_of_missing_source_is_a_fault_with_its_faultstring(daemon):
    p = expect(ctl("-u", daemon.url, "load", daemon.ingest / "missing.ts", "m.ts"), 3)
    assert p.stdout == "", explain(p)
    assert "source asset does not exist" in p.stderr, explain(p)
    assert "HTTP 500" in p.stderr, explain(p)


def test_status_of_unknown_task_is_a_fault(daemon):
    p = expect(ctl("-u", daemon.url, "status", "00000000-0000-0000-0000-000000000000"), 3)
    assert "Task Id does not exist" in p.stderr, explain(p)


def test_nothing_listening_is_a_transport_error():
    p = expect(ctl("-u", f"http://127.0.0.1:{free_port()}/apubi", "status", "X"), 4)
    assert "127.0.0.1" in p.stderr, explain(p)


def test_wrong_endpoint_path_is_a_transport_error(daemon):
    p = expect(ctl("-u", f"http://127.0.0.1:{daemon.port}/nowhere", "status", "X"), 4)
    assert "HTTP" in p.stderr, explain(p)


def test_url_comes_from_the_environment_then_from_the_config(daemon):
    tid = "00000000-0000-0000-0000-000000000000"
    expect(ctl("status", tid, env={"APUBICTL_URL": daemon.url}), 3)
    expect(ctl("-c", daemon.conf, "status", tid), 3)
    # --url wins over both.
    dead = f"http://127.0.0.1:{free_port()}/apubi"
    expect(ctl("-u", dead, "-c", daemon.conf, "status", tid,
               env={"APUBICTL_URL": daemon.url}), 4)


def test_load_wait_of_a_task_that_fails_in_the_worker_exits_1(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"a")
    (daemon.cdn / "blocker").write_bytes(b"a file where a directory must go")
    p = expect(ctl("-c", daemon.conf, "load", daemon.ingest / "a.ts", "blocker/a.ts",
                   "--wait"), 1)
    tid = p.stdout.strip()
    assert TASKID_RE.match(tid), explain(p)
    assert "FAILED" in p.stderr and "blocked by a file" in p.stderr, explain(p)
    assert f"apubictl show {tid}" in p.stderr, explain(p)
    assert daemon.status(tid) == ("FAILED", None)


def test_wait_gives_up_after_timeout_with_exit_5(tmp_path, make_daemon):
    with FtpServer(tmp_path, throttle_bytes_per_sec=32 << 10) as ftp:
        (ftp.root / "slow.ts").write_bytes(b"s" * (4 << 20))
        d = slow_daemon(make_daemon, ftp)
        t0 = time.monotonic()
        p = expect(ctl("-u", d.url, "load", ftp.url("slow.ts"), "slow.ts", "--wait",
                       "--timeout", "1.5", "--interval", "0.2"), 5)
        assert time.monotonic() - t0 < 20
        tid = p.stdout.strip()
        assert "still in progress" in p.stderr, explain(p)
        assert "IN_PROGRESS" in p.stderr, explain(p)  # one line per change, not a TTY
        expect(ctl("-c", d.conf, "cancel", tid), 0)
        assert d.wait_for_status(tid)[0] == "FAILED"


def test_wait_on_a_terminal_updates_one_line_with_progress_from_the_store(tmp_path,
                                                                          make_daemon):
    with FtpServer(tmp_path, throttle_bytes_per_sec=64 << 10) as ftp:
        (ftp.root / "slow.ts").write_bytes(b"s" * (4 << 20))
        d = slow_daemon(make_daemon, ftp)
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        try:
            p = subprocess.Popen([APUBICTL, "-c", d.conf, "load", ftp.url("slow.ts"), "slow.ts",
                                  "--wait", "--timeout", "2.5", "--interval", "0.2"],
                                 stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                                 text=True)
            os.close(slave)
            slave = None
            out, _ = p.communicate(timeout=RUN_TIMEOUT)
            tty = b""
            while True:
                r, _, _ = select.select([master], [], [], 0.5)
                if not r:
                    break
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                tty += chunk
        finally:
            os.close(master)
            if slave is not None:
                os.close(slave)
        assert p.returncode == 5, (p.returncode, out, tty)
        text = tty.decode("utf-8", "replace")
        assert text.count("\r\x1b[K") >= 3, repr(text)          # redrawn in place
        assert "\n" not in text[:text.index("apubictl: task")], repr(text)  # one line
        assert re.search(r"IN_PROGRESS - running, attempt 1, [0-9.]+ [KM]iB/4\.0 MiB, 0/1 files",
                         text), repr(text)
        expect(ctl("-c", d.conf, "cancel", out.strip()), 0)


def test_wait_rides_out_a_daemon_restart_and_gives_up_when_it_stays_down(tmp_path,
                                                                         make_daemon):
    with FtpServer(tmp_path, throttle_bytes_per_sec=32 << 10) as ftp:
        (ftp.root / "slow.ts").write_bytes(b"s" * (4 << 20))
        d = slow_daemon(make_daemon, ftp)
        args = [APUBICTL, "-u", d.url, "load", ftp.url("slow.ts"), "slow.ts", "--wait",
                "--interval", "0.2"]
        w = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL)
        try:
            wait_for(lambda: "running" in ctl("-c", d.conf, "tasks", "--state",
                                               "running").stdout, 30, "the task to run")
            d.restart()          # a few polls fail meanwhile
            time.sleep(0.5)
            tid = ctl("-c", d.conf, "tasks", "--limit", "1").stdout.splitlines()[1].split()[0]
            expect(ctl("-c", d.conf, "cancel", tid), 0)
            out, err = w.communicate(timeout=30)
        finally:
            if w.poll() is None:
                w.kill()
                w.wait()
        assert w.returncode == 1, (w.returncode, out, err)
        assert out.strip() == tid and "FAILED" in err, (out, err)

        # Down for good: polls fail until --timeout, then exit 4 with the reason.
        w = subprocess.Popen(args + ["--timeout", "4"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            wait_for(lambda: "running" in ctl("-c", d.conf, "tasks", "--state",
                                               "running").stdout, 30, "the task to run")
            d.kill9()
            t0 = time.monotonic()
            out, err = w.communicate(timeout=30)
        finally:
            if w.poll() is None:
                w.kill()
                w.wait()
        assert w.returncode == 4, (w.returncode, out, err)
        assert time.monotonic() - t0 < 20
        assert "no answer, retrying" in err and "refused" in err.lower(), err



# ---- --wait without the store: the task's view ------------------------------

def read_pty(master):
    """Everything written to the terminal whose master side is `master`."""
    tty = b""
    while True:
        r, _, _ = select.select([master], [], [], 0.5)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        tty += chunk
    return tty.decode("utf-8", "replace")


def test_wait_without_a_store_shows_bytes_and_files_from_the_task_view(tmp_path, make_daemon):
    with FtpServer(tmp_path, throttle_bytes_per_sec=32 << 10) as ftp:
        (ftp.root / "slow.ts").write_bytes(b"s" * (4 << 20))
        d = slow_daemon(make_daemon, ftp)
        p = expect(ctl("-u", d.url, "load", ftp.url("slow.ts"), "slow.ts", "--wait",
                       "--timeout", "3", "--interval", "0.2"), 5)
        tid = p.stdout.strip()
        # Not a terminal: one line when the sizes become known.
        assert re.search(rf"task {tid}: IN_PROGRESS - running, attempt 1, "
                         r"[0-9.]+ (B|KiB|MiB)/4\.0 MiB, 0/1 files", p.stderr), explain(p)
        expect(ctl("-c", d.conf, "cancel", tid), 0)


def test_wait_on_a_terminal_without_a_store_shows_rate_and_time_left(tmp_path, make_daemon):
    with FtpServer(tmp_path, throttle_bytes_per_sec=64 << 10) as ftp:
        (ftp.root / "slow.ts").write_bytes(b"s" * (4 << 20))
        d = slow_daemon(make_daemon, ftp)
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
        try:
            p = subprocess.Popen([APUBICTL, "-u", d.url, "load", ftp.url("slow.ts"), "slow.ts",
                                  "--wait", "--timeout", "4", "--interval", "0.2"],
                                 stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                                 text=True)
            os.close(slave)
            slave = None
            out, _ = p.communicate(timeout=RUN_TIMEOUT)
            text = read_pty(master)
        finally:
            os.close(master)
            if slave is not None:
                os.close(slave)
        assert p.returncode == 5, (p.returncode, out, text)
        assert re.search(r"IN_PROGRESS - running, attempt 1, [0-9.]+ [KM]iB/4\.0 MiB, 0/1 files, "
                         r"[0-9.]+ [KM]iB/s, [0-9]+ (s|min)[ 0-9a-z]* left", text), repr(text)
        expect(ctl("-c", d.conf, "cancel", out.strip()), 0)


def test_wait_without_a_store_prints_the_reason_of_a_failure(daemon):
    (daemon.ingest / "a.ts").write_bytes(b"a")
    (daemon.cdn / "blocker").write_bytes(b"a file where a directory must go")
    p = expect(ctl("-u", daemon.url, "load", daemon.ingest / "a.ts", "blocker/a.ts",
                   "--wait"), 1)
    tid = p.stdout.strip()
    assert f"task {tid} FAILED: " in p.stderr and "blocked by a file" in p.stderr, explain(p)
    assert f"http://127.0.0.1:{daemon.port}/tasks/{tid}.json" in p.stderr, explain(p)


def test_wait_without_a_store_reads_the_view_with_the_same_credentials(auth_daemon):
    (auth_daemon.ingest / "a.ts").write_bytes(b"a")
    (auth_daemon.cdn / "blocker").write_bytes(b"a file where a directory must go")
    for user, pw in (("bob", BOB_PW), ("alice", ALICE_PW)):
        p = expect(ctl("-u", auth_daemon.url, "--user", user, "load",
                       auth_daemon.ingest / "a.ts", "blocker/a.ts", "--wait",
                       env={"APUBICTL_PASSWORD": pw}), 1)
        assert "blocked by a file" in p.stderr, explain(p)
        assert pw not in p.stderr + p.stdout


def test_wait_without_a_store_over_https_reads_the_view(make_daemon, pki):
    d = make_daemon(tls={"cert_file": pki.path("server.pem"), "key_file": pki.path("server.key")})
    (d.ingest / "a.ts").write_bytes(b"a")
    (d.cdn / "blocker").write_bytes(b"a file where a directory must go")
    p = expect(ctl("-u", https_url(d), "--cacert", pki.path("server-ca.pem"), "load",
                   d.ingest / "a.ts", "blocker/a.ts", "--wait"), 1)
    assert "blocked by a file" in p.stderr, explain(p)
    assert f"https://127.0.0.1:{d.port}/tasks/" in p.stderr, explain(p)


class ApubiWithoutViews:
    """An APUBI endpoint on 127.0.0.1 that has no task views (GET: 404),
    as another implementation would: every load gets one TaskId, whose
    status is IN_PROGRESS `polls` times, then `final`."""

    ENVELOPE = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
                'xmlns:ns="wfm:APUBI/v1/schemas"><soapenv:Body>{}</soapenv:Body>'
                '</soapenv:Envelope>')
    TASK = "5D1C2B3A-0000-4000-8000-00000000C0DE"

    def __init__(self, polls=2, final="FAILED"):
        state = {"polls": polls}
        self.gets = gets = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self, status, body, ctype="text/xml; charset=utf-8"):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                req = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if b"GetTaskStatus" in req:
                    if state["polls"] > 0:
                        state["polls"] -= 1
                        status = "IN_PROGRESS"
                    else:
                        status = final
                    body = (f"<ns:GetTaskStatusResponse><ns:Status>{status}</ns:Status>"
                            "</ns:GetTaskStatusResponse>")
                else:
                    body = (f"<ns:LoadAssetResponse><ns:TaskId>{outer.TASK}</ns:TaskId>"
                            "</ns:LoadAssetResponse>")
                self.answer(200, outer.ENVELOPE.format(body))

            def do_GET(self):
                gets.append(self.path)
                self.answer(404, "not here\n", "text/plain")

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/apubi"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_wait_against_a_server_without_views_falls_back_to_the_status_alone():
    srv = ApubiWithoutViews(polls=3)
    try:
        p = expect(ctl("-u", srv.url, "load", "/srv/a.ts", "a.ts", "--wait",
                       "--interval", "0.1"), 1)
    finally:
        srv.close()
    assert p.stdout.strip() == srv.TASK, explain(p)
    assert f"task {srv.TASK}: IN_PROGRESS\n" in p.stderr, explain(p)
    assert f"apubictl: task {srv.TASK} FAILED\n(on the daemon's host: apubictl show" \
        in p.stderr, explain(p)
    # Asked once: a server without the view is not asked again.
    assert srv.gets == [f"/tasks/{srv.TASK}.json"], srv.gets


# ---- usage ----------------------------------------------------------------

@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["load", "only-one-arg"],
    ["status"],
    ["status", "a", "b"],
    ["tasks", "--wait"],
    ["status", "X", "--json"],
    ["tasks", "--state", "sleeping"],
    ["tasks", "--kind", "copy"],
    ["tasks", "--older-than", "10 parsecs"],
    ["tasks", "--limit", "0"],
    ["tasks", "--limit", "1001"],
    ["load", "a", "b", "--wait", "--timeout", "soon"],
    ["--no-such-option", "tasks"],
    ["status", "X", "--user", "alice"],            # no password anywhere
    ["status", "X", "--password-file", "/dev/null"],  # a file without --user
    ["-u", "ftp://127.0.0.1/apubi", "status", "X"],
    ["-u", "http://127.0.0.1:1/apubi", "--cacert", "/x", "status", "X"],
    ["status", "X", "--auth", "ntlm"],
])
def test_usage_errors_exit_2(args):
    p = expect(ctl(*args), 2)
    assert "apubictl" in p.stderr and p.stdout == "", explain(p)


def test_help_documents_every_exit_status():
    p = expect(ctl("--help"), 0)
    for code in range(9):
        assert re.search(rf"^  {code}  ", p.stdout, re.M), f"exit {code} undocumented"


def test_a_password_on_the_command_line_is_not_accepted():
    p = expect(ctl("status", "X", "--password", "secret"), 2)
    assert "secret" not in p.stdout


# ---- authentication ---------------------------------------------------------

@pytest.fixture
def auth_daemon(make_daemon, tmp_path):
    users = write_private(tmp_path / "users", f"alice:{crypt_sha512(ALICE_PW)}\n")
    digest = write_private(tmp_path / "digest", f"bob:apubid:{ha1('bob', 'apubid', BOB_PW)}\n")
    return make_daemon(auth={"users_file": users, "digest_file": digest})


UNKNOWN = "00000000-0000-0000-0000-000000000000"


def test_auth_required_without_credentials_exits_4(auth_daemon):
    p = expect(ctl("-u", auth_daemon.url, "status", UNKNOWN), 4)
    assert "401" in p.stderr, explain(p)


def test_digest_user_with_password_from_environment(auth_daemon):
    # A fault means the request got through authentication.
    p = expect(ctl("-u", auth_daemon.url, "--user", "bob", "status", UNKNOWN,
                   env={"APUBICTL_PASSWORD": BOB_PW}), 3)
    assert "Task Id does not exist" in p.stderr, explain(p)
    # The request's log line is written just after its answer is sent.
    deadline = time.monotonic() + 10
    while 'user="bob"' not in auth_daemon.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = auth_daemon.log_text()
    assert 'user="bob"' in log and BOB_PW not in log


def test_basic_user_with_password_file_and_a_whole_wait(auth_daemon, tmp_path):
    pw = write_private(tmp_path / "pw", ALICE_PW + "\n")
    (auth_daemon.ingest / "a.ts").write_bytes(b"auth")
    p = expect(ctl("-u", auth_daemon.url, "--user", "alice", "--password-file", pw,
                   "load", auth_daemon.ingest / "a.ts", "a.ts", "--wait", "--interval", "0.1"), 0)
    assert p.stdout.splitlines()[1] == f"{auth_daemon.root_url}a.ts", explain(p)
    expect(ctl("-u", auth_daemon.url, "--user", "alice", "--auth", "basic", "status",
               p.stdout.splitlines()[0], env={"APUBICTL_PASSWORD": ALICE_PW}), 0)


def test_wrong_password_exits_4(auth_daemon):
    for user in ("alice", "bob", "mallory"):
        p = expect(ctl("-u", auth_daemon.url, "--user", user, "status", UNKNOWN,
                       env={"APUBICTL_PASSWORD": "wrong"}), 4)
        assert "authentication failed" in p.stderr, explain(p)


def test_forced_digest_does_not_fall_back_to_basic(auth_daemon):
    expect(ctl("-u", auth_daemon.url, "--user", "alice", "--auth", "digest", "status", UNKNOWN,
               env={"APUBICTL_PASSWORD": ALICE_PW}), 4)
    expect(ctl("-u", auth_daemon.url, "--user", "bob", "--auth", "digest", "status", UNKNOWN,
               env={"APUBICTL_PASSWORD": BOB_PW}), 3)


# ---- TLS --------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


def https_url(d):
    return f"https://127.0.0.1:{d.port}/apubi"


def test_https_checks_the_server_certificate(make_daemon, pki):
    d = make_daemon(tls={"cert_file": pki.path("server.pem"), "key_file": pki.path("server.key")})
    url = https_url(d)
    p = expect(ctl("-u", url, "--cacert", pki.path("server-ca.pem"), "status", UNKNOWN), 3)
    assert "Task Id does not exist" in p.stderr, explain(p)
    # The wrong CA, or the system store, does not vouch for it.
    expect(ctl("-u", url, "--cacert", pki.path("other-ca.pem"), "status", UNKNOWN), 4)
    expect(ctl("-u", url, "status", UNKNOWN), 4)
    expect(ctl("-u", url, "--insecure", "status", UNKNOWN), 3)
    # Plain HTTP to a TLS port gets no SOAP answer.
    expect(ctl("-u", d.url, "status", UNKNOWN), 4)
    # -c finds https:// by itself.
    expect(ctl("-c", d.conf, "--cacert", pki.path("server-ca.pem"), "status", UNKNOWN), 3)


def test_https_with_client_certificate(make_daemon, pki):
    d = make_daemon(tls={"cert_file": pki.path("server.pem"), "key_file": pki.path("server.key"),
                         "client_ca": pki.path("client-ca.pem")})
    url, ca = https_url(d), pki.path("server-ca.pem")
    expect(ctl("-u", url, "--cacert", ca, "status", UNKNOWN), 4)
    expect(ctl("-u", url, "--cacert", ca, "--cert", pki.path("intruder.pem"),
               "--key", pki.path("intruder.key"), "status", UNKNOWN), 4)
    p = expect(ctl("-u", url, "--cacert", ca, "--cert", pki.path("wfm.pem"),
                   "--key", pki.path("wfm.key"), "status", UNKNOWN), 3)
    assert "Task Id does not exist" in p.stderr, explain(p)
    # A key that does not match the certificate is refused before connecting.
    expect(ctl("-u", url, "--cacert", ca, "--cert", pki.path("wfm.pem"),
               "--key", pki.path("intruder.key"), "status", UNKNOWN), 2)


# ---- store commands ----------------------------------------------------------

def failed_task(d):
    """A load that fails in the worker (a file where its directory must go)."""
    (d.ingest / "a.ts").write_bytes(b"a" * 1000)
    (d.cdn / "blocker").write_bytes(b"in the way")
    tid = d.load(f"file://{d.ingest}/a.ts", "blocker/a.ts")
    assert d.wait_for_status(tid) == ("FAILED", None)
    return tid


def test_tasks_lists_and_filters(daemon):
    bad = failed_task(daemon)
    (daemon.cdn / "gone.ts").write_bytes(b"g")
    purge = daemon.remove("gone.ts")
    rows = expect(ctl("-c", daemon.conf, "tasks"), 0).stdout.splitlines()
    assert rows[0].split()[:4] == ["ID", "KIND", "STATE", "STATUS"]
    assert rows[1].startswith(purge) and rows[2].startswith(bad), rows  # newest first
    failed = expect(ctl("-c", daemon.conf, "tasks", "--state", "failed"), 0).stdout
    assert bad in failed and purge not in failed and "blocked by a file" in failed
    purges = expect(ctl("-c", daemon.conf, "tasks", "--kind", "purge"), 0).stdout
    assert purge in purges and bad not in purges
    assert bad not in expect(ctl("-c", daemon.conf, "tasks", "--older-than", "1h"), 0).stdout
    assert bad in expect(ctl("-c", daemon.conf, "tasks", "--newer-than", "1h"), 0).stdout
    one = expect(ctl("-c", daemon.conf, "tasks", "--limit", "1"), 0)
    assert purge in one.stdout and bad not in one.stdout
    seq = re.search(r"--before (\d+)", one.stderr).group(1)
    nxt = expect(ctl("-c", daemon.conf, "tasks", "--limit", "1", "--before", seq), 0).stdout
    assert bad in nxt and purge not in nxt
    js = json.loads(expect(ctl("--store", f"{daemon.tmp}/apubid.db", "tasks", "--json",
                               "--state", "failed"), 0).stdout)
    assert [t["id"] for t in js["tasks"]] == [bad]


def test_show_of_failed_task_says_why(daemon):
    tid = failed_task(daemon)
    out = expect(ctl("-c", daemon.conf, "show", tid), 0).stdout
    assert f"Task {tid}" in out
    assert re.search(r"status:\s+FAILED \(state failed\)", out), out
    assert re.search(r"reason:\s+destination path is blocked by a file: blocker", out), out
    assert f"file://{daemon.ingest}/a.ts" in out and "blocker/a.ts" in out
    hist = out.split("History:")[1].split("Attempts:")[0]
    assert "accepted" in hist and "attempt 1" in hist and "blocked by a file" in hist, out
    attempts = out.split("Attempts:")[1].split("Items:")[0]
    assert re.search(r"#1 .*blocked by a file", attempts), out
    items = out.split("Items:")[1]
    assert "1000 B" in items, out
    assert re.search(r"notification:\s+none", out), out
    js = json.loads(expect(ctl("-c", daemon.conf, "show", tid, "--json"), 0).stdout)
    assert js["id"] == tid and js["status"] == "FAILED"
    assert "blocked by a file" in js["reason"]


def test_show_masks_passwords_in_urls(tmp_path, make_daemon):
    with FtpServer(tmp_path, password="s3cret-pw") as ftp:
        (ftp.root / "x.ts").write_bytes(b"x")
        d = slow_daemon(make_daemon, ftp)
        tid = d.load(ftp.url("x.ts"), "x.ts")
        d.wait_for_status(tid, timeout=60)
        out = expect(ctl("-c", d.conf, "show", tid), 0).stdout
        assert "s3cret-pw" not in out and ":***@" in out, out
        assert "s3cret-pw" not in expect(ctl("-c", d.conf, "tasks"), 0).stdout
        assert "s3cret-pw" not in expect(ctl("-c", d.conf, "show", tid, "--json"), 0).stdout


def test_unknown_task_id_exits_7(daemon):
    for cmd in (["show", UNKNOWN], ["show", UNKNOWN, "--json"], ["retry", UNKNOWN],
                ["cancel", UNKNOWN]):
        p = expect(ctl("-c", daemon.conf, *cmd), 7)
        assert UNKNOWN in p.stderr, explain(p)


def test_show_retry_and_cancel_read_a_task_id_in_any_case(daemon):
    tid = failed_task(daemon)
    lower, mixed = tid.lower(), "".join(
        c.lower() if i % 2 else c for i, c in enumerate(tid))
    out = expect(ctl("-c", daemon.conf, "show", lower), 0).stdout
    assert f"Task {tid}" in out, out
    js = json.loads(expect(ctl("-c", daemon.conf, "show", mixed, "--json"), 0).stdout)
    assert js["id"] == tid
    # Found, but final: cancel refuses it (8), it does not miss it (7).
    p = expect(ctl("-c", daemon.conf, "cancel", lower), 8)
    assert lower not in p.stderr, explain(p)
    (daemon.cdn / "blocker").unlink()
    p = expect(ctl("-c", daemon.conf, "retry", mixed), 0)
    assert f"task {tid} queued again" in p.stdout, explain(p)
    assert daemon.wait_for_status(tid)[0] == "SUCCESS"


@pytest.mark.parametrize("cmd", ["show", "retry", "cancel"])
@pytest.mark.parametrize("value", ["PromoClip7", UNKNOWN[:-1], UNKNOWN + "0",
                                   UNKNOWN.replace("-", "_"), f" {UNKNOWN}"])
def test_a_value_that_is_not_a_task_id_is_a_usage_error(daemon, cmd, value):
    p = expect(ctl("-c", daemon.conf, cmd, value), 2)
    assert "not a TaskId" in p.stderr and p.stdout == "", explain(p)


def test_help_and_version_in_long_and_short_form():
    for opt in ("--help", "-h"):
        p = expect(ctl(opt), 0)
        assert p.stdout.startswith("usage: apubictl"), explain(p)
    for opt in ("--version", "-V"):
        p = expect(ctl(opt), 0)
        assert re.fullmatch(r"apubictl \S+\n", p.stdout), explain(p)


def test_missing_store_exits_6(tmp_path):
    p = expect(ctl("--store", tmp_path / "nothing.db", "tasks"), 6)
    assert "nothing.db" in p.stderr
    assert not (tmp_path / "nothing.db").exists(), "apubictl created a store"


def test_bad_config_file_exits_2(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[nonsense]\nkey = value\n")
    p = expect(ctl("-c", bad, "tasks"), 2)
    assert "bad.conf" in p.stderr


def test_retry_of_failed_task_requeues_it_and_it_succeeds_once_fixed(daemon):
    tid = failed_task(daemon)
    (daemon.cdn / "blocker").unlink()
    p = expect(ctl("-c", daemon.conf, "retry", tid), 0)
    assert "queued again" in p.stdout
    assert daemon.wait_for_status(tid) == ("SUCCESS", f"{daemon.root_url}blocker/a.ts")
    assert (daemon.cdn / "blocker/a.ts").read_bytes() == b"a" * 1000
    out = expect(ctl("-c", daemon.conf, "show", tid), 0).stdout
    assert "queued again by an operator" in out and "attempt 2" in out, out
    assert re.search(r"#2 .*\bok\b", out), out
    # A task that succeeded cannot be retried.
    p = expect(ctl("-c", daemon.conf, "retry", tid), 8)
    assert "retried" in p.stderr, explain(p)


def slow_daemon(make_daemon, ftp, workers="1"):
    """A daemon with `workers` workers whose sources may come from `ftp`."""
    d = make_daemon(start=False)
    d.sections["source"]["allow"] = [f"file://{d.ingest}/", ftp.url("", credentials=False)]
    d.sections["workers"]["count"] = workers
    d.conf.write_text(d.config_text())
    os.chmod(d.conf, 0o600)
    return d.start()


def test_cancel_of_queued_and_running_tasks(tmp_path, make_daemon):
    with FtpServer(tmp_path, throttle_bytes_per_sec=32 << 10) as ftp:
        (ftp.root / "slow.ts").write_bytes(b"s" * (4 << 20))
        d = slow_daemon(make_daemon, ftp)
        (d.ingest / "q.ts").write_bytes(b"q")
        running = d.load(ftp.url("slow.ts"), "slow.ts")
        wait_for(lambda: "running" in ctl("-c", d.conf, "tasks", "--state", "running").stdout,
                 30, "the slow task to run")
        queued = d.load(f"file://{d.ingest}/q.ts", "q.ts")
        # The only worker is busy: the second task waits in the queue.
        p = expect(ctl("-c", d.conf, "cancel", queued, "--reason", "not wanted"), 0)
        assert "cancelled" in p.stdout and "running" not in p.stdout, explain(p)
        assert d.status(queued) == ("FAILED", None)
        out = expect(ctl("-c", d.conf, "show", queued), 0).stdout
        assert re.search(r"reason:\s+not wanted", out) and "state cancelled" in out, out
        # A running task stops within about a second.
        p = expect(ctl("-c", d.conf, "cancel", running), 0)
        assert "is running" in p.stdout, explain(p)
        assert d.wait_for_status(running, timeout=15) == ("FAILED", None)
        assert "state cancelled" in expect(ctl("-c", d.conf, "show", running), 0).stdout
        assert not (d.cdn / "slow.ts").exists() and not (d.cdn / "q.ts").exists()
        # Final tasks cannot be cancelled again.
        expect(ctl("-c", d.conf, "cancel", queued), 8)


class Receiver:
    """An HTTP server on 127.0.0.1 that records the bodies POSTed to it."""

    def __init__(self):
        bodies = self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_cancel_makes_the_notification_due_when_notify_is_configured(tmp_path, make_daemon):
    rx = Receiver()
    try:
        with FtpServer(tmp_path, throttle_bytes_per_sec=32 << 10) as ftp:
            (ftp.root / "slow.ts").write_bytes(b"s" * (4 << 20))
            d = make_daemon(start=False, notify={"url": rx.url})
            d.sections["source"]["allow"] = [f"file://{d.ingest}/",
                                             ftp.url("", credentials=False)]
            d.sections["workers"]["count"] = "1"
            d.conf.write_text(d.config_text())
            d.start()
            d.load(ftp.url("slow.ts"), "slow.ts")
            wait_for(lambda: "running" in ctl("-c", d.conf, "tasks", "--state",
                                               "running").stdout, 30, "the slow task to run")
            (d.ingest / "q.ts").write_bytes(b"q")
            queued = d.load(f"file://{d.ingest}/q.ts", "q.ts")
            expect(ctl("-c", d.conf, "cancel", queued, "--reason", "not wanted"), 0)
            body = wait_for(lambda: [b for b in rx.bodies if queued.encode() in b], 30,
                            "the notification of the cancelled task")[0]
            view = json.loads(body)
            assert view["id"] == queued and view["status"] == "FAILED"
            assert view["reason"] == "not wanted"
            out = wait_for(lambda: (lambda o: "delivered" in o and o)(
                ctl("-c", d.conf, "show", queued).stdout), 15, "delivered in show")
            assert re.search(r"notification:\s+delivered at \S+ after 1 attempt\b", out), out
    finally:
        rx.close()


def test_prune_removes_finished_tasks(daemon):
    (daemon.ingest / "p.ts").write_bytes(b"p")
    tid = daemon.load(f"file://{daemon.ingest}/p.ts", "p.ts")
    daemon.wait_for_status(tid)
    p = expect(ctl("-c", daemon.conf, "prune"), 0)  # retention_days: 30 days
    assert "pruned 0 " in p.stdout, explain(p)
    assert daemon.status(tid)[0] == "SUCCESS"
    p = expect(ctl("-c", daemon.conf, "prune", "--older-than", "0s"), 0)
    assert "pruned 1 " in p.stdout, explain(p)
    p = expect(ctl("-u", daemon.url, "status", tid), 3)
    assert "Task Id does not exist" in p.stderr, explain(p)
    expect(ctl("-c", daemon.conf, "show", tid), 7)
