"""The Debian package `make deb` builds, checked for what installing it gives.

One build serves the whole file (the module fixture `deb`): `make deb` runs
in a copy of the checkout under /tmp, so the checkout is left as it was,
and must write nothing beside that copy. Then:

* lintian finds no error in the package;
* the packaged apubid, started the way the packaged unit starts it, with
  the packaged configuration whose absolute paths are moved under a
  temporary root (and its port to a free one), in the directories the
  packaged tmpfiles.d entry creates there, as the packaged user (nobody
  stands in for apubid when this machine has no such user), answers
  /healthz, publishes a file from the ingest directory into the
  destination root, and reloads its configuration on SIGHUP;
* the configuration, the unit, sysusers.d and tmpfiles.d name the same
  user and directories, and the maintainer scripts create the user and
  the directories before they start the service, and stop it on removal.

The package is never installed on this machine. These tests need root
(to switch users and to own files for another user) and Debian's
packaging tools (make deps-check installs them).
"""
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import namedtuple
from pathlib import Path

import pytest

from conftest import (HTTP_TIMEOUT, REPO, START_TIMEOUT, STOP_TIMEOUT, envelope, free_port,
                      parse_conf, parse_response, post, soap_headers)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users"),
    pytest.mark.skipif(not (shutil.which("dpkg-buildpackage") and shutil.which("dh")),
                       reason="dpkg-dev and debhelper are not installed (make deps-check)"),
]

BUILD_TIMEOUT = 900  # seconds for make deb: about a minute on two idle cores
CONF = "etc/apubid/apubid.conf"

Package = namedtuple("Package", "deb src root control")


def run(cmd, timeout=120, **kw):
    """Runs cmd in its own process group, killed whole on timeout; returns
    the CompletedProcess (text output)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True, **kw)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        pytest.fail(f"{' '.join(map(str, cmd))}: no end within {timeout}s\n{out[-4000:]}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, None)


def copy_checkout(dest):
    """The checkout's sources, without what builds and tests leave in it."""
    top_only = {".git", "build", "build-asan", "build-fuzz", "generated", "var", "apubid",
                "apubictl"}

    def ignore(directory, names):
        out = {n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".deb")}
        if Path(directory) == REPO:
            out |= top_only & set(names)
        return out

    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)


def extract(deb, root):
    p = run(["dpkg-deb", "-x", str(deb), str(root)])
    assert p.returncode == 0, p.stdout
    return Path(root)


@pytest.fixture(scope="module")
def deb():
    base = Path(tempfile.mkdtemp(prefix="apubid-deb-", dir="/tmp"))
    base.chmod(0o755)
    try:
        src = base / "checkout"
        copy_checkout(src)
        # Nothing of an outer make (check-asan's B, BIN, CFLAGS...) leaks in.
        env = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}
        p = run(["make", "--no-print-directory", "-C", str(src), "deb"], BUILD_TIMEOUT, env=env)
        assert p.returncode == 0, f"make deb: exit {p.returncode}\n{p.stdout[-6000:]}"
        assert sorted(x.name for x in base.iterdir()) == ["checkout"], \
            "make deb wrote beside the checkout"
        built = sorted(src.glob("apubid_*.deb"))
        assert len(built) == 1, f"make deb left {built} in the top directory\n{p.stdout[-3000:]}"
        pkg = base / built[0].name
        shutil.copy2(built[0], pkg)
        control = base / "control"
        c = run(["dpkg-deb", "-e", str(pkg), str(control)])
        assert c.returncode == 0, c.stdout
        yield Package(pkg, src, extract(pkg, base / "root"), control)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def unit_path(root):
    units = [p for d in ("lib", "usr/lib") for p in (root / d / "systemd/system").glob("*")]
    assert [u.name for u in units] == ["apubid.service"], units
    return units[0]


def unit_values(text, key):
    return [l.split("=", 1)[1] for l in text.splitlines() if l.startswith(key + "=")]


def tmpfiles_lines(root):
    """The packaged tmpfiles.d entries: [type, path, mode, user, group, age]."""
    text = (root / "usr/lib/tmpfiles.d/apubid.conf").read_text()
    return [l.split() for l in text.splitlines() if l.strip() and not l.startswith("#")]


def the_directories(conf):
    """(store's directory, destination root, ingest directory) of a
    configuration, without their trailing '/'."""
    (store,) = conf[("store", "path")]
    (cdn,) = conf[("destination", "root")]
    (ingest,) = conf[("source", "allow")]
    return os.path.dirname(store), cdn.rstrip("/"), ingest.rstrip("/")


# ---- the build ----------------------------------------------------------

def test_lintian_finds_no_error(deb):
    if not shutil.which("lintian"):
        pytest.skip("lintian is not installed (make deps-check)")
    p = run(["lintian", "--fail-on", "error", str(deb.deb)], 600)
    errors = [l for l in p.stdout.splitlines() if l.startswith("E:")]
    assert errors == [] and p.returncode == 0, p.stdout


