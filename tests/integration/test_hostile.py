"""Hostile input catalogue: what apubid does with requests built to hurt it.

Each case reads like a spec in its id. One daemon (module scope) serves
almost every case, so a case that damages the serving threads shows up in
the cases after it too; after every case the catalogue checks that

* the answer is the expected one: the fault (faultcode, HTTP status,
  detail/ExceptionWS/message equal to the faultstring) or, where apubid
  takes a value literally, the asset published exactly where the value
  says, inside the destination root;
* the daemon process is alive and serves the next request (GetTaskStatus
  of an unknown id answers the 500 "Task Id does not exist" fault);
* nothing changed outside the configured roots: the whole temporary tree
  (a sentinel tree `outside/` with a fake `etc/passwd`, the ingest area,
  the daemon's own directory) is compared before and after, file contents
  included; and the cdn root holds no entry but the ones the case expects.

Cases that leave a connection stalled (the test_stalled_* and
test_pipelined_* tests at the end) run on a daemon of their own with a
single serving thread, so that what a stall does to a thread is seen by the
case that caused it and by no other. recv_timeout is 2 s everywhere.

Destinations that would leave the root never name a real system file:
tests run as root, and a regression must hurt the sentinel tree, not
/etc. Sources may name /etc/passwd: reading it is harmless and a leak
would show up in cdn/.

Where the daemon behaves wrongly today the case asserts the right
behaviour and carries `xfail(strict=True)` with a "FINDING" reason; the
marker is to be removed once the daemon is fixed (the strict xfail then
fails, as a reminder). Hostile cases that already exist elsewhere are not
repeated: test_faults.py covers the missing/empty/blank values,
unparseable source URLs (%zz, port 99999, "file:///x%00y"), gopher://,
sources outside the prefix (/etc/passwd, "..", siblings), destinations
"../x", "a/../../x", "/etc/x", "file:///etc/", purges of the root and of
"../x", garbage/JSON/empty/<foo/> bodies, a truncated envelope (-30 bytes),
2 MB bodies (plain and chunked), GET/PUT, unknown paths, a symbolic link
in cdn/ (file load and purge through it) and a stall in the headers.
"""
import gzip
import hashlib
import http.client
import os
import shutil
import socket
import stat
import threading
import time
import zlib
from collections import namedtuple
from io import BytesIO
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import (NS, SOAP11, SOAP12, TASKID_RE, Daemon, Raw, Reply, assert_fault,
                      envelope, parse_fault, parse_response, soap_headers)

UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"
PAYLOAD = b"hostile-catalogue payload\n"
SECRET = b"sentinel secret: must never be read, moved or overwritten\n"
PASSWD = b"root:x:0:0:sentinel:/root:/bin/sh\n"
ANSWER_WITHIN = 5.0     # seconds any ordinary hostile request may take
RECV_TIMEOUT = 2        # the daemons' recv_timeout

FINDINGS = {
    "markup": "FINDING markup-in-value: element content inside DestinationAsset "
              "('q<a><b>c</b></a>.ts') is taken as literal text, markup included; the "
              "load is accepted and publishes cdn/'q<a><b>c<'/'b><'/'a>.ts'",
    "dup": "FINDING duplicates-ignored: the schema allows one of each element and one "
           "operation, but a second DestinationAsset/SourceAssetUrl/TaskId, a second "
           "operation in the Body, and an operation after an empty <Body/> are silently "
           "ignored or served (first one wins): a parser-differential hazard; expected "
           "a Client fault",
    "quadratic": "FINDING quadratic-attributes: the engine's attribute and namespace "
                 "handling is quadratic: ~40k attributes (or ~30k xmlns declarations) "
                 "in a request under max_request_size keep a serving thread busy for "
                 "several seconds (50k attributes: ~12 s), beyond request_timeout's "
                 "reach since the body has fully arrived",
}


def finding(key):
    return pytest.mark.xfail(strict=True, reason=FINDINGS[key])


# ---- raw HTTP ------------------------------------------------------------

Exchange = namedtuple("Exchange", "replies closed elapsed raw")


def _parse_replies(buf):
    """Every complete response in buf (100 Continue skipped)."""
    out = []
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return out
        head, rest = buf[:end], buf[end + 4:]
        line, _, hdrs = head.partition(b"\r\n")
        try:
            status = int(line.split()[1])
        except (IndexError, ValueError):
            return out
        headers = http.client.parse_headers(BytesIO(hdrs + b"\r\n\r\n"))
        if status == 100:
            buf = rest
            continue
        if headers.get("Transfer-Encoding", "").lower() == "chunked":
            body, pos = b"", 0
            while True:
                nl = rest.find(b"\r\n", pos)
                if nl < 0:
                    return out
                size = int(rest[pos:nl].split(b";")[0], 16)
                if len(rest) < nl + 2 + size + 2:
                    return out
                body += rest[nl + 2:nl + 2 + size]
                pos = nl + 2 + size + 2
                if size == 0:
                    break
            buf = rest[pos:]
        else:
            n = int(headers.get("Content-Length", "0"))
            if len(rest) < n:
                return out
            body, buf = rest[:n], rest[n:]
        out.append(Reply(status, headers, body))


def exchange(port, data, want=1, timeout=ANSWER_WITHIN):
    """Writes `data` in one go on a fresh connection and reads until `want`
    responses are complete, the server closes, or `timeout` passes."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    buf, closed = b"", False
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while len(_parse_replies(buf)) < want:
            left = t0 + timeout - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except (TimeoutError, socket.timeout):
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
        if not closed and len(_parse_replies(buf)) >= want:
            # Does the server close (as it must after a fault)?
            s.settimeout(0.5)
            try:
                closed = s.recv(1) == b""
            except (TimeoutError, socket.timeout):
                pass
            except ConnectionResetError:
                closed = True
    finally:
        s.close()
    return Exchange(_parse_replies(buf), closed, time.monotonic() - t0, buf)


def http_request(body, extra="", length=True, path="/apubi", method="POST", version=11):
    ctype = "application/soap+xml; charset=utf-8" if version == 12 else "text/xml; charset=utf-8"
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            f"SOAPAction: \"\"\r\n{extra}")
    if length is True:
        head += f"Content-Length: {len(body)}\r\n"
    elif length is not None:
        head += f"Content-Length: {length}\r\n"
    return (head + "\r\n").encode() + body


def one_reply(ex):
    assert ex.replies, (f"no HTTP answer after {ex.elapsed:.1f}s "
                        f"({'connection closed' if ex.closed else 'still open'}): {ex.raw[:300]!r}")
    return ex.replies[0]


# ---- envelopes -------------------------------------------------------------

def soap_env(inner, version=11, header="", prolog=""):
    env = SOAP11 if version == 11 else SOAP12
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n{prolog}'
            f'<soap:Envelope xmlns:soap="{env}">{header}<soap:Body>{inner}</soap:Body>'
            f'</soap:Envelope>').encode("utf-8")


def gts(task_id, version=11):
    """GetTaskStatus; task_id is inserted verbatim (a Raw XML fragment)."""
    return envelope("GetTaskStatus", [("TaskId", Raw(task_id))], version)


def load_env(src, dst, version=11):
    return envelope("LoadAsset", [("SourceAssetUrl", src), ("DestinationAsset", dst)], version)


def purge_env(dst):
    return envelope("PurgeAsset", [("DestinationAsset", dst)])


def with_bytes(body, marker, raw):
    assert marker.encode() in body
    return body.replace(marker.encode(), raw)


def with_doctype(body, subset):
    return body.replace(b"<soap:Envelope", f"<!DOCTYPE soap:Envelope [{subset}]>".encode()
                        + b"<soap:Envelope", 1)


LOL = ('<!ENTITY lol "lol">'
       + "".join(f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">'
                 for i in range(1, 10)))


# ---- the world: one daemon, a sentinel tree, snapshots ----------------------

DAEMON_FILES = {b"apubid.db", b"apubid.db-wal", b"apubid.db-shm", b"apubid.db-journal",
                b"apubid.log"}


def tree(root, skip_dir=None):
    """{relative path (str, surrogateescape): (kind, detail)} for everything
    under root, links not followed; file contents hashed."""
    root = os.fsencode(str(root))
    skip = os.fsencode(str(skip_dir)) if skip_dir else None
    out = {}
    for dirpath, dirs, files in os.walk(root):
        if skip is not None:
            dirs[:] = [x for x in dirs if os.path.join(dirpath, x) != skip]
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            if dirpath.endswith(b"/srv/apubid") and name in DAEMON_FILES:
                continue
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                info = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                info = ("dir",)
            else:
                with open(p, "rb") as f:
                    info = ("file", hashlib.sha256(f.read()).hexdigest())
            out[os.fsdecode(os.path.relpath(p, root))] = info
    return out


def prefixes(rel):
    """'a/b/c' -> {'a', 'a/b', 'a/b/c'}."""
    parts = [p for p in rel.split("/") if p]
    return {"/".join(parts[:i + 1]) for i in range(len(parts))}


class Listener:
    """A TCP port that counts the connections made to it (an XXE fetch or
    a source URL trick that reached the wrong host would connect here)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self.count += 1
            c.close()

    def close(self):
        self.stop = True
        self.thread.join(timeout=2)
        self.sock.close()


