"""Remote transfers: apubid fetching from and publishing to real FTP, FTPS,
SFTP and HTTP(S)/WebDAV servers on 127.0.0.1 (tests/integration/servers.py).

What is checked, for every protocol where it applies:

* a file and a nested directory fetched from a server land in the local
  root byte for byte, and a local file or directory lands on a remote root,
  under a temporary (".NAME.apubid-TASKID.tmp") or staging
  (".NAME.apubid-TASKID.stage/") name first, then renamed into place;
  republishing replaces; the SHA-256 stored on each item of the task store
  is the SHA-256 of the source;
* GetTaskStatus answers the root URL without credentials + the path, and
  PurgeAsset takes it back; purge removes a file or a tree, an absent asset
  is SUCCESS;
* permanent failures (missing source, wrong password or key) fail at once
  (one attempt, one login) with a reason naming the file and the server
  and never the password; transient ones (server down, connection cut,
  stalled) are retried and resumed to SUCCESS;
* limits: task_timeout, max_per_host, peak memory on a 1 GiB file;
* manifests (.m3u8, .mpd) are uploaded last, deepest first;
* the docs' FTP fixtures publish end to end between two FTP servers.

The task store is read directly (read-only; apubid runs SQLite in WAL mode):
table task (state 3 succeeded, 4 failed; reason, attempts, bytes_*,
files_*), item (one per file: path, is_dir, size, state 1 = done, sha256),
attempt (one per attempt: started_ms, ended_ms, error).

Every wait has a deadline; only 127.0.0.1 is contacted.
"""
import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import (FIXTURES, assert_fault, hidden_entries, parse_response, read_tree,
                      sha256, soap_headers, write_tree)
from servers import FtpServer, SftpServer, WebDavServer, free_port, run_tool

# Distinctive passwords, so that finding one in a log or a reason means a leak.
PASSWORD = "Pw-7f3Kq9zX"
WRONG_PASSWORD = "Wrong-5Zt8vB"

KINDS = ("ftp", "ftps", "sftp", "http", "https")
DIR_KINDS = ("ftp", "ftps", "sftp")          # directory sources are listable
PASSWORD_KINDS = ("ftp", "ftps", "http", "https")

MiB = 1 << 20

TREE = {
    "master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv1/index.m3u8\n",
    "v1/index.m3u8": b"#EXTM3U\nseg1.ts\nseg2.ts\n",
    "v1/seg1.ts": os.urandom(150_000),
    "v1/seg2.ts": os.urandom(70_001),
    "v1/audio/deeper/a.aac": os.urandom(3_000),
    "v2/seg1.ts": os.urandom(20_000),
    "zero.bin": b"",
}

MANIFEST_RE = re.compile(r"\.(m3u8|mpd)$")


# ---- servers and URLs ------------------------------------------------------

def make_server(kind, tmp_path, **kw):
    """An FtpServer / SftpServer / WebDavServer for `kind` (not started)."""
    if kind in ("ftp", "ftps"):
        kw.setdefault("password", PASSWORD)
        return FtpServer(tmp_path, tls=(kind == "ftps"), **kw)
    if kind == "sftp":
        return SftpServer(tmp_path, **kw)
    if kind in ("http", "https"):
        kw.setdefault("password", PASSWORD)
        return WebDavServer(tmp_path, tls=(kind == "https"), **kw)
    raise ValueError(kind)


def url(server, rel="", creds=True):
    """The apubid URL of `rel` on `server`: like server.url() but ftps://
    for an explicit-TLS FTP server."""
    u = server.url(rel, credentials=creds)
    if isinstance(server, FtpServer) and server.tls:
        u = "ftps" + u[len("ftp"):]
    return u


def url_with_password(server, rel, password):
    """url() with another password in the userinfo."""
    u = url(server, rel, creds=False)
    scheme, rest = u.split("://", 1)
    return f"{scheme}://{quote(server.user, safe='')}:{quote(password, safe='')}@{rest}"


def cred_url(server, password=None):
    """A [credentials] url line for `server`: scheme://user[:password]@host:port/."""
    scheme = url(server, "", creds=False).split("://", 1)[0]
    pw = server.password if password is None else password
    auth = quote(server.user, safe="") + (f":{quote(pw, safe='')}" if pw else "")
    return f"{scheme}://{auth}@{server.host}:{server.port}/"


def transfer_conf(tmp_path, *servers, **kw):
    """A [transfer] section that lets apubid reach `servers` (CA bundle,
    SSH keys, known_hosts) with quick retries; keywords override."""
    t = {"retries": "5", "retry_delay": "1", "retry_max_delay": "2",
         "retry_max_time": "60", "connect_timeout": "5", "stall_timeout": "10"}
    cas = [s.cafile for s in servers if getattr(s, "cafile", None)]
    if len(cas) == 1:
        t["ca_file"] = str(cas[0])
    elif cas:
        bundle = Path(tmp_path) / "ca-bundle.pem"
        bundle.write_text("".join(Path(c).read_text() for c in cas))
        t["ca_file"] = str(bundle)
    for s in servers:
        if isinstance(s, SftpServer):
            t["ssh_private_key"] = str(s.key_path)
            t["ssh_public_key"] = str(s.pubkey_path)
            t["ssh_known_hosts"] = str(s.known_hosts)
    t.update({k: str(v) for k, v in kw.items()})
    return t


def start_daemon(make_daemon, sources=(), root=None, transfer=None, credentials=(),
                 dest_allow=None, workers=None):
    """A started apubid: [source] allow = its ingest/ plus `sources`,
    [destination] root = `root` (default: its local cdn/), [transfer] and
    [credentials] url lines as given."""
    d = make_daemon(start=False)
    d.sections["source"]["allow"] = [f"file://{d.ingest}/"] + list(sources)
    if root is not None:
        d.sections["destination"]["root"] = root
        d.sections["destination"].pop("allow", None)
    if dest_allow is not None:
        d.sections["destination"]["allow"] = dest_allow
    if workers is not None:
        d.sections["workers"]["count"] = str(workers)
    if transfer:
        d.sections["transfer"] = dict(transfer)
    if credentials:
        d.sections["credentials"] = {"url": list(credentials)}
    d.conf.write_text(d.config_text())
    os.chmod(d.conf, 0o600)
    return d.start()


