"""`apubictl conform`, the APUBI conformance run, against the real daemon.

What is checked:

* against apubid as it is, every check passes (exit 0), in the text report
  and in the JUnit XML (10 testcases, no failure, no skip), and the asset
  the run published is purged again;
* against apubid with [staging] rules that break the contract on purpose,
  exactly the checks concerned fail, the checks that need them are skipped,
  and the rest still pass (exit 1):
  - an empty DestinationAsset on load success: load-destination fails;
  - a load that never leaves IN_PROGRESS: load-success fails in --timeout;
  - a refused submission: load-taskid fails, with the request sent and the
    answer received in the report;
* behind a proxy that breaks one more rule (a WSDL without PurgeAsset,
  faults without detail, envelopes with the samples' ns2 declaration
  refused), exactly that check fails;
* a password in the source URL never reaches the report;
* Basic and Digest authentication, HTTPS with the server checked against
  --cacert and a client certificate, work as for the other client commands;
* nothing listening at the URL: exit 4, every check but wsdl skipped.

Only 127.0.0.1 is contacted; every run has a deadline.
"""
import http.client
import re
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import HTTP_TIMEOUT, free_port
from test_apubictl import ALICE_PW, BOB_PW, auth_daemon, ctl, explain, pki  # noqa: F401

CHECKS = ["wsdl", "load-taskid", "load-success", "load-destination", "purge",
          "unknown-taskid", "success-200", "fault-detail", "sample-quirks", "soap12"]
LINE_RE = re.compile(r"^(PASS|FAIL|SKIP|INFO) (\S+)", re.M)


def staging(*rules):
    return {"staging": {"enabled": "yes", "rule": list(rules)}}


def conform(d, tmp_path, *extra, dest="conform/asset.bin", env=None, url=None):
    """Runs conform with a fresh source file; returns (process, {check id:
    state from the text}, {check id: state from the JUnit file}, JUnit
    root)."""
    src = d.ingest / "conform.bin" if d else tmp_path / "conform.bin"
    src.write_bytes(b"conformance asset\n" * 1000)
    junit = tmp_path / "conform.xml"
    if junit.exists():
        junit.unlink()
    p = ctl("conform", url or d.url, "--source", src, "--destination", dest,
            "--interval", "0.1", "--junit", junit, *extra, env=env)
    text = {m.group(2): m.group(1) for m in LINE_RE.finditer(p.stdout)}
    assert list(text) == CHECKS, f"checks out of order or missing\n{explain(p)}"
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuite" and root.get("name") == "apubi-conformance", explain(p)
    cases = root.findall("testcase")
    assert [c.get("name") for c in cases] == CHECKS, explain(p)
    junit_states = {}
    for c in cases:
        junit_states[c.get("name")] = ("fail" if c.find("failure") is not None else
                                       "skip" if c.find("skipped") is not None else "pass")
    return p, text, junit_states, root


def expect_outcome(p, text, junit, root, fail=(), skip=()):
    """Exactly `fail` failed and `skip` were skipped; everything else passed,
    in the text and in the JUnit report alike, with the exit status that
    follows."""
    want_text = {c: "FAIL" if c in fail else "SKIP" if c in skip else "PASS" for c in CHECKS}
    want_junit = {c: "fail" if c in fail else "skip" if c in skip else "pass" for c in CHECKS}
    assert text == want_text, explain(p)
    assert junit == want_junit, explain(p)
    assert root.get("tests") == "10", explain(p)
    assert root.get("failures") == str(len(fail)), explain(p)
    assert root.get("skipped") == str(len(skip)), explain(p)
    assert p.returncode == (1 if fail else 0), explain(p)


def test_conform_passes_every_check_against_apubid(daemon, tmp_path):
    p, text, junit, root = conform(daemon, tmp_path)
    expect_outcome(p, text, junit, root)
    assert "9 required checks: 9 passed, 0 failed, 0 skipped; SOAP 1.2: supported" \
        in p.stdout, explain(p)
    # The run cleans up after itself: what it published, it purged.
    assert not (daemon.cdn / "conform" / "asset.bin").exists(), explain(p)


