"""Integration tests for apubid: run the real daemon and talk SOAP to it.

This file holds what every test module shares:

* the `daemon` and `make_daemon` fixtures, which start `apubid -f CONF` in a
  fresh temporary directory (ingest/ and cdn/ beside its store and config),
  wait until its port accepts connections, and on teardown stop it with
  SIGTERM and require exit code 0;
* SOAP helpers: `envelope()` builds SOAP 1.1 or 1.2 requests as raw bytes,
  `post()` sends raw bytes and returns (status, headers, body),
  `parse_fault()` and `parse_response()` read answers with xml.etree, and
  `Daemon.wait_for_status()` polls GetTaskStatus until a final state;
* small file helpers (`write_tree`, `read_tree`, `hidden_entries`, and
  `parse_conf`, which reads an apubid.conf).

Everything that waits has a deadline: the machine has two cores and a hung
daemon must fail a test, not the run. Only 127.0.0.1 is ever contacted.
"""
import hashlib
import json
import http.client
import os
import re
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import namedtuple
from io import BytesIO
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

REPO = Path(__file__).resolve().parents[2]
APUBID = os.environ.get("APUBID", str(REPO / "apubid"))
# The WFM's envelopes, byte for byte (tests/fixtures/README.md). Their FTP
# hosts do not resolve: tests rewrite them, or swap the source for a file.
FIXTURES = REPO / "tests" / "fixtures"
# The prefix of the fixtures' FTP destinations, for [destination] allow.
FIXTURE_DEST_PREFIX = "ftp://ORIGIN:21/srv/vod/"

NS = "wfm:APUBI/v1/schemas"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
TASKID_RE = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
STATUSES = ("IN_PROGRESS", "SUCCESS", "FAILED")

# Seconds until the port must accept connections, and SIGTERM may take;
# longer under valgrind (make check-valgrind).
START_TIMEOUT = float(os.environ.get("APUBID_START_TIMEOUT", "10"))
STOP_TIMEOUT = float(os.environ.get("APUBID_STOP_TIMEOUT", str(max(15.0, START_TIMEOUT))))
HTTP_TIMEOUT = 15    # seconds for one HTTP exchange
TEST_TIMEOUT = 240   # hard ceiling for one test, setup and teardown included

# A marker for "send no SOAPAction header at all".
NO_ACTION = object()


# ---- SOAP messages ------------------------------------------------------

class Raw(str):
    """A field value inserted into an envelope as XML, not escaped."""


def envelope(op, fields=(), version=11, ns2=False):
    """Builds a request: <op xmlns="wfm:APUBI/v1/schemas"> with one child per
    (name, value) pair in `fields`; a value of None leaves the element out,
    a Raw value is inserted verbatim, anything else is escaped text."""
    env = SOAP11 if version == 11 else SOAP12
    children = []
    for name, value in fields:
        if value is None:
            continue
        text = value if isinstance(value, Raw) else escape(value)
        children.append(f"<{name}>{text}</{name}>")
    extra = ' xmlns:ns2="wfm:/APUBI/v1/schemas"' if ns2 else ""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<soap:Envelope xmlns:soap="{env}"><soap:Body>'
        f'<{op} xmlns="{NS}"{extra}>{"".join(children)}</{op}>'
        "</soap:Body></soap:Envelope>"
    )
    return xml.encode("utf-8")


def soap_headers(version=11, action='""'):
    """HTTP headers a SOAP client sends: text/xml plus SOAPAction for 1.1
    (pass action=NO_ACTION to leave SOAPAction out), application/soap+xml
    for 1.2."""
    if version == 12:
        return {"Content-Type": "application/soap+xml; charset=utf-8"}
    h = {"Content-Type": "text/xml; charset=utf-8"}
    if action is not NO_ACTION:
        h["SOAPAction"] = action
    return h


Reply = namedtuple("Reply", "status headers body")


