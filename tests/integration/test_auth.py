"""Authentication: [auth] users_file (Basic), digest_file (Digest), realm,
methods.

With [auth] set, every request - SOAP POSTs and GET ?wsdl / ?xsd alike -
needs valid credentials; anything else is a 401 carrying WWW-Authenticate
challenges (Digest SHA-256 and/or Basic, realm "apubid") and one and the
same fault, whether the user exists or not. The log names the user and the
peer, never a password. Clients: raw http.client, curl (--basic,
--digest), python-requests and zeep.
"""
import base64
import ctypes
import hashlib
import statistics
import subprocess
import time

import pytest
import requests
import zeep
from requests.auth import HTTPBasicAuth, HTTPDigestAuth
from zeep.transports import Transport

from conftest import APUBID, assert_fault, envelope, parse_response, soap_headers

ALICE_PW = "c0rrect horse:battery"   # Basic, users_file
BOB_PW = "d1gest-only pass"          # Digest, digest_file
HTTP_TIMEOUT = 15


def crypt_sha512(password):
    p = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode() + b"\n",
                       capture_output=True, check=True, timeout=30)
    return p.stdout.decode().strip()


def crypt_yescrypt(password):
    """yescrypt with libxcrypt's default cost, as `mkpasswd -m yescrypt`
    makes it (through libcrypt itself: Python's crypt module cannot make a
    yescrypt setting)."""
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = lib.crypt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    setting = lib.crypt_gensalt(b"$y$", 0, None, 0)
    assert setting, "libcrypt cannot make a yescrypt setting"
    h = lib.crypt(password.encode(), setting).decode()
    assert h.startswith("$y$"), h
    return h


def write_private(path, text, mode=0o600):
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def ha1(user, realm, password):
    return hashlib.sha256(f"{user}:{realm}:{password}".encode()).hexdigest()


@pytest.fixture(scope="module")
def alice_hash():
    return crypt_sha512(ALICE_PW)


@pytest.fixture
def files(tmp_path, alice_hash):
    users = write_private(tmp_path / "users", f"# Basic users\nalice:{alice_hash}\n")
    digest = write_private(tmp_path / "digest", f"bob:apubid:{ha1('bob', 'apubid', BOB_PW)}\n")
    return users, digest


@pytest.fixture
def daemon(make_daemon, files):
    users, digest = files
    return make_daemon(auth={"users_file": users, "digest_file": digest})


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def status_body(tid="00000000-0000-0000-0000-000000000000"):
    return envelope("GetTaskStatus", [("TaskId", tid)])


def soap(d, body, authorization=None, path="/apubi", method="POST"):
    h = soap_headers() if body is not None else {}
    if authorization:
        h["Authorization"] = authorization
    return d.post(body, h, path=path, method=method)


def challenges(reply):
    return reply.headers.get_all("WWW-Authenticate") or []


def load(d, authorization, name="a.ts"):
    (d.ingest / name).write_bytes(b"data " * 10)
    body = envelope("LoadAsset", [("SourceAssetUrl", f"file://{d.ingest}/{name}"),
                                  ("DestinationAsset", name)])
    r = soap(d, body, authorization)
    assert r.status == 200, r.body[:500]
    return parse_response(r.body, "LoadAsset")["TaskId"]


# ---- refusals -----------------------------------------------------------

def test_request_without_credentials_is_401_with_challenges(daemon):
    r = soap(daemon, status_body())
    f = assert_fault(r, "Client", 401)
    assert f.string == "authentication required"
    ch = challenges(r)
    assert 'Basic realm="apubid", charset="UTF-8"' in ch, ch
    digest = [c for c in ch if c.startswith("Digest ")]
    assert len(digest) == 1, ch
    assert 'realm="apubid"' in digest[0] and "algorithm=SHA-256" in digest[0]
    assert 'qop="auth"' in digest[0] and "nonce=" in digest[0]
    assert "MD5" not in " ".join(ch)


def test_wrong_password_and_unknown_user_get_the_same_401(daemon):
    wrong = soap(daemon, status_body(), basic("alice", "not it"))
    unknown = soap(daemon, status_body(), basic("mallory", "not it"))
    for r in (wrong, unknown):
        assert_fault(r, "Client", 401)
        assert any(c.startswith("Basic ") for c in challenges(r))
    assert wrong.body == unknown.body
    log = daemon.log_text()
    assert 'authentication failed for user "alice" from 127.0.0.1:' in log
    assert 'authentication failed for user "mallory" from 127.0.0.1:' in log
    assert "wrong password" in log and "unknown user" in log


