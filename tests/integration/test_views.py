"""Task views over HTTP GET: /tasks/ID.json, /tasks/ID.xml, /tasks (JSON),
/tasks.xml.

What is checked:

* a directory load from an FTP server whose first RETR of one file fails
  (451), retried to SUCCESS: its JSON view field by field (kind, status,
  state, masked source and destination, attempts and their errors, the
  history queued -> running -> retry -> running -> succeeded, items with
  sizes and the SHA-256 of the source files, progress, ISO 8601 times), the
  XML view parsed with xml.etree to the same values, status_only in both;
* an unknown or malformed TaskId is 404 in the view's format;
* a list pages through every task exactly once by following "next", the
  filters (state, kind) hold, a bad parameter value is 400;
* with [auth], a view without credentials is 401, with them 200.

The FTP server runs in this process (pyftpdlib, in a thread) so that a
fault can be injected into one command; it listens on 127.0.0.1 only.
"""
import base64
import hashlib
import json
import os
import re
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest

from conftest import TASKID_RE, post

# pyftpdlib imports modules Python 3.11 deprecates; not apubid's concern.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PASSWORD = "Vw-9sQ2pL"          # distinctive: finding it in a view is a leak
DEST_PASSWORD = "Dst-4kR7wZ"
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

FILES = {
    "a.ts": os.urandom(10_000),
    "b.ts": os.urandom(23_456),
    "sub/c.m3u8": b"#EXTM3U\nseg.ts\n",
}