# ---- the task store ----------------------------------------------------------

def _db(d):
    con = sqlite3.connect(f"file:{d.tmp}/apubid.db?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    return con


def task_row(d, tid):
    with closing(_db(d)) as con:
        row = con.execute("SELECT * FROM task WHERE id = ?", (tid,)).fetchone()
    assert row is not None, f"task {tid} not in the store"
    return dict(row)


def item_rows(d, tid):
    with closing(_db(d)) as con:
        return [dict(r) for r in con.execute(
            "SELECT * FROM item WHERE task_id = ? ORDER BY seq", (tid,))]


def attempt_rows(d, tid):
    with closing(_db(d)) as con:
        return [dict(r) for r in con.execute(
            "SELECT * FROM attempt WHERE task_id = ? ORDER BY n", (tid,))]


def task_count(d):
    with closing(_db(d)) as con:
        return con.execute("SELECT count(*) FROM task").fetchone()[0]


def describe(d, tid):
    """Everything the store says about a task, for assertion messages."""
    try:
        return (f"task={task_row(d, tid)}\nattempts={attempt_rows(d, tid)}\n"
                f"items={item_rows(d, tid)}")
    except Exception as e:     # the store itself is what is wrong
        return f"(store unreadable: {e})"


def assert_items(d, tid, expected):
    """The task's file items are exactly `expected` ({path relative to the
    asset ("" for a single file): bytes}), each done, with its size and the
    SHA-256 of its bytes; the task's counters agree."""
    rows = item_rows(d, tid)
    files = {r["path"]: r for r in rows if not r["is_dir"]}
    assert sorted(files) == sorted(expected), \
        f"items {sorted(files)} != files {sorted(expected)}\n{describe(d, tid)}"
    for path, data in expected.items():
        r = files[path]
        assert r["state"] == 1, f"item {path!r} not done: {r}"
        assert r["size"] == len(data), f"item {path!r} size {r['size']} != {len(data)}"
        assert r["sha256"] == hashlib.sha256(data).hexdigest(), \
            f"item {path!r} sha256 {r['sha256']} != sha256 of the source"
    t = task_row(d, tid)
    total = sum(len(v) for v in expected.values())
    assert t["state"] == 3, f"task state {t['state']}, expected 3 (succeeded)\n{describe(d, tid)}"
    assert t["files_total"] == t["files_done"] == len(expected), describe(d, tid)
    assert t["bytes_total"] == t["bytes_done"] == total, describe(d, tid)


def assert_no_secret(d, *secrets):
    """No password (raw or percent-encoded) in apubid's log or in any
    reason, note, result or error the store keeps."""
    texts = {"apubid log": d.log_text()}
    with closing(_db(d)) as con:
        for table, cols in (("task", "reason, note, result"), ("attempt", "error"),
                            ("item", "error")):
            for row in con.execute(f"SELECT {cols} FROM {table}"):
                texts.setdefault(table, "")
                texts[table] += " ".join(str(v) for v in row if v) + "\n"
    for secret in secrets:
        for form in {secret, quote(secret, safe="")}:
            for where, text in texts.items():
                assert form not in text, f"password {form!r} appears in the {where}"


# ---- waiting ---------------------------------------------------------------------

def wait_until(predicate, timeout, what):
    end = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        assert time.monotonic() < end, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


def finish(d, tid, timeout=30):
    """Waits for a final status; returns (status, DestinationAsset)."""
    return d.wait_for_status(tid, timeout)


def succeed(d, tid, timeout=30):
    st, dest = finish(d, tid, timeout)
    assert st == "SUCCESS", f"task ended {st}\n{describe(d, tid)}\n{d.log_tail()}"
    assert dest, "SUCCESS without DestinationAsset"
    return dest


def fail(d, tid, timeout=30):
    st, dest = finish(d, tid, timeout)
    assert st == "FAILED", f"task ended {st}, expected FAILED\n{describe(d, tid)}"
    assert dest is None, f"FAILED task answered DestinationAsset {dest!r}"
    reason = task_row(d, tid)["reason"]
    assert reason, f"FAILED without a reason\n{describe(d, tid)}"
    return reason


def hidden_size(root):
    """Largest file below `root` whose path has a component starting with
    '.' (a temporary or staging name): how far a transfer got."""
    best = 0
    root = Path(root)
    for dirpath, _, names in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for n in names:
            if n.startswith(".") or any(p.startswith(".") for p in rel.parts):
                try:
                    best = max(best, (Path(dirpath) / n).stat().st_size)
                except FileNotFoundError:
                    pass
    return best


def progress(d, tid, root):
    """Bytes transferred so far: the store's bytes_done or the partial file."""
    try:
        done = task_row(d, tid)["bytes_done"] or 0
    except Exception:
        done = 0
    return max(done, hidden_size(root))


def big_payload(size):
    """`size` random bytes (no repeated block: a misplaced resume offset shows)."""
    return os.urandom(size)


def log_since_last_start(server):
    """The server's log since its most recent start."""
    text = server.log()
    return text[text.rfind("start #"):]


# =====================================================================================
# Remote source -> local root
# =====================================================================================

@pytest.mark.parametrize("kind", KINDS)
def test_file_from_remote_source_lands_byte_identical_with_its_sha256(kind, tmp_path,
                                                                      make_daemon):
    data = os.urandom(300_001)
    with make_server(kind, tmp_path) as s:
        write_tree(s.root, {"repo/movie.ts": data})
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                         transfer=transfer_conf(tmp_path, s))
        tid = d.load(url(s, "repo/movie.ts"), "movies/movie.ts")
        dest = succeed(d, tid)
    assert dest == f"file://{d.cdn}/movies/movie.ts"
    assert (d.cdn / "movies/movie.ts").read_bytes() == data
    assert hidden_entries(d.cdn) == []
    assert_items(d, tid, {"": data})
    assert task_row(d, tid)["attempts"] == 1
    assert_no_secret(d, PASSWORD)


