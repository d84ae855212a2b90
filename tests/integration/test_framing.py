"""HTTP/1.1 framing read strictly (RFC 9112), over raw sockets.

Where a request begins and ends must not be open to interpretation:
when apubid and a proxy in front of it disagree, a second request can
hide in the first one's body (request smuggling). So the request line and
headers follow the grammar exactly, a request with both Content-Length
and Transfer-Encoding is refused and its connection closed, and at
max_keepalive_requests the last answer says Connection: close and the
connection ends gracefully, after every answer already written has been
delivered.
"""
import socket
import time

import pytest

from conftest import envelope, parse_fault, soap_headers

UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"
# A request answered 200 on a connection kept open (a fault would close it).
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BODY = envelope("GetTaskStatus", [("TaskId", UNKNOWN_ID)])


def _head(extra="", length=True, target="/apubi", line=None):
    head = line or f"POST {target} HTTP/1.1"
    head += "\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in soap_headers().items())
    head += extra
    if length:
        head += f"Content-Length: {len(BODY)}\r\n"
    return head.encode("latin-1")


def _request(extra="", **kw):
    return _head(extra, **kw) + b"\r\n" + BODY


def _parse(buf):
    """Complete responses at the start of buf: [(status, headers, body)]."""
    out = []
    while b"\r\n\r\n" in buf:
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        if len(rest) < n:
            break
        out.append((int(lines[0].split()[1]), hdrs, rest[:n]))
        buf = rest[n:]
    return out


def _exchange(port, data, timeout=5.0):
    """Sends data, reads until the server closes; returns (replies, how)
    where how is "eof", "reset" or "timeout"."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    buf, how = b"", "timeout"
    t0 = time.monotonic()
    try:
        s.sendall(data)
        while time.monotonic() - t0 < timeout:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                how = "reset"
                break
            except socket.timeout:
                break
            if not chunk:
                how = "eof"
                break
            buf += chunk
    finally:
        s.close()
    return _parse(buf), how


def _refused(port, data, status=400, has=None):
    replies, how = _exchange(port, data)
    assert replies, f"no answer ({how})"
    st, hdrs, body = replies[0]
    assert st == status, (st, body[:300])
    f = parse_fault(body)
    assert f.code in ("Client", "Sender"), f
    if has:
        assert has in f.string, f.string
    assert hdrs.get("connection", "").lower() == "close"
    assert len(replies) == 1 and how == "eof", (len(replies), how)


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    from conftest import Daemon
    d = Daemon(tmp_path_factory.mktemp("framing"), {"server": {"threads": "2"}})
    d.start()
    yield d.port
    d.stop()


def test_a_plain_request_is_served(port):
    replies, _ = _exchange(port, _request("Connection: close\r\n"))
    assert replies and replies[0][0] == 500  # Task Id does not exist


def test_content_length_and_transfer_encoding_together_are_refused_and_closed(port):
    chunked = b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n"
    data = _head("Transfer-Encoding: chunked\r\n") + b"\r\n" + chunked
    _refused(port, data, 400, "both Content-Length and Transfer-Encoding")


@pytest.mark.parametrize("te", ["gzip", "gzip, chunked", "identity", "chunked;x=1"])
def test_transfer_encoding_other_than_chunked_gets_501(port, te):
    data = _head(f"Transfer-Encoding: {te}\r\n", length=False) + b"\r\n" + BODY
    _refused(port, data, 501, "chunked")


@pytest.mark.parametrize("data", [
    pytest.param(_request(target="/apu\x00bi"), id="nul_in_the_request_target"),
    pytest.param(_request("X-A: a\x00b\r\n"), id="nul_in_a_header_value"),
    pytest.param(_request("X-\x00A: a\r\n"), id="nul_in_a_header_name"),
    pytest.param(_request("X-A: a\rb\r\n"), id="bare_cr_in_a_header_value"),
    pytest.param(_request("X-A: a\nX-B: b\r\n"), id="bare_lf_ending_a_header"),
    pytest.param(_request(line="POST /apubi HTTP/1.1\n"), id="bare_lf_ending_the_request_line"),
    pytest.param(_request("X-A : a\r\n"), id="space_before_the_colon"),
    pytest.param(_request("X A: a\r\n"), id="space_in_a_header_name"),
    pytest.param(_request("X-A: a\r\n b\r\n"), id="folded_header_line"),
    pytest.param(_request("X-A\r\n"), id="header_line_without_colon"),
    pytest.param(_request(line="POST  /apubi HTTP/1.1"), id="two_spaces_in_the_request_line"),
    pytest.param(_request(line="POST /apubi HTTP/1.1 "), id="space_after_the_version"),
    pytest.param(_request(line="POST /a b HTTP/1.1"), id="space_in_the_request_target"),
    pytest.param(_request(line="POST\t/apubi HTTP/1.1"), id="tab_in_the_request_line"),
    pytest.param(_request("X-A: \x01\r\n"), id="control_character_in_a_header_value"),
    pytest.param(_request("Authorization: Basic YTpi\r\nAuthorization: Basic YzpK\r\n"),
                 id="two_authorization_headers"),
    pytest.param(_request("Host: evil\r\n"), id="two_host_headers"),
    pytest.param(_request("Content-Length: 1\r\n"), id="two_different_content_lengths"),
])
def test_malformed_request_is_refused_with_400_and_closed(port, data):
    _refused(port, data, 400)


def test_major_version_other_than_1_gets_505(port):
    _refused(port, _request(line="POST /apubi HTTP/2.0"), 505)


def test_nul_in_the_request_target_of_a_get_is_refused(port):
    _refused(port, b"GET /hea\x00lthz HTTP/1.1\r\nHost: x\r\n\r\n", 400)


def test_the_service_continues_after_the_refusals(port):
    replies, _ = _exchange(port, _request("Connection: close\r\n"))
    assert replies and replies[0][0] == 500


def test_at_max_keepalive_requests_the_last_answer_closes_gracefully(make_daemon):
    d = make_daemon(server={"max_keepalive_requests": "50", "threads": "2"})
    replies, how = _exchange(d.port, HEALTHZ * 60, timeout=10)
    assert len(replies) == 50, f"{len(replies)} answers ({how})"
    assert all(r[0] == 200 for r in replies)
    assert all(r[1].get("connection", "").lower() != "close" for r in replies[:-1])
    assert replies[-1][1].get("connection", "").lower() == "close"
    assert how == "eof", how


def test_max_keepalive_requests_counts_exactly_over_a_thousand(make_daemon):
    d = make_daemon(server={"max_keepalive_requests": "1000", "threads": "2"})
    replies, how = _exchange(d.port, HEALTHZ * 1010, timeout=60)
    assert len(replies) == 1000, f"{len(replies)} answers ({how})"
    assert replies[-1][1].get("connection", "").lower() == "close"
    assert how == "eof", how
