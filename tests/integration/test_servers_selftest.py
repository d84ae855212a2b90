"""Self-test of servers.py: each test server really works, as the curl
command line (the same libcurl apubid uses) sees it.  Only 127.0.0.1 is
contacted; every curl call is bounded in time."""
import os
import subprocess
import time

import pytest

from servers import FtpServer, SftpServer, WebDavServer, free_port, wait_port, ServerError

CURL_TIMEOUT = 20


def curl(tmp_path, *args, check=True, timeout=CURL_TIMEOUT):
    """Runs curl (no ~/.curlrc, no ~/.netrc, no ~/.ssh/known_hosts: HOME is
    tmp_path) and returns the CompletedProcess; check=True asserts exit 0."""
    cmd = ["curl", "-q", "-sS", "--max-time", str(timeout - 2)] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout,
                       env={**os.environ, "HOME": str(tmp_path)})
    if check:
        assert r.returncode == 0, (cmd, r.returncode, r.stderr.decode(errors="replace"))
    return r


def start_curl(tmp_path, *args):
    cmd = ["curl", "-q", "-sS", "--max-time", str(CURL_TIMEOUT)] + [str(a) for a in args]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "HOME": str(tmp_path)})


def wait_until(predicate, deadline=10.0, what="condition"):
    end = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def payload(size):
    block = bytes(range(256)) * 4096
    return (block * (size // len(block) + 1))[:size]


def size_of(path):
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# ---- FTP ---------------------------------------------------------------------

def test_ftp_put_get_rename_resume_delete(tmp_path):
    data = payload(100_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    with FtpServer(tmp_path) as s:
        assert s.url("in/a.bin") == f"ftp://apubi:s3cret@127.0.0.1:{s.port}/in/a.bin"
        curl(tmp_path, "-T", src, "--ftp-create-dirs", s.url("in/a.bin"))
        assert s.path("in/a.bin").read_bytes() == data
        assert curl(tmp_path, s.url("in/a.bin")).stdout == data
        # rename before the transfer (paths relative to the login directory)
        listing = curl(tmp_path, "-Q", "RNFR in/a.bin", "-Q", "RNTO in/b.bin",
                       "--list-only", s.url("in/")).stdout.split()
        assert listing == [b"b.bin"]
        # upload under a temporary name, rename after the transfer: curl has
        # changed into in/, so the names are relative to it
        curl(tmp_path, "-T", src, "-Q", "-RNFR .part.c", "-Q", "-RNTO c.bin",
             s.url("in/.part.c"))
        assert sorted(p.name for p in s.path("in").iterdir()) == ["b.bin", "c.bin"]
        # REST: resumed download
        assert curl(tmp_path, "-C", "1000", s.url("in/c.bin")).stdout == data[1000:]
        # SIZE + APPE: resumed upload
        s.path("in/d.bin").write_bytes(data[:12345])
        curl(tmp_path, "-C", "-", "-T", src, s.url("in/d.bin"))
        assert s.path("in/d.bin").read_bytes() == data
        curl(tmp_path, "-Q", "DELE in/b.bin", "-Q", "DELE in/c.bin",
             "-Q", "DELE in/d.bin", "-Q", "RMD in", s.url(""))
        assert list(s.root.iterdir()) == []
        bad = curl(tmp_path, f"ftp://apubi:wrong@127.0.0.1:{s.port}/", check=False)
        assert bad.returncode == 67            # login denied
        assert "RNTO" in s.log() and "APPE" in s.log()


def test_ftps_explicit_tls(tmp_path):
    data = payload(300_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    # a (high) throttle too, to exercise the throttled TLS data handler
    with FtpServer(tmp_path, tls=True, throttle_bytes_per_sec=8 << 20) as s:
        assert s.cafile.exists()
        tls = ["--ssl-reqd", "--cacert", s.cafile]
        curl(tmp_path, *tls, "-T", src, s.url("up/x.bin"), "--ftp-create-dirs")
        assert s.path("up/x.bin").read_bytes() == data
        assert curl(tmp_path, *tls, s.url("up/x.bin")).stdout == data
        assert curl(tmp_path, *tls, "-C", "100", s.url("up/x.bin")).stdout == data[100:]
        # the server's certificate is checked ...
        assert curl(tmp_path, "--ssl-reqd", s.url(""), check=False).returncode == 60
        # ... and it refuses to log in without TLS
        assert curl(tmp_path, s.url(""), check=False).returncode != 0
        assert "234 AUTH SSL successful" in s.log()   # curl tries AUTH SSL first


def test_ftp_down_first_then_up_on_same_port(tmp_path):
    s = FtpServer(tmp_path)           # created, not started: port refused
    try:
        port = s.port
        assert curl(tmp_path, s.url(""), check=False).returncode == 7
        s.start()
        (s.root / "f").write_text("x")
        assert curl(tmp_path, s.url("f")).stdout == b"x"
        s.stop()
        assert curl(tmp_path, s.url("f"), check=False).returncode == 7
        s.start()
        assert s.port == port
        assert curl(tmp_path, s.url("f")).stdout == b"x"
    finally:
        s.stop()


def test_ftp_cut_mid_download_then_resume(tmp_path):
    data = payload(384 << 10)
    part = tmp_path / "part.bin"
    with FtpServer(tmp_path, throttle_bytes_per_sec=256 << 10) as s:
        s.path("big.bin").write_bytes(data)
        c = start_curl(tmp_path, "-o", part, s.url("big.bin"))
        wait_until(lambda: size_of(part) > 0, what="download to begin")
        s.kill()                                      # the cut
        assert c.wait(CURL_TIMEOUT) != 0
        assert 0 < size_of(part) < len(data)
        s.start()                                     # same port
        curl(tmp_path, "-C", "-", "-o", part, s.url("big.bin"))
        assert part.read_bytes() == data


def test_ftp_cut_mid_upload_then_resume(tmp_path):
    data = payload(384 << 10)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    with FtpServer(tmp_path, throttle_bytes_per_sec=256 << 10) as s:
        c = start_curl(tmp_path, "-T", src, s.url("up.bin"))
        wait_until(lambda: size_of(s.path("up.bin")) > 0, what="upload to begin")
        s.kill()
        assert c.wait(CURL_TIMEOUT) != 0
        assert size_of(s.path("up.bin")) < len(data)
        s.start()
        curl(tmp_path, "-C", "-", "-T", src, s.url("up.bin"))   # SIZE, then APPE
        assert s.path("up.bin").read_bytes() == data


# ---- SFTP ----------------------------------------------------------------------

@pytest.mark.parametrize("key_type", ["ed25519", "rsa"])
def test_sftp_key_auth_put_get_rename(tmp_path, key_type):
    data = payload(200_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    with SftpServer(tmp_path, key_type=key_type) as s:
        key = ["--key", s.key_path, "--pubkey", s.pubkey_path]
        assert s.url("x").startswith(f"sftp://{s.user}@127.0.0.1:{s.port}/")
        assert s.url("x").endswith(f"{s.root}/x")
        curl(tmp_path, *key, "--hostpubsha256", s.hostkey_sha256, "-T", src,
             "--ftp-create-dirs", s.url("in/a.bin"))
        assert s.path("in/a.bin").read_bytes() == data
        got = curl(tmp_path, *key, "--hostpubmd5", s.hostkey_md5, s.url("in/a.bin"))
        assert got.stdout == data
        assert curl(tmp_path, *key, "-C", "1000", s.url("in/a.bin")).stdout == data[1000:]
        # quote commands take paths on the server: absolute, double-quoted
        # when they hold spaces
        old, new = s.remote_path("in/a.bin"), s.remote_path("in/b c.bin")
        listing = curl(tmp_path, *key, "-Q", f'rename "{old}" "{new}"', "-l",
                       s.url("in/")).stdout.split(b"\n")
        assert b"b c.bin" in listing and b"a.bin" not in listing
        curl(tmp_path, *key, "-Q", f'rm "{new}"', "-Q", f"rmdir {s.remote_path('in')}",
             s.url(""))
        assert list(s.root.iterdir()) == []
        # host key checks: a wrong fingerprint fails, the known_hosts file works
        wrong = curl(tmp_path, *key, "--hostpubsha256", "A" * 43, s.url(""), check=False)
        assert wrong.returncode == 60
        (tmp_path / ".ssh").mkdir(exist_ok=True)
        (tmp_path / ".ssh/known_hosts").write_text(s.known_hosts.read_text())
        try:
            curl(tmp_path, *key, s.url(""))
        finally:
            (tmp_path / ".ssh/known_hosts").unlink()
        # no key, no entry
        assert curl(tmp_path, s.url(""), check=False).returncode != 0
        # down and up again on the same port
        port = s.port
        s.stop()
        assert curl(tmp_path, *key, s.url(""), check=False).returncode == 7
        s.start()
        assert s.port == port
        curl(tmp_path, *key, s.url(""))


# ---- WebDAV / HTTP(S) --------------------------------------------------------------

def status(r):
    return int(r.stdout.decode().rsplit("\n", 1)[-1])


def test_webdav_methods_range_and_auth(tmp_path):
    data = payload(50_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    with WebDavServer(tmp_path) as s:
        w = ["-w", "\n%{http_code}"]
        assert s.url("d/a") == f"http://apubi:s3cret@127.0.0.1:{s.port}/d/a"
        # PUT creates the missing directories (create_full_put_path)
        assert status(curl(tmp_path, *w, "-T", src, s.url("d/a.bin"))) == 201
        assert s.path("d/a.bin").read_bytes() == data
        assert status(curl(tmp_path, *w, "-T", src, s.url("d/a.bin"))) == 204
        # GET, with Range
        assert curl(tmp_path, s.url("d/a.bin")).stdout == data
        r = curl(tmp_path, "-r", "10-19", "-w", "%{http_code}", "-o", tmp_path / "r",
                 s.url("d/a.bin"))
        assert r.stdout == b"206" and (tmp_path / "r").read_bytes() == data[10:20]
        assert curl(tmp_path, "-C", "49990", s.url("d/a.bin")).stdout == data[49990:]
        # MKCOL: the URL must end with "/" (else 409), one level at a time
        assert status(curl(tmp_path, *w, "-X", "MKCOL", s.url("e"))) == 409
        assert status(curl(tmp_path, *w, "-X", "MKCOL", s.url("f/g/"))) == 409
        assert status(curl(tmp_path, *w, "-X", "MKCOL", s.url("e/"))) == 201
        assert status(curl(tmp_path, *w, "-X", "MKCOL", s.url("e/"))) == 405
        assert s.path("e").is_dir()
        # MOVE and COPY: the Destination must be a path or a URL with the
        # very host:port of the request and no credentials (else 400).  For
        # files nginx answers 204, even when the destination is new.
        dest = s.url("e/b.bin", credentials=False)
        assert status(curl(tmp_path, *w, "-X", "MOVE", "-H", f"Destination: {dest}",
                           s.url("d/a.bin"))) == 204
        assert not s.path("d/a.bin").exists() and s.path("e/b.bin").exists()
        assert status(curl(tmp_path, *w, "-X", "MOVE", "-H",
                           f"Destination: {s.url('e/x.bin')}", s.url("e/b.bin"))) == 400
        assert status(curl(tmp_path, *w, "-X", "COPY", "-H", "Destination: /e/c.bin",
                           s.url("e/b.bin"))) == 204
        assert s.path("e/c.bin").read_bytes() == data
        # an existing destination is replaced, unless "Overwrite: F"
        assert status(curl(tmp_path, *w, "-X", "MOVE", "-H", "Destination: /e/c.bin",
                           "-H", "Overwrite: F", s.url("e/b.bin"))) == 412
        assert status(curl(tmp_path, *w, "-X", "MOVE", "-H", "Destination: /e/c.bin",
                           s.url("e/b.bin"))) == 204
        assert not s.path("e/b.bin").exists()
        # PROPFIND (libnginx-mod-http-dav-ext), as apubid lists a WebDAV stage
        assert status(curl(tmp_path, *w, "-X", "PROPFIND", "-H", "Depth: 1", s.url(""))) == 207
        # autoindex on a directory
        assert b"c.bin" in curl(tmp_path, s.url("e/")).stdout
        # DELETE a file, then collections (URL with a trailing "/", else 409)
        assert status(curl(tmp_path, *w, "-X", "DELETE", s.url("e/c.bin"))) == 204
        assert status(curl(tmp_path, *w, "-X", "DELETE", s.url("e/c.bin"))) == 404
        assert status(curl(tmp_path, *w, "-X", "DELETE", s.url("e"))) == 409
        assert status(curl(tmp_path, *w, "-X", "DELETE", s.url("e/"))) == 204
        assert status(curl(tmp_path, *w, "-X", "DELETE", s.url("d/"))) == 204
        assert list(s.root.iterdir()) == []
        # Basic authentication is required and checked
        assert status(curl(tmp_path, *w, "-o", "/dev/null",
                           s.url("", credentials=False))) == 401
        assert status(curl(tmp_path, *w, "-o", "/dev/null",
                           f"http://apubi:wrong@127.0.0.1:{s.port}/")) == 401
        assert "MOVE /d/a.bin" in s.access_log()


def test_https_with_cacert(tmp_path):
    data = payload(70_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    with WebDavServer(tmp_path, tls=True) as s:
        assert s.url("a").startswith(f"https://apubi:s3cret@127.0.0.1:{s.port}/")
        curl(tmp_path, "--cacert", s.cafile, "-T", src, s.url("x/a.bin"))
        assert s.path("x/a.bin").read_bytes() == data
        assert curl(tmp_path, "--cacert", s.cafile, s.url("x/a.bin")).stdout == data
        assert curl(tmp_path, s.url("x/a.bin"), check=False).returncode == 60


def test_http_cut_mid_download_then_resume(tmp_path):
    data = payload(384 << 10)
    part = tmp_path / "part.bin"
    with WebDavServer(tmp_path, limit_rate="256k") as s:
        s.path("big.bin").write_bytes(data)
        c = start_curl(tmp_path, "-o", part, s.url("big.bin"))
        wait_until(lambda: size_of(part) > 0, what="download to begin")
        port = s.port
        s.kill()
        assert c.wait(CURL_TIMEOUT) != 0
        assert 0 < size_of(part) < len(data)
        s.start()
        assert s.port == port
        curl(tmp_path, "-C", "-", "-o", part, s.url("big.bin"))
        assert part.read_bytes() == data


# ---- helpers -------------------------------------------------------------------------

def test_wait_port_reports_the_log(tmp_path):
    port = free_port()
    t0 = time.monotonic()
    log = tmp_path / "x.log"
    log.write_text("the server said why\n")
    with pytest.raises(ServerError, match="the server said why"):
        wait_port(port, deadline=0.3, log_path=log)
    assert time.monotonic() - t0 < 3
