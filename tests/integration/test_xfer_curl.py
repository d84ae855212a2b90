"""xfer_curl.c against real servers: FTP, explicit FTPS, SFTP (OpenSSH),
WebDAV over HTTP and HTTPS (nginx), all on 127.0.0.1 (servers.py).

Every check goes through build/probe_xfer_curl (tests/tools/probe_xfer_curl.c),
a command-line driver of the xfer_curl_* API whose exit status is the
xfer_status: 0 ok, 1 transient, 2 permanent, 3 not found, 4 stopped.  The
Makefile builds it before the integration tests; nothing is built here.

The servers are started once per module and every test works in its own
directory below their roots.  Every probe run is checked for the password:
no message may ever show it.
"""
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from servers import FtpServer, SftpServer, WebDavServer, free_port, run_tool, wait_port

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(os.environ.get("PROBE_XFER_CURL", str(REPO / "build" / "probe_xfer_curl")))
PASSWORD = "s3cret"          # servers.py's default for FTP and WebDAV
PROBE_TIMEOUT = 30

OK, TRANSIENT, PERMANENT, NOTFOUND, STOPPED = 0, 1, 2, 3, 4

ALL = ["ftp", "ftps", "sftp", "http", "https"]
LISTABLE = ["ftp", "ftps", "sftp"]
RESUMABLE_PUT = ["ftp", "ftps", "sftp"]