class World:
    def __init__(self, base):
        self.base = Path(base)
        self.outside = self.base / "outside"
        (self.outside / "etc").mkdir(parents=True)
        (self.outside / "etc" / "passwd").write_bytes(PASSWD)
        (self.outside / "secret.ts").write_bytes(SECRET)
        (self.outside / "pkg").mkdir()
        (self.outside / "pkg" / "index.m3u8").write_bytes(SECRET)
        self.listener = Listener()
        dtmp = self.base / "srv" / "apubid"
        self.d = Daemon(dtmp, {
            "server": {"recv_timeout": str(RECV_TIMEOUT), "request_timeout": "30"},
            "source": {"allow": [f"file://{dtmp}/ingest/", "ftp://127.0.0.1:1/repository/"]},
            "transfer": {"retries": "1", "connect_timeout": "2"},
        })
        self.I, self.C, self.O = str(self.d.ingest), str(self.d.cdn), str(self.outside)
        (self.d.ingest / "a.ts").write_bytes(PAYLOAD)
        (self.d.ingest / "pkg").mkdir()
        (self.d.ingest / "pkg" / "index.m3u8").write_bytes(PAYLOAD)
        (self.d.ingest / "pkg" / "seg1.ts").write_bytes(PAYLOAD)
        (self.d.ingest / "leak.ts").symlink_to(self.outside / "secret.ts")
        (self.d.ingest / "leakdir").symlink_to(self.outside)
        (self.d.cdn / "link").symlink_to(self.outside)
        self.src = f"file://{self.I}/a.ts"
        self.d.start()
        self.known_id = self.d.load(self.src, "known.ts")
        st, _ = self.d.wait_for_status(self.known_id)
        assert st == "SUCCESS", self.d.log_tail()
        self.baseline = tree(self.d.cdn)

    def post(self, body, version=11):
        return self.d.post(body, soap_headers(version))

    def outside_tree(self):
        return tree(self.base, skip_dir=self.d.cdn)

    def cdn_tree(self):
        return tree(self.d.cdn)

    def settle(self, reply):
        """Lets a task a reply started finish, so cleanup does not race it."""
        try:
            if reply is not None and reply.status == 200:
                for op in ("LoadAsset", "PurgeAsset"):
                    if f"{op}Response".encode() in reply.body:
                        tid = parse_response(reply.body, op).get("TaskId")
                        if tid:
                            self.d.wait_for_status(tid, timeout=20)
        except Exception:
            pass
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if not any(k.rsplit("/", 1)[-1].startswith(".") for k in self.cdn_tree()):
                break
            time.sleep(0.05)

    def restore(self):
        """Puts cdn/ back to its baseline: link -> outside, known.ts."""
        cdn = os.fsencode(self.C)
        keep = {b"link", b"known.ts"}
        for name in os.listdir(cdn):
            p = os.path.join(cdn, name)
            if name in keep and name == b"link" and os.path.islink(p):
                continue
            if name == b"known.ts" and os.path.isfile(p) and not os.path.islink(p):
                continue
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
        if not os.path.islink(os.path.join(cdn, b"link")):
            (self.d.cdn / "link").symlink_to(self.outside)
        if not (self.d.cdn / "known.ts").exists():
            (self.d.cdn / "known.ts").write_bytes(PAYLOAD)

    def close(self):
        self.listener.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("hostile"))
    yield w
    w.close()
    rc = w.d.stop()
    assert rc == 0, f"apubid exited {rc} on SIGTERM\n{w.d.log_tail()}"


@pytest.fixture
def hostile(world, request):
    request.node._apubid_daemons = [world.d]   # conftest attaches the log on failure
    return world


# ---- expectations --------------------------------------------------------------

Changes = namedtuple("Changes", "appear vanish", defaults=(frozenset(), frozenset()))
NO_CHANGE = Changes()


def _check_string(f, has, equals):
    if has is not None:
        for h in (has if isinstance(has, (list, tuple)) else [has]):
            assert h in f.string, f"faultstring {f.string!r} lacks {h!r}"
    if equals is not None:
        assert f.string == equals, f"faultstring {f.string!r}, expected {equals!r}"


def fault(code="Client", status=500, version=11, has=None, equals=None):
    def check(w, reply):
        _check_string(assert_fault(reply, code, status, version), has, equals)
        return NO_CHANGE
    return check


def not_found_task(version=11):
    """The request got through to GetTaskStatus and asked for an id that
    does not exist: what a harmless oddity must look like."""
    return fault("Server" if version == 11 else "Receiver", 500, version,
                 equals="Task Id does not exist")


def client_fault_4xx(statuses=range(400, 500), has=None):
    """An HTTP-level refusal: a 4xx with a SOAP 1.1 Client fault body."""
    def check(w, reply):
        status, headers, body = reply
        assert status in statuses, f"HTTP {status}, expected one of {list(statuses)}: {body[:400]!r}"
        f = parse_fault(body)
        assert f.code in ("Client", "Sender"), f
        assert f.string and f.message == f.string, f
        _check_string(f, has, None)
        return NO_CHANGE
    return check


def _task(reply):
    status, _, body = reply
    assert status == 200, f"HTTP {status}: {body[:600]!r}"
    op = "LoadAsset" if b"LoadAssetResponse" in body else "PurgeAsset"
    tid = parse_response(body, op).get("TaskId")
    assert tid and TASKID_RE.match(tid), f"bad TaskId in {body[:400]!r}"
    return tid


def lands(rel, content=PAYLOAD):
    """Accepted, and the asset is published exactly at cdn/<rel>, the value
    taken literally; GetTaskStatus answers the root URL + rel, encoded."""
    def check(w, reply):
        tid = _task(reply)
        st, dest = w.d.wait_for_status(tid, timeout=15)
        assert st == "SUCCESS", f"task ended {st}"
        p = os.path.join(os.fsencode(w.C), os.fsencode(rel))
        assert os.path.isfile(p) and not os.path.islink(p), f"nothing published at cdn/{rel!r}"
        with open(p, "rb") as f:
            assert f.read() == content
        want = w.d.root_url + quote(os.fsencode(rel), safe="/-._~")
        assert dest == want, f"DestinationAsset {dest!r}, expected {want!r}"
        return Changes(frozenset(prefixes(rel)))
    return check


def refused_or_lands(rel, has=None):
    """Undecided by the contract and harmless either way: a Client fault,
    or the value taken literally as a name inside the root."""
    def check(w, reply):
        if reply.status == 200:
            return lands(rel)(w, reply)
        return fault(has=has)(w, reply)
    return check


def refused_or_fails(has=None, vanish=frozenset()):
    """A Client fault at submission, or a task that ends FAILED; either
    way nothing is written anywhere (the snapshots check that)."""
    def check(w, reply):
        if reply.status != 200:
            return fault(has=has)(w, reply)
        tid = _task(reply)
        st, _ = w.d.wait_for_status(tid, timeout=15)
        assert st == "FAILED", f"task through a hostile value ended {st}\n{w.d.log_tail(20)}"
        return Changes(vanish=frozenset(vanish))
    return check


def purge_harmless(may_vanish=frozenset()):
    """A purge of something that leads out of the root: refused, FAILED,
    or SUCCESS having removed at most the link itself, never its target."""
    def check(w, reply):
        if reply.status != 200:
            return fault()(w, reply)
        tid = _task(reply)
        st, _ = w.d.wait_for_status(tid, timeout=15)
        assert st in ("SUCCESS", "FAILED"), st
        return Changes(vanish=frozenset(may_vanish))
    return check


def nothing_fetched(inner):
    """`inner`, and no connection reached the listener (the XXE target or
    the host a URL trick would wrongly contact)."""
    def check(w, reply):
        changes = inner(w, reply)
        time.sleep(0.3)
        assert w.listener.count == 0, f"{w.listener.count} connection(s) to the listener"
        return changes
    return check


def not_leaking(inner, *needles):
    def check(w, reply):
        for n in needles:
            assert n not in reply.body, f"answer contains {n!r}: {reply.body[:600]!r}"
        return inner(w, reply)
    return check


# ---- the catalogue -------------------------------------------------------------

Case = namedtuple("Case", "id send expect setup", defaults=(None,))
CASES = []


def case(id, send, expect, setup=None, marks=()):
    CASES.append(pytest.param(Case(id, send, expect, setup), id=id, marks=marks))


def L(src, dst, version=11):
    """A LoadAsset sender; src/dst may be callables of the world."""
    return lambda w: w.post(load_env(src(w) if callable(src) else src,
                                     dst(w) if callable(dst) else dst, version), version)


def P(dst):
    return lambda w: w.post(purge_env(dst(w) if callable(dst) else dst))


def SRC(w):
    return w.src


