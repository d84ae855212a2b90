"""Faults and HTTP statuses.

Every SOAP fault carries faultcode Client/Server (Sender/Receiver in SOAP
1.2), a faultstring, and detail/ExceptionWS/message repeating it. SOAP 1.1
faults go out with HTTP 500 (400 for client faults when client_fault_status
= 400); SOAP 1.2 Sender faults with 400 and Receiver faults with 500. What
is not SOAP at all gets 400, an oversized body 413, a wrong method 405, an
unknown path 404, a full queue 503 with Retry-After.
"""
import http.client
import os
import select
import socket
import time

import pytest

from conftest import (TASKID_RE, assert_fault, envelope, parse_fault, parse_response,
                      soap_headers)


# ---- validation at submission ------------------------------------------

def _src(d, name="a.ts"):
    (d.ingest / name).write_bytes(b"a")
    return f"file://{d.ingest}/{name}"


@pytest.mark.parametrize("case", ["source-missing", "source-empty", "source-blank",
                                  "destination-missing", "destination-empty",
                                  "destination-blank"])
def test_load_without_a_required_value_is_a_client_fault(daemon, case):
    src, dst = _src(daemon), "a.ts"
    field, how = case.split("-")
    value = {"missing": None, "empty": "", "blank": " \n\t "}[how]
    if field == "source":
        src = value
    else:
        dst = value
    assert_fault(daemon.load_reply(src, dst), "Client", 500)
    assert os.listdir(daemon.cdn) == []


@pytest.mark.parametrize("value", [None, "", "  \n"], ids=["missing", "empty", "blank"])
def test_purge_without_a_destination_is_a_client_fault(daemon, value):
    assert_fault(daemon.purge_reply(value), "Client", 500)


@pytest.mark.parametrize("url", ["file:///tmp/%zz", "file://host:99999/x", "file://h:port/x",
                                 "ftp://[::1/x", "relative/path.ts", "file:///x%00y"])
def test_unparseable_source_url_is_a_client_fault(daemon, url):
    assert_fault(daemon.load_reply(url, "a.ts"), "Client", 500)


def test_unknown_source_scheme_is_refused_as_unsupported(daemon):
    f = assert_fault(daemon.load_reply("gopher://127.0.0.1:70/repository/movie.ts",
                                       "a.ts"), "Client", 500)
    assert "unsupported source scheme 'gopher'" in f.string


def test_ftp_source_outside_the_allowed_prefixes_is_a_client_fault(daemon):
    reply = daemon.load_reply("ftp://user:pw@127.0.0.1:21/repository/movie.ts", "a.ts")
    f = assert_fault(reply, "Client", 500)
    assert "not under an allowed source prefix" in f.string
    assert b"pw@" not in reply.body


@pytest.mark.parametrize("where", ["file-etc-passwd", "path-etc-passwd", "dotdot", "sibling"])
def test_source_outside_the_allowed_prefix_is_a_client_fault(daemon, where):
    (daemon.tmp / "outside.ts").write_bytes(b"secret")
    url = {
        "file-etc-passwd": "file:///etc/passwd",
        "path-etc-passwd": "/etc/passwd",
        "dotdot": f"file://{daemon.ingest}/../outside.ts",
        "sibling": f"file://{daemon.tmp}/outside.ts",
    }[where]
    assert_fault(daemon.load_reply(url, "stolen.ts"), "Client", 500)
    assert os.listdir(daemon.cdn) == []


def test_missing_source_is_refused_as_not_existing(daemon):
    f = assert_fault(daemon.load_reply(f"file://{daemon.ingest}/nope.ts", "a.ts"),
                     "Client", 500)
    assert "source asset does not exist" in f.string


@pytest.mark.parametrize("dst", ["ftp://other:21/x", "ftp://CDN:21/data/other/x.ts",
                                 "http://cdn.example.com/vod/x.ts", "../x", "a/../../x",
                                 "/etc/x", "file:///etc/", "file:///etc/x.ts"])
def test_destination_outside_what_is_allowed_is_a_client_fault(daemon, dst):
    assert_fault(daemon.load_reply(_src(daemon), dst), "Client", 500)
    assert os.listdir(daemon.cdn) == []