@pytest.mark.parametrize("kind", DIR_KINDS)
def test_nested_directory_from_remote_source_lands_with_its_structure(kind, tmp_path,
                                                                      make_daemon):
    with make_server(kind, tmp_path) as s:
        write_tree(s.root / "repo/pkg", TREE)
        (s.root / "repo/pkg/empty/sub").mkdir(parents=True)
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                         transfer=transfer_conf(tmp_path, s))
        tid = d.load(url(s, "repo/pkg/"), "vod/pkg/")
        dest = succeed(d, tid)
    assert dest == f"file://{d.cdn}/vod/pkg/"
    assert read_tree(d.cdn / "vod/pkg") == TREE
    assert (d.cdn / "vod/pkg/empty/sub").is_dir(), "an empty source directory was not copied"
    assert hidden_entries(d.cdn) == []
    assert_items(d, tid, TREE)
    assert_no_secret(d, PASSWORD)


@pytest.mark.parametrize("kind", ["ftp", "sftp"])
def test_non_ascii_names_from_a_remote_directory_are_kept_byte_for_byte(kind, tmp_path,
                                                                        make_daemon):
    files = {"café/日本語 ファイル.ts": os.urandom(5000), "naïve.m3u8": b"#EXTM3U\n"}
    with make_server(kind, tmp_path) as s:
        write_tree(s.root / "repo/intl", files)
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                         transfer=transfer_conf(tmp_path, s))
        tid = d.load(url(s, "repo/intl/"), "intl/")
        succeed(d, tid)
    assert read_tree(d.cdn / "intl") == files
    assert_items(d, tid, files)


@pytest.mark.parametrize("kind", ["ftp", "sftp", "https"])
def test_source_credentials_may_come_from_the_credentials_section(kind, tmp_path,
                                                                  make_daemon):
    # a password that must be percent-encoded in the URL
    password = "p@ss:w/rd%-" + PASSWORD
    kw = {} if kind == "sftp" else {"password": password}
    data = os.urandom(10_000)
    with make_server(kind, tmp_path, **kw) as s:
        write_tree(s.root, {"repo/a.ts": data})
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                         transfer=transfer_conf(tmp_path, s),
                         credentials=[cred_url(s)])
        tid = d.load(url(s, "repo/a.ts", creds=False), "a.ts")
        succeed(d, tid)
    assert (d.cdn / "a.ts").read_bytes() == data
    assert_items(d, tid, {"": data})
    assert_no_secret(d, password)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_directory_source_over_http_is_refused_with_a_client_fault(scheme, tmp_path,
                                                                   make_daemon):
    port = free_port()
    d = start_daemon(make_daemon, sources=[f"{scheme}://127.0.0.1:{port}/assets/"],
                     transfer={"retries": "1"})
    reply = d.load_reply(f"{scheme}://apubi:{PASSWORD}@127.0.0.1:{port}/assets/pkg/", "pkg/")
    f = assert_fault(reply, "Client", 500)
    assert "director" in f.string.lower(), f"the fault does not say why: {f.string!r}"
    assert PASSWORD not in reply.body.decode("utf-8", "replace")
    assert task_count(d) == 0, "a refused load was recorded"
    # the same server's files are accepted: the refusal is about the directory
    tid = d.load(f"{scheme}://apubi:{PASSWORD}@127.0.0.1:{port}/assets/a.ts", "a.ts")
    fail(d, tid)          # nobody listens there
    assert_no_secret(d, PASSWORD)


# =====================================================================================
# Local source -> remote root
# =====================================================================================

def upload_log(s):
    """(what the server logged about uploads, as text) for temp-name checks."""
    if isinstance(s, FtpServer):
        return s.log()
    if isinstance(s, WebDavServer):
        return s.access_log()
    return ""


