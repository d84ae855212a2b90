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


def test_ftp_source_is_refused_as_an_unsupported_scheme(daemon):
    f = assert_fault(daemon.load_reply("ftp://user:pw@127.0.0.1:21/repository/movie.ts",
                                       "a.ts"), "Client", 500)
    assert "unsupported source scheme" in f.string


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


def test_faults_are_never_http_200(daemon):
    replies = [daemon.status_reply("nope"), daemon.load_reply("", ""),
               daemon.post(b"junk", soap_headers()), daemon.purge_reply("../x", version=12)]
    for status, _, body in replies:
        assert status != 200, body
        parse_fault(body)


def _raw_exchange(port, head, body, timeout=15):
    """Sends head+body on a raw socket (tolerating the server closing early),
    then returns the status code read back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        try:
            for i in range(0, len(body), 65536):
                s.sendall(body[i:i + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        assert data.startswith(b"HTTP/1."), f"no HTTP answer, got {data[:200]!r}"
        return int(data.split()[1])
    finally:
        s.close()


def test_body_larger_than_max_request_size_gets_http_413(daemon):
    pad = b"<!--" + b"x" * (2 * 1024 * 1024) + b"-->"
    body = envelope("GetTaskStatus", [("TaskId", "x")]).replace(b"<soap:Body>",
                                                                 pad + b"<soap:Body>")
    head = (f"POST /apubi HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n"
            f"Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"\"\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    assert _raw_exchange(daemon.port, head, body) == 413
    # The daemon still serves afterwards.
    assert_fault(daemon.status_reply("nope"), "Server", 500)


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