def payload(size, seed=0):
    """Deterministic bytes that are not a short repeating pattern."""
    out, block, i = bytearray(), b"", 0
    while len(out) < size:
        block = hashlib.sha256(f"{seed}:{i}".encode()).digest() * 128   # 4 KiB
        out += block
        i += 1
    return bytes(out[:size])


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Probe:
    """Runs the probe; returns (exit status, stdout, stderr)."""

    def __init__(self):
        self.seen = []

    def __call__(self, *args, timeout=PROBE_TIMEOUT):
        if not (PROBE.is_file() and os.access(PROBE, os.X_OK)):
            pytest.fail(f"{PROBE} is missing: build it first (make build/probe_xfer_curl)")
        r = subprocess.run([str(PROBE)] + [str(a) for a in args], capture_output=True,
                           timeout=timeout)
        out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        assert PASSWORD not in out + err, f"password in probe output: {out!r} {err!r}"
        return r.returncode, out, err

    def popen(self, *args):
        if not (PROBE.is_file() and os.access(PROBE, os.X_OK)):
            pytest.fail(f"{PROBE} is missing: build it first (make build/probe_xfer_curl)")
        return subprocess.Popen([str(PROBE)] + [str(a) for a in args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def probe():
    return Probe()


class Remote:
    """One server seen through the probe: URLs with credentials, the server
    path of a name, the local file behind it, and the probe options."""

    def __init__(self, kind, server):
        self.kind, self.s = kind, server
        self.opts = []
        if kind in ("ftps", "https"):
            self.opts = ["--ca", server.cafile]
        elif kind == "sftp":
            self.opts = ["--key", server.key_path, "--pub", server.pubkey_path,
                         "--known-hosts", server.known_hosts]

    def url(self, rel="", password=None):
        if self.kind == "sftp":
            return self.s.url(rel)
        scheme = self.kind if self.kind != "http" else "http"
        pw = PASSWORD if password is None else password
        return (f"{scheme}://{quote(self.s.user, safe='')}:{quote(pw, safe='')}@"
                f"{self.s.host}:{self.s.port}/{quote(str(rel).lstrip('/'), safe='/~')}")

    def spath(self, rel):
        """The absolute server path of rel (rename's NEWPATH)."""
        if self.kind == "sftp":
            return self.s.remote_path(rel)
        return "/" + str(rel).lstrip("/")

    def local(self, rel=""):
        return self.s.path(rel)

    def shown(self):
        """How the server appears in messages (credentials masked)."""
        if self.kind == "sftp":
            return f"sftp://{self.s.user}@{self.s.host}:{self.s.port}"
        return f"{self.kind}://{self.s.user}:***@{self.s.host}:{self.s.port}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    base = tmp_path_factory.mktemp("xfer_curl")
    made = {}

    def get(kind):
        if kind not in made:
            if kind == "ftp":
                made[kind] = FtpServer(base).start()
            elif kind == "ftps":
                made[kind] = FtpServer(base, tls=True).start()
            elif kind == "sftp":
                made[kind] = SftpServer(base).start()
            elif kind == "http":
                made[kind] = WebDavServer(base).start()
            else:
                made[kind] = WebDavServer(base, tls=True).start()
        return Remote(kind, made[kind])

    yield get
    for s in made.values():
        s.stop()


@pytest.fixture
def work():
    """A fresh directory name for one test, below every server root."""
    return f"w{uuid.uuid4().hex[:10]}"


def make_remote(servers, kind, work):
    r = servers(kind)
    r.local(work).mkdir(parents=True, exist_ok=True)
    return r


def parse_digest(out):
    """(bytes, sha256) from the probe's "bytes N sha256 HEX" line."""
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "bytes" and parts[2] == "sha256":
            return int(parts[1]), parts[3]
    raise AssertionError(f"no digest line in {out!r}")


# ---- listing -------------------------------------------------------------------

@pytest.mark.parametrize("kind", LISTABLE)
def test_list_shows_files_directories_spaces_and_utf8(servers, probe, work, kind):
    r = make_remote(servers, kind, work)
    d = r.local(work)
    (d / "a.ts").write_bytes(payload(1000))
    (d / "with space.ts").write_bytes(payload(7))
    (d / "é.ts").write_bytes(payload(12345))
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / "sub" / "inner.ts").write_bytes(b"x")
    os.symlink("a.ts", d / "link.ts")   # links are not supported: skipped
    rc, out, err = probe(*r.opts, "list", r.url(work + "/"))
    assert rc == OK, err
    entries = sorted(tuple(line.split("\t")) for line in out.splitlines())
    assert entries == sorted([("f", "1000", "a.ts"), ("f", "7", "with space.ts"),
                              ("f", "12345", "é.ts"), ("d", "-1", "sub")]), out
    rc, out, err = probe(*r.opts, "list", r.url(work + "/sub/"))
    assert rc == OK, err
    assert sorted(out.splitlines()) == ["d\t-1\tdeeper", "f\t1\tinner.ts"]


@pytest.mark.parametrize("kind", LISTABLE)
def test_list_of_empty_directory_is_empty(servers, probe, work, kind):
    r = make_remote(servers, kind, work)
    (r.local(work) / "empty").mkdir()
    rc, out, err = probe(*r.opts, "list", r.url(work + "/empty/"))
    assert (rc, out) == (OK, ""), err


@pytest.mark.parametrize("kind", LISTABLE)
def test_list_of_missing_directory_is_notfound(servers, probe, work, kind):
    r = make_remote(servers, kind, work)
    rc, _, err = probe(*r.opts, "list", r.url(work + "/nothing/"))
    assert rc == NOTFOUND, err


@pytest.mark.parametrize("kind", ["http", "https"])
def test_list_over_http_is_refused(servers, probe, work, kind):
    r = make_remote(servers, kind, work)
    rc, _, err = probe(*r.opts, "list", r.url(work + "/"))
    assert rc == PERMANENT
    assert "not supported over http" in err


# ---- versions --------------------------------------------------------------------

def version_of(probe, r, rel):
    rc, out, err = probe(*r.opts, "version", r.url(rel))
    assert rc == OK, err
    return dict(line.split(" ", 1) for line in out.splitlines())


@pytest.mark.parametrize("kind", ALL)
def test_version_tells_a_replaced_file_from_the_one_read(servers, probe, work, kind):
    r = make_remote(servers, kind, work)
    f = r.local(work) / "v.ts"
    f.write_bytes(payload(3000))
    os.utime(f, (1700000000, 1700000000))
    v1 = version_of(probe, r, work + "/v.ts")
    assert v1["size"] == "3000", v1
    if kind in ("http", "https"):
        assert v1.get("etag", "").startswith('"') and v1.get("modified"), v1
    else:
        assert v1.get("mtime") == str(1700000000 * 10**9), v1
    assert version_of(probe, r, work + "/v.ts") == v1, "the same file read twice differs"
    f.write_bytes(payload(3001))
    os.utime(f, (1700000060, 1700000060))
    v2 = version_of(probe, r, work + "/v.ts")
    assert v2["size"] == "3001" and v2 != v1, v2
    if kind in ("http", "https"):
        assert v2["etag"] != v1["etag"] and v2["modified"] != v1["modified"], (v1, v2)
    else:
        assert v2["mtime"] == str(1700000060 * 10**9), v2
    rc, _, err = probe(*r.opts, "version", r.url(work + "/missing.ts"))
    assert rc == NOTFOUND, err


# ---- stat and size -------------------------------------------------------------

@pytest.mark.parametrize("kind", ALL)
def test_stat_tells_files_from_directories_and_missing_paths(servers, probe, work, kind):
    r = make_remote(servers, kind, work)
    (r.local(work) / "f.ts").write_bytes(payload(4321))
    (r.local(work) / "dir").mkdir()
    assert probe(*r.opts, "stat", r.url(work + "/f.ts"))[:2] == (OK, "file 4321\n")
    assert probe(*r.opts, "stat", r.url(work + "/dir"))[:2] == (OK, "dir\n")
    assert probe(*r.opts, "stat", r.url(work + "/dir/"))[:2] == (OK, "dir\n")
    assert probe(*r.opts, "size", r.url(work + "/f.ts"))[:2] == (OK, "size 4321\n")
    rc, _, err = probe(*r.opts, "stat", r.url(work + "/missing.ts"))
    assert rc == NOTFOUND, err
    assert err.startswith(f"error: {r.shown()}{r.spath(work + '/missing.ts')}: "), err
    rc, _, err = probe(*r.opts, "size", r.url(work + "/missing.ts"))
    assert rc == NOTFOUND, err
    rc, _, err = probe(*r.opts, "size", r.url(work + "/dir"))
    assert rc == PERMANENT, err


# ---- downloads -----------------------------------------------------------------

@pytest.mark.parametrize("kind", ALL)
def test_get_is_byte_identical(servers, probe, work, kind, tmp_path):
    r = make_remote(servers, kind, work)
    data = payload(3 * 1024 * 1024 + 17, seed=1)
    (r.local(work) / "movie file.ts").write_bytes(data)
    out_file = tmp_path / "got"
    rc, out, err = probe(*r.opts, "get", r.url(work + "/movie file.ts"), out_file)
    assert rc == OK, err
    assert out_file.read_bytes() == data
    assert parse_digest(out) == (len(data), sha(data))


@pytest.mark.parametrize("kind", ALL)
def test_get_with_offset_gives_the_tail(servers, probe, work, kind, tmp_path):
    r = make_remote(servers, kind, work)
    data = payload(1024 * 1024 + 5, seed=2)
    (r.local(work) / "é.ts").write_bytes(data)
    have = 300_001
    out_file = tmp_path / "partial"
    out_file.write_bytes(data[:have])
    rc, out, err = probe(*r.opts, "get", r.url(work + "/é.ts"), out_file, have)
    assert rc == OK, err
    assert out_file.read_bytes() == data
    assert parse_digest(out) == (len(data) - have, sha(data[have:]))


@pytest.mark.parametrize("kind", ALL)
def test_get_of_missing_file_is_notfound(servers, probe, work, kind, tmp_path):
    r = make_remote(servers, kind, work)
    rc, _, err = probe(*r.opts, "get", r.url(work + "/missing.ts"), tmp_path / "x")
    assert rc == NOTFOUND, err
    assert f"{r.shown()}{r.spath(work + '/missing.ts')}: " in err


def test_get_from_a_server_that_ignores_ranges_drops_the_head(probe, tmp_path):
    """Python's http.server answers a Range request with the whole file
    (200): the probe must still write exactly the missing tail."""
    root = tmp_path / "plain"
    root.mkdir()
    data = payload(500_000, seed=3)
    (root / "f.bin").write_bytes(data)
    port = free_port()
    srv = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                            "--directory", str(root), str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc=srv)
        out_file = tmp_path / "partial"
        out_file.write_bytes(data[:123_456])
        rc, out, err = probe("get", f"http://127.0.0.1:{port}/f.bin", out_file, 123_456)
        assert rc == OK, err
        assert out_file.read_bytes() == data
        assert parse_digest(out) == (len(data) - 123_456, sha(data[123_456:]))
    finally:
        srv.terminate()
        srv.wait(10)