@pytest.mark.parametrize("kind", KINDS)
def test_local_file_is_published_to_remote_root_under_a_temporary_name(kind, tmp_path,
                                                                       make_daemon):
    data = os.urandom(250_000)
    with make_server(kind, tmp_path) as s:
        s.path("cdn").mkdir()
        d = start_daemon(make_daemon, root=url(s, "cdn/"), transfer=transfer_conf(tmp_path, s))
        (d.ingest / "movie.ts").write_bytes(data)
        tid = d.load(f"file://{d.ingest}/movie.ts", "movies/movie.ts")
        dest = succeed(d, tid)
        assert dest == url(s, "cdn/movies/movie.ts", creds=False)
        assert s.path("cdn/movies/movie.ts").read_bytes() == data
        assert hidden_entries(s.path("cdn")) == []
        assert_items(d, tid, {"": data})
        tmpname = re.escape(f".movie.ts.apubid-{tid}.tmp")
        log = upload_log(s)
        if isinstance(s, FtpServer):
            assert re.search(rf"STOR {re.escape(str(s.path('cdn/movies')))}/{tmpname} "
                             r"completed=1", log, re.I), "no STOR under the temporary name"
            assert re.search(rf"<- RNFR .*{tmpname}", log, re.I), "no RNFR of the temporary name"
        elif isinstance(s, WebDavServer):
            assert re.search(rf'"PUT /cdn/movies/{tmpname} HTTP/1\.1" 20[14] ', log, re.I), log
            assert re.search(rf'"MOVE /cdn/movies/{tmpname} HTTP/1\.1" 20[14] ', log, re.I), log
        # PurgeAsset takes the answered DestinationAsset back
        d.remove(dest)
        assert not s.path("cdn/movies/movie.ts").exists()
        assert s.path("cdn").is_dir()
    assert_no_secret(d, PASSWORD)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_file_is_published_to_remote_root(kind, tmp_path, make_daemon):
    with make_server(kind, tmp_path) as s:
        s.path("cdn").mkdir()
        d = start_daemon(make_daemon, root=url(s, "cdn/"), transfer=transfer_conf(tmp_path, s))
        (d.ingest / "empty.vtt").write_bytes(b"")
        tid = d.load(f"file://{d.ingest}/empty.vtt", "subs/empty.vtt")
        assert succeed(d, tid) == url(s, "cdn/subs/empty.vtt", creds=False)
        assert s.path("cdn/subs/empty.vtt").read_bytes() == b""
        assert hidden_entries(s.path("cdn")) == []
    assert_items(d, tid, {"": b""})
    assert task_row(d, tid)["attempts"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_local_directory_is_published_to_remote_root_and_republish_replaces_it(
        kind, tmp_path, make_daemon):
    first = dict(TREE, **{"old/only-in-first.ts": b"old"})
    second = {k: (v + b"-2" if k.endswith(".ts") else v) for k, v in TREE.items()}
    with make_server(kind, tmp_path) as s:
        s.path("cdn").mkdir()
        d = start_daemon(make_daemon, root=url(s, "cdn/"), transfer=transfer_conf(tmp_path, s))
        write_tree(d.ingest / "pkg1", first)
        write_tree(d.ingest / "pkg2", second)
        tid1 = d.load(f"file://{d.ingest}/pkg1/", "vod/pkg/")
        dest = succeed(d, tid1)
        assert dest == url(s, "cdn/vod/pkg/", creds=False)
        assert read_tree(s.path("cdn/vod/pkg")) == first
        assert_items(d, tid1, first)
        tid2 = d.load(f"file://{d.ingest}/pkg2/", "vod/pkg/")
        assert succeed(d, tid2) == dest
        assert read_tree(s.path("cdn/vod/pkg")) == second, "republish did not replace"
        assert hidden_entries(s.path("cdn")) == []
        assert_items(d, tid2, second)
        stage = re.escape(f".pkg.apubid-{tid2}.stage")
        if isinstance(s, FtpServer):
            assert re.search(rf"STOR {re.escape(str(s.path('cdn/vod')))}/{stage}/", s.log(), re.I)
        elif isinstance(s, WebDavServer):
            assert re.search(rf'"PUT /cdn/vod/{stage}/', s.access_log(), re.I)
        d.remove(dest)
        assert not s.path("cdn/vod/pkg").exists()
    assert_no_secret(d, PASSWORD)


def test_ftps_uploads_in_parallel_reach_the_server_whole_every_time(tmp_path, make_daemon):
    # Four files in flight at once keep the server busy: it may read a data
    # connection's TLS handshake only after apubid has sent the whole file,
    # and under TLS 1.3 its session tickets follow then. A client that has
    # closed the connection by then answers them with a reset, and the
    # server takes what it had read for the whole file (226 all the same).
    # Every upload must end with the TLS close_notify, read by the server.
    tree = {f"v{i % 2}/s{i}.ts": os.urandom(150_000 + i) for i in range(8)}
    with make_server("ftps", tmp_path) as s:
        s.path("cdn").mkdir()
        d = start_daemon(make_daemon, root=url(s, "cdn/"),
                         transfer=transfer_conf(tmp_path, s, parallel=4))
        write_tree(d.ingest / "pkg", tree)
        for round in range(6):
            tid = d.load(f"file://{d.ingest}/pkg/", f"vod/pkg{round}/")
            assert succeed(d, tid, timeout=120) == url(s, f"cdn/vod/pkg{round}/", creds=False)
            assert read_tree(s.path(f"cdn/vod/pkg{round}")) == tree
            assert task_row(d, tid)["attempts"] == 1, f"round {round}: a file was stored short"
            assert_items(d, tid, tree)
        cut = re.findall(r".*recv\(\), err: SysCallError.*", s.log())
        assert not cut, "a data connection ended without the TLS close_notify:\n" + "\n".join(cut)


@pytest.mark.parametrize("kind", ["ftp", "http"])
def test_remote_root_credentials_may_come_from_the_credentials_section(kind, tmp_path,
                                                                       make_daemon):
    data = os.urandom(20_000)
    with make_server(kind, tmp_path) as s:
        s.path("cdn").mkdir()
        d = start_daemon(make_daemon, root=url(s, "cdn/", creds=False),
                         transfer=transfer_conf(tmp_path, s), credentials=[cred_url(s)])
        (d.ingest / "a.ts").write_bytes(data)
        dest = succeed(d, d.load(f"file://{d.ingest}/a.ts", "a.ts"))
        assert dest == url(s, "cdn/a.ts", creds=False)
        assert s.path("cdn/a.ts").read_bytes() == data
    assert_no_secret(d, PASSWORD)


def test_local_destination_path_is_refused_with_a_remote_root(tmp_path, make_daemon):
    with FtpServer(tmp_path, password=PASSWORD) as s:
        s.path("cdn").mkdir()
        d = start_daemon(make_daemon, root=url(s, "cdn/"), transfer=transfer_conf(tmp_path, s))
        (d.ingest / "a.ts").write_bytes(b"a")
        reply = d.load_reply(f"file://{d.ingest}/a.ts", str(s.path("cdn/a.ts")))
        assert_fault(reply, "Client", 500)
        assert task_count(d) == 0
        assert not s.path("cdn/a.ts").exists()


@pytest.mark.parametrize("kind", ["ftp", "https"])
def test_public_url_is_answered_for_a_remote_root_and_purge_takes_it_back(kind, tmp_path,
                                                                          make_daemon):
    public = "http://127.0.0.1:9/vod/"          # a name only: never contacted
    with make_server(kind, tmp_path) as s:
        s.path("cdn").mkdir()
        d = make_daemon(start=False)
        d.sections["destination"] = {"root": url(s, "cdn/"), "public_url": public}
        d.sections["transfer"] = transfer_conf(tmp_path, s)
        d.conf.write_text(d.config_text())
        d.start()
        write_tree(d.ingest / "pkg", {"index.m3u8": b"#EXTM3U\n", "a.ts": b"a" * 1000})
        dest = succeed(d, d.load(f"file://{d.ingest}/pkg/", "shows/pkg/"))
        assert dest == public + "shows/pkg/"
        assert read_tree(s.path("cdn/shows/pkg")) == {"index.m3u8": b"#EXTM3U\n",
                                                     "a.ts": b"a" * 1000}
        d.remove(dest)
        assert not s.path("cdn/shows/pkg").exists()
        assert s.path("cdn/shows").is_dir()


@pytest.mark.parametrize("kind", ["ftp", "http"])
def test_hls_package_is_uploaded_manifests_last_deepest_first(kind, tmp_path, make_daemon):
    pkg = {
        "master.m3u8": b"#EXTM3U\nv1/index.m3u8\nv2/index.m3u8\n",
        "v1/index.m3u8": b"#EXTM3U\nseg1.ts\nseg2.ts\n",
        "v1/seg1.ts": os.urandom(40_000),
        "v1/seg2.ts": os.urandom(40_000),
        "v2/index.m3u8": b"#EXTM3U\nseg1.ts\nseg2.ts\n",
        "v2/seg1.ts": os.urandom(40_000),
        "v2/seg2.ts": os.urandom(40_000),
        "v2/sub/deep.m3u8": b"#EXTM3U\n",
        "dash/manifest.mpd": b"<MPD/>",
        "dash/init.mp4": os.urandom(1000),
        "zz-last-alphabetically.ts": os.urandom(1000),
    }
    with make_server(kind, tmp_path) as s:
        s.path("cdn").mkdir()
        d = start_daemon(make_daemon, root=url(s, "cdn/"), transfer=transfer_conf(tmp_path, s))
        write_tree(d.ingest / "show", pkg)
        tid = d.load(f"file://{d.ingest}/show/", "vod/show/")
        succeed(d, tid)
        assert read_tree(s.path("cdn/vod/show")) == pkg
        stage = f".show.apubid-{tid}.stage/"
        if kind == "ftp":
            lines = s.log().splitlines()
            prefix = str(s.path("cdn/vod")) + "/"
            uploads = [(i, m.group(1)) for i, l in enumerate(lines)
                       for m in [re.search(r"STOR (\S+) completed=1", l)] if m]
            renames = [i for i, l in enumerate(lines) if "<- RNTO" in l]
        else:
            lines = s.access_log().splitlines()
            prefix = "/cdn/vod/"
            uploads = [(i, m.group(1)) for i, l in enumerate(lines)
                       for m in [re.search(r'"PUT (\S+) HTTP/1\.1" 20[14] ', l)] if m]
            renames = [i for i, l in enumerate(lines) if '"MOVE ' in l]
    order = []
    for _, path in uploads:
        assert path.lower().startswith((prefix + stage).lower()), \
            f"{path} uploaded outside the staging directory {prefix + stage}"
        rel = path[len(prefix + stage):]
        head, _, base = rel.rpartition("/")
        m = re.match(r"^\.(.+)\.apubid-[0-9A-Fa-f-]+\.tmp$", base)   # a temp name inside
        order.append((head + "/" if head else "") + (m.group(1) if m else base))
    assert sorted(set(order)) == sorted(pkg), f"uploads {order}"
    manifests = [p for p in order if MANIFEST_RE.search(p)]
    others = [p for p in order if not MANIFEST_RE.search(p)]
    last_other = max(order.index(p) for p in others)
    first_manifest = min(order.index(p) for p in manifests)
    assert last_other < first_manifest, f"a manifest went before a media file: {order}"
    depths = [p.count("/") for p in manifests]
    assert depths == sorted(depths, reverse=True), f"manifests not deepest first: {manifests}"
    assert manifests[-1] == "master.m3u8"
    assert renames and max(renames) > max(i for i, _ in uploads), \
        "the package was not renamed into place after its last upload"


# =====================================================================================
# Purge on a remote root
# =====================================================================================

@pytest.mark.parametrize("kind", KINDS)
def test_purge_removes_a_remote_file_and_a_tree_and_absent_is_success(kind, tmp_path,
                                                                      make_daemon):
    with make_server(kind, tmp_path) as s:
        write_tree(s.path("cdn"), {"a/x.ts": b"x", "a/keep.ts": b"keep"})
        write_tree(s.path("cdn/pkg"), TREE)
        s.path("cdn/pkg/empty/dir").mkdir(parents=True)
        d = start_daemon(make_daemon, root=url(s, "cdn/"), transfer=transfer_conf(tmp_path, s))
        # a file, by the URL GetTaskStatus would answer
        d.remove(url(s, "cdn/a/x.ts", creds=False))
        assert not s.path("cdn/a/x.ts").exists()
        assert s.path("cdn/a/keep.ts").read_bytes() == b"keep"
        # a whole tree, by relative path
        d.remove("pkg/")
        assert not s.path("cdn/pkg").exists()
        assert hidden_entries(s.path("cdn")) == []
        assert sorted(p.name for p in s.path("cdn").iterdir()) == ["a"]
        # absent file and directory: SUCCESS, with a note
        for absent in ("nothing/here.ts", "no-such-dir/"):
            tid = d.remove(absent)
            assert task_row(d, tid)["note"], f"purge of absent {absent} has no note"
    assert_no_secret(d, PASSWORD)


# =====================================================================================
# Permanent failures: at once, one attempt, a precise reason
# =====================================================================================

@pytest.mark.parametrize("kind", KINDS)
def test_missing_remote_source_fails_at_once_naming_file_and_server(kind, tmp_path,
                                                                    make_daemon):
    with make_server(kind, tmp_path) as s:
        s.path("repo").mkdir()
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                         transfer=transfer_conf(tmp_path, s))
        tid = d.load(url(s, "repo/absent-movie.ts"), "x/absent-movie.ts")
        reason = fail(d, tid)
    assert "absent-movie.ts" in reason, reason
    assert f"127.0.0.1:{s.port}" in reason, f"reason does not name the server: {reason}"
    assert re.search(r"does not exist|550|404|no such file", reason, re.I), reason
    t = task_row(d, tid)
    assert t["attempts"] == 1 and len(attempt_rows(d, tid)) == 1, describe(d, tid)
    assert t["state"] == 4
    assert not (d.cdn / "x/absent-movie.ts").exists()
    assert hidden_entries(d.cdn) == []
    assert_no_secret(d, PASSWORD)