@pytest.mark.parametrize("which", ["empty", "slash", "dot", "root-url", "ftp-prefix"])
def test_purge_of_the_root_itself_is_a_client_fault(daemon, which):
    (daemon.cdn / "keep.ts").write_bytes(b"keep")
    dst = {"empty": "", "slash": "/", "dot": "./", "root-url": daemon.root_url,
           "ftp-prefix": "ftp://CDN:21/data/cdn/"}[which]
    assert_fault(daemon.purge_reply(dst), "Client", 500)
    time.sleep(0.3)
    assert (daemon.cdn / "keep.ts").read_bytes() == b"keep"


@pytest.mark.parametrize("dst", ["../x", "a/../../x", "/etc/passwd", "file:///etc/passwd"])
def test_purge_outside_the_root_is_a_client_fault(daemon, dst):
    assert_fault(daemon.purge_reply(dst), "Client", 500)


# ---- fault shape and HTTP status -----------------------------------------

def test_unknown_task_id_is_a_server_fault_with_http_500(daemon):
    f = assert_fault(daemon.status_reply("00000000-0000-0000-0000-000000000000"),
                     "Server", 500)
    assert f.string == "Task Id does not exist"


def test_unknown_task_id_in_soap12_is_a_receiver_fault_with_http_500(daemon):
    f = assert_fault(daemon.status_reply("TestAssetA", version=12), "Receiver", 500,
                     version=12)
    assert f.string == "Task Id does not exist"


def test_soap12_client_fault_is_a_sender_fault_with_http_400(daemon):
    f = assert_fault(daemon.load_reply(f"file://{daemon.ingest}/nope.ts", "a.ts", version=12),
                     "Sender", 400, version=12)
    assert "source asset does not exist" in f.string


def test_soap11_client_fault_uses_http_400_when_configured(make_daemon):
    d = make_daemon(server={"client_fault_status": "400"})
    assert_fault(d.load_reply(f"file://{d.ingest}/nope.ts", "a.ts"), "Client", 400)
    assert_fault(d.load_reply("file:///etc/passwd", "a.ts"), "Client", 400)
    # Server faults and SOAP 1.2 keep their own statuses.
    assert_fault(d.status_reply("TestAssetA"), "Server", 500)
    assert_fault(d.load_reply(f"file://{d.ingest}/nope.ts", "a.ts", version=12),
                 "Sender", 400, version=12)


def test_unknown_operation_is_a_client_fault(daemon):
    body = envelope("Frobnicate", [("TaskId", "x")])
    status, headers, resp = daemon.post(body, soap_headers())
    assert status in (400, 500), f"HTTP {status} for an unknown operation: {resp!r}"
    assert parse_fault(resp).code == "Client"


@pytest.mark.parametrize("body,ctype", [
    (b"this is not xml at all", "text/xml; charset=utf-8"),
    (b'{"SourceAssetUrl": "file:///x", "DestinationAsset": "y"}', "application/json"),
    (b"", "text/xml; charset=utf-8"),
    (b"<foo/>", "text/xml; charset=utf-8"),
], ids=["garbage", "json", "empty", "foo-element"])
def test_body_that_is_not_soap_gets_http_400_and_a_fault(daemon, body, ctype):
    status, headers, resp = daemon.post(body, {"Content-Type": ctype, "SOAPAction": '""'})
    assert status == 400, f"HTTP {status}: {resp[:500]!r}"
    f = parse_fault(resp)
    assert f.code in ("Client", "Sender"), f
    assert f.string and f.message == f.string, f


@pytest.mark.parametrize("version", [11, 12])
def test_truncated_envelope_is_answered_promptly_with_a_fault(daemon, version):
    # Complete as HTTP (Content-Length matches), broken as XML.
    body = envelope("GetTaskStatus", [("TaskId", "TestAssetA")], version)[:-30]
    t0 = time.monotonic()
    try:
        status, headers, resp = daemon.post(body, soap_headers(version), timeout=5)
    except (OSError, http.client.HTTPException) as e:
        pytest.fail(f"no answer after {time.monotonic() - t0:.1f}s: {e!r}")
    expected = (400, 500) if version == 11 else (400,)
    assert status in expected, f"HTTP {status}, expected one of {expected}"
    assert parse_fault(resp).code in ("Client", "Sender")


def test_faults_are_never_http_200(daemon):
    replies = [daemon.status_reply("nope"), daemon.load_reply("", ""),
               daemon.post(b"junk", soap_headers()), daemon.purge_reply("../x", version=12)]
    for status, _, body in replies:
        assert status != 200, body
        parse_fault(body)