def test_wsdl_and_xsd_need_credentials_too(daemon):
    for path in ("/apubi?wsdl", "/apubi?xsd", "/elsewhere"):
        r = soap(daemon, None, path=path, method="GET")
        assert r.status == 401, (path, r.status)
        assert challenges(r)
    for path in ("/apubi?wsdl", "/apubi?xsd"):
        r = soap(daemon, None, basic("alice", ALICE_PW), path=path, method="GET")
        assert r.status == 200, (path, r.body[:300])


def test_empty_post_without_credentials_gets_401_not_a_fault_about_the_body(daemon):
    # What curl --digest sends first: the POST, without its body.
    r = daemon.post(b"", {"Content-Type": "text/xml; charset=utf-8"})
    assert r.status == 401
    assert challenges(r)


def test_other_schemes_are_refused(daemon):
    for auth in ("Bearer abc.def", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(),
                 'Digest username="bob", realm="apubid"'):
        assert soap(daemon, status_body(), auth).status == 401, auth


# ---- Basic --------------------------------------------------------------

def test_right_password_with_basic_publishes(daemon):
    auth = basic("alice", ALICE_PW)
    tid = load(daemon, auth)
    deadline = time.monotonic() + 30
    while True:
        r = soap(daemon, status_body(tid), auth)
        assert r.status == 200, r.body[:500]
        st = parse_response(r.body, "GetTaskStatus")["Status"]
        if st != "IN_PROGRESS":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert st == "SUCCESS"
    assert (daemon.cdn / "a.ts").exists()


def test_log_names_the_user_and_never_the_password(daemon):
    soap(daemon, status_body(), basic("alice", ALICE_PW))
    soap(daemon, status_body(), basic("alice", "Zz-typo-" + ALICE_PW))
    subprocess.run(["curl", "-s", "-o", "/dev/null", "--digest", "-u", f"bob:{BOB_PW}",
                    "-H", "Content-Type: text/xml", "--data-binary", "@-",
                    f"http://127.0.0.1:{daemon.port}/apubi"],
                   input=status_body(), timeout=HTTP_TIMEOUT, check=True)
    daemon.stop()
    log = daemon.log_text()
    assert 'user="alice"' in log
    assert 'user="bob"' in log
    assert 'authentication failed for user "alice"' in log
    for secret in (ALICE_PW, "Zz-typo-", BOB_PW, "horse", base64.b64encode(ALICE_PW.encode()).decode(),
                   basic("alice", ALICE_PW)[6:], ha1("bob", "apubid", BOB_PW)):
        assert secret not in log, secret


def test_curl_basic(daemon):
    url = f"http://127.0.0.1:{daemon.port}/apubi?wsdl"
    ok = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                         "-u", f"alice:{ALICE_PW}", url], capture_output=True, timeout=HTTP_TIMEOUT)
    bad = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                          "-u", "alice:nope", url], capture_output=True, timeout=HTTP_TIMEOUT)
    assert (ok.stdout, bad.stdout) == (b"200", b"401")


TIMING_TRIES = 21


def test_an_unknown_user_is_refused_as_slowly_as_a_wrong_password(make_daemon, tmp_path,
                                                                   alice_hash):
    """A users file mixing the README's two recipes: SHA-512 (a few ms a
    hash) and yescrypt (tens of ms). However long a wrong password takes
    for one user or the other, an unknown user takes as long, so the time
    of a 401 does not tell which users exist."""
    users = write_private(tmp_path / "users",
                          f"alice:{alice_hash}\ncarol:{crypt_yescrypt('carol pass')}\n")
    d = make_daemon(auth={"users_file": users})
    cases = {"unknown user": basic("mallory", "guess"),
             "wrong password, SHA-512 user": basic("alice", "guess"),
             "wrong password, yescrypt user": basic("carol", "guess")}
    times = {case: [] for case in cases}
    for _ in range(TIMING_TRIES):
        # Round-robin, so a burst of load on the machine hits every case.
        for case, auth in cases.items():
            t = time.perf_counter()
            r = soap(d, status_body(), auth)
            times[case].append(time.perf_counter() - t)
            assert r.status == 401, (case, r.status)
    medians = {case: statistics.median(t) * 1000 for case, t in times.items()}
    shown = ", ".join(f"{case}: {ms:.1f} ms" for case, ms in medians.items())
    print(f"median time of a refusal: {shown}")
    for a in medians.values():
        for b in medians.values():
            assert 0.5 <= a / b <= 2, shown
    # and the right passwords still work
    for user, pw in (("alice", ALICE_PW), ("carol", "carol pass")):
        assert soap(d, status_body(), basic(user, pw)).status == 500  # unknown TaskId


# ---- Digest -------------------------------------------------------------