def test_missing_remote_directory_source_fails_at_once(tmp_path, make_daemon):
    with FtpServer(tmp_path, password=PASSWORD) as s:
        s.path("repo").mkdir()
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                         transfer=transfer_conf(tmp_path, s))
        tid = d.load(url(s, "repo/no-such-pkg/"), "pkg/")
        reason = fail(d, tid)
    assert "no-such-pkg" in reason and re.search(r"does not exist|550", reason, re.I), reason
    assert task_row(d, tid)["attempts"] == 1


@pytest.mark.parametrize("kind", PASSWORD_KINDS)
def test_wrong_password_fails_at_once_after_a_single_login(kind, tmp_path, make_daemon):
    with make_server(kind, tmp_path) as s:
        write_tree(s.root, {"repo/a.ts": b"a"})
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                         transfer=transfer_conf(tmp_path, s))
        tid = d.load(url_with_password(s, "repo/a.ts", WRONG_PASSWORD), "a.ts")
        reason = fail(d, tid)
        time.sleep(1.5)     # a retry storm would show now
        if isinstance(s, FtpServer):
            logins = s.log().count("failed login")
            assert logins == 1, f"the FTP server saw {logins} failed logins"
            assert "530" in reason, reason
        else:
            refused = [l for l in s.access_log().splitlines()
                       if re.search(r' - apubi \[.*" 401 ', l)]
            assert len(refused) == 1, f"the web server refused {len(refused)} logins: {refused}"
            assert "401" in reason, reason
    t = task_row(d, tid)
    assert t["attempts"] == 1 and len(attempt_rows(d, tid)) == 1, describe(d, tid)
    assert f"127.0.0.1:{s.port}" in reason and "a.ts" in reason, reason
    assert not (d.cdn / "a.ts").exists()
    assert_no_secret(d, WRONG_PASSWORD, PASSWORD)