def post(port, body, headers=None, path="/apubi", method="POST", timeout=HTTP_TIMEOUT):
    """Sends one request on a fresh connection; returns (status, headers,
    body). `headers` is an http.client message (case-insensitive get)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Reply(r.status, r.headers, data)
    finally:
        conn.close()


def _namespaces(body):
    """prefix -> namespace for every declaration in the document (good
    enough to resolve QName values such as faultcode in small answers)."""
    out = {}
    for _, (prefix, uri) in ET.iterparse(BytesIO(body), events=("start-ns",)):
        out.setdefault(prefix, uri)
    return out


def _envelope_parts(body):
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise AssertionError(f"answer is not well-formed XML ({e}): {body[:500]!r}")
    assert root.tag in (f"{{{SOAP11}}}Envelope", f"{{{SOAP12}}}Envelope"), \
        f"answer is not a SOAP envelope: {body[:500]!r}"
    env = root.tag[1:].split("}")[0]
    b = root.find(f"{{{env}}}Body")
    assert b is not None, f"envelope has no Body: {body[:500]!r}"
    return env, b


Fault = namedtuple("Fault", "version code code_ns string message")


def parse_fault(body):
    """Reads a SOAP 1.1 or 1.2 fault. `code` is the local part of faultcode
    (Client/Server, Sender/Receiver), `code_ns` the namespace its prefix
    maps to, `message` the text of detail/{wfm:APUBI/v1/schemas}ExceptionWS/
    message (unqualified), or None when that is missing."""
    env, b = _envelope_parts(body)
    f = b.find(f"{{{env}}}Fault")
    assert f is not None, f"answer is not a fault: {body[:800]!r}"
    if env == SOAP11:
        qcode = f.findtext("faultcode")
        string = f.findtext("faultstring")
        detail = f.find("detail")
        version = 11
    else:
        qcode = f.findtext(f"{{{env}}}Code/{{{env}}}Value")
        string = f.findtext(f"{{{env}}}Reason/{{{env}}}Text")
        detail = f.find(f"{{{env}}}Detail")
        version = 12
    assert qcode, f"fault has no code: {body[:800]!r}"
    qcode = qcode.strip()
    prefix, _, local = qcode.rpartition(":")
    code_ns = _namespaces(body).get(prefix) if prefix else None
    message = None
    if detail is not None:
        message = detail.findtext(f"{{{NS}}}ExceptionWS/message")
    return Fault(version, local, code_ns, string, message)


def parse_response(body, op):
    """Reads a successful answer: Body/{NS}<op>Response. Returns a dict of
    its children (local name -> text). Every child must be qualified in the
    APUBI namespace, as the schema says."""
    env, b = _envelope_parts(body)
    assert b.find(f"{{{env}}}Fault") is None, f"unexpected fault: {body[:800]!r}"
    r = b.find(f"{{{NS}}}{op}Response")
    assert r is not None, f"no {op}Response in {body[:800]!r}"
    out = {}
    for child in r:
        assert child.tag.startswith(f"{{{NS}}}"), f"unqualified {child.tag} in {body[:800]!r}"
        out[child.tag.split("}")[1]] = child.text or ""
    return out


def envelope_version(body):
    return 11 if _envelope_parts(body)[0] == SOAP11 else 12


def assert_fault(reply, code, http_status, version=11):
    """Checks a fault answer completely and returns it: HTTP status, the
    content type of its SOAP version, faultcode, a faultstring, and
    detail/ExceptionWS/message repeating the faultstring."""
    status, headers, body = reply
    assert status == http_status, f"HTTP {status}, expected {http_status}: {body[:800]!r}"
    ctype = headers.get("Content-Type", "")
    want = "application/soap+xml" if version == 12 else "text/xml"
    assert want in ctype, f"Content-Type {ctype!r} for a SOAP {version} fault"
    f = parse_fault(body)
    assert f.version == version, f"fault in SOAP {f.version}, request was SOAP {version}"
    assert f.code == code, f"faultcode {f.code!r}, expected {code!r}: {body[:800]!r}"
    assert f.code_ns == (SOAP11 if version == 11 else SOAP12), \
        f"faultcode prefix maps to {f.code_ns!r}: {body[:800]!r}"
    assert f.string and f.string.strip(), f"empty faultstring: {body[:800]!r}"
    assert f.message == f.string, \
        f"detail/ExceptionWS/message {f.message!r} differs from faultstring {f.string!r}"
    return f


# ---- files --------------------------------------------------------------

def write_tree(root, files):
    """Creates files under root from {relative path: bytes}."""
    root = Path(root)
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def read_tree(root):
    """{relative path: bytes} for every regular file under root."""
    root = Path(root)
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def hidden_entries(root):
    """Every file or directory under root whose name starts with '.' (what
    temporary and staging names look like)."""
    out = []
    for dirpath, dirs, names in os.walk(root):
        out += [os.path.join(dirpath, n) for n in dirs + names if n.startswith(".")]
    return out


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_conf(text):
    """An apubid.conf's settings as {(section, key): [values]}, the values in
    file order (a repeatable key, such as allow, has several)."""
    out, section = {}, None
    for line in text.splitlines():
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1].strip()
            continue
        key, _, value = s.partition("=")
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the daemon ---------------------------------------------------------

class Daemon:
    """One apubid in its own directory. Settings: the base configuration of
    the suite, with `overrides` ({section: {key: value}}) applied on top; a
    list value writes the key once per item."""

    def __init__(self, tmp, overrides=None):
        self.tmp = Path(tmp)
        self.ingest = self.tmp / "ingest"
        self.cdn = self.tmp / "cdn"
        self.ingest.mkdir(parents=True, exist_ok=True)
        self.cdn.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.tmp / "apubid.conf"
        self.log_path = self.tmp / "apubid.log"
        self.root_url = f"file://{self.cdn}/"
        self.url = f"http://127.0.0.1:{self.port}/apubi"
        self.proc = None
        self.sections = {
            "server": {"listen": f"127.0.0.1:{self.port}", "endpoint": "/apubi",
                       "threads": "16", "max_request_size": "1M"},
            "store": {"path": f"{self.tmp}/apubid.db"},
            "workers": {"count": "4"},
            "source": {"allow": f"file://{self.ingest}/"},
            "destination": {"root": self.root_url, "allow": "ftp://CDN:21/data/cdn/"},
            "log": {"level": "debug"},
        }
        for section, kv in (overrides or {}).items():
            self.sections.setdefault(section, {}).update(kv)
        self.conf.write_text(self.config_text())

    def config_text(self):
        lines = []
        for section, kv in self.sections.items():
            lines.append(f"[{section}]")
            for k, v in kv.items():
                for item in (v if isinstance(v, list) else [v]):
                    lines.append(f"{k} = {item}")
        return "\n".join(lines) + "\n"

    # -- process --

    def start(self):
        assert os.access(APUBID, os.X_OK), f"{APUBID} is not built"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [APUBID, "-f", str(self.conf)], cwd=self.tmp,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                pytest.fail(f"apubid exited with {rc} while starting\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if self._started():
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill9()
                pytest.fail(f"apubid did not listen on {self.port} within "
                            f"{START_TIMEOUT}s\n{self.log_tail()}")
            time.sleep(0.05)

    def _started(self):
        """The port accepts connections as soon as apubid has bound it, as
        root, before it drops its privileges and opens the store; it serves
        once it has logged "listening on". That line is looked for where it
        can be seen: in this log at level info or debug."""
        log = self.sections.get("log", {})
        if "file" in log or log.get("level", "info") not in ("debug", "info"):
            return True
        return "listening on " in self.log_text()

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait; returns the exit code (kills and fails on timeout)."""
        if self.proc is None:
            return None
        p, self.proc = self.proc, None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
            pytest.fail(f"apubid did not exit within {timeout}s of SIGTERM\n{self.log_tail()}")

    def kill9(self):
        if self.proc is None:
            return
        p, self.proc = self.proc, None
        p.kill()
        p.wait(timeout=10)

    def restart(self):
        rc = self.stop()
        assert rc == 0, f"apubid exited {rc} on SIGTERM\n{self.log_tail()}"
        return self.start()

    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=60):
        lines = self.log_text().splitlines()
        return "---- apubid log (last %d lines) ----\n%s" % (n, "\n".join(lines[-n:]))

    # -- HTTP / SOAP --

    def post(self, body, headers=None, path="/apubi", method="POST", timeout=HTTP_TIMEOUT):
        return post(self.port, body, headers, path, method, timeout)

    def soap(self, op, fields=(), version=11, action='""'):
        return self.post(envelope(op, fields, version), soap_headers(version, action))

    def load_reply(self, source, destination, meta=None, version=11):
        return self.soap("LoadAsset", [("SourceAssetUrl", source),
                                       ("DestinationAsset", destination),
                                       ("MetaData", meta)], version)

    def purge_reply(self, destination, version=11):
        return self.soap("PurgeAsset", [("DestinationAsset", destination)], version)

    def status_reply(self, task_id, version=11):
        return self.soap("GetTaskStatus", [("TaskId", task_id)], version)

    def _task_id(self, reply, op):
        status, _, body = reply
        assert status == 200, f"{op}: HTTP {status}: {body[:800]!r}"
        tid = parse_response(body, op).get("TaskId")
        assert tid is not None and TASKID_RE.match(tid), f"{op}: bad TaskId {tid!r}"
        return tid

    def load(self, source, destination, meta=None, version=11):
        return self._task_id(self.load_reply(source, destination, meta, version), "LoadAsset")

    def purge(self, destination, version=11):
        return self._task_id(self.purge_reply(destination, version), "PurgeAsset")

    def get(self, path):
        """GET `path` on a fresh connection: (status, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def view(self, task_id):
        """The task's JSON view (GET /tasks/ID.json), which must answer 200."""
        status, body = self.get(f"/tasks/{task_id}.json")
        assert status == 200, f"GET /tasks/{task_id}.json: HTTP {status}: {body[:500]!r}"
        return json.loads(body)

    def status(self, task_id, version=11):
        """(Status, DestinationAsset or None) of a task."""
        status, _, body = self.status_reply(task_id, version)
        assert status == 200, f"GetTaskStatus {task_id}: HTTP {status}: {body[:800]!r}"
        r = parse_response(body, "GetTaskStatus")
        assert r.get("Status") in STATUSES, f"bad Status in {body[:800]!r}"
        return r["Status"], r.get("DestinationAsset")

    def wait_for_status(self, task_id, timeout=30, version=11):
        """Polls until the task is no longer IN_PROGRESS; returns (Status,
        DestinationAsset). Fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            st, dest = self.status(task_id, version)
            if st != "IN_PROGRESS":
                return st, dest
            if time.monotonic() > deadline:
                pytest.fail(f"task {task_id} still IN_PROGRESS after {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)

    def wait_all(self, task_ids, timeout=60):
        """Polls every task until all are final; returns {id: (Status, Dest)}."""
        deadline = time.monotonic() + timeout
        pending, done = list(task_ids), {}
        while pending:
            still = []
            for tid in pending:
                st, dest = self.status(tid)
                if st == "IN_PROGRESS":
                    still.append(tid)
                else:
                    done[tid] = (st, dest)
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    pytest.fail(f"{len(pending)} tasks still IN_PROGRESS after {timeout}s, "
                                f"e.g. {pending[0]}\n{self.log_tail()}")
                time.sleep(0.1)
        return done

    def publish(self, source, destination, timeout=30):
        """LoadAsset, wait, require SUCCESS; returns DestinationAsset."""
        tid = self.load(source, destination)
        st, dest = self.wait_for_status(tid, timeout)
        assert st == "SUCCESS", f"load {source} -> {destination} ended {st}\n{self.log_tail()}"
        assert dest, f"load {tid} in SUCCESS without DestinationAsset"
        return dest

    def remove(self, destination, timeout=30):
        """PurgeAsset, wait, require SUCCESS."""
        tid = self.purge(destination)
        st, _ = self.wait_for_status(tid, timeout)
        assert st == "SUCCESS", f"purge {destination!r} ended {st}\n{self.log_tail()}"
        return tid


# ---- fixtures -----------------------------------------------------------

@pytest.fixture
def make_daemon(tmp_path, request):
    """make_daemon(**overrides) -> a started Daemon; each keyword is a
    section: make_daemon(server={"client_fault_status": "400"})."""
    daemons = []
    request.node._apubid_daemons = daemons

    def make(sub=None, start=True, **overrides):
        d = Daemon(tmp_path / (sub or f"d{len(daemons)}"), overrides)
        daemons.append(d)
        return d.start() if start else d

    yield make
    problems = []
    for d in daemons:
        if d.proc is None:
            continue
        rc = d.stop()
        if rc != 0:
            problems.append(f"apubid in {d.tmp} exited {rc} on SIGTERM\n{d.log_tail()}")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def daemon(make_daemon):
    return make_daemon()


@pytest.fixture(autouse=True)
def _time_limit():
    """A hard ceiling per test, so a hung exchange cannot stall the run."""
    def expired(signum, frame):
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT}s")
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches the daemon log to the report of a failing test."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for d in getattr(item, "_apubid_daemons", []):
            rep.sections.append((f"apubid log {d.tmp.name}", d.log_tail(120)))