def _send_watching(port, head, pieces, timeout=15):
    """Sends head, then each piece, stopping early when the server has
    already answered (so an early 413 is read before any reset); returns the
    HTTP status read back, or None when the connection closed unanswered."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        for piece in pieces:
            if select.select([s], [], [], 0)[0]:
                break
            try:
                s.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        if not data.startswith(b"HTTP/1."):
            return None
        return int(data.split()[1])
    finally:
        s.close()


def _oversized_envelope():
    pad = b"<!--" + b"x" * (2 * 1024 * 1024) + b"-->"
    return envelope("GetTaskStatus", [("TaskId", "x")]).replace(b"<soap:Body>",
                                                                pad + b"<soap:Body>")


def _head(port, framing):
    return (f"POST /apubi HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"\"\r\n"
            f"{framing}\r\n\r\n").encode()


def _chunks(body, size=65536):
    out = [b"%x\r\n" % len(body[i:i + size]) + body[i:i + size] + b"\r\n"
           for i in range(0, len(body), size)]
    return out + [b"0\r\n\r\n"]


def test_body_larger_than_max_request_size_gets_http_413(daemon):
    body = _oversized_envelope()
    head = _head(daemon.port, f"Content-Length: {len(body)}")
    pieces = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    assert _send_watching(daemon.port, head, pieces) == 413
    # The daemon still serves afterwards.
    assert_fault(daemon.status_reply("nope"), "Server", 500)


def test_small_chunked_request_is_served(daemon):
    body = envelope("GetTaskStatus", [("TaskId", "TestAssetA")])
    head = _head(daemon.port, "Transfer-Encoding: chunked")
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=15)
    try:
        s.sendall(head + b"".join(_chunks(body, 50)))
        r = http.client.HTTPResponse(s)
        r.begin()
        reply = (r.status, r.headers, r.read())
    finally:
        s.close()
    f = assert_fault(reply, "Server", 500)
    assert f.string == "Task Id does not exist"


def test_chunked_body_larger_than_max_request_size_gets_http_413(daemon):
    head = _head(daemon.port, "Transfer-Encoding: chunked")
    status = _send_watching(daemon.port, head, _chunks(_oversized_envelope()))
    assert status == 413, ("connection closed without an HTTP answer" if status is None
                           else f"HTTP {status}")


def test_oversized_chunked_body_leaves_later_requests_unharmed(daemon):
    # 16 serving threads: 40 requests afterwards reach every one of them.
    head = _head(daemon.port, "Transfer-Encoding: chunked")
    _send_watching(daemon.port, head, _chunks(_oversized_envelope()))
    wrong = []
    for i in range(40):
        status, _, body = daemon.status_reply("TestAssetA")
        if status != 500 or b"Task Id does not exist" not in body:
            wrong.append((i, status, body[-300:]))
    assert not wrong, f"{len(wrong)} of 40 later requests answered wrongly, e.g. {wrong[0]}"


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_wrong_method_on_the_endpoint_gets_http_405(daemon, method):
    body = None if method == "GET" else envelope("GetTaskStatus", [("TaskId", "x")])
    status, _, resp = daemon.post(body, soap_headers(), method=method)
    assert status == 405, f"{method} /apubi: HTTP {status}: {resp[:300]!r}"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_path_gets_http_404(daemon, method):
    body = None if method == "GET" else envelope("GetTaskStatus", [("TaskId", "x")])
    status, _, resp = daemon.post(body, soap_headers(), path="/nope", method=method)
    assert status == 404, f"{method} /nope: HTTP {status}: {resp[:300]!r}"


def test_full_queue_answers_503_with_retry_after(make_daemon):
    d = make_daemon(workers={"queue_limit": "1"})
    block = os.urandom(1 << 20)
    with open(d.ingest / "big.ts", "wb") as f:
        for _ in range(50):
            f.write(block)
    src = f"file://{d.ingest}/big.ts"
    accepted, refused = [], None
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=15)
    try:
        for i in range(50):
            body = envelope("LoadAsset", [("SourceAssetUrl", src),
                                          ("DestinationAsset", f"q/{i}.ts")])
            conn.request("POST", "/apubi", body=body, headers=soap_headers())
            r = conn.getresponse()
            data = r.read()
            if r.status == 503:
                refused = (r.status, r.headers, data)
                break
            assert r.status == 200, f"HTTP {r.status}: {data[:500]!r}"
            accepted.append(parse_response(data, "LoadAsset")["TaskId"])
    finally:
        conn.close()
    assert refused is not None, f"no 503 after {len(accepted)} accepted loads with queue_limit = 1"
    assert accepted, "the very first load was refused"
    _, headers, data = refused
    retry = headers.get("Retry-After")
    assert retry and retry.strip(), "503 without Retry-After"
    f = parse_fault(data)
    assert f.code in ("Client", "Server") and f.string and f.message == f.string, f
    done = d.wait_all(accepted, timeout=90)
    assert all(st == "SUCCESS" for st, _ in done.values()), done
    big = (d.ingest / "big.ts").stat().st_size
    for i in range(len(accepted)):
        assert (d.cdn / "q" / f"{i}.ts").stat().st_size == big
    # Once drained, loads are accepted again.
    tid = d.load(src, "q/again.ts")
    assert TASKID_RE.match(tid)
    assert d.wait_for_status(tid, timeout=60)[0] == "SUCCESS"


def test_destination_through_a_symbolic_link_never_touches_what_it_points_to(daemon):
    outside = daemon.tmp / "outside"
    outside.mkdir()
    (outside / "secret.ts").write_bytes(b"secret")
    (daemon.cdn / "link").symlink_to(outside)
    src = _src(daemon)
    reply = daemon.load_reply(src, "link/new.ts")
    if reply.status == 200:
        tid = parse_response(reply.body, "LoadAsset")["TaskId"]
        assert daemon.wait_for_status(tid)[0] == "FAILED"
    else:
        assert_fault(reply, "Client", 500)
    reply = daemon.purge_reply("link/secret.ts")
    if reply.status == 200:
        tid = parse_response(reply.body, "PurgeAsset")["TaskId"]
        assert daemon.wait_for_status(tid)[0] == "FAILED"
    else:
        assert_fault(reply, "Client", 500)
    assert sorted(os.listdir(outside)) == ["secret.ts"]
    assert (outside / "secret.ts").read_bytes() == b"secret"


def test_stalled_request_is_dropped_after_recv_timeout(make_daemon):
    # etc/apubid.conf: recv_timeout is the seconds a socket read may stall
    # before the connection is dropped. Headers that stop arriving count.
    d = make_daemon(server={"recv_timeout": "2", "request_timeout": "30"})
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    try:
        s.sendall(b"POST /apubi HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0 = time.monotonic()
        try:
            while s.recv(4096):
                pass
        except (TimeoutError, socket.timeout):
            pytest.fail("connection still open 10s after a stall, with recv_timeout = 2")
        except ConnectionResetError:
            pass
        took = time.monotonic() - t0
        assert took < 4.5, f"stalled connection dropped only after {took:.1f}s (recv_timeout = 2)"
    finally:
        s.close()


def test_fault_naming_a_url_masks_its_password(daemon):
    reply = daemon.load_reply(_src(daemon), "ftp://user:password@other:21/x.ts")
    f = assert_fault(reply, "Client", 500)
    assert "other" in f.string
    assert b"password" not in reply.body, f.string


def test_get_task_status_reads_a_task_id_in_any_case(daemon):
    (daemon.ingest / "case.ts").write_bytes(b"c")
    tid = daemon.load(f"file://{daemon.ingest}/case.ts", "case.ts")
    st, dest = daemon.wait_for_status(tid)
    assert st == "SUCCESS"
    assert daemon.status(tid.lower()) == (st, dest)
    assert daemon.status(tid.lower(), version=12) == (st, dest)


@pytest.mark.parametrize("mangle", [lambda t: t.replace("-", "_"), lambda t: t[:-1],
                                    lambda t: "{" + t + "}", lambda t: t + " x"],
                         ids=["underscores", "short", "braces", "trailing_word"])
def test_a_task_id_not_shaped_like_one_is_unknown(daemon, mangle):
    (daemon.ingest / "shape.ts").write_bytes(b"s")
    tid = daemon.load(f"file://{daemon.ingest}/shape.ts", "shape.ts")
    daemon.wait_for_status(tid)
    f = assert_fault(daemon.status_reply(mangle(tid)), "Server", 500)
    assert f.string == "Task Id does not exist"