def test_sftp_key_not_authorized_fails_at_once(tmp_path, make_daemon):
    other = tmp_path / "other_key"
    run_tool(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stranger", "-f", str(other)])
    with SftpServer(tmp_path) as s:
        write_tree(s.root, {"repo/a.ts": b"a"})
        t = transfer_conf(tmp_path, s, ssh_private_key=other,
                          ssh_public_key=f"{other}.pub")
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)], transfer=t)
        tid = d.load(url(s, "repo/a.ts"), "a.ts")
        reason = fail(d, tid)
        time.sleep(1.5)
    assert f"127.0.0.1:{s.port}" in reason, reason
    assert task_row(d, tid)["attempts"] == 1, describe(d, tid)


def test_wrong_password_on_remote_root_fails_at_once(tmp_path, make_daemon):
    with FtpServer(tmp_path, password=PASSWORD) as s:
        s.path("cdn").mkdir()
        d = start_daemon(make_daemon, root=url_with_password(s, "cdn/", WRONG_PASSWORD),
                         transfer=transfer_conf(tmp_path, s))
        (d.ingest / "a.ts").write_bytes(b"a")
        tid = d.load(f"file://{d.ingest}/a.ts", "a.ts")
        reason = fail(d, tid)
        time.sleep(1.5)
        assert s.log().count("failed login") == 1, s.log()[-3000:]
    assert task_row(d, tid)["attempts"] == 1, describe(d, tid)
    assert "530" in reason and f"127.0.0.1:{s.port}" in reason, reason
    assert_no_secret(d, WRONG_PASSWORD)


# =====================================================================================
# Transient failures: retried, resumed
# =====================================================================================

@pytest.mark.parametrize("role,kind", [("source", "ftp"), ("source", "sftp"),
                                       ("source", "http"), ("root", "ftp"),
                                       ("root", "http")])
def test_server_down_at_first_is_retried_until_success(role, kind, tmp_path, make_daemon):
    data = os.urandom(100_000)
    s = make_server(kind, tmp_path)        # created, NOT started: connection refused
    # enough attempts that even short jittered delays outlast the 2 s down
    transfer = transfer_conf(tmp_path, s, retries=8)
    try:
        if role == "source":
            write_tree(s.root, {"repo/a.ts": data})
            d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                             transfer=transfer)
            tid = d.load(url(s, "repo/a.ts"), "a.ts")
            landed = d.cdn / "a.ts"
        else:
            s.path("cdn").mkdir()
            d = start_daemon(make_daemon, root=url(s, "cdn/"), transfer=transfer)
            (d.ingest / "a.ts").write_bytes(data)
            tid = d.load(f"file://{d.ingest}/a.ts", "a.ts")
            landed = s.path("cdn/a.ts")
        time.sleep(2)
        assert d.status(tid)[0] == "IN_PROGRESS", "gave up while the server was down"
        s.start()
        succeed(d, tid, timeout=40)
        assert landed.read_bytes() == data
    finally:
        s.stop()
    t = task_row(d, tid)
    att = attempt_rows(d, tid)
    assert t["attempts"] >= 2 and len(att) >= 2, describe(d, tid)
    assert att[0]["error"], f"first attempt has no error: {att}"
    assert att[-1]["error"] in (None, ""), f"last attempt has an error: {att}"
    assert_items(d, tid, {"": data})
    assert_no_secret(d, PASSWORD)


@pytest.mark.parametrize("kind", ["ftp", "http"])
def test_download_cut_mid_transfer_is_resumed_and_byte_identical(kind, tmp_path, make_daemon):
    size, rate = 24 * MiB, 6 * MiB
    data = big_payload(size)
    if kind == "ftp":
        s = FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=rate)
    else:
        s = WebDavServer(tmp_path, password=PASSWORD, limit_rate=rate)
    with s:
        write_tree(s.root, {"repo/big.ts": data})
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                         transfer=transfer_conf(tmp_path, s, retries=6))
        tid = d.load(url(s, "repo/big.ts"), "movies/big.ts")
        got = wait_until(lambda: progress(d, tid, d.cdn) >= size // 4 and progress(d, tid, d.cdn),
                         30, "a quarter of the download")
        assert got < size, "the download finished before it could be cut"
        s.stop()                     # the cut
        time.sleep(1.5)
        s.start()
        succeed(d, tid, timeout=60)
        after = log_since_last_start(s) if kind == "ftp" else s.access_log()
    assert (d.cdn / "movies/big.ts").read_bytes() == data
    assert hidden_entries(d.cdn) == []
    assert_items(d, tid, {"": data})
    assert task_row(d, tid)["attempts"] >= 2, describe(d, tid)
    if kind == "ftp":
        rests = [int(x) for x in re.findall(r"<- REST (\d+)", after)]
        assert any(r > 0 for r in rests), "no REST: the download was not resumed"
    else:
        assert re.search(r'"GET /repo/big\.ts HTTP/1\.1" 206 ', after), \
            "no ranged GET (206): the download was not resumed"