class FaultyFtp:
    """pyftpdlib on 127.0.0.1 in a thread, serving `root` to user "apubi";
    the first RETR of each file named in `fail_once` is answered 451 (the
    server's "try again later"). `retrieved` lists every RETR's basename."""

    def __init__(self, root, fail_once=()):
        import logging
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer
        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        auth = DummyAuthorizer()
        auth.add_user("apubi", PASSWORD, str(root), perm="elr")
        self.retrieved = []
        failed = set()
        outer = self

        class Handler(FTPHandler):
            def ftp_RETR(self, file):
                name = os.path.basename(file)
                outer.retrieved.append(name)
                if name in fail_once and name not in failed:
                    failed.add(name)
                    self.respond("451 Injected fault: local error in processing.")
                    return None
                return super().ftp_RETR(file)

        Handler.authorizer = auth
        Handler.banner = "test FTP server ready."
        self.server = FTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.address[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.server.serve_forever(timeout=0.05, blocking=False)
        self.server.close_all()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def url(self, path, credentials=True):
        auth = f"apubi:{quote(PASSWORD, safe='')}@" if credentials else ""
        return f"ftp://{auth}127.0.0.1:{self.port}/{path}"


def get(d, path, headers=None):
    return post(d.port, None, headers or {}, path=path, method="GET")


def get_json(d, path, status=200):
    r = get(d, path)
    assert r.status == status, f"GET {path}: {r.status} {r.body[:500]!r}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    return json.loads(r.body)


def get_xml(d, path, status=200):
    r = get(d, path)
    assert r.status == status, f"GET {path}: {r.status} {r.body[:500]!r}"
    assert r.headers.get("Content-Type", "").startswith("application/xml"), r.headers
    return ET.fromstring(r.body)


def wait_final(d, tid, timeout=60):
    st, _ = d.wait_for_status(tid, timeout)
    return st


@pytest.fixture
def retried_load(tmp_path, make_daemon):
    """(daemon, task id, FaultyFtp) after a directory load whose b.ts failed
    once and succeeded on the retry."""
    root = tmp_path / "ftp"
    for rel, data in FILES.items():
        p = root / "repo" / "pkg" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    with FaultyFtp(root, fail_once={"b.ts"}) as ftp:
        d = make_daemon(start=False)
        d.sections["source"]["allow"] = [f"file://{d.ingest}/", ftp.url("repo/", False)]
        d.sections["transfer"] = {"retries": "3", "retry_delay": "1", "retry_max_delay": "1",
                                  "connect_timeout": "5", "stall_timeout": "10"}
        d.conf.write_text(d.config_text())
        d.start()
        dest = f"ftp://cdn:{DEST_PASSWORD}@CDN:21/data/cdn/views/pkg/"
        tid = d.load(ftp.url("repo/pkg/"), dest)
        assert wait_final(d, tid) == "SUCCESS", d.log_tail()
        assert ftp.retrieved.count("b.ts") == 2, ftp.retrieved
        yield d, tid, ftp


def test_json_view_of_a_load_retried_once(retried_load):
    d, tid, ftp = retried_load
    v = get_json(d, f"/tasks/{tid}.json")
    raw = json.dumps(v)
    assert PASSWORD not in raw and DEST_PASSWORD not in raw, "a password in the view"
    assert v["id"] == tid
    assert v["kind"] == "load"
    assert v["status"] == "SUCCESS"
    assert v["state"] == "succeeded"
    assert v["source"] == f"ftp://apubi:***@127.0.0.1:{ftp.port}/repo/pkg/"
    assert v["destination"] == "ftp://cdn:***@CDN:21/data/cdn/views/pkg/"
    assert v["destination_asset"] == f"{d.root_url}views/pkg/"
    assert v["reason"] is None
    for k in ("created", "updated", "first_started"):
        assert ISO_RE.match(v[k]), (k, v[k])
    assert v["created"] <= v["first_started"] <= v["updated"]
    assert "next_attempt" not in v      # only a task waiting to retry has one

    assert v["attempts"] == 2
    log = v["attempt_log"]
    assert [a["n"] for a in log] == [1, 2], log
    assert log[0]["error"] and "b.ts" in log[0]["error"], log[0]
    assert "451" in log[0]["error"], log[0]
    assert log[1]["error"] is None, log[1]
    for a in log:
        assert ISO_RE.match(a["started"]) and ISO_RE.match(a["ended"]), a
        assert a["started"] <= a["ended"]
    assert log[0]["ended"] <= log[1]["started"]

    states = [h["state"] for h in v["history"]]
    assert states == ["queued", "running", "retry", "running", "succeeded"], v["history"]
    assert all(ISO_RE.match(h["at"]) for h in v["history"])
    ats = [h["at"] for h in v["history"]]
    assert ats == sorted(ats), ats
    assert "b.ts" in (v["history"][2]["detail"] or ""), v["history"][2]

    files = {i["path"]: i for i in v["items"] if not i["is_dir"]}
    assert sorted(files) == sorted(FILES), v["items"]
    for rel, data in FILES.items():
        it = files[rel]
        assert it["state"] == "done", it
        assert it["size"] == len(data), it
        assert it["sha256"] == hashlib.sha256(data).hexdigest(), it
    dirs = [i for i in v["items"] if i["is_dir"]]
    assert all(i["path"] == "sub" for i in dirs), dirs

    total = sum(len(b) for b in FILES.values())
    assert v["progress"] == {"bytes_done": total, "bytes_total": total,
                             "files_done": len(FILES), "files_total": len(FILES)}, v["progress"]
    assert v["notification"]["state"] == "none"
    assert v["notification"]["attempts"] == 0


def test_xml_view_says_the_same_as_the_json_view(retried_load):
    d, tid, ftp = retried_load
    v = get_json(d, f"/tasks/{tid}.json")
    x = get_xml(d, f"/tasks/{tid}.xml")
    assert x.tag == "task" and x.get("id") == tid
    for k in ("kind", "status", "state", "source", "destination", "destination_asset",
              "created", "updated", "first_started"):
        assert x.findtext(k) == v[k], k
    assert x.find("reason") is None          # null members are left out
    assert x.findtext("attempts") == "2"
    assert PASSWORD not in ET.tostring(x, encoding="unicode")
    att = x.findall("attempt_log/attempt")
    assert [a.findtext("n") for a in att] == ["1", "2"]
    assert "b.ts" in att[0].findtext("error")
    assert att[1].find("error") is None
    assert [e.findtext("state") for e in x.findall("history/event")] == \
        ["queued", "running", "retry", "running", "succeeded"]
    items = {i.findtext("path"): i for i in x.findall("items/item")
             if i.findtext("is_dir") == "false"}
    assert sorted(items) == sorted(FILES)
    for rel, data in FILES.items():
        assert items[rel].findtext("size") == str(len(data))
        assert items[rel].findtext("sha256") == hashlib.sha256(data).hexdigest()
        assert items[rel].findtext("state") == "done"
    p = x.find("progress")
    assert int(p.findtext("files_done")) == len(FILES)
    assert x.findtext("notification/state") == "none"


def test_status_only_in_both_formats(retried_load):
    d, tid, _ = retried_load
    assert get_json(d, f"/tasks/{tid}.json?status_only=true") == {"id": tid, "status": "SUCCESS"}
    x = get_xml(d, f"/tasks/{tid}.xml?status_only=true")
    assert x.tag == "task" and x.get("id") == tid
    assert [c.tag for c in x] == ["status"] and x.findtext("status") == "SUCCESS"
    # false is the whole view; lower-case TaskIds are accepted like GetTaskStatus does
    assert "items" in get_json(d, f"/tasks/{tid.lower()}.json?status_only=false")


def test_unknown_or_malformed_task_is_404_in_the_views_format(daemon):
    unknown = "00000000-0000-4000-8000-000000000000"
    e = get_json(daemon, f"/tasks/{unknown}.json", 404)
    assert unknown in e["error"] and "does not exist" in e["error"]
    x = get_xml(daemon, f"/tasks/{unknown}.xml", 404)
    assert x.tag == "error" and unknown in x.text
    for bad in ("not-a-task.json", f"{unknown}.txt", f"{unknown}", "x/../y.json"):
        r = get(daemon, f"/tasks/{bad}")
        assert r.status == 404, (bad, r.status, r.body[:300])
    r = get(daemon, f"/tasks/{unknown}.json?status_only=maybe")
    assert r.status == 400 and "status_only" in json.loads(r.body)["error"]
    r = get(daemon, f"/tasks/{unknown}.json?verbose=1")
    assert r.status == 400 and "verbose" in json.loads(r.body)["error"]


def test_list_pages_through_every_task_once_and_filters_hold(daemon):
    d = daemon
    (d.ingest / "f.ts").write_bytes(b"x" * 1234)
    purges = [d.purge(f"gone{i}.ts") for i in range(8)]
    load = d.load(f"file://{d.ingest}/f.ts", "f.ts")
    d.wait_all(purges + [load])
    everything = set(purges + [load])

    seen, pages, path = [], 0, "/tasks?limit=3"
    while True:
        page = get_json(d, path)
        pages += 1
        assert pages <= 10, "paging does not end"
        assert len(page["tasks"]) <= 3
        seen += [t["id"] for t in page["tasks"]]
        if page["next"] is None:
            break
        assert len(page["tasks"]) == 3, page
        assert re.fullmatch(r"\d+", page["next"]), page["next"]
        path = f"/tasks?limit=3&before={page['next']}"
    assert len(seen) == len(set(seen)), f"a task on two pages: {seen}"
    assert set(seen) == everything
    assert pages == 3
    assert seen[0] == load, "newest first"

    summary = get_json(d, "/tasks?limit=1")["tasks"][0]
    assert summary["id"] == load and summary["kind"] == "load"
    assert summary["progress"]["bytes_total"] == 1234
    assert "items" not in summary and "history" not in summary

    loads = get_json(d, "/tasks.json?kind=load")["tasks"]
    assert [t["id"] for t in loads] == [load]
    purged = get_json(d, "/tasks?kind=purge&state=succeeded&limit=1000")
    assert {t["id"] for t in purged["tasks"]} == set(purges) and purged["next"] is None
    assert get_json(d, "/tasks?state=failed")["tasks"] == []

    x = get_xml(d, "/tasks.xml?limit=4")
    assert x.tag == "tasks" and len(x.findall("task")) == 4 and x.get("next")
    rest = get_xml(d, f"/tasks.xml?limit=100&before={x.get('next')}")
    assert rest.get("next") is None and len(rest.findall("task")) == len(everything) - 4
    assert all(TASKID_RE.match(t.get("id")) for t in rest.findall("task"))


@pytest.mark.parametrize("query", ["state=bogus", "kind=copy", "limit=0", "limit=1001",
                                   "limit=ten", "before=-5", "before=", "colour=red",
                                   "limit=%zz"])
def test_bad_list_parameter_is_400(daemon, query):
    r = get(daemon, f"/tasks?{query}")
    assert r.status == 400, (query, r.status, r.body[:300])
    assert r.headers.get("Content-Type", "").startswith("application/json")
    assert json.loads(r.body)["error"]
    r = get(daemon, f"/tasks.xml?{query}")
    assert r.status == 400
    assert ET.fromstring(r.body).tag == "error"


def test_views_need_credentials_under_auth(tmp_path, make_daemon):
    pw = "v1ews-only secret"
    p = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=pw.encode() + b"\n",
                       capture_output=True, check=True, timeout=30)
    users = tmp_path / "users"
    users.write_text(f"carol:{p.stdout.decode().strip()}\n")
    users.chmod(0o600)
    d = make_daemon(auth={"users_file": str(users)})
    good = {"Authorization": "Basic " + base64.b64encode(f"carol:{pw}".encode()).decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"carol:nope").decode()}
    for path in ("/tasks", "/tasks.xml", "/tasks/00000000-0000-4000-8000-000000000000.json"):
        assert get(d, path).status == 401, path
        assert get(d, path, bad).status == 401, path
    assert get(d, "/tasks", good).status == 200
    assert get(d, "/tasks/00000000-0000-4000-8000-000000000000.json", good).status == 404