# ---- uploads -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ALL)
def test_put_is_byte_identical(servers, probe, work, kind, tmp_path):
    r = make_remote(servers, kind, work)
    data = payload(2 * 1024 * 1024 + 3, seed=4)
    src = tmp_path / "src"
    src.write_bytes(data)
    rc, out, err = probe(*r.opts, "put", src, r.url(work + "/up é.ts"))
    assert rc == OK, err
    assert (r.local(work) / "up é.ts").read_bytes() == data
    assert parse_digest(out) == (len(data), sha(data))
    # an empty file is a file too
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    rc, _, err = probe(*r.opts, "put", empty, r.url(work + "/empty.ts"))
    assert rc == OK, err
    assert (r.local(work) / "empty.ts").read_bytes() == b""
    assert probe(*r.opts, "size", r.url(work + "/empty.ts"))[:2] == (OK, "size 0\n")
    assert probe(*r.opts, "stat", r.url(work + "/empty.ts"))[:2] == (OK, "file 0\n")


@pytest.mark.parametrize("kind", RESUMABLE_PUT)
def test_put_resumes_at_offset(servers, probe, work, kind, tmp_path):
    r = make_remote(servers, kind, work)
    data = payload(1024 * 1024 + 999, seed=5)
    src = tmp_path / "src"
    src.write_bytes(data)
    have = 400_000
    (r.local(work) / "part.ts").write_bytes(data[:have])
    rc, out, err = probe(*r.opts, "size", r.url(work + "/part.ts"))
    assert (rc, out) == (OK, f"size {have}\n"), err
    rc, out, err = probe(*r.opts, "put", src, r.url(work + "/part.ts"), have)
    assert rc == OK, err
    assert (r.local(work) / "part.ts").read_bytes() == data
    assert parse_digest(out) == (len(data) - have, sha(data[have:]))