def test_upload_cut_mid_transfer_to_ftp_root_is_resumed_and_byte_identical(tmp_path,
                                                                           make_daemon):
    size, rate = 24 * MiB, 6 * MiB
    data = big_payload(size)
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=rate) as s:
        s.path("cdn").mkdir()
        d = start_daemon(make_daemon, root=url(s, "cdn/"),
                         transfer=transfer_conf(tmp_path, s, retries=6))
        (d.ingest / "big.ts").write_bytes(data)
        tid = d.load(f"file://{d.ingest}/big.ts", "movies/big.ts")
        got = wait_until(lambda: hidden_size(s.path("cdn")) >= size // 4
                         and hidden_size(s.path("cdn")), 30, "a quarter of the upload")
        assert got < size, "the upload finished before it could be cut"
        s.stop()
        time.sleep(1.5)
        s.start()
        succeed(d, tid, timeout=60)
        after = log_since_last_start(s)
        assert s.path("cdn/movies/big.ts").read_bytes() == data
        assert hidden_entries(s.path("cdn")) == []
    assert_items(d, tid, {"": data})
    assert task_row(d, tid)["attempts"] >= 2, describe(d, tid)
    assert re.search(r"<- (APPE|REST [1-9])", after), "the upload was not resumed (no APPE/REST)"
    stored = sum(int(b) for b in re.findall(r"STOR \S+ completed=\d bytes=(\d+)", after))
    stored += sum(int(b) for b in re.findall(r"APPE \S+ completed=\d bytes=(\d+)", after))
    assert stored < size, f"{stored} bytes sent again after the cut: not resumed"


def test_stalled_transfer_is_cut_after_stall_timeout_and_retried(tmp_path, make_daemon):
    size, rate = 16 * MiB, 4 * MiB
    data = big_payload(size)
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=rate) as s:
        write_tree(s.root, {"repo/big.ts": data})
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                         transfer=transfer_conf(tmp_path, s, retries=10, stall_timeout=2,
                                                connect_timeout=2, retry_max_time=120))
        tid = d.load(url(s, "repo/big.ts"), "big.ts")
        wait_until(lambda: progress(d, tid, d.cdn) >= size // 8, 30, "the download to start")
        pid = s.proc.pid
        os.kill(pid, signal.SIGSTOP)          # the server freezes: no FIN, no RST
        stopped_ms = time.time() * 1000
        try:
            wait_until(lambda: len(attempt_rows(d, tid)) >= 1
                       and attempt_rows(d, tid)[0]["ended_ms"], 12,
                       "the stalled attempt to be cut")
        finally:
            os.kill(pid, signal.SIGCONT)
        succeed(d, tid, timeout=60)
    first = attempt_rows(d, tid)[0]
    assert first["ended_ms"] - stopped_ms < 2000 + 4000, \
        f"the stalled attempt was cut {first['ended_ms'] - stopped_ms:.0f} ms after the stall " \
        f"(stall_timeout = 2)\n{describe(d, tid)}"
    assert first["error"], first
    assert (d.cdn / "big.ts").read_bytes() == data
    assert_items(d, tid, {"": data})


# =====================================================================================
# Limits
# =====================================================================================

def test_task_timeout_fails_a_slow_transfer_naming_task_timeout(tmp_path, make_daemon):
    with FtpServer(tmp_path, password=PASSWORD, throttle_bytes_per_sec=256 << 10) as s:
        write_tree(s.root, {"repo/slow.ts": os.urandom(8 * MiB)})
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                         transfer=transfer_conf(tmp_path, s, task_timeout=2))
        t0 = time.monotonic()
        tid = d.load(url(s, "repo/slow.ts"), "slow.ts")
        reason = fail(d, tid, timeout=20)
        elapsed = time.monotonic() - t0
    assert elapsed < 10, f"task_timeout = 2 but the task failed after {elapsed:.1f}s"
    assert "task_timeout" in reason, reason
    assert not (d.cdn / "slow.ts").exists()
    end = time.monotonic() + 5
    while hidden_entries(d.cdn) and time.monotonic() < end:
        time.sleep(0.1)
    assert hidden_entries(d.cdn) == [], "the failed task left its partial file behind"
    assert_no_secret(d, PASSWORD)


def test_server_that_accepts_but_never_answers_is_cut_by_the_timeouts(tmp_path, make_daemon):
    import socket
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)                  # the kernel completes connections; nobody answers
    port = hole.getsockname()[1]
    try:
        d = start_daemon(make_daemon, sources=[f"ftp://127.0.0.1:{port}/"],
                         transfer={"retries": "2", "retry_delay": "1", "retry_max_delay": "1",
                                   "connect_timeout": "2", "stall_timeout": "2"})
        t0 = time.monotonic()
        tid = d.load(f"ftp://apubi:{PASSWORD}@127.0.0.1:{port}/repo/a.ts", "a.ts")
        reason = fail(d, tid, timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        hole.close()
    att = attempt_rows(d, tid)
    assert task_row(d, tid)["attempts"] == 2 and len(att) == 2, describe(d, tid)
    for a in att:
        assert a["ended_ms"] - a["started_ms"] < 2000 + 3000, \
            f"an attempt on a silent server lasted {a['ended_ms'] - a['started_ms']} ms\n{att}"
    assert elapsed < 20, f"two attempts with 2 s timeouts took {elapsed:.1f}s"
    assert f"127.0.0.1:{port}" in reason, reason
    assert_no_secret(d, PASSWORD)


def test_retries_stop_at_retry_max_time(tmp_path, make_daemon):
    port = free_port()                # nobody listens: connection refused
    d = start_daemon(make_daemon, sources=[f"ftp://127.0.0.1:{port}/"],
                     transfer={"retries": "100", "retry_delay": "1", "retry_max_delay": "1",
                               "retry_max_time": "3", "connect_timeout": "2"})
    t0 = time.monotonic()
    tid = d.load(f"ftp://apubi:{PASSWORD}@127.0.0.1:{port}/repo/a.ts", "a.ts")
    fail(d, tid, timeout=30)
    elapsed = time.monotonic() - t0
    n = task_row(d, tid)["attempts"]
    assert 2 <= n <= 8, f"{n} attempts within retry_max_time = 3 s with retry_delay = 1\n" \
                        f"{describe(d, tid)}"
    assert elapsed < 12, f"retry_max_time = 3 but the task failed after {elapsed:.1f}s"
    starts = [a["started_ms"] for a in attempt_rows(d, tid)]
    assert starts[-1] - starts[0] <= 3000 + 500, f"an attempt started after retry_max_time: {starts}"


def _established(port):
    """Established TCP connections whose local port is `port` (the server's
    side of each client connection)."""
    n = 0
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(f).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "01":
                n += 1
    return n


def test_connections_to_one_server_stay_within_max_per_host(tmp_path, make_daemon):
    files = {f"repo/f{i}.ts": os.urandom(1536 << 10) for i in range(4)}
    with WebDavServer(tmp_path, password=PASSWORD, limit_rate="512k") as s:
        write_tree(s.root, files)
        d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)], workers=4,
                         transfer=transfer_conf(tmp_path, s, max_per_host=2))
        tids = [d.load(url(s, f"repo/f{i}.ts"), f"f{i}.ts") for i in range(4)]
        peak, end = 0, time.monotonic() + 60
        while True:
            peak = max(peak, _established(s.port))
            if all(d.status(t)[0] != "IN_PROGRESS" for t in tids):
                break
            assert time.monotonic() < end, "the four loads did not finish within 60s"
            time.sleep(0.02)
    for i, t in enumerate(tids):
        assert d.status(t)[0] == "SUCCESS", describe(d, t)
        assert (d.cdn / f"f{i}.ts").read_bytes() == files[f"repo/f{i}.ts"]
    assert 1 <= peak <= 2, f"{peak} connections at once to one server with max_per_host = 2"


