"""HTTPS: [tls] cert_file, key_file, key_password and client_ca.

With cert_file set apubid speaks TLS 1.2 or 1.3 only (1.1 and older are
refused), in TLS 1.2 only with forward-secret AEAD suites (ECDHE with
AES-GCM or ChaCha20-Poly1305; no static RSA key exchange, no CBC), serves the WSDL with https:// addresses, does each handshake in
the event loop (a client that connects and says nothing holds no one
else up), and with client_ca admits only clients whose certificate chains
to that CA. Certificates are made with the openssl command for each test
module, in a temporary directory; only 127.0.0.1 is contacted.
"""
import http.client
import socket
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import APUBID, assert_fault, envelope, parse_response, soap_headers

WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD = "http://www.w3.org/2001/XMLSchema"
TLS_TIMEOUT = 15


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    """A server CA with two certificates for 127.0.0.1 (an ECDSA one,
    server, and an RSA one, server-rsa), a client CA with one client
    certificate, and an unrelated CA with another client certificate."""

    def __init__(self, d):
        self.dir = d
        self._ca("server-ca")
        self._leaf("server", "server-ca", "subjectAltName=IP:127.0.0.1,DNS:localhost")
        self._leaf("server-rsa", "server-ca", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                   rsa=True)
        self._ca("client-ca")
        self._leaf("wfm", "client-ca")
        self._ca("other-ca")
        self._leaf("intruder", "other-ca")

    def _key(self, name, rsa=False):
        opts = ("RSA", "rsa_keygen_bits:2048") if rsa else ("EC", "ec_paramgen_curve:P-256")
        openssl("genpkey", "-algorithm", opts[0], "-pkeyopt", opts[1], "-out", f"{name}.key",
                cwd=self.dir)

    def _ca(self, name):
        self._key(name)
        openssl("req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.pem",
                "-days", "2", "-subj", f"/CN={name}", cwd=self.dir)

    def _leaf(self, name, ca, ext=None, rsa=False):
        self._key(name, rsa)
        openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", *(["-addext", ext] if ext else []), cwd=self.dir)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                "-copy_extensions", "copy", cwd=self.dir)

    def path(self, name):
        return str(self.dir / name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


def tls_settings(pki, name="server", **extra):
    s = {"cert_file": pki.path(f"{name}.pem"), "key_file": pki.path(f"{name}.key")}
    s.update(extra)
    return s


def client_context(pki, cert=None):
    ctx = ssl.create_default_context(cafile=pki.path("server-ca.pem"))
    if cert:
        ctx.load_cert_chain(pki.path(f"{cert}.pem"), pki.path(f"{cert}.key"))
    return ctx


def https(port, ctx, body=None, headers=None, path="/apubi", method="POST", conn=None):
    """One request over HTTPS; returns (status, headers, body)."""
    own = conn is None
    conn = conn or http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                               timeout=TLS_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        if own:
            conn.close()


def load_over_https(d, ctx, name="a.ts"):
    (d.ingest / name).write_bytes(b"payload " * 100)
    body = envelope("LoadAsset", [("SourceAssetUrl", f"file://{d.ingest}/{name}"),
                                  ("DestinationAsset", name)])
    status, _, data = https(d.port, ctx, body, soap_headers())
    assert status == 200, data[:500]
    return parse_response(data, "LoadAsset")["TaskId"]


def s_client(port, *args):
    """openssl s_client against apubid with its input closed; returns
    (exit code, output)."""
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=TLS_TIMEOUT)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


# ---- protocol versions --------------------------------------------------