@pytest.mark.parametrize("kind", ["http", "https"])
def test_put_over_http_cannot_resume(servers, probe, work, kind, tmp_path):
    r = make_remote(servers, kind, work)
    src = tmp_path / "src"
    src.write_bytes(payload(1000))
    rc, _, err = probe(*r.opts, "put", src, r.url(work + "/x.ts"), 10)
    assert rc == PERMANENT, err


@pytest.mark.parametrize("kind", ["ftp", "ftps", "sftp"])
def test_put_into_missing_directory_is_permanent(servers, probe, work, kind, tmp_path):
    # (nginx's WebDAV creates missing parents: create_full_put_path on)
    r = make_remote(servers, kind, work)
    src = tmp_path / "src"
    src.write_bytes(payload(1000))
    rc, _, err = probe(*r.opts, "put", src, r.url(work + "/no/such/dir/x.ts"))
    assert rc == PERMANENT, err


# ---- directories, renames, removals --------------------------------------------

@pytest.mark.parametrize("kind", ALL)
def test_mkdir_creates_and_accepts_an_existing_directory(servers, probe, work, kind):
    r = make_remote(servers, kind, work)
    rc, _, err = probe(*r.opts, "mkdir", r.url(work + "/new dir/"))
    assert rc == OK, err
    assert (r.local(work) / "new dir").is_dir()
    rc, _, err = probe(*r.opts, "mkdir", r.url(work + "/new dir/"))
    assert rc == OK, err
    rc, _, err = probe(*r.opts, "mkdir", r.url(work + "/missing/child/"))
    assert rc == PERMANENT, err
    (r.local(work) / "file").write_bytes(b"x")
    rc, _, err = probe(*r.opts, "mkdir", r.url(work + "/file/"))
    assert rc == PERMANENT, err


@pytest.mark.parametrize("kind", ALL)
def test_rename_file_replaces_an_existing_file(servers, probe, work, kind):
    r = make_remote(servers, kind, work)
    d = r.local(work)
    (d / ".new.tmp").write_bytes(b"new content")
    (d / "final é.ts").write_bytes(b"old content")
    rc, _, err = probe(*r.opts, "rename", r.url(work + "/.new.tmp"),
                       r.spath(work + "/final é.ts"))
    assert rc == OK, err
    assert (d / "final é.ts").read_bytes() == b"new content"
    assert not (d / ".new.tmp").exists()