def B(body, version=11):
    """Sends fixed bytes (or bytes built from the world) as a SOAP request."""
    return lambda w: w.post(body(w) if callable(body) else body, version)


# -- entities, DTDs -------------------------------------------------------------

case("billion_laughs_entities_in_task_id_are_not_expanded",
     B(with_doctype(gts("&lol9;"), LOL)), not_found_task())
case("billion_laughs_entities_in_source_url_are_not_expanded",
     B(lambda w: with_doctype(load_env(Raw("&lol9;"), "x.ts"), LOL)),
     not_leaking(fault(has="source must be an absolute URL"), b"lollol"))
case("external_entity_file_etc_passwd_is_not_read",
     B(lambda w: with_doctype(load_env(Raw("&xxe;"), "x.ts"),
                              '<!ENTITY xxe SYSTEM "file:///etc/passwd">')),
     not_leaking(fault(has="source must be an absolute URL"), b"root:"))
case("external_entity_file_in_destination_is_not_read",
     B(lambda w: with_doctype(load_env(w.src, Raw("&xxe;")),
                              f'<!ENTITY xxe SYSTEM "file://{w.O}/etc/passwd">')),
     not_leaking(fault(has="control character"), b"sentinel"))
case("external_entity_http_127_0_0_1_port_1_is_not_fetched",
     B(with_doctype(gts("&xxe;"), '<!ENTITY xxe SYSTEM "http://127.0.0.1:1/">')),
     not_found_task())
case("external_entity_http_to_a_listening_port_is_never_fetched",
     B(lambda w: with_doctype(gts("&xxe;"),
                              f'<!ENTITY xxe SYSTEM "http://127.0.0.1:{w.listener.port}/x">')),
     nothing_fetched(not_found_task()))
case("external_parameter_entity_dtd_is_never_fetched",
     B(lambda w: with_doctype(gts("&e;"), f'<!ENTITY % pe SYSTEM "http://127.0.0.1:'
                                          f'{w.listener.port}/x.dtd"> %pe; <!ENTITY e "a">')),
     nothing_fetched(not_found_task()))
case("doctype_with_internal_subset_is_ignored",
     B(with_doctype(gts("x"), '<!ELEMENT x ANY><!ATTLIST x y CDATA "z"><!NOTATION n SYSTEM "n">')),
     not_found_task())
case("undefined_entity_in_destination_is_a_control_character",
     L(SRC, Raw("&undefined;.ts")), fault(has="control character"))

# -- depth and size ---------------------------------------------------------------

case("deep_nesting_10k_inside_body_has_no_operation",
     B(soap_env("<a>" * 10000 + "</a>" * 10000)),
     fault("Client", 400, has="holds no APUBI operation"))
case("deep_nesting_10k_inside_operation_element_is_skipped",
     B(soap_env(f'<GetTaskStatus xmlns="{NS}">' + "<a>" * 10000 + "</a>" * 10000
                + "<TaskId>x</TaskId></GetTaskStatus>")), not_found_task())
case("deep_nesting_10k_inside_header_is_skipped",
     B(soap_env(f'<GetTaskStatus xmlns="{NS}"><TaskId>x</TaskId></GetTaskStatus>',
                header="<soap:Header>" + "<a>" * 10000 + "</a>" * 10000 + "</soap:Header>")),
     not_found_task())
case("deep_nesting_10k_inside_destination_asset_is_not_a_path",
     L(SRC, Raw("<a>" * 10000 + "</a>" * 10000)), fault(), marks=finding("markup"))
case("markup_inside_destination_asset_is_refused",
     L(SRC, Raw("q<a><b>c</b></a>.ts")), fault(), marks=finding("markup"))
case("huge_900k_task_id_is_a_length_violation",
     B(gts("A" * 900_000)),
     fault(equals="Validation constraint violation: value range or content length "
                  "violation in element 'TaskId'"))
case("huge_900k_destination_asset_is_a_length_violation",
     L(SRC, "d" * 900_000),
     fault(equals="Validation constraint violation: value range or content length "
                  "violation in element 'DestinationAsset'"))
case("huge_900k_source_asset_url_is_a_length_violation",
     L("file:///" + "s" * 900_000, "x.ts"),
     fault(equals="Validation constraint violation: value range or content length "
                  "violation in element 'SourceAssetUrl'"))
case("huge_900k_comment_before_body_is_skipped",
     B(soap_env(f'<GetTaskStatus xmlns="{NS}"><TaskId>x</TaskId></GetTaskStatus>',
                header="<!--" + "c" * 900_000 + "-->")), not_found_task())
case("huge_900k_attribute_value_is_ignored",
     B(gts("x").replace(b"<GetTaskStatus ", b'<GetTaskStatus junk="' + b"v" * 900_000 + b'" ')),
     not_found_task())
case("hundred_thousand_unknown_siblings_are_skipped",
     B(gts("x").replace(b"<TaskId>", b"<Unknown/>" * 100_000 + b"<TaskId>")),
     not_found_task())

# -- characters ---------------------------------------------------------------------

case("invalid_utf8_bytes_in_task_id_are_refused",
     B(with_bytes(gts("@@X@@"), "@@X@@", b"\xff\xfe\xc0")),
     fault("Client", 400, has="not valid UTF-8"))
case("invalid_utf8_bytes_in_destination_asset_are_refused",
     B(lambda w: with_bytes(load_env(w.src, "@@X@@"), "@@X@@", b"\xff\xfe.ts")),
     fault("Client", 400, has="not valid UTF-8"))
case("overlong_utf8_dots_raw_in_destination_are_refused",
     B(lambda w: with_bytes(load_env(w.src, "@@X@@"), "@@X@@", b"\xc0\xae\xc0\xae/x.ts")),
     fault("Client", 400, has="not valid UTF-8"))
case("surrogate_char_ref_in_destination_is_refused",
     L(SRC, Raw("x&#xD800;y.ts")), fault("Client", 400, has="surrogate"))
case("char_ref_beyond_unicode_in_destination_is_refused",
     L(SRC, Raw("x&#1114112;y.ts")), fault("Client", 400, has="beyond Unicode"))
case("nul_char_ref_decimal_in_destination_is_refused",
     L(SRC, Raw("x&#0;y.ts")), fault("Client", 400, has="NUL"))
case("nul_char_ref_hex_in_destination_is_refused",
     L(SRC, Raw("x&#x0;y.ts")), fault("Client", 400, has="NUL"))
case("nul_char_ref_in_source_url_is_refused",
     L(lambda w: Raw(w.src + "&#0;.evil"), "nul.ts"), fault("Client", 400, has="NUL"))
case("nul_char_ref_in_purge_destination_is_refused",
     P(Raw("known.ts&#0;/../../x")), fault("Client", 400, has="NUL"))
case("nul_char_ref_in_task_id_is_refused",
     B(gts("known&#0;-suffix")), fault("Client", 400, has="NUL"))
case("control_char_ref_1_in_destination_is_refused",
     L(SRC, Raw("x&#1;y.ts")), fault("Client", 400, has="control character"))
case("control_char_ref_escape_1b_in_destination_is_refused",
     L(SRC, Raw("x&#x1b;[31my.ts")), fault("Client", 400, has="control character"))
case("control_char_ref_del_7f_in_destination_is_refused",
     L(SRC, Raw("x&#127;y.ts")), fault(has="control character"))
case("tab_char_ref_inside_destination_is_refused",
     L(SRC, Raw("a&#9;b.ts")), fault(has="control character"))
case("crlf_char_refs_inside_destination_are_refused",
     L(SRC, Raw("x&#13;&#10;y.ts")), fault(has="control character"))
case("raw_crlf_inside_destination_is_refused",
     L(SRC, Raw("x\r\ny.ts")), fault(has="control character"))
case("crlf_char_refs_inside_purge_destination_are_refused",
     P(Raw("known.ts&#13;&#10;../x")), fault(has="control character"))
case("crlf_char_refs_inside_source_url_are_refused",
     L(lambda w: Raw(w.src + "&#13;&#10;x"), "x.ts"), fault())
case("raw_crlf_inside_source_url_is_refused",
     L(lambda w: Raw(w.src + "\r\nx"), "x.ts"), fault())
case("control_char_ref_1_at_the_end_of_source_url_is_refused",
     L(lambda w: Raw(w.src + "&#1;"), "x.ts"), fault("Client", 400, has="control character"))
case("control_char_ref_escape_at_the_end_of_source_url_is_refused",
     L(lambda w: Raw(w.src + "&#x1b;"), "x.ts"),
     fault("Client", 400, has="control character"))
case("control_char_ref_1_inside_source_url_is_refused",
     L(lambda w: Raw(f"file://{w.I}/a&#1;.ts"), "x.ts"),
     fault("Client", 400, has="control character"))
case("percent_encoded_crlf_in_destination_url_is_refused",
     L(SRC, "ftp://CDN:21/data/cdn/x%0d%0ay.ts"), fault(has="control character"))
case("surrogate_char_ref_in_source_url_fault_is_well_formed",
     L(Raw("file:///x&#xD800;"), "x.ts"), fault("Client", 400, has="surrogate"))