def test_tls_1_1_is_refused(make_daemon, pki):
    d = make_daemon(tls=tls_settings(pki))
    # SECLEVEL=0 makes the client willing to offer TLS 1.1, so the refusal
    # is the server's.
    rc, out = s_client(d.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, out
    assert "Cipher is (NONE)" in out, out
    assert "protocol version" in out or "unsupported protocol" in out, out


@pytest.mark.parametrize("version,name", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_tls_1_2_and_1_3_are_accepted(make_daemon, pki, version, name):
    d = make_daemon(tls=tls_settings(pki))
    rc, out = s_client(d.port, version, "-CAfile", pki.path("server-ca.pem"))
    assert rc == 0, out
    assert f"New, {name}, Cipher is" in out, out
    assert "Verify return code: 0 (ok)" in out, out


# ---- cipher suites ------------------------------------------------------

@pytest.mark.parametrize("suites", [
    "kRSA",                   # static RSA key exchange: no forward secrecy
    "ECDHE-RSA-AES128-SHA",   # forward secret, but CBC
    "ECDHE-RSA-AES256-SHA384",
])
def test_tls_1_2_refuses_suites_without_forward_secrecy_or_aead(make_daemon, pki, suites):
    # An RSA certificate, the only kind static RSA key exchange works with.
    d = make_daemon(tls=tls_settings(pki, "server-rsa"))
    rc, out = s_client(d.port, "-tls1_2", "-cipher", suites, "-CAfile", pki.path("server-ca.pem"))
    assert rc != 0, out
    assert "Cipher is (NONE)" in out, out
    assert "handshake failure" in out, out


@pytest.mark.parametrize("name,suite", [
    ("server-rsa", "ECDHE-RSA-AES128-GCM-SHA256"),
    ("server-rsa", "ECDHE-RSA-AES256-GCM-SHA384"),
    ("server-rsa", "ECDHE-RSA-CHACHA20-POLY1305"),
    ("server", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("server", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ("server", "ECDHE-ECDSA-CHACHA20-POLY1305"),
])
def test_tls_1_2_accepts_ecdhe_with_aead(make_daemon, pki, name, suite):
    d = make_daemon(tls=tls_settings(pki, name))
    rc, out = s_client(d.port, "-tls1_2", "-cipher", suite, "-CAfile", pki.path("server-ca.pem"))
    assert rc == 0, out
    assert f"New, TLSv1.2, Cipher is {suite}" in out, out
    assert "Verify return code: 0 (ok)" in out, out


@pytest.mark.parametrize("suite", ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                   "TLS_CHACHA20_POLY1305_SHA256"])
def test_tls_1_3_offers_its_standard_suites(make_daemon, pki, suite):
    d = make_daemon(tls=tls_settings(pki, "server-rsa"))
    rc, out = s_client(d.port, "-tls1_3", "-ciphersuites", suite,
                       "-CAfile", pki.path("server-ca.pem"))
    assert rc == 0, out
    assert f"New, TLSv1.3, Cipher is {suite}" in out, out


def test_plain_http_to_the_tls_port_gets_no_answer(make_daemon, pki):
    d = make_daemon(tls=tls_settings(pki))
    with pytest.raises((http.client.HTTPException, OSError)):
        d.status_reply("00000000-0000-0000-0000-000000000000")
    # and the daemon still serves TLS clients
    status, _, _ = https(d.port, client_context(pki), path="/apubi?wsdl", method="GET")
    assert status == 200


# ---- serving over HTTPS -------------------------------------------------

def test_curl_gets_task_status_over_https(make_daemon, pki):
    d = make_daemon(tls=tls_settings(pki))
    tid = load_over_https(d, client_context(pki))
    body = envelope("GetTaskStatus", [("TaskId", tid)])
    deadline = time.monotonic() + 30
    while True:
        p = subprocess.run(["curl", "-sS", "--cacert", pki.path("server-ca.pem"),
                            "-H", "Content-Type: text/xml; charset=utf-8", "--data-binary", "@-",
                            "-w", "\n%{http_code} %{scheme}", f"https://127.0.0.1:{d.port}/apubi"],
                           input=body, capture_output=True, timeout=TLS_TIMEOUT)
        assert p.returncode == 0, p.stderr
        data, _, tail = p.stdout.rpartition(b"\n")
        assert tail == b"200 HTTPS", (tail, data[:500])
        r = parse_response(data, "GetTaskStatus")
        if r["Status"] != "IN_PROGRESS":
            break
        assert time.monotonic() < deadline, "task still IN_PROGRESS"
        time.sleep(0.1)
    assert r["Status"] == "SUCCESS", data
    assert (d.cdn / "a.ts").read_bytes() == b"payload " * 100


def test_wsdl_over_https_advertises_https(make_daemon, pki):
    d = make_daemon(tls=tls_settings(pki))
    status, headers, body = https(d.port, client_context(pki), path="/apubi?wsdl",
                                  method="GET")
    assert status == 200, body[:300]
    root = ET.fromstring(body)
    addresses = [a.get("location") for a in root.iter(f"{{{WSDL_SOAP}}}address")]
    assert addresses == [f"https://127.0.0.1:{d.port}/apubi"]
    imports = [i.get("schemaLocation") for i in root.iter(f"{{{XSD}}}import")]
    assert imports and all(i.startswith(f"https://127.0.0.1:{d.port}/") for i in imports), imports


def test_keep_alive_and_large_requests_over_tls(make_daemon, pki):
    d = make_daemon(tls=tls_settings(pki))
    ctx = client_context(pki)
    (d.ingest / "a.ts").write_bytes(b"a")
    conn = http.client.HTTPSConnection("127.0.0.1", d.port, context=ctx, timeout=TLS_TIMEOUT)
    try:
        for i in range(10):
            status, headers, _ = https(d.port, None, path="/apubi?xsd", method="GET", conn=conn)
            assert status == 200
            assert headers.get("Connection", "").lower() != "close"
            # A body of several TLS records (16 KiB each at most).
            body = envelope("LoadAsset", [("SourceAssetUrl", f"file://{d.ingest}/a.ts"),
                                          ("DestinationAsset", f"k{i}.ts"),
                                          ("MetaData", "m" * 60000)])
            status, headers, data = https(d.port, None, body, soap_headers(), conn=conn)
            assert status == 200, data[:500]
            assert headers.get("Connection", "").lower() != "close"
    finally:
        conn.close()


def test_key_and_chain_in_one_file(make_daemon, pki, tmp_path):
    both = tmp_path / "both.pem"
    both.write_bytes((pki.dir / "server.key").read_bytes() + (pki.dir / "server.pem").read_bytes())
    d = make_daemon(tls={"cert_file": str(both)})
    status, _, _ = https(d.port, client_context(pki), path="/apubi?wsdl", method="GET")
    assert status == 200


def test_encrypted_key_with_key_password(make_daemon, pki, tmp_path):
    key = tmp_path / "enc.key"
    openssl("pkey", "-in", pki.path("server.key"), "-aes256", "-passout", "pass:k3y-pass",
            "-out", str(key), cwd=tmp_path)
    d = make_daemon(tls=tls_settings(pki, key_file=str(key), key_password="k3y-pass"))
    status, _, _ = https(d.port, client_context(pki), path="/apubi?wsdl", method="GET")
    assert status == 200
    assert "k3y-pass" not in d.log_text()


def test_wrong_key_password_stops_the_start(make_daemon, pki, tmp_path):
    key = tmp_path / "enc.key"
    openssl("pkey", "-in", pki.path("server.key"), "-aes256", "-passout", "pass:k3y-pass",
            "-out", str(key), cwd=tmp_path)
    d = make_daemon(start=False, tls=tls_settings(pki, key_file=str(key), key_password="Xq9-not-it"))
    p = subprocess.run([APUBID, "-f", str(d.conf)], cwd=d.tmp, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=20)
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert "cannot load the private key" in err, err
    assert "Xq9-not-it" not in err


def test_a_key_that_does_not_match_the_certificate_stops_the_start(make_daemon, pki):
    d = make_daemon(start=False, tls=tls_settings(pki, key_file=pki.path("wfm.key")))
    p = subprocess.run([APUBID, "-f", str(d.conf)], cwd=d.tmp, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=20)
    assert p.returncode == 1
    assert b"does not match" in p.stderr or b"cannot load the private key" in p.stderr, p.stderr


# ---- client certificates ------------------------------------------------

@pytest.fixture
def mtls(make_daemon, pki):
    return make_daemon(tls=tls_settings(pki, client_ca=pki.path("client-ca.pem")))


def _refused(d, ctx):
    """Tries a request; True when the TLS layer refused it."""
    try:
        status, _, _ = https(d.port, ctx, path="/apubi?wsdl", method="GET")
    except (ssl.SSLError, OSError, http.client.HTTPException):
        return True
    pytest.fail(f"request answered with HTTP {status}")


def test_client_without_certificate_is_refused(mtls, pki):
    assert _refused(mtls, client_context(pki))
    # Under TLS 1.2 the refusal comes inside the handshake itself.
    rc, out = s_client(mtls.port, "-tls1_2", "-CAfile", pki.path("server-ca.pem"))
    assert rc != 0, out
    assert "peer did not return a certificate" in mtls.log_text()


def test_client_certificate_signed_by_the_client_ca_is_accepted(mtls, pki):
    ctx = client_context(pki, cert="wfm")
    tid = load_over_https(mtls, ctx)
    status, _, body = https(mtls.port, ctx, envelope("GetTaskStatus", [("TaskId", tid)]),
                            soap_headers())
    assert status == 200, body[:500]
    assert parse_response(body, "GetTaskStatus")["Status"] in ("IN_PROGRESS", "SUCCESS")


def test_client_certificate_from_another_ca_is_refused(mtls, pki):
    assert _refused(mtls, client_context(pki, cert="intruder"))
    deadline = time.monotonic() + 5
    while "certificate verify failed" not in mtls.log_text():
        assert time.monotonic() < deadline, mtls.log_tail()
        time.sleep(0.05)


def test_the_server_ca_is_not_trusted_for_clients(make_daemon, pki, tmp_path):
    """Only client_ca counts: a certificate from the CA that signed the
    server's own certificate (or any CA in the system store) is refused."""
    d = make_daemon(tls=tls_settings(pki, client_ca=pki.path("client-ca.pem")))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", "c.key", cwd=tmp_path)
    openssl("req", "-new", "-key", "c.key", "-out", "c.csr", "-subj", "/CN=c", cwd=tmp_path)
    openssl("x509", "-req", "-in", "c.csr", "-CA", pki.path("server-ca.pem"),
            "-CAkey", pki.path("server-ca.key"), "-CAcreateserial", "-out", "c.pem", "-days", "2",
            cwd=tmp_path)
    ctx = client_context(pki)
    ctx.load_cert_chain(str(tmp_path / "c.pem"), str(tmp_path / "c.key"))
    assert _refused(d, ctx)


# ---- handshakes do not block the accept loop ----------------------------

def test_silent_tls_clients_do_not_stall_other_clients(make_daemon, pki):
    # A handshake may wait recv_timeout (30 s here) for a silent client:
    # if it ran in the accept loop, the request below would wait too.
    d = make_daemon(server={"threads": "4", "recv_timeout": "30", "send_timeout": "30"},
                    tls=tls_settings(pki))
    silent = [socket.create_connection(("127.0.0.1", d.port), timeout=5) for _ in range(2)]
    try:
        time.sleep(0.3)
        ctx = client_context(pki)
        for _ in range(3):
            t = time.monotonic()
            status, _, _ = https(d.port, ctx, path="/apubi?wsdl", method="GET")
            assert status == 200
            assert time.monotonic() - t < 3, "a silent client held up another one"
        # A half-open handshake: the ClientHello's first bytes, then nothing.
        partial = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        partial.sendall(b"\x16\x03\x01\x02\x00\x01")
        silent.append(partial)
        t = time.monotonic()
        status, _, _ = https(d.port, ctx, path="/apubi?wsdl", method="GET")
        assert status == 200 and time.monotonic() - t < 3
    finally:
        for s in silent:
            s.close()


def test_tls_with_authentication(make_daemon, pki, tmp_path):
    """Basic over TLS: the passwords travel encrypted, the 401 still
    challenges."""
    h = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=b"tls-pass\n",
                       capture_output=True, check=True, timeout=30).stdout.decode().strip()
    users = tmp_path / "users"
    users.write_text(f"wfm:{h}\n")
    users.chmod(0o600)
    d = make_daemon(tls=tls_settings(pki), auth={"users_file": str(users)})
    ctx = client_context(pki)
    reply = https(d.port, ctx, envelope("GetTaskStatus", [("TaskId", "x")]), soap_headers())
    assert_fault(reply, "Client", 401)
    import base64
    auth = "Basic " + base64.b64encode(b"wfm:tls-pass").decode()
    status, _, _ = https(d.port, ctx, path="/apubi?wsdl", method="GET",
                         headers={"Authorization": auth})
    assert status == 200
    assert "Basic without [tls]" not in d.log_text()