def test_empty_destination_on_success_fails_load_destination_only(make_daemon, tmp_path):
    d = make_daemon(**staging('name=nodest op=LoadAsset dest=conform/* destination=""'))
    p, text, junit, root = conform(d, tmp_path)
    expect_outcome(p, text, junit, root, fail={"load-destination"}, skip={"purge"})
    # The report shows the SUCCESS answer that lacks it.
    assert "empty DestinationAsset" in p.stdout, explain(p)
    assert re.search(r"^\s+< HTTP/1\.[01] 200", p.stdout, re.M), explain(p)
    assert "SKIP purge" in p.stdout and "needs load-destination" in p.stdout, explain(p)


def test_task_stuck_in_progress_fails_load_success_within_timeout(make_daemon, tmp_path):
    d = make_daemon(**staging("name=stuck op=LoadAsset dest=conform/* polls=forever"))
    p, text, junit, root = conform(d, tmp_path, "--timeout", "3")
    expect_outcome(p, text, junit, root, fail={"load-success"},
                   skip={"load-destination", "purge"})
    assert "still IN_PROGRESS after" in p.stdout, explain(p)
    failure = [c for c in root.findall("testcase") if c.get("name") == "load-success"][0]
    assert float(failure.get("time")) < 6, explain(p)


def test_refused_submission_fails_load_taskid_and_shows_the_exchange(make_daemon, tmp_path):
    d = make_daemon(**staging('name=refuse op=LoadAsset dest=conform/* fault=503 '
                              'faultstring="refused on purpose"'))
    p, text, junit, root = conform(d, tmp_path)
    expect_outcome(p, text, junit, root, fail={"load-taskid"},
                   skip={"load-success", "load-destination", "purge", "sample-quirks",
                         "soap12"})
    # The failure carries the request sent and the answer received.
    assert re.search(r"^\s+> POST /apubi HTTP/1\.1", p.stdout, re.M), explain(p)
    assert re.search(r"^\s+>\s+<LoadAsset xmlns=\"wfm:APUBI/v1/schemas\"", p.stdout, re.M), \
        explain(p)
    assert re.search(r"^\s+< HTTP/1\.[01] 503", p.stdout, re.M), explain(p)
    assert "refused on purpose" in p.stdout, explain(p)
    # And so does the JUnit failure, escaped into well-formed XML.
    case = [c for c in root.findall("testcase") if c.get("name") == "load-taskid"][0]
    f = case.find("failure")
    assert "refused on purpose" in f.get("message"), explain(p)
    assert "<LoadAsset" in f.text and "503" in f.text, f.text


# ---- a proxy in front of apubid that breaks one rule more ------------------

def drop_purge_from_wsdl(method, path, body, reply):
    status, headers, data = reply
    if method == "GET" and path.endswith("?wsdl"):
        data = re.sub(rb'<wsdl:operation name="PurgeAsset">.*?</wsdl:operation>', b"", data,
                      count=1, flags=re.S)
    return status, headers, data


def strip_fault_detail(method, path, body, reply):
    status, headers, data = reply
    return status, headers, re.sub(rb"<detail>.*?</detail>", b"", data, flags=re.S)


NO_NS2_FAULT = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
                b'<soap:Body><soap:Fault><faultcode>soap:Client</faultcode>'
                b'<faultstring>unexpected namespace ns2</faultstring><detail>'
                b'<ns:ExceptionWS xmlns:ns="wfm:APUBI/v1/schemas"><message>unexpected '
                b'namespace ns2</message></ns:ExceptionWS></detail></soap:Fault></soap:Body>'
                b'</soap:Envelope>')


def refuse_ns2(method, path, body, reply):
    if body and b"xmlns:ns2=" in body:
        return 500, {"Content-Type": "text/xml; charset=utf-8"}, NO_NS2_FAULT
    return reply