def test_the_package_is_named_and_versioned_as_apubid(deb):
    fields = run(["dpkg-deb", "-f", str(deb.deb), "Package", "Version", "Architecture"]).stdout
    f = dict(l.split(": ", 1) for l in fields.splitlines())
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    assert f == {"Package": "apubid", "Version": f["Version"], "Architecture": arch}
    assert deb.deb.name == f"apubid_{f['Version']}_{arch}.deb"
    v = run([str(deb.root / "usr/sbin/apubid"), "-V"])
    assert v.returncode == 0 and v.stdout.split() == ["apubid", f["Version"]], v.stdout
    for name in ("apubid", "apubictl"):
        assert os.access(deb.root / "usr/sbin" / name, os.X_OK), name
    for page in ("man8/apubid.8.gz", "man8/apubictl.8.gz", "man5/apubid.conf.5.gz"):
        assert (deb.root / "usr/share/man" / page).is_file(), page


# ---- the packaged service, run under a temporary root -------------------

def service_user():
    """apubid when this machine has it, else nobody: the package is not
    installed here, so its user may not exist."""
    for name in ("apubid", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    pytest.skip("neither apubid nor nobody exists")


def rewrite_conf(text, values):
    """The configuration with the setting lines named in `values`
    ({(section, key): function of the old value}) rewritten in place."""
    out, section = [], None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1].strip()
        elif s and s[0] not in "#;" and "=" in s:
            key, _, value = s.partition("=")
            f = values.get((section, key.strip()))
            if f:
                line = f"{key.strip()} = {f(value.strip())}"
        out.append(line)
    return "\n".join(out) + "\n"


def soap(port, op, fields):
    r = post(port, envelope(op, fields), soap_headers())
    assert r.status == 200, f"{op}: HTTP {r.status}: {r.body[:800]!r}"
    return parse_response(r.body, op)


def test_the_packaged_service_serves_and_publishes(deb, tmp_path):
    user = service_user()
    base = Path(tempfile.mkdtemp(prefix="apubid-debroot-", dir="/tmp"))
    base.chmod(0o755)
    proc = None
    log = base / "apubid.log"
    try:
        root = extract(deb.deb, base / "root")
        root.chmod(0o755)
        # The root's own account database maps the package's user, apubid,
        # to the one the daemon runs as, for systemd-tmpfiles --root.
        (root / "etc/passwd").write_text(
            f"root:x:0:0:root:/root:/bin/sh\napubid:x:{user.pw_uid}:{user.pw_gid}::/:/bin/false\n")
        (root / "etc/group").write_text(f"root:x:0:\napubid:x:{user.pw_gid}:\n")

        port = free_port()
        into_root = lambda v: f"{root}{v}" if v.startswith("/") else v
        conf = root / CONF
        conf.write_text(rewrite_conf(conf.read_text(), {
            ("server", "listen"): lambda v: f"127.0.0.1:{port}",
            ("server", "user"): lambda v: user.pw_name,
            ("store", "path"): into_root,
            ("source", "allow"): into_root,
            ("destination", "root"): into_root,
        }))
        # What the postinst does: systemd-tmpfiles --create apubid.conf.
        t = run(["systemd-tmpfiles", "--create", f"--root={root}", "apubid.conf"])
        assert t.returncode == 0, t.stdout
        settings = parse_conf(conf.read_text())
        store_dir, cdn, ingest = (Path(d) for d in the_directories(settings))
        for d in (store_dir, cdn, ingest):
            st = d.stat()
            assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid), f"{d}: owner"
        assert conf.stat().st_gid == user.pw_gid and conf.stat().st_mode & 0o777 == 0o640

        # ExecStart of the packaged unit, its absolute paths under the root.
        (execstart,) = unit_values(unit_path(root).read_text(), "ExecStart")
        argv = [into_root(a) for a in shlex.split(execstart)]
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, cwd="/", stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=out)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, f"apubid exited {proc.returncode}\n{log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"apubid does not listen\n{log.read_text()}"
                time.sleep(0.05)

        r = post(port, None, path="/healthz", method="GET")
        assert r.status == 200, r

        (ingest / "movie.ts").write_bytes(b"\x47" * 188 * 100)
        (ingest / "movie.ts").chmod(0o644)
        tid = soap(port, "LoadAsset", [("SourceAssetUrl", f"{ingest}/movie.ts"),
                                        ("DestinationAsset", "show/movie.ts")])["TaskId"]
        deadline = time.monotonic() + 30
        while True:
            st = soap(port, "GetTaskStatus", [("TaskId", tid)])
            if st["Status"] != "IN_PROGRESS":
                break
            assert time.monotonic() < deadline, f"task {tid} still running\n{log.read_text()}"
            time.sleep(0.05)
        assert st["Status"] == "SUCCESS", f"{st}\n{log.read_text()}"
        published = cdn / "show/movie.ts"
        assert published.read_bytes() == (ingest / "movie.ts").read_bytes()
        assert published.stat().st_uid == user.pw_uid
        assert (store_dir / "apubid.db").stat().st_uid == user.pw_uid

        # systemctl reload: apubid, now that user, reads apubid.conf again.
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + HTTP_TIMEOUT
        while "reload:" not in log.read_text():
            assert time.monotonic() < deadline, f"no reload logged\n{log.read_text()}"
            time.sleep(0.05)
        time.sleep(0.2)
        assert "running configuration is kept" not in log.read_text(), log.read_text()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0, log.read_text()
        proc = None
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