@pytest.mark.parametrize("kind", ALL)
def test_rename_directory(servers, probe, work, kind):
    r = make_remote(servers, kind, work)
    d = r.local(work)
    (d / "stage" / "sub").mkdir(parents=True)
    (d / "stage" / "sub" / "a.ts").write_bytes(b"a")
    # named without a trailing '/', as xfer.c does
    rc, _, err = probe(*r.opts, "rename", r.url(work + "/stage"), r.spath(work + "/final"))
    assert rc == OK, err
    assert (d / "final" / "sub" / "a.ts").read_bytes() == b"a"
    assert not (d / "stage").exists()


@pytest.mark.parametrize("kind", ALL)
def test_rename_of_missing_source_is_notfound_and_keeps_the_target(servers, probe, work,
                                                                    kind):
    r = make_remote(servers, kind, work)
    d = r.local(work)
    (d / "target.ts").write_bytes(b"keep me")
    rc, _, err = probe(*r.opts, "rename", r.url(work + "/gone.ts"),
                       r.spath(work + "/target.ts"))
    assert rc == NOTFOUND, err
    assert (d / "target.ts").read_bytes() == b"keep me"


@pytest.mark.parametrize("kind", ALL)
def test_rm_file_then_again_is_notfound(servers, probe, work, kind):
    r = make_remote(servers, kind, work)
    d = r.local(work)
    (d / "x y.ts").write_bytes(b"x")
    rc, _, err = probe(*r.opts, "rm", r.url(work + "/x y.ts"))
    assert rc == OK, err
    assert not (d / "x y.ts").exists()
    rc, _, err = probe(*r.opts, "rm", r.url(work + "/x y.ts"))
    assert rc == NOTFOUND, err


@pytest.mark.parametrize("kind", ALL)
def test_rm_directory_tree(servers, probe, work, kind):
    r = make_remote(servers, kind, work)
    d = r.local(work) / "pkg"
    for rel in ("index.m3u8", "a b/seg 1.ts", "a b/é/seg2.ts", "c/d/e/f.ts"):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(payload(100))
    (d / "empty").mkdir()
    if kind in ("ftp", "ftps", "sftp"):
        os.symlink("index.m3u8", d / "c" / "link")   # the link goes, not its target
    rc, _, err = probe(*r.opts, "rm", r.url(work + "/pkg"), "dir")
    assert rc == OK, err
    assert not d.exists()
    rc, _, err = probe(*r.opts, "rm", r.url(work + "/pkg"), "dir")
    assert rc == NOTFOUND, err


def test_ftp_session_reuses_one_connection(servers, probe, work):
    r = make_remote(servers, "ftp", work)
    d = r.local(work) / "tree"
    for rel in ("a/1.ts", "a/2.ts", "b/c/3.ts", "4.ts"):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(b"x")
    before = r.s.log().count("logged in")
    rc, _, err = probe(*r.opts, "rm", r.url(work + "/tree"), "dir")
    assert rc == OK, err
    assert r.s.log().count("logged in") - before == 1


# ---- failures --------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ftp", "ftps", "http", "https"])
def test_wrong_password_is_permanent_and_quick(servers, probe, work, kind, tmp_path):
    r = make_remote(servers, kind, work)
    (r.local(work) / "f.ts").write_bytes(b"x")
    t0 = time.monotonic()
    rc, _, err = probe(*r.opts, "get", r.url(work + "/f.ts", password="wrong-pw"),
                       tmp_path / "x")
    assert rc == PERMANENT, err
    assert time.monotonic() - t0 < 5
    assert "wrong-pw" not in err and "***" in err


