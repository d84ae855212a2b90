"""Slow, stalled and idle clients hold no serving thread.

The event loop owns every connection until a whole request has arrived;
only then does a serving thread see it. Each test here runs twice as many
hostile clients as there are serving threads, plain and over TLS, and
measures a normal client alongside: it must be answered within a liveness
bound (ten times a quiet answer, generously), and the hostile ones must be
cut when their time limit (header_timeout, request_timeout,
keepalive_timeout) is up, whatever they keep sending. A client that reads
its answers slowly holds no thread either: the loop writes what the socket
did not take at once, and cuts it after send_timeout without progress.
The connection limits refuse new clients cleanly and service resumes once
clients leave; max_connections raises the open-files limit to fit at
start, and stops the start when it cannot.
"""
import http.client
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import envelope, soap_headers
from test_tls import client_context, pki, tls_settings  # noqa: F401 (fixture)

THREADS = 2
HOSTILE = 2 * THREADS
LIVENESS = 3.0      # seconds a normal request may take while the hostile ones run
HEADER_TIMEOUT = 3
REQUEST_TIMEOUT = 5
UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


def _server(make_daemon, tls=None, **server):
    s = {"threads": str(THREADS), "header_timeout": str(HEADER_TIMEOUT),
         "request_timeout": str(REQUEST_TIMEOUT), "recv_timeout": "30",
         "keepalive_timeout": "30"}
    s.update(server)
    return make_daemon(server=s, tls=tls) if tls else make_daemon(server=s)


def _connect(port, ctx=None, timeout=15):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(s, server_hostname="127.0.0.1") if ctx else s


def _normal_request_time(port, ctx=None):
    """Seconds a GetTaskStatus takes on a fresh connection (answered 500,
    Task Id does not exist)."""
    t0 = time.monotonic()
    if ctx:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=LIVENESS + 5, context=ctx)
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=LIVENESS + 5)
    try:
        c.request("POST", "/apubi", body=envelope("GetTaskStatus", [("TaskId", UNKNOWN_ID)]),
                  headers=soap_headers())
        r = c.getresponse()
        body = r.read()
        assert r.status == 500 and b"Task Id does not exist" in body, (r.status, body[:300])
    finally:
        c.close()
    return time.monotonic() - t0


class Trickler(threading.Thread):
    """Sends `prefix` at once, then one byte of `rest` per second until the
    server ends the connection; records when that happened and what the
    server said."""

    def __init__(self, port, prefix, rest, ctx=None):
        super().__init__(daemon=True)
        self.sock = _connect(port, ctx)
        self.prefix, self.rest = prefix, rest
        self.cut_after = None
        self.answer = b""
        self.t0 = time.monotonic()

    def run(self):
        s = self.sock
        try:
            s.sendall(self.prefix)
            for b in self.rest:
                s.settimeout(1.0)
                try:
                    data = s.recv(65536)
                    if not data:
                        break
                    self.answer += data
                    continue
                except (socket.timeout, ssl.SSLWantReadError):
                    pass
                s.sendall(bytes([b]))
        except (OSError, ssl.SSLError):
            pass
        finally:
            self.cut_after = time.monotonic() - self.t0
            try:
                s.close()
            except OSError:
                pass


def _slow_headers():
    head = "POST /apubi HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "X-Slow: " + "a" * 200 + "\r\n"
    return b"", head.encode()


def _slow_body():
    body = b"<" * 100_000
    head = (f"POST /apubi HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + b"x", body


def _run_tricklers(d, make, limit, ctx=None):
    quiet = _normal_request_time(d.port, ctx)
    slow = [Trickler(d.port, *make(), ctx=ctx) for _ in range(HOSTILE)]
    for t in slow:
        t.start()
    time.sleep(1.5)
    for _ in range(3):
        took = _normal_request_time(d.port, ctx)
        assert took < max(LIVENESS, 10 * quiet), f"a normal request took {took:.2f}s"
    for t in slow:
        t.join(limit + 5)
        assert t.cut_after is not None, "a trickling client was never cut"
        assert t.cut_after < limit + 2.5, f"cut after {t.cut_after:.1f}s, limit {limit}s"
    return slow


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_slow_header_senders_do_not_block_a_normal_client(make_daemon, pki, tls):  # noqa: F811
    d = _server(make_daemon, tls_settings(pki) if tls else None)
    ctx = client_context(pki) if tls else None
    slow = _run_tricklers(d, _slow_headers, HEADER_TIMEOUT, ctx)
    assert all(b" 408 " in t.answer.split(b"\r\n", 1)[0] for t in slow if t.answer)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_slow_body_senders_do_not_block_a_normal_client(make_daemon, pki, tls):  # noqa: F811
    d = _server(make_daemon, tls_settings(pki) if tls else None)
    ctx = client_context(pki) if tls else None
    slow = _run_tricklers(d, _slow_body, REQUEST_TIMEOUT, ctx)
    assert all(b" 408 " in t.answer.split(b"\r\n", 1)[0] for t in slow if t.answer)


def test_clients_stalled_in_the_tls_handshake_do_not_block_https(make_daemon, pki):  # noqa: F811
    d = _server(make_daemon, tls_settings(pki))
    ctx = client_context(pki)
    quiet = _normal_request_time(d.port, ctx)
    stalled = []
    for _ in range(HOSTILE):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=HEADER_TIMEOUT + 5)
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello cut short
        stalled.append(s)
    t0 = time.monotonic()
    took = _normal_request_time(d.port, ctx)
    assert took < max(LIVENESS, 10 * quiet), f"a normal HTTPS request took {took:.2f}s"
    for s in stalled:
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        s.close()
    assert time.monotonic() - t0 < HEADER_TIMEOUT + 2.5