class Proxy:
    """Forwards every request to the daemon and passes the answer through
    `transform(method, path, request body, (status, headers, body))`."""

    def __init__(self, daemon, transform):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=HTTP_TIMEOUT)
                try:
                    hdrs = {k: v for k, v in self.headers.items()
                            if k.lower() in ("content-type", "soapaction")}
                    conn.request(method, self.path, body=body, headers=hdrs)
                    r = conn.getresponse()
                    reply = (r.status, {"Content-Type": r.getheader("Content-Type", "")},
                             r.read())
                finally:
                    conn.close()
                status, headers, data = proxy.transform(method, self.path, body, reply)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._forward("GET")

            def do_POST(self):
                self._forward("POST")

        self.transform = transform
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/apubi"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.mark.parametrize("transform, broken, reason", [
    (drop_purge_from_wsdl, "wsdl", 'the WSDL lacks the operation "PurgeAsset'),
    (strip_fault_detail, "fault-detail", "has no non-empty detail/{wfm:APUBI/v1/schemas}"
                                         "ExceptionWS/message"),
    (refuse_ns2, "sample-quirks", "unexpected namespace ns2"),
])
def test_one_more_broken_rule_behind_a_proxy_fails_that_check_only(daemon, tmp_path, transform,
                                                                   broken, reason):
    with Proxy(daemon, transform) as proxy:
        p, text, junit, root = conform(daemon, tmp_path, url=proxy.url)
    expect_outcome(p, text, junit, root, fail={broken})
    assert reason in p.stdout, explain(p)


def test_password_in_source_url_never_reaches_the_report(daemon, tmp_path):
    """An ftp:// source the daemon does not allow: the refusal is reported
    with the request, whose URL shows *** for the password."""
    src = "ftp://user:s3cr3t-pw@127.0.0.1:9/repository/conform.bin"
    junit = tmp_path / "conform.xml"
    p = ctl("conform", daemon.url, "--source", src, "--destination", "conform/a.bin",
            "--interval", "0.1", "--junit", junit, "--verbose")
    assert p.returncode == 1, explain(p)
    assert "FAIL load-taskid" in p.stdout, explain(p)
    assert "ftp://user:***@127.0.0.1:9/repository/conform.bin" in p.stdout, explain(p)
    for where in (p.stdout, p.stderr, junit.read_text()):
        assert "s3cr3t-pw" not in where, explain(p)


def test_conform_authenticates_with_basic_and_digest(auth_daemon, tmp_path):
    p, text, junit, root = conform(auth_daemon, tmp_path, "--user", "alice",
                                   env={"APUBICTL_PASSWORD": ALICE_PW})
    expect_outcome(p, text, junit, root)
    p, text, junit, root = conform(auth_daemon, tmp_path, "--user", "bob",
                                   env={"APUBICTL_PASSWORD": BOB_PW})
    expect_outcome(p, text, junit, root)
    assert BOB_PW not in p.stdout + p.stderr


def test_conform_over_https_with_a_client_certificate(make_daemon, pki, tmp_path):
    d = make_daemon(tls={"cert_file": pki.path("server.pem"), "key_file": pki.path("server.key"),
                         "client_ca": pki.path("client-ca.pem")})
    url = f"https://127.0.0.1:{d.port}/apubi"
    p, text, junit, root = conform(d, tmp_path, "--cacert", pki.path("server-ca.pem"),
                                   "--cert", pki.path("wfm.pem"), "--key", pki.path("wfm.key"),
                                   url=url)
    expect_outcome(p, text, junit, root)
    # A server the given CA does not vouch for is not reached at all.
    p, text, junit, root = conform(d, tmp_path, "--cacert", pki.path("other-ca.pem"),
                                   "--cert", pki.path("wfm.pem"), "--key", pki.path("wfm.key"),
                                   url=url)
    assert p.returncode == 4 and text["wsdl"] == "FAIL", explain(p)


def test_nothing_listening_exits_4(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/apubi"
    p, text, junit, root = conform(None, tmp_path, url=url)
    assert p.returncode == 4, explain(p)
    assert text["wsdl"] == "FAIL", explain(p)
    assert all(text[c] == "SKIP" for c in CHECKS[1:]), explain(p)
    assert "no answer" in p.stderr, explain(p)


def test_conform_needs_source_and_destination(daemon):
    p = ctl("conform", daemon.url, "--destination", "conform/a.bin")
    assert p.returncode == 2, explain(p)
    p = ctl("conform", daemon.url, "--source", "x", "--destination", "y", "--wait")
    assert p.returncode == 2, explain(p)
