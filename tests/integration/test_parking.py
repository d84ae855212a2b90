"""Idle connections do not hold serving threads.

A connection with no request waiting (one that has sent nothing yet, or a
keep-alive one between requests) is parked in the server's epoll set and
comes back to a serving thread when bytes arrive. These tests use two
serving threads and many more idle clients: without parking, the idle
clients would hold both threads and a new client would wait until their
keepalive_timeout (60 s here) ran out, far past the test's socket timeout.
"""
import socket
import time

from conftest import TASKID_RE, envelope, parse_response, soap_headers

IDLE_CLIENTS = 12
SOCKET_TIMEOUT = 5.0


def _request_bytes(port, body):
    head = "".join(f"{k}: {v}\r\n" for k, v in soap_headers().items())
    return (f"POST /apubi HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _read_response(sock):
    """Reads one HTTP response with a Content-Length; returns (status, body).
    Bytes past it (the next pipelined response) stay in the socket's
    buffer for the next call."""
    data = _pending.pop(sock.fileno(), b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the response headers"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(l.split(":", 1)[1]) for l in lines[1:]
                  if l.lower().startswith("content-length:"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        rest += chunk
    if rest[length:]:
        _pending[sock.fileno()] = rest[length:]
    return status, rest[:length]


_pending = {}


def _status_request(port, task_id):
    return _request_bytes(port, envelope("GetTaskStatus", [("TaskId", task_id)]))


def _connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT)
    s.settimeout(SOCKET_TIMEOUT)
    return s


def _published_task(d):
    (d.ingest / "a.ts").write_bytes(b"x" * 100)
    task_id = d.load(str(d.ingest / "a.ts"), "a.ts")
    assert d.wait_for_status(task_id)[0] == "SUCCESS"
    return task_id


def test_idle_keepalive_clients_do_not_starve_a_new_one(make_daemon):
    d = make_daemon(server={"threads": "2", "keepalive_timeout": "60"})
    task_id = _published_task(d)
    idle = []
    try:
        for _ in range(IDLE_CLIENTS):
            s = _connect(d.port)
            s.sendall(_status_request(d.port, task_id))
            status, body = _read_response(s)
            assert status == 200
            idle.append(s)  # keep-alive, now idle
        fresh = _connect(d.port)
        fresh.sendall(_status_request(d.port, task_id))
        status, body = _read_response(fresh)
        assert status == 200
        assert parse_response(body, "GetTaskStatus")["Status"] == "SUCCESS"
        fresh.close()
        # Every parked connection still serves its next request.
        for s in idle:
            s.sendall(_status_request(d.port, task_id))
            status, body = _read_response(s)
            assert status == 200
            assert parse_response(body, "GetTaskStatus")["Status"] == "SUCCESS"
    finally:
        for s in idle:
            s.close()


def test_silent_new_connections_do_not_starve_a_client(make_daemon):
    d = make_daemon(server={"threads": "2", "recv_timeout": "60"})
    silent = [_connect(d.port) for _ in range(IDLE_CLIENTS)]
    try:
        (d.ingest / "b.ts").write_bytes(b"y" * 10)
        task_id = d.load(str(d.ingest / "b.ts"), "b.ts")
        assert TASKID_RE.match(task_id)
        # A silent connection that finally speaks is served too.
        silent[0].sendall(_status_request(d.port, task_id))
        status, _ = _read_response(silent[0])
        assert status == 200
    finally:
        for s in silent:
            s.close()


def test_pipelined_requests_on_a_parked_connection_are_all_answered(make_daemon):
    d = make_daemon(server={"threads": "2"})
    task_id = _published_task(d)
    s = _connect(d.port)
    try:
        s.sendall(_status_request(d.port, task_id))
        assert _read_response(s)[0] == 200
        time.sleep(0.3)  # parked by now
        s.sendall(_status_request(d.port, task_id) * 3)
        for _ in range(3):
            status, body = _read_response(s)
            assert status == 200
            assert parse_response(body, "GetTaskStatus")["Status"] == "SUCCESS"
    finally:
        s.close()


def test_idle_keepalive_connection_is_closed_after_keepalive_timeout(make_daemon):
    d = make_daemon(server={"threads": "2", "keepalive_timeout": "1"})
    task_id = _published_task(d)
    s = _connect(d.port)
    try:
        s.sendall(_status_request(d.port, task_id))
        assert _read_response(s)[0] == 200
        s.settimeout(10)
        assert s.recv(1) == b"", "the idle connection should have been closed"
    finally:
        s.close()


def test_parked_connections_are_closed_when_apubid_stops(make_daemon):
    d = make_daemon(server={"threads": "2", "keepalive_timeout": "60"})
    task_id = _published_task(d)
    s = _connect(d.port)
    try:
        s.sendall(_status_request(d.port, task_id))
        assert _read_response(s)[0] == 200
        assert d.stop() == 0
        s.settimeout(10)
        assert s.recv(1) == b""
    finally:
        s.close()