def test_idle_tls_keepalive_clients_do_not_block_a_new_one(make_daemon, pki):  # noqa: F811
    d = _server(make_daemon, tls_settings(pki), keepalive_timeout="4")
    ctx = client_context(pki)
    quiet = _normal_request_time(d.port, ctx)
    idle = []
    for _ in range(HOSTILE):
        c = http.client.HTTPSConnection("127.0.0.1", d.port, timeout=10, context=ctx)
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        assert r.status == 200
        idle.append(c)
    took = _normal_request_time(d.port, ctx)
    assert took < max(LIVENESS, 10 * quiet), f"a normal HTTPS request took {took:.2f}s"
    # Each idle one still serves its next request, then is cut at keepalive_timeout.
    for c in idle:
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        assert r.status == 200
    time.sleep(4 + 1.5)
    for c in idle:
        assert c.sock.recv(10) == b""
        c.close()


def _cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _refused_at_once(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        return s.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        s.close()


@pytest.mark.parametrize("setting", ["max_connections", "max_connections_per_address"])
def test_connection_limits_refuse_new_clients_and_service_resumes(make_daemon, setting):
    d = _server(make_daemon, **{setting: "6"})
    held = [_connect(d.port) for _ in range(6)]
    time.sleep(0.3)
    t0 = time.monotonic()
    assert _refused_at_once(d.port)
    assert time.monotonic() - t0 < 1.0
    # At the limit apubid waits, it does not spin on the listening socket:
    # over two seconds with clients knocking it uses a fraction of a core.
    cpu0 = _cpu_seconds(d.proc.pid)
    for _ in range(10):
        assert _refused_at_once(d.port)
        time.sleep(0.2)
    assert _cpu_seconds(d.proc.pid) - cpu0 < 1.0
    for s in held[:3]:
        s.close()
    time.sleep(0.3)
    assert _normal_request_time(d.port) < LIVENESS
    for s in held[3:]:
        s.close()
    assert d.proc.poll() is None


# ---- slow readers -------------------------------------------------------

SEND_TIMEOUT = 3
WSDL_GET = b"GET /apubi?wsdl HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
PIPELINED = 2000    # answers of about 4 KB each: far more than the socket buffers hold


class SlowReader:
    """Pipelines PIPELINED requests for the WSDL and reads nothing, through
    a small receive buffer, so that apubid's answers back up."""

    def __init__(self, port, ctx=None):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(15)
        raw.connect(("127.0.0.1", port))
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1") if ctx else raw
        self.sock.sendall(WSDL_GET * PIPELINED)

    def drain(self):
        """Reads what is left; returns (bytes read, how it ended: "eof",
        "reset" or "timeout")."""
        got, how = 0, "timeout"
        self.sock.settimeout(5)
        try:
            while True:
                data = self.sock.recv(1 << 20)
                if not data:
                    how = "eof"
                    break
                got += len(data)
        except socket.timeout:
            pass
        except (ConnectionResetError, ssl.SSLError, OSError):
            how = "reset"
        finally:
            self.sock.close()
        return got, how


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_slow_readers_do_not_block_a_normal_client_and_are_cut_at_send_timeout(
        make_daemon, pki, tls):  # noqa: F811
    d = _server(make_daemon, tls_settings(pki) if tls else None,
                send_timeout=str(SEND_TIMEOUT))
    ctx = client_context(pki) if tls else None
    quiet = _normal_request_time(d.port, ctx)
    one = len(d.get("/apubi?wsdl")[1]) if not tls else 0
    readers = [SlowReader(d.port, ctx) for _ in range(HOSTILE)]
    time.sleep(1.0)  # every reader's answers have filled its socket by now
    for _ in range(3):
        took = _normal_request_time(d.port, ctx)
        assert took < max(LIVENESS, 10 * quiet), f"a normal request took {took:.2f}s"
    time.sleep(SEND_TIMEOUT + 2.5)
    for r in readers:
        got, how = r.drain()
        # Cut: the rest of its answers were never written, and the
        # connection ended instead of waiting for more requests.
        assert how in ("eof", "reset"), f"a slow reader was not cut ({got} bytes read)"
        if one:
            assert got < PIPELINED * one, f"{got} bytes: every answer was written"
    assert _normal_request_time(d.port, ctx) < LIVENESS
    assert d.proc.poll() is None


# ---- the open-files limit -----------------------------------------------

def _limits(pid):
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-files line in /proc/PID/limits")


def test_max_connections_above_the_open_files_limit_raises_it_at_start(make_daemon):
    import resource
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    # apubid inherits a soft limit of 1024, as under a plain shell.
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, saved[1]))
    try:
        d = _server(make_daemon, max_connections="3000")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, saved)
    soft, _ = _limits(d.proc.pid)
    assert soft >= 3000, f"the open-files limit stayed at {soft}"
    assert _normal_request_time(d.port) < LIVENESS


def test_max_connections_that_cannot_fit_the_open_files_limit_stops_the_start(tmp_path):
    from conftest import APUBID, Daemon
    d = Daemon(tmp_path, {"server": {"max_connections": "100000"}})
    # A hard limit of 1024 and no CAP_SYS_RESOURCE to raise it, even as root.
    p = subprocess.run(["prlimit", "--nofile=1024:1024", "setpriv",
                        "--bounding-set=-sys_resource", "--inh-caps=-sys_resource",
                        APUBID, "-f", str(d.conf)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode != 0, out
    assert "max_connections = 100000 needs 100256 open files" in out, out
    assert "lower max_connections or raise LimitNOFILE" in out, out