def test_sftp_unknown_client_key_is_permanent(servers, probe, work, tmp_path):
    r = make_remote(servers, "sftp", work)
    run_tool(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")])
    rc, _, err = probe("--key", tmp_path / "other", "--pub", tmp_path / "other.pub",
                       "--known-hosts", r.s.known_hosts, "stat", r.url(work))
    assert rc == PERMANENT, err


def test_sftp_host_key_mismatch_is_permanent(servers, probe, work, tmp_path):
    r = make_remote(servers, "sftp", work)
    run_tool(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host")])
    blob = (tmp_path / "host.pub").read_text().split()[1]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{r.s.port} ssh-ed25519 {blob}\n")
    rc, _, err = probe("--key", r.s.key_path, "--pub", r.s.pubkey_path,
                       "--known-hosts", kh, "stat", r.url(work))
    assert rc == PERMANENT, err


@pytest.mark.parametrize("kind", ["ftps", "https"])
def test_unverified_certificate_is_permanent(servers, probe, work, kind):
    r = make_remote(servers, kind, work)
    rc, _, err = probe("stat", r.url(work + "/"))     # no --ca: self-signed
    assert rc == PERMANENT, err


@pytest.mark.parametrize("kind", ALL)
def test_server_down_is_transient(servers, probe, kind, tmp_path):
    r = servers(kind)
    port = free_port()                                 # nothing listens there
    url = r.url("x.ts").replace(f":{r.s.port}/", f":{port}/")
    rc, _, err = probe(*r.opts, "get", url, tmp_path / "x")
    assert rc == TRANSIENT, err


@pytest.mark.parametrize("kind", ALL)
def test_stop_flag_stops_a_transfer(servers, probe, work, kind, tmp_path):
    r = make_remote(servers, kind, work)
    (r.local(work) / "big.ts").write_bytes(payload(8 * 1024 * 1024, seed=6))
    rc, out, err = probe(*r.opts, "--stop-after", 1, "get", r.url(work + "/big.ts"),
                         tmp_path / "x")
    assert rc == STOPPED, err
    assert parse_digest(out)[0] < 8 * 1024 * 1024


def _cut_servers(tmp_path):
    rate = 8 * 1024 * 1024
    return {"ftp": lambda: FtpServer(tmp_path, throttle_bytes_per_sec=rate),
            "http": lambda: WebDavServer(tmp_path, limit_rate=rate)}


@pytest.mark.parametrize("kind", ["ftp", "http"])
def test_get_cut_mid_transfer_is_transient_and_resumes(probe, kind, tmp_path):
    s = _cut_servers(tmp_path)[kind]().start()
    r = Remote(kind, s)
    try:
        data = payload(20 * 1024 * 1024, seed=7)
        s.path("big.ts").write_bytes(data)
        out_file = tmp_path / "got"
        p = probe.popen(*r.opts, "get", r.url("big.ts"), out_file)
        end = time.monotonic() + 15
        while (not out_file.exists() or out_file.stat().st_size < 1024 * 1024) and \
                p.poll() is None and time.monotonic() < end:
            time.sleep(0.02)
        s.stop()
        _, err = p.communicate(timeout=PROBE_TIMEOUT)
        err = err.decode(errors="replace")
        assert PASSWORD not in err
        assert p.returncode == TRANSIENT, err
        have = out_file.stat().st_size
        assert 0 < have < len(data)
        assert out_file.read_bytes() == data[:have]
        # the next attempt resumes where the cut left the file
        s.start()
        rc, out, err = probe(*r.opts, "get", r.url("big.ts"), out_file, have)
        assert rc == OK, err
        assert out_file.read_bytes() == data
    finally:
        s.stop()


@pytest.mark.parametrize("kind", ["ftp", "http"])
def test_stalled_transfer_is_cut_as_transient(probe, kind, tmp_path):
    s = _cut_servers(tmp_path)[kind]().start()
    r = Remote(kind, s)
    try:
        s.path("big.ts").write_bytes(payload(20 * 1024 * 1024, seed=8))
        out_file = tmp_path / "got"
        p = probe.popen(*r.opts, "--stall", 2, "get", r.url("big.ts"), out_file)
        end = time.monotonic() + 15
        while (not out_file.exists() or out_file.stat().st_size == 0) and \
                p.poll() is None and time.monotonic() < end:
            time.sleep(0.02)
        os.kill(s.pid, signal.SIGSTOP)      # connection open, nothing flows
        t0 = time.monotonic()
        try:
            _, err = p.communicate(timeout=PROBE_TIMEOUT)
        finally:
            os.kill(s.pid, signal.SIGCONT)
        err = err.decode(errors="replace")
        assert p.returncode == TRANSIENT, err
        assert "no data moved for 2 seconds" in err
        assert time.monotonic() - t0 < 5
    finally:
        s.stop()