case("percent_encoded_invalid_utf8_in_source_fault_is_well_formed",
     L(lambda w: f"file://{w.I}/%c0%ae%c0%ae/%c0%ae%c0%ae/outside/secret.ts", "x.ts"),
     fault(has="does not exist"))

# -- SOAP structure ---------------------------------------------------------------

# A SOAP envelope whose Body holds no APUBI operation is answered 400 in
# both SOAP versions (server.c: "not an APUBI request at all"), like a body
# that is not SOAP; a malformed APUBI request keeps the SOAP 1.1 500.
NO_OP = "holds no APUBI operation"
NOT_SOAP = "not a SOAP envelope"
TRUNCATED = ("not a SOAP envelope", "holds no APUBI operation", "ends before its SOAP envelope")

case("operation_without_namespace_is_not_an_apubi_operation",
     B(soap_env("<GetTaskStatus><TaskId>x</TaskId></GetTaskStatus>")),
     fault("Client", 400, has=NO_OP))
case("operation_in_a_foreign_namespace_is_not_an_apubi_operation",
     B(soap_env('<GetTaskStatus xmlns="urn:evil"><TaskId>x</TaskId></GetTaskStatus>')),
     fault("Client", 400, has=NO_OP))
case("operation_in_the_ns2_namespace_with_slash_is_not_an_apubi_operation",
     B(soap_env('<GetTaskStatus xmlns="wfm:/APUBI/v1/schemas"><TaskId>x</TaskId></GetTaskStatus>')),
     fault("Client", 400, has=NO_OP))
case("operation_with_prefix_bound_to_a_foreign_namespace_is_not_an_apubi_operation",
     B(soap_env(f'<ns:GetTaskStatus xmlns:ns="urn:evil" xmlns="{NS}"><TaskId>x</TaskId>'
                '</ns:GetTaskStatus>')), fault("Client", 400, has=NO_OP))
case("soap12_operation_in_a_foreign_namespace_is_a_sender_fault",
     B(soap_env('<GetTaskStatus xmlns="urn:evil"><TaskId>x</TaskId></GetTaskStatus>', 12), 12),
     fault("Sender", 400, 12, has=NO_OP))
case("task_id_without_namespace_is_missing",
     B(soap_env(f'<a:GetTaskStatus xmlns:a="{NS}"><TaskId>x</TaskId></a:GetTaskStatus>')),
     fault(equals="TaskId is missing or empty"))
case("task_id_in_a_foreign_namespace_is_missing",
     B(soap_env(f'<GetTaskStatus xmlns="{NS}"><TaskId xmlns="urn:evil">x</TaskId></GetTaskStatus>')),
     fault(equals="TaskId is missing or empty"))
case("source_url_in_a_foreign_namespace_is_missing",
     B(lambda w: soap_env(f'<LoadAsset xmlns="{NS}"><SourceAssetUrl xmlns="urn:x">{w.src}'
                          '</SourceAssetUrl><DestinationAsset>w.ts</DestinationAsset></LoadAsset>')),
     fault(equals="SourceAssetUrl is missing or empty"))
case("unqualified_destination_asset_is_missing",
     B(lambda w: soap_env(f'<LoadAsset xmlns="{NS}"><SourceAssetUrl>{w.src}</SourceAssetUrl>'
                          '<DestinationAsset xmlns="">w.ts</DestinationAsset></LoadAsset>')),
     fault(equals="DestinationAsset is missing or empty"))
case("purge_destination_in_the_ns2_namespace_is_missing",
     B(soap_env(f'<PurgeAsset xmlns="{NS}"><DestinationAsset xmlns="wfm:/APUBI/v1/schemas">'
                'known.ts</DestinationAsset></PurgeAsset>')),
     fault(equals="DestinationAsset is missing or empty"))
case("two_destination_assets_are_refused",
     B(lambda w: soap_env(f'<LoadAsset xmlns="{NS}"><SourceAssetUrl>{w.src}</SourceAssetUrl>'
                          '<DestinationAsset>d1.ts</DestinationAsset>'
                          '<DestinationAsset>d2.ts</DestinationAsset></LoadAsset>')),
     fault(), marks=finding("dup"))
case("two_source_urls_second_etc_passwd_are_refused",
     B(lambda w: soap_env(f'<LoadAsset xmlns="{NS}"><SourceAssetUrl>{w.src}</SourceAssetUrl>'
                          '<SourceAssetUrl>file:///etc/passwd</SourceAssetUrl>'
                          '<DestinationAsset>d3.ts</DestinationAsset></LoadAsset>')),
     fault(), marks=finding("dup"))
case("two_task_ids_are_refused",
     B(soap_env(f'<GetTaskStatus xmlns="{NS}"><TaskId>a</TaskId><TaskId>b</TaskId></GetTaskStatus>')),
     fault(), marks=finding("dup"))
case("two_operations_in_one_body_are_refused",
     B(soap_env(f'<GetTaskStatus xmlns="{NS}"><TaskId>x</TaskId></GetTaskStatus>'
                f'<PurgeAsset xmlns="{NS}"><DestinationAsset>known.ts</DestinationAsset></PurgeAsset>')),
     fault(), marks=finding("dup"))
case("operation_after_an_empty_body_is_refused",
     B(f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{SOAP11}"><soap:Body/>'
       f'<GetTaskStatus xmlns="{NS}"><TaskId>x</TaskId></GetTaskStatus></soap:Envelope>'.encode()),
     fault(), marks=finding("dup"))
case("operation_before_body_is_a_client_fault",
     B(f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{SOAP11}"><GetTaskStatus xmlns="{NS}">'
       f'<TaskId>x</TaskId></GetTaskStatus><soap:Body/></soap:Envelope>'.encode()),
     fault(has="tag name or namespace mismatch"))
case("operation_inside_header_with_empty_body_has_no_operation",
     B(f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{SOAP11}"><soap:Header>'
       f'<PurgeAsset xmlns="{NS}"><DestinationAsset>known.ts</DestinationAsset></PurgeAsset>'
       f'</soap:Header><soap:Body/></soap:Envelope>'.encode()),
     fault("Client", 400, has=NO_OP))
case("operation_without_any_envelope_is_not_soap",
     B(f'<?xml version="1.0"?><GetTaskStatus xmlns="{NS}"><TaskId>x</TaskId></GetTaskStatus>'.encode()),
     fault("Client", 400, has=NOT_SOAP))
case("envelope_in_an_unknown_namespace_is_not_soap",
     B(gts("x").replace(SOAP11.encode(), b"urn:not-soap")), fault("Client", 400, has=NOT_SOAP))

MU = '<soap:Header><x:Sec xmlns:x="urn:unknown" soap:mustUnderstand="{}">a</x:Sec></soap:Header>'
case("must_understand_unknown_header_soap11_refuses_the_load",
     B(lambda w: soap_env(f'<LoadAsset xmlns="{NS}"><SourceAssetUrl>{w.src}</SourceAssetUrl>'
                          '<DestinationAsset>mu.ts</DestinationAsset></LoadAsset>',
                          header=MU.format("1"))),
     fault("MustUnderstand", 500, has="must be understood"))
case("must_understand_true_unknown_header_soap12",
     B(soap_env(f'<GetTaskStatus xmlns="{NS}"><TaskId>x</TaskId></GetTaskStatus>', 12,
                header=MU.format("true")), 12),
     fault("MustUnderstand", 500, 12, has="must be understood"))
case("must_understand_1_unknown_header_soap12",
     B(soap_env(f'<GetTaskStatus xmlns="{NS}"><TaskId>x</TaskId></GetTaskStatus>', 12,
                header=MU.format("1")), 12),
     fault("MustUnderstand", 500, 12, has="must be understood"))
case("must_understand_0_unknown_header_is_ignored",
     B(soap_env(f'<GetTaskStatus xmlns="{NS}"><TaskId>x</TaskId></GetTaskStatus>',
                header=MU.format("0"))), not_found_task())

_FULL = envelope("GetTaskStatus", [("TaskId", "x")])


def truncated():
    """A cut envelope: 400 Client, saying where the cut makes it fail."""
    def check(w, reply):
        f = assert_fault(reply, "Client", 400)
        assert any(t in f.string for t in TRUNCATED), f"faultstring {f.string!r}"
        return NO_CHANGE
    return check