# ---- what installing it sets up -----------------------------------------

def test_configuration_unit_and_tmpfiles_name_the_same_directories(deb):
    conf = parse_conf((deb.root / CONF).read_text())
    unit = unit_path(deb.root).read_text()
    store_dir, cdn, ingest = the_directories(conf)
    for d in (store_dir, cdn, ingest):
        assert d.startswith("/"), f"{d}: the unit sets no working directory"
    assert (store_dir, cdn, ingest) == ("/var/lib/apubid", "/srv/cdn", "/srv/ingest")
    assert conf[("server", "listen")] == ["127.0.0.1:8080"]
    assert conf[("server", "user")] == ["apubid"]

    assert unit_values(unit, "ExecStart") == [f"/usr/sbin/apubid -f /{CONF}"]
    assert unit_values(unit, "User") == [], "apubid starts as root and drops to [server] user"
    (rw,) = unit_values(unit, "ReadWritePaths")
    assert sorted(rw.split()) == sorted([store_dir, cdn]), rw

    conffiles = (deb.control / "conffiles").read_text().split()
    assert f"/{CONF}" in conffiles, conffiles

    created = {l[1]: l for l in tmpfiles_lines(deb.root) if l[0] == "d"}
    for d in (store_dir, cdn, ingest):
        assert d in created, f"tmpfiles.d does not create {d}"
        assert created[d][3:5] == ["apubid", "apubid"], created[d]
    (z,) = [l for l in tmpfiles_lines(deb.root) if l[0] == "z"]
    assert z[1:5] == [f"/{CONF}", "0640", "root", "apubid"], z


def test_sysusers_creates_the_user_the_configuration_names(deb):
    if not shutil.which("systemd-sysusers"):
        pytest.skip("systemd-sysusers is not installed")
    lines = [l for l in (deb.root / "usr/lib/sysusers.d/apubid.conf").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert [shlex.split(l)[:2] for l in lines] == [["u", "apubid"]], lines
    scratch = Path(tempfile.mkdtemp(prefix="apubid-sysusers-", dir="/tmp"))
    try:
        d = scratch / "usr/lib/sysusers.d"
        d.mkdir(parents=True)
        (scratch / "etc").mkdir()
        shutil.copy(deb.root / "usr/lib/sysusers.d/apubid.conf", d)
        p = run(["systemd-sysusers", f"--root={scratch}", "apubid.conf"])
        assert p.returncode == 0, p.stdout
        users = {l.split(":")[0]: l.split(":") for l in
                 (scratch / "etc/passwd").read_text().splitlines()}
        name, _, uid, gid, _, home, shell = users["apubid"]
        assert 0 < int(uid) < 1000, "a system user"
        assert home == "/var/lib/apubid" and shell == "/usr/sbin/nologin", users["apubid"]
        groups = [l.split(":") for l in (scratch / "etc/group").read_text().splitlines()]
        assert ["apubid", gid] in [g[:1] + g[2:3] for g in groups], groups
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_maintainer_scripts_create_then_start_and_stop_on_removal(deb):
    postinst = (deb.control / "postinst").read_text()
    steps = ["systemd-sysusers ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} apubid.conf",
             "systemd-tmpfiles ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} --create apubid.conf",
             "deb-systemd-helper enable 'apubid.service'",
             "deb-systemd-invoke $_dh_action 'apubid.service'"]
    at = [postinst.find(s) for s in steps]
    assert -1 not in at and at == sorted(at), f"postinst steps out of order: {at}\n{postinst}"
    prerm = (deb.control / "prerm").read_text()
    assert "deb-systemd-invoke stop 'apubid.service'" in prerm, prerm
    depends = run(["dpkg-deb", "-f", str(deb.deb), "Depends"]).stdout
    assert "systemd-sysusers" in depends, depends


def test_make_clean_removes_the_package_build(deb):
    p = run(["make", "--no-print-directory", "-C", str(deb.src), "clean"])
    assert p.returncode == 0, p.stdout
    assert not (deb.src / "build").exists()
    assert list(deb.src.glob("apubid_*")) == []