def curl_digest(d, password, body):
    p = subprocess.run(["curl", "-sS", "--digest", "-u", f"bob:{password}",
                        "-H", "Content-Type: text/xml; charset=utf-8", "--data-binary", "@-",
                        "-w", "\n%{http_code}", f"http://127.0.0.1:{d.port}/apubi"],
                       input=body, capture_output=True, timeout=HTTP_TIMEOUT)
    assert p.returncode == 0, p.stderr
    data, _, code = p.stdout.rpartition(b"\n")
    return int(code), data


def test_curl_digest_works(daemon):
    (daemon.ingest / "d.ts").write_bytes(b"digest")
    body = envelope("LoadAsset", [("SourceAssetUrl", f"file://{daemon.ingest}/d.ts"),
                                  ("DestinationAsset", "d.ts")])
    code, data = curl_digest(daemon, BOB_PW, body)
    assert code == 200, data[:500]
    tid = parse_response(data, "LoadAsset")["TaskId"]
    code, data = curl_digest(daemon, BOB_PW, status_body(tid))
    assert code == 200, data[:500]
    code, _ = curl_digest(daemon, "wrong", status_body(tid))
    assert code == 401
    # Digest credentials are no good for Basic, and the reverse.
    assert soap(daemon, status_body(tid), basic("bob", BOB_PW)).status == 401
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--digest",
                        "-u", f"alice:{ALICE_PW}", f"http://127.0.0.1:{daemon.port}/apubi?wsdl"],
                       capture_output=True, timeout=HTTP_TIMEOUT)
    assert p.stdout == b"401"


def test_requests_digest_with_keep_alive_and_a_replay(daemon):
    s = requests.Session()
    s.auth = HTTPDigestAuth("bob", BOB_PW)
    url = f"http://127.0.0.1:{daemon.port}/apubi"
    for _ in range(5):
        r = s.get(url + "?wsdl", timeout=HTTP_TIMEOUT)
        assert r.status_code == 200
    sent = r.request.headers["Authorization"]
    assert sent.startswith("Digest ") and "SHA-256" in sent, sent
    # The same Authorization again (same nonce count) is a replay.
    replay = requests.get(url + "?wsdl", headers={"Authorization": sent}, timeout=HTTP_TIMEOUT)
    assert replay.status_code == 401
    assert "replayed nonce count" in daemon.log_text()


def test_digest_only(make_daemon, files):
    _, digest = files
    d = make_daemon(auth={"digest_file": digest})
    r = soap(d, status_body())
    assert r.status == 401
    ch = challenges(r)
    assert len(ch) == 1 and ch[0].startswith("Digest "), ch
    code, _ = curl_digest(d, BOB_PW, status_body())
    assert code == 500  # through to the operation: unknown TaskId


# ---- zeep ---------------------------------------------------------------

def test_zeep_with_http_basic_auth(daemon):
    session = requests.Session()
    session.auth = HTTPBasicAuth("alice", ALICE_PW)
    client = zeep.Client(f"{daemon.url}?wsdl",
                         transport=Transport(session=session, timeout=10, operation_timeout=15))
    (daemon.ingest / "z.ts").write_bytes(b"zeep")
    r = client.service.LoadAsset(SourceAssetUrl=f"file://{daemon.ingest}/z.ts",
                                 DestinationAsset="z.ts")
    tid = getattr(r, "TaskId", r)
    deadline = time.monotonic() + 30
    while True:
        st = client.service.GetTaskStatus(TaskId=tid)
        if st.Status != "IN_PROGRESS":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert st.Status == "SUCCESS"
    assert (daemon.cdn / "z.ts").read_bytes() == b"zeep"


def test_zeep_without_credentials_cannot_even_read_the_wsdl(daemon):
    with pytest.raises(requests.HTTPError) as e:
        zeep.Client(f"{daemon.url}?wsdl", transport=Transport(timeout=10))
    assert e.value.response.status_code == 401


# ---- configuration ------------------------------------------------------

def check_config(d):
    p = subprocess.run([APUBID, "-n", "-f", str(d.conf)], cwd=d.tmp, capture_output=True,
                       timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode()


def test_users_file_readable_by_others_is_refused(make_daemon, tmp_path, alice_hash):
    users = write_private(tmp_path / "open-users", f"alice:{alice_hash}\n", mode=0o644)
    d = make_daemon(start=False, auth={"users_file": users})
    rc, out = check_config(d)
    assert rc == 1
    assert "open to other users (mode 644)" in out, out


def test_weak_hash_is_refused_without_showing_it(make_daemon, tmp_path):
    users = write_private(tmp_path / "users", "alice:$1$saltsalt$qjXMvbEw8oaL.CzflDugX/\n")
    d = make_daemon(start=False, auth={"users_file": users})
    rc, out = check_config(d)
    assert rc == 1
    assert "line 1: user 'alice'" in out and "MD5" in out, out
    assert "qjXMvbEw8" not in out