for _off in (1, 38, 60, 100, 150, len(_FULL) // 2, len(_FULL) - 10, len(_FULL) - 1):
    case(f"truncated_envelope_at_byte_{_off}_of_{len(_FULL)}", B(_FULL[:_off]), truncated())
_FULL12 = envelope("GetTaskStatus", [("TaskId", "x")], 12)
for _off in (120, len(_FULL12) - 10):
    case(f"truncated_soap12_envelope_at_byte_{_off}_is_a_sender_fault",
         B(_FULL12[:_off], 12), fault("Sender", 400, 12))
case("body_of_whitespace_only_is_not_soap",
     B(b"   \r\n\t  \n"), fault("Client", 400, has=NOT_SOAP))
case("body_of_xml_declaration_only_is_not_soap",
     B(b'<?xml version="1.0"?>'), fault("Client", 400, has=NOT_SOAP))
case("utf16_body_with_bom_is_not_soap",
     B(_FULL.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")),
     fault("Client", 400))
case("utf16le_body_without_bom_is_not_soap",
     B(_FULL.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16-le")),
     fault("Client", 400))
case("utf8_bom_before_the_declaration_is_accepted",
     B(b"\xef\xbb\xbf" + _FULL), not_found_task())

# -- DestinationAsset: path escapes ----------------------------------------------

DOTDOT = "must not contain '..'"
OUT_ROOT = "outside the destination root"
OUT_ALLOWED = "outside the allowed destinations"
case("dotdot_alone_as_destination", L(SRC, ".."), fault(has=DOTDOT))
# "../x" and "a/../../x": test_faults.py.
case("dotdot_slash_trailing_slash_destination", L(SRC, "../"), fault(has=DOTDOT))
case("dot_slash_dotdot_destination", L(SRC, "./../x"), fault(has=DOTDOT))
case("dotdot_climbing_into_the_sentinel_tree",
     L(SRC, "../../../outside/etc/passwd"), fault(has=DOTDOT))
case("dotdot_through_the_symlink_name", L(SRC, "link/../x"), fault(has=DOTDOT))
case("percent_encoded_dotdot_relative_is_a_literal_name",
     L(SRC, "%2e%2e/x"), lands("%2e%2e/x"))
case("percent_encoded_dotdot_slash_upper_relative_is_a_literal_name",
     L(SRC, "%2E%2E%2Fx"), lands("%2E%2E%2Fx"))
case("dotdot_percent_2f_relative_is_a_literal_name",
     L(SRC, "..%2fx"), lands("..%2fx"))
case("dotdot_percent_5c_backslash_relative_is_a_literal_name",
     L(SRC, "..%5cx"), lands("..%5cx"))
case("dotdot_raw_backslash_relative_is_refused_or_literal",
     L(SRC, "..\\x"), refused_or_lands("..\\x"))
case("four_dots_double_slash_is_a_literal_name", L(SRC, "....//x"), lands("..../x"))
case("three_dots_is_a_literal_name", L(SRC, ".../x"), lands(".../x"))
case("overlong_utf8_dots_percent_encoded_relative_is_a_literal_name",
     L(SRC, "%c0%ae%c0%ae/x"), lands("%c0%ae%c0%ae/x"))
case("percent_00_relative_is_a_literal_name", L(SRC, "x%00.ts"), lands("x%00.ts"))
case("fullwidth_dots_and_slash_are_one_literal_name", L(SRC, "．．／x"), lands("．．／x"))
case("fullwidth_dots_with_ascii_slash_are_a_literal_directory",
     L(SRC, "．．/x"), lands("．．/x"))
case("one_dot_leaders_are_a_literal_directory", L(SRC, "\u2024\u2024/x"), lands("\u2024\u2024/x"))
case("dot_alone_is_the_root_itself", L(SRC, "."), fault(has="not the root itself"))
case("absolute_path_outside_the_root_etc_passwd_lookalike",
     L(SRC, lambda w: f"{w.O}/etc/passwd"), fault(has=OUT_ROOT))
case("double_slash_absolute_path_outside_the_root",
     L(SRC, lambda w: f"/{w.O}/etc/passwd"), fault(has=OUT_ROOT))
case("double_slash_etc_passwd", L(SRC, "//etc/passwd"), fault(has=OUT_ROOT))
case("absolute_path_of_a_sibling_sharing_the_root_prefix",
     L(SRC, lambda w: f"{w.C}x/y.ts"), fault(has=OUT_ROOT))
case("absolute_path_inside_the_root_with_dotdot",
     L(SRC, lambda w: f"{w.C}/../outside/x"), fault(has=DOTDOT))
case("file_url_etc_passwd_destination", L(SRC, "file:///etc/passwd"), fault(has=OUT_ALLOWED))
case("file_localhost_url_outside_the_root",
     L(SRC, lambda w: f"file://localhost{w.O}/etc/passwd"), fault(has=OUT_ALLOWED))
case("file_url_srv_dotdot_etc", L(SRC, "file:///srv/../etc"), fault(has=DOTDOT))
case("file_url_root_dotdot", L(SRC, lambda w: f"file://{w.C}/../x"), fault(has=DOTDOT))
case("file_url_root_percent_encoded_dotdot",
     L(SRC, lambda w: f"file://{w.C}/%2e%2e/x"), fault(has=DOTDOT))
case("file_url_root_percent_encoded_dotdot_slash_upper",
     L(SRC, lambda w: f"file://{w.C}/%2E%2E%2F%2E%2E%2Foutside/x"), fault(has=DOTDOT))
case("file_url_root_dotdot_percent_2f",
     L(SRC, lambda w: f"file://{w.C}/..%2f..%2foutside/x"), fault(has=DOTDOT))
case("file_localhost_url_root_dotdot",
     L(SRC, lambda w: f"file://localhost{w.C}/../x"), fault(has=DOTDOT))
case("file_url_with_a_remote_host_naming_the_root",
     L(SRC, lambda w: f"file://evil.example{w.C}/x.ts"), fault(has=OUT_ALLOWED))
case("file_url_scheme_in_odd_case_inside_the_root",
     L(SRC, lambda w: f"FiLe://LOCALHOST{w.C}/odd.ts"), lands("odd.ts"))
case("ftp_prefix_dotdot", L(SRC, "ftp://CDN:21/data/cdn/../x"), fault(has=DOTDOT))
case("ftp_prefix_percent_encoded_dotdot",
     L(SRC, "ftp://CDN:21/data/cdn/%2e%2e/x"), fault(has=DOTDOT))
case("ftp_prefix_percent_encoded_dotdot_slash_upper",
     L(SRC, "ftp://CDN:21/data/cdn/%2E%2E%2F%2E%2E%2Fx"), fault(has=DOTDOT))
case("ftp_prefix_dotdot_percent_2f", L(SRC, "ftp://CDN:21/data/cdn/..%2fx"), fault(has=DOTDOT))
case("ftp_prefix_double_percent_encoded_dotdot_is_a_literal_name",
     L(SRC, "ftp://CDN:21/data/cdn/%252e%252e/x"), lands("%2e%2e/x"))
case("ftp_prefix_dotdot_percent_5c_backslash_is_refused_or_literal",
     L(SRC, "ftp://CDN:21/data/cdn/..%5cx"), refused_or_lands("..\\x"))
case("ftp_prefix_overlong_utf8_dots_are_refused_or_literal",
     L(SRC, "ftp://CDN:21/data/cdn/%c0%ae%c0%ae/x"),
     refused_or_lands(os.fsdecode(b"\xc0\xae\xc0\xae/x")))
case("ftp_prefix_percent_00_segment", L(SRC, "ftp://CDN:21/data/cdn/%00/x"), fault(has="%00"))
case("ftp_prefix_percent_00_in_name", L(SRC, "ftp://CDN:21/data/cdn/x%00.ts"), fault(has="%00"))
case("ftp_prefix_percent_encoded_prefix_path_still_matches",
     L(SRC, "ftp://CDN:21/data/%63dn/enc.ts"), lands("enc.ts"))
case("ftp_sibling_of_the_prefix", L(SRC, "ftp://CDN:21/data/cdnx/y.ts"), fault(has=OUT_ALLOWED))
case("windows_drive_backslash_path_is_refused_or_literal",
     L(SRC, "C:\\x"), refused_or_lands("C:\\x"))
case("windows_unc_path_is_refused_or_literal",
     L(SRC, "\\\\server\\share"), refused_or_lands("\\\\server\\share"))
case("windows_backslash_dotdot_path_is_refused_or_literal",
     L(SRC, "c:\\..\\..\\x"), refused_or_lands("c:\\..\\..\\x"))

# -- symbolic links planted in the root --------------------------------------------


def _trap(name, target="secret.ts"):
    def setup(w):
        (w.d.cdn / name).symlink_to(w.outside / target)
    return setup


def _replaced_trap(name):
    """Publishing at the very name of a link replaces the link itself
    (rename never follows it); refusing is fine too."""
    def check(w, reply):
        if reply.status != 200:
            return fault()(w, reply)
        tid = _task(reply)
        st, _ = w.d.wait_for_status(tid, timeout=15)
        p = w.d.cdn / name
        if st == "SUCCESS":
            assert not p.is_symlink() and p.read_bytes() == PAYLOAD
        else:
            assert st == "FAILED", st
        return NO_CHANGE
    return check


def _replaced_link_dir():
    """A package published at the name of a link to a directory: the link
    steps aside for the package (a rename never follows it), or the load
    is refused or fails; the directory it pointed to is never written."""
    def check(w, reply):
        if reply.status != 200:
            return fault()(w, reply)
        tid = _task(reply)
        st, _ = w.d.wait_for_status(tid, timeout=15)
        if st == "FAILED":
            return NO_CHANGE
        assert st == "SUCCESS", st
        p = w.d.cdn / "link"
        assert p.is_dir() and not p.is_symlink(), "the package went through the link"
        assert (p / "seg1.ts").read_bytes() == PAYLOAD
        return Changes(frozenset({"link/index.m3u8", "link/seg1.ts"}))
    return check


case("symlink_in_root_file_load_through_it_to_etc_passwd_lookalike",
     L(SRC, "link/etc/passwd"), refused_or_fails())
case("symlink_in_root_directory_package_through_it",
     L(lambda w: f"file://{w.I}/pkg/", "link/pkg/"), refused_or_fails())
case("symlink_in_root_directory_package_at_its_name_replaces_the_link",
     L(lambda w: f"file://{w.I}/pkg/", "link/"), _replaced_link_dir())
case("symlink_in_root_reached_through_the_allowed_ftp_prefix",
     L(SRC, "ftp://CDN:21/data/cdn/link/etc/passwd"), refused_or_fails())
case("symlink_in_root_reached_through_the_root_file_url",
     L(SRC, lambda w: f"file://{w.C}/link/secret.ts"), refused_or_fails())
case("symlink_at_the_final_name_is_replaced_not_followed",
     L(SRC, "trap"), _replaced_trap("trap"), setup=_trap("trap"))
case("purge_through_symlink_in_root_of_a_directory_outside",
     P("link/etc/"), purge_harmless())
case("purge_of_the_symlink_as_a_directory_never_touches_its_target",
     P("link/"), purge_harmless(may_vanish={"link"}))
case("purge_of_a_file_symlink_never_touches_its_target",
     P("trap2"), purge_harmless(may_vanish={"trap2"}), setup=_trap("trap2"))

# -- PurgeAsset: path escapes -----------------------------------------------------

case("purge_dotdot_into_the_sentinel_tree", P("../../../outside/secret.ts"), fault(has=DOTDOT))
case("purge_absolute_path_outside_the_root",
     P(lambda w: f"{w.O}/secret.ts"), fault(has=OUT_ROOT))
case("purge_file_url_outside_the_root",
     P(lambda w: f"file://{w.O}/secret.ts"), fault(has=OUT_ALLOWED))
case("purge_ftp_prefix_percent_encoded_dotdot",
     P("ftp://CDN:21/data/cdn/%2e%2e/%2e%2e/%2e%2e/%2e%2e/outside/"), fault(has=DOTDOT))
case("purge_double_slash", P("//"), fault(has=OUT_ROOT))
case("purge_userinfo_confusion_host", P("ftp://CDN:21@evil.example/data/cdn/known.ts"),
     fault(has=OUT_ALLOWED))

# -- SourceAssetUrl: path escapes ----------------------------------------------------

NOT_UNDER = "not under an allowed source prefix"
for _id, _src, _has in [
    ("source_dotdot_into_the_sentinel_tree", "file://{I}/../../../outside/secret.ts", DOTDOT),
    ("source_percent_encoded_dotdot", "file://{I}/%2e%2e/%2e%2e/%2e%2e/outside/secret.ts", DOTDOT),
    ("source_percent_encoded_dotdot_slash_upper",
     "file://{I}/%2E%2E%2F%2E%2E%2F%2E%2E%2Foutside/secret.ts", DOTDOT),
    ("source_dotdot_percent_2f", "file://{I}/..%2f..%2f..%2foutside/secret.ts", DOTDOT),
    ("source_dotdot_percent_5c_backslash", "file://{I}/..%5c..%5coutside/secret.ts",
     "does not exist"),
    ("source_four_dots_double_slash", "file://{I}/....//secret.ts", "does not exist"),
    ("source_dot_slash_dotdot", "file://{I}/./../../../outside/secret.ts", DOTDOT),
    ("source_absolute_path_with_dotdot", "{I}/../../../outside/secret.ts", DOTDOT),
    # file:///etc/passwd, /etc/passwd, "ftp://[::1/x": test_faults.py.
    ("source_path_etc_passwd_double_slash", "//etc/passwd", NOT_UNDER),
    ("source_file_localhost_etc_passwd", "file://localhost/etc/passwd", NOT_UNDER),
    ("source_file_url_srv_dotdot_etc", "file:///srv/../etc/passwd", DOTDOT),
    ("source_file_url_sentinel_outside_the_prefix", "file://{O}/secret.ts", NOT_UNDER),
    ("source_file_url_naming_a_remote_host", "file://127.0.0.1{I}/a.ts", "remote host"),
    ("source_file_url_with_one_slash", "file:{I}/a.ts", "absolute URL or an absolute path"),
    ("source_percent_00", "file://{I}/a.ts%00.png", "%00"),
    ("source_fullwidth_dots_and_slashes", "file://{I}/．．／．．／．．／outside/secret.ts",
     "does not exist"),
    ("source_symlink_file_pointing_outside", "file://{I}/leak.ts", "resolves outside"),
    ("source_through_symlink_directory_pointing_outside", "file://{I}/leakdir/secret.ts",
     "resolves outside"),
    ("source_symlink_directory_pointing_outside", "file://{I}/leakdir/", "resolves outside"),
    ("source_windows_drive_path", "C:\\x", "absolute URL or an absolute path"),
    ("source_windows_unc_path", "\\\\server\\share\\x", "absolute URL or an absolute path"),
    ("source_ftp_prefix_dotdot", "ftp://127.0.0.1:1/repository/../x", DOTDOT),
    ("source_ftp_prefix_percent_encoded_dotdot", "ftp://127.0.0.1:1/repository/%2e%2e/x", DOTDOT),
    ("source_ftp_prefix_percent_encoded_dotdot_slash_upper",
     "ftp://127.0.0.1:1/repository/%2E%2E%2Fx", DOTDOT),
    ("source_ftp_prefix_percent_00", "ftp://127.0.0.1:1/repository/x%00", "%00"),
    ("source_ftp_userinfo_names_the_allowed_host_port", "ftp://127.0.0.1:1@evil.example/repository/x",
     NOT_UNDER),
    ("source_ftp_backslash_before_at", "ftp://127.0.0.1:1\\@evil.example/repository/x", NOT_UNDER),
    ("source_ftp_ipv6_loopback_literal", "ftp://[::1]:1/repository/x", NOT_UNDER),
    ("source_ftp_ipv4_mapped_ipv6_literal", "ftp://[::ffff:127.0.0.1]:1/repository/x", NOT_UNDER),
    ("source_ftp_short_ipv4_form", "ftp://127.1:1/repository/x", NOT_UNDER),
    ("source_ftp_decimal_ipv4_form", "ftp://2130706433:1/repository/x", NOT_UNDER),
    ("source_ftp_percent_encoded_host", "ftp://%31%32%37.0.0.1:1/repository/x", "host name"),
    ("source_ftp_port_0", "ftp://127.0.0.1:0/repository/x", "bad port"),
    ("source_ftp_port_65536", "ftp://127.0.0.1:65536/repository/x", "bad port"),
    ("source_ftp_port_minus_1", "ftp://127.0.0.1:-1/repository/x", "bad port"),
    ("source_ftp_port_21abc", "ftp://127.0.0.1:1abc/repository/x", "bad port"),
    ("source_ftp_empty_port", "ftp://127.0.0.1:/repository/x", "bad port"),
    ("source_ftp_prefix_in_other_case", "FTP://127.0.0.1:1/REPOSITORY/x", NOT_UNDER),
    ("source_ftp_query_string", "ftp://127.0.0.1:1/repository/x?type=a", "query"),
    ("source_scheme_dict", "dict://127.0.0.1:1/repository/x", "unsupported source scheme 'dict'"),
    ("source_scheme_javascript", "javascript:alert(1)", "absolute URL or an absolute path"),
    ("source_scheme_data", "data:text/plain,hi", "absolute URL or an absolute path"),
    ("source_scheme_ldap_odd_case", "LdAp://127.0.0.1:1/repository/x", "unsupported source scheme 'ldap'"),
    ("source_whitespace_only", " \t\n ", "SourceAssetUrl is missing or empty"),
]:
    case(_id, L((lambda s: lambda w: s.format(I=w.I, O=w.O))(_src), "stolen/"), fault(has=_has))

case("source_the_prefix_itself_holding_symlinks_to_outside_fails",
     L(lambda w: f"file://{w.I}/", "stolen/"), refused_or_fails())
case("source_ftp_fragment_in_userinfo_connects_to_the_host_after_at_only",
     L(lambda w: f"ftp://127.0.0.1:{w.listener.port}#@127.0.0.1:1/repository/x.ts", "frag.ts"),
     nothing_fetched(refused_or_fails()))
case("source_ftp_prefix_overlong_utf8_dots_are_refused_or_fail",
     L("ftp://127.0.0.1:1/repository/%c0%ae%c0%ae/x", "ovl.ts"), refused_or_fails())
case("source_file_url_scheme_in_odd_case_inside_the_prefix",
     L(lambda w: f"FiLe://LOCALHOST{w.I}/a.ts", "oddsrc.ts"), lands("oddsrc.ts"))

# -- DestinationAsset: URL tricks -------------------------------------------------

for _id, _dst, _has in [
    ("dest_userinfo_names_the_allowed_host_port", "ftp://CDN:21@evil.example/x", OUT_ALLOWED),
    ("dest_userinfo_confusion_with_the_prefix_path", "ftp://CDN:21@evil.example/data/cdn/x",
     OUT_ALLOWED),
    ("dest_backslash_before_at", "ftp://CDN:21\\@evil/data/cdn/x", OUT_ALLOWED),
    ("dest_ipv6_loopback_literal", "ftp://[::1]:21/x", OUT_ALLOWED),
    ("dest_ipv6_loopback_literal_with_prefix_path", "ftp://[::1]:21/data/cdn/x", OUT_ALLOWED),
    ("dest_ipv4_mapped_ipv6_literal", "ftp://[::ffff:127.0.0.1]/data/cdn/x", OUT_ALLOWED),
    ("dest_port_0", "ftp://CDN:0/data/cdn/x", "bad port"),
    ("dest_port_65536", "ftp://CDN:65536/data/cdn/x", "bad port"),
    ("dest_port_99999", "ftp://CDN:99999/data/cdn/x", "bad port"),
    ("dest_port_minus_1", "ftp://CDN:-1/data/cdn/x", "bad port"),
    ("dest_port_21abc", "ftp://CDN:21abc/data/cdn/x", "bad port"),
    ("dest_other_port_same_host", "ftp://CDN:2121/data/cdn/x", OUT_ALLOWED),
    ("dest_percent_encoded_host", "ftp://%43DN:21/data/cdn/x", "host name"),
    ("dest_percent_encoded_host_partly", "ftp://C%44N/data/cdn/x", "host name"),
    ("dest_host_with_trailing_dot", "ftp://CDN./data/cdn/x", OUT_ALLOWED),
    ("dest_other_scheme_on_the_allowed_host_sftp", "sftp://CDN:21/data/cdn/x", OUT_ALLOWED),
    ("dest_other_scheme_on_the_allowed_host_http", "http://CDN:21/data/cdn/x", OUT_ALLOWED),
    ("dest_unknown_scheme_gopher", "gopher://CDN:21/data/cdn/x", OUT_ALLOWED),
    ("dest_unknown_scheme_javascript_with_slashes", "javascript://CDN:21/data/cdn/x", OUT_ALLOWED),
    ("dest_query_string", "ftp://CDN:21/data/cdn/x?y", "query"),
    ("dest_fragment", "ftp://CDN:21/data/cdn/x#y", "fragment"),
    ("dest_prefix_without_trailing_slash_is_the_root", "ftp://CDN:21/data/cdn", "root itself"),
    ("dest_whitespace_only", " \t\n ", "DestinationAsset is missing or empty"),
]:
    case(_id, L(SRC, _dst), fault(has=_has))

case("dest_fragment_before_at_is_userinfo_and_maps_under_the_root",
     L(SRC, "ftp://evil.example#@CDN:21/data/cdn/frag.ts"), refused_or_lands("frag.ts"))
case("dest_scheme_and_host_in_odd_case_match_the_prefix",
     L(SRC, "FtP://cdn:21/data/cdn/case.ts"), lands("case.ts"))
case("dest_javascript_colon_without_slashes_is_refused_or_literal",
     L(SRC, "javascript:alert(1)"), refused_or_lands("javascript:alert(1)"))
case("dest_data_colon_url_is_refused_or_literal",
     L(SRC, "data:text/plain,hi"), refused_or_lands("data:text/plain,hi"))

# -- HTTP framing answered on the shared daemon (no stall involved) ----------------


def R(data, want=1, timeout=ANSWER_WITHIN):
    """Sends raw bytes; the 'reply' is the first complete response."""
    def send(w):
        raw = data(w) if callable(data) else data
        return one_reply(exchange(w.d.port, raw, want, timeout))
    return send


_GTS = envelope("GetTaskStatus", [("TaskId", "x")])
_PAD = b"<!--" + b"x" * (5 * 1024 * 1024) + b"-->"
_BOMB_SRC = _GTS.replace(b"<soap:Body>", _PAD + b"<soap:Body>")

case("gzip_small_body_is_inflated_and_served",
     R(http_request(gzip.compress(_GTS), "Content-Encoding: gzip\r\n")), not_found_task())
case("gzip_bomb_5k_inflating_to_5m_gets_413",
     R(http_request(gzip.compress(_BOMB_SRC, 9), "Content-Encoding: gzip\r\n")),
     client_fault_4xx((413, 400)))
case("deflate_bomb_inflating_to_5m_gets_413",
     R(http_request(zlib.compress(_BOMB_SRC, 9), "Content-Encoding: deflate\r\n")),
     client_fault_4xx((413, 400)))
case("gzip_header_with_garbage_is_not_soap",
     R(http_request(b"\x1f\x8b\x08\x00garbage-garbage", "Content-Encoding: gzip\r\n")),
     fault("Client", 400, has=NOT_SOAP))
case("request_line_over_8k_gets_414",
     R(b"POST /apubi?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
       % len(_GTS) + _GTS), client_fault_4xx((414,)))
case("header_line_over_8k_gets_a_4xx",
     R(http_request(_GTS, "X-Long: " + "a" * 9000 + "\r\n")), client_fault_4xx())
case("header_line_of_100k_gets_a_4xx",
     R(http_request(_GTS, "X-Long: " + "a" * 100_000 + "\r\n")), client_fault_4xx())
case("five_thousand_headers_are_harmless",
     R(http_request(_GTS, "".join(f"X-H{i}: v\r\n" for i in range(5000)))), not_found_task())
case("fifty_thousand_headers_under_max_request_size_are_harmless",
     R(http_request(_GTS, "".join(f"X-H{i}: v\r\n" for i in range(50_000)))), not_found_task())
# RFC 9112 read strictly (test_framing.py has the rest of the grammar).
case("folded_header_line_is_refused",
     R(http_request(_GTS, "X-A: a\r\n b\r\n")), client_fault_4xx((400,), has="folded"))
case("header_line_without_colon_is_refused",
     R(http_request(_GTS, "NoColonHere\r\n")), client_fault_4xx((400,)))
case("bare_lf_line_endings_are_refused",
     R(http_request(_GTS).replace(b"\r\n", b"\n")), client_fault_4xx((400,), has="bare LF"))
case("content_length_shorter_than_the_body_bounds_the_body",
     R(http_request(_GTS, length=len(_GTS) - 20)),
     fault("Client", 400, has="ends before its SOAP envelope"))
case("content_length_negative_is_refused",
     R(http_request(_GTS, length=-1)), client_fault_4xx((400, 413)))
case("content_length_with_trailing_garbage_is_refused",
     R(http_request(_GTS, length=f"{len(_GTS)}abc")), client_fault_4xx((400,)))
case("content_length_duplicated_with_two_values_is_refused",
     R(http_request(_GTS, "Content-Length: 5\r\n")), client_fault_4xx((400,)))
case("content_length_not_a_number_is_refused",
     R(http_request(_GTS, length="abc")), client_fault_4xx((400, 413)))
case("content_length_of_2_to_the_64_gets_413",
     R(http_request(_GTS, length="18446744073709551616")), client_fault_4xx((413,)))
case("chunk_size_of_2_to_the_72_is_refused_at_once",
     R(http_request(b"ffffffffffffffffff\r\n" + _GTS + b"\r\n0\r\n\r\n",
                    "Transfer-Encoding: chunked\r\n", length=None)),
     fault("Client", 400, has="chunk size is too large"))
case("expect_100_continue_is_honoured",
     R(http_request(_GTS, "Expect: 100-continue\r\n")), not_found_task())
case("http_1_0_request_is_served",
     R(b"POST /apubi HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % len(_GTS) + _GTS),
     not_found_task())
for _m in ("TRACE", "CONNECT", "PATCH", "DELETE"):
    case(f"method_{_m.lower()}_on_the_endpoint_gets_405",
         R(http_request(_GTS, method=_m)), client_fault_4xx((405,)))
case("post_to_the_endpoint_through_dotdot_gets_404",
     R(http_request(_GTS, path="/apubi/../apubi")), client_fault_4xx((404,)))
case("get_with_encoded_dotdot_path_gets_404",
     R(b"GET /apubi/..%2f..%2fetc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
     not_leaking(client_fault_4xx((404,)), b"root:"))
case("get_wsdl_with_traversal_gets_405",
     R(b"GET /apubi?wsdl/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
     not_leaking(client_fault_4xx((405,)), b"root:"))


# ---- the shared-daemon test ------------------------------------------------------

@pytest.mark.parametrize("c", CASES)
def test_hostile_request(hostile, c):
    w = hostile
    if c.setup:
        c.setup(w)
    outside_before, cdn_before = w.outside_tree(), w.cdn_tree()
    listened = w.listener.count
    reply = None
    try:
        t0 = time.monotonic()
        reply = c.send(w)
        took = time.monotonic() - t0
        changes = c.expect(w, reply)
        assert took < ANSWER_WITHIN, f"answered after {took:.1f}s"
        w.settle(reply)
        assert w.d.proc.poll() is None, f"apubid died (exit {w.d.proc.poll()})\n{w.d.log_tail()}"
        after = assert_fault(w.d.status_reply(UNKNOWN_ID), "Server", 500)
        assert after.string == "Task Id does not exist"
        assert w.outside_tree() == outside_before, "something changed outside the roots: " + \
            _diff(outside_before, w.outside_tree())
        cdn_after = w.cdn_tree()
        appeared = set(cdn_after) - set(cdn_before)
        vanished = set(cdn_before) - set(cdn_after)
        assert appeared == set(changes.appear), \
            f"cdn/ gained {sorted(appeared)}, expected {sorted(changes.appear)}"
        assert vanished <= set(changes.vanish), f"cdn/ lost {sorted(vanished)}"
        assert w.listener.count == listened, "something connected to the listener"
    finally:
        w.settle(reply)
        w.restore()


def _diff(a, b):
    keys = sorted(set(a) | set(b))
    return "; ".join(f"{k}: {a.get(k)} -> {b.get(k)}" for k in keys if a.get(k) != b.get(k))[:2000]


# ---- heavy but valid markup ---------------------------------------------------------

# Tens of thousands of attributes keep a serving thread busy for seconds
# (3 to 6 s measured for 40,000 on two shared cores, and about four times
# that for twice as many: see FINDINGS["quadratic"]). How long is the
# benchmark's business (make bench, "many attributes"); the test asks only
# for an answer within ten times the measured time, and a daemon still
# serving after it.
HEAVY_ANSWER_WITHIN = 60


@pytest.mark.parametrize("what,n", [
    pytest.param("attributes", 40_000, id="forty_thousand_attributes"),
    pytest.param("xmlns", 30_000, id="thirty_thousand_namespace_declarations"),
])
def test_many_attributes_are_answered_and_the_daemon_keeps_serving(hostile, what, n):
    w = hostile
    attrs = (b" ".join(b'a%d="1"' % i for i in range(n)) if what == "attributes"
             else b" ".join(b'xmlns:p%d="urn:%d"' % (i, i) for i in range(n)))
    body = gts("x").replace(b"<GetTaskStatus ", b"<GetTaskStatus " + attrs + b" ")
    assert len(body) < 1024 * 1024
    reply = w.d.post(body, soap_headers(), timeout=HEAVY_ANSWER_WITHIN)
    not_found_task()(w, reply)
    assert w.d.proc.poll() is None
    after = assert_fault(w.d.status_reply(UNKNOWN_ID), "Server", 500)
    assert after.string == "Task Id does not exist"


def test_crlf_in_a_task_id_cannot_forge_a_log_line(hostile):
    w = hostile
    forged = "2026-01-01T00:00:00.000Z error FORGED-LINE"
    not_found_task()(w, w.post(gts(f"x&#10;{forged}&#13;&#10;")))
    time.sleep(0.2)
    for line in w.d.log_text().splitlines():
        assert not line.upper().startswith(forged.upper()), f"forged log line: {line!r}"


def test_escape_character_in_a_task_id_is_not_logged_raw(hostile):
    w = hostile
    fault("Client", 400, has="control character")(w, w.post(gts("y&#27;[31mred")))
    time.sleep(0.2)
    assert "\x1b" not in w.d.log_text(), "an ESC from a request reached the log raw"


# ---- stalls: one daemon per case, one serving thread -----------------------------------

def _stall_daemon(make_daemon, threads=1):
    return make_daemon(server={"recv_timeout": str(RECV_TIMEOUT), "request_timeout": "30",
                               "threads": str(threads)})


def _keeps_serving(d, n=3):
    problems = []
    for i in range(n):
        try:
            st, _, body = d.status_reply(UNKNOWN_ID)
            if st != 500 or b"Task Id does not exist" not in body:
                problems.append(f"request {i}: HTTP {st} {body[-200:]!r}")
        except (OSError, http.client.HTTPException) as e:
            problems.append(f"request {i}: {e!r}")
    assert d.proc.poll() is None, f"apubid died\n{d.log_tail()}"
    assert not problems, "the daemon stopped serving after the case: " + "; ".join(problems)


STALL_LIMIT = RECV_TIMEOUT + 1.5
_STALL_CASES = [
    ("chunked_bad_chunk_size_zz",
     http_request(b"zz\r\n" + _GTS + b"\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n", None)),
    ("chunked_negative_chunk_size",
     http_request(b"-5\r\n" + _GTS + b"\r\n0\r\n\r\n", "Transfer-Encoding: chunked\r\n", None)),
    ("chunked_chunk_size_smaller_than_its_data",
     http_request(b"%x\r\n" % (len(_GTS) - 100) + _GTS + b"\r\n0\r\n\r\n",
                  "Transfer-Encoding: chunked\r\n", None)),
    ("chunked_without_last_chunk",
     http_request(b"%x\r\n" % len(_GTS) + _GTS + b"\r\n", "Transfer-Encoding: chunked\r\n", None)),
    ("content_length_longer_than_an_incomplete_body",
     http_request(_GTS[:-40], length=len(_GTS) + 100)),
    ("garbage_request_line", b"\x00\x01\x02garbage\r\n\r\n"),
]
_STALL_CASES = [(i, d, ()) for i, d in _STALL_CASES]


@pytest.mark.parametrize("data", [pytest.param(d, id=i, marks=m) for i, d, m in _STALL_CASES])
def test_stalled_request_is_answered_within_recv_timeout_and_harms_nothing(make_daemon, data):
    d = _stall_daemon(make_daemon)
    ex = exchange(d.port, data, timeout=STALL_LIMIT + 3)
    assert ex.elapsed < STALL_LIMIT, f"held for {ex.elapsed:.1f}s with recv_timeout = {RECV_TIMEOUT}"
    client_fault_4xx((400, 404, 408))(None, one_reply(ex))
    _keeps_serving(d)
    assert os.listdir(d.cdn) == []


def test_content_length_longer_than_a_complete_envelope_does_not_hang(make_daemon):
    d = _stall_daemon(make_daemon)
    ex = exchange(d.port, http_request(_GTS, length=len(_GTS) + 100), timeout=STALL_LIMIT + 3)
    assert ex.elapsed < STALL_LIMIT, f"held for {ex.elapsed:.1f}s with recv_timeout = {RECV_TIMEOUT}"
    r = one_reply(ex)
    if r.status == 408:
        client_fault_4xx((408,))(None, r)
    else:
        not_found_task()(None, r)
    _keeps_serving(d)
    assert os.listdir(d.cdn) == []


def test_stalled_connections_do_not_disable_the_serving_threads(make_daemon):
    d = _stall_daemon(make_daemon, threads=2)
    socks = [socket.create_connection(("127.0.0.1", d.port), timeout=10) for _ in range(2)]
    try:
        for s in socks:
            s.sendall(b"POST /apubi HTTP/1.1\r\nHost: x\r\n")
        time.sleep(RECV_TIMEOUT + 0.7)
    finally:
        for s in socks:
            s.close()
    _keeps_serving(d, n=6)


def test_pipelined_requests_are_answered_in_order(make_daemon):
    d = _stall_daemon(make_daemon)
    (d.ingest / "a.ts").write_bytes(PAYLOAD)
    tid = d.load(f"file://{d.ingest}/a.ts", "p.ts")
    assert d.wait_for_status(tid)[0] == "SUCCESS"
    first = http_request(envelope("GetTaskStatus", [("TaskId", tid)]))
    second = http_request(envelope("GetTaskStatus", [("TaskId", UNKNOWN_ID)]))
    ex = exchange(d.port, first + second, want=2, timeout=STALL_LIMIT + 2)
    assert len(ex.replies) == 2, f"{len(ex.replies)} answer(s) to 2 pipelined requests " \
                                 f"after {ex.elapsed:.1f}s"
    assert parse_response(ex.replies[0].body, "GetTaskStatus")["Status"] == "SUCCESS"
    not_found_task()(None, ex.replies[1])
    _keeps_serving(d)


def test_pipelined_request_after_a_fault_is_left_unanswered_with_connection_close(make_daemon):
    # Every fault closes the connection (gSOAP); a pipelining client must
    # then resend what was not answered, which HTTP/1.1 allows when the
    # answer says Connection: close.
    d = _stall_daemon(make_daemon)
    first = http_request(envelope("GetTaskStatus", [("TaskId", UNKNOWN_ID)]))
    ex = exchange(d.port, first + first, want=2, timeout=STALL_LIMIT)
    assert ex.replies, "no answer"
    not_found_task()(None, ex.replies[0])
    assert ex.replies[0].headers.get("Connection", "").lower() == "close"
    assert len(ex.replies) == 1 and ex.closed, ex.raw[-300:]
    _keeps_serving(d)