# The memory budget of a daemon streaming 1 GiB: 64 MiB, the production
# target. A sanitizer build carries shadow memory and a quarantine of freed
# blocks on top of the same work, so `make check-asan` gives it a larger
# budget (APUBID_RSS_LIMIT_MIB); either way a file held in memory would
# overshoot it sixteen times over.
RSS_LIMIT_MIB = int(os.environ.get("APUBID_RSS_LIMIT_MIB", "64"))


def _vm_hwm_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("kind", ["http", "ftp"])
def test_one_gib_file_is_streamed_with_peak_rss_under_64_mib(kind, tmp_path, make_daemon):
    size = 1024 * MiB
    with make_server(kind, tmp_path) as s:
        src = s.path("repo/huge.bin")
        src.parent.mkdir(parents=True)
        block = os.urandom(MiB)
        h = hashlib.sha256()
        with open(src, "wb") as f:
            for i in range(1024):
                b = block if i % 2 else block[::-1]       # not one block repeated
                f.write(b)
                h.update(b)
        want = h.hexdigest()
        try:
            d = start_daemon(make_daemon, sources=[url(s, "repo/", creds=False)],
                             transfer=transfer_conf(tmp_path, s))
            tid = d.load(url(s, "repo/huge.bin"), "huge/huge.bin")
            succeed(d, tid, timeout=150)
            hwm = _vm_hwm_kib(d.proc.pid)
            out = d.cdn / "huge/huge.bin"
            assert out.stat().st_size == size
            assert sha256(out) == want
            items = [r for r in item_rows(d, tid) if not r["is_dir"]]
            assert [r["sha256"] for r in items] == [want], items
            t = task_row(d, tid)
            assert t["bytes_done"] == size, describe(d, tid)
            assert hwm < RSS_LIMIT_MIB * 1024, \
                f"apubid's peak RSS was {hwm} KiB (>= {RSS_LIMIT_MIB} MiB)"
        finally:
            src.unlink(missing_ok=True)
            for p in tmp_path.rglob("huge.bin"):
                p.unlink(missing_ok=True)


# =====================================================================================
# The FTP fixtures, end to end
# =====================================================================================

def test_ftp_fixtures_publish_a_file_and_a_directory_end_to_end(tmp_path, make_daemon):
    repository = {
        "feature.ts": os.urandom(200_000),
        "hls/index.m3u8": b"#EXTM3U\nseg1.ts\n",
        "hls/seg1.ts": os.urandom(50_000),
    }
    cis_pw, cdn_pw = "Cis-pw-31xQ", "Cdn-pw-84yR"
    with FtpServer(tmp_path, user="wfm", password=cis_pw) as cis, \
            FtpServer(tmp_path, user="publisher", password=cdn_pw) as cdn:
        write_tree(cis.path("outbox"), repository)
        cdn.path("srv/vod").mkdir(parents=True)
        # (a source must lie strictly below an allow prefix: the directory
        # fixture's source is outbox/ itself, so allow the whole server)
        d = start_daemon(make_daemon, sources=[f"ftp://127.0.0.1:{cis.port}/"],
                         root=f"ftp://publisher:{cdn_pw}@127.0.0.1:{cdn.port}/srv/vod/",
                         transfer=transfer_conf(tmp_path))
        results = {}
        for name in ("load-file-ftp.xml", "load-dir-ftp.xml"):
            body = (FIXTURES / name).read_text()
            body = body.replace("wfm:s3cr3t-src@MEDIASTORE:21",
                                f"wfm:{cis_pw}@127.0.0.1:{cis.port}")
            body = body.replace("publisher:s3cr3t-dst@ORIGIN:21",
                                f"publisher:{cdn_pw}@127.0.0.1:{cdn.port}")
            assert "MEDIASTORE" not in body and "ORIGIN" not in body, body
            status, _, answer = d.post(body.encode(), soap_headers())
            assert status == 200, answer[:800]
            tid = parse_response(answer, "LoadAsset")["TaskId"]
            results[name] = (tid, succeed(d, tid, timeout=30))
        assert results["load-file-ftp.xml"][1] == \
            f"ftp://127.0.0.1:{cdn.port}/srv/vod/feature_20240517143000.ts"
        assert cdn.path("srv/vod/feature_20240517143000.ts").read_bytes() == \
            repository["feature.ts"]
        # the destination is the root itself: the directory keeps its name
        assert results["load-dir-ftp.xml"][1] == \
            f"ftp://127.0.0.1:{cdn.port}/srv/vod/outbox/"
        assert read_tree(cdn.path("srv/vod/outbox")) == repository
        assert hidden_entries(cdn.path("srv")) == []
    assert_items(d, results["load-file-ftp.xml"][0], {"": repository["feature.ts"]})
    assert_items(d, results["load-dir-ftp.xml"][0], repository)
    assert_no_secret(d, cis_pw, cdn_pw)
