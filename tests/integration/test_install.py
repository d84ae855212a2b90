"""`make install` and `make uninstall`, staged under a temporary DESTDIR.

Every file lands where PREFIX and SYSCONFDIR say, the systemd unit starts
the installed binary with the installed configuration, that configuration
fits the unit (user apubid, its store and destination root where the unit
may write, absolute paths: the unit sets no working directory), an
operator's apubid.conf is never overwritten, and the manual pages render
without a warning (with groff, when it is installed). The binaries
installed are the ones under test (APUBID, APUBICTL), so nothing is
rebuilt here.
"""
import filecmp
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import APUBID, REPO, parse_conf

APUBICTL = os.environ.get("APUBICTL", str(REPO / "apubictl"))
MAKE_TIMEOUT = 120
PAGES = {"man8/apubid.8": "etc/man/apubid.8", "man8/apubictl.8": "etc/man/apubictl.8",
         "man5/apubid.conf.5": "etc/man/apubid.conf.5"}


def make(*args):
    """Runs make in the checkout with the binaries under test; an outer
    make's settings (MAKEFLAGS carries its command-line variables) stay out."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    p = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), *args,
                        f"INSTALL_BIN={APUBID}", f"INSTALL_CTL={APUBICTL}"],
                       capture_output=True, text=True, env=env, timeout=MAKE_TIMEOUT)
    assert p.returncode == 0, f"make {' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# What the installed apubid.conf changes in the sample (the Makefile's
# STOREDIR, CDNDIR and INGESTDIR defaults, and the unit's user).
INSTALLED = {("server", "user"): ["apubid"],
             ("store", "path"): ["/var/lib/apubid/apubid.db"],
             ("source", "allow"): ["/srv/ingest/"],
             ("destination", "root"): ["/srv/cdn/"]}


def unit_values(text, key):
    return [l.split("=", 1)[1] for l in text.splitlines() if l.startswith(key + "=")]


def assert_fits_the_unit(conf_text, unit_text, expected=INSTALLED):
    """The installed configuration is the sample with `expected` set, and
    apubid may write its store's directory and its root under the unit."""
    conf = parse_conf(conf_text)
    sample = parse_conf((REPO / "etc/apubid.conf").read_text())
    for key, value in expected.items():
        assert conf.get(key) == value, f"{key}: {conf.get(key)} instead of {value}"
    rest = {k: v for k, v in conf.items() if k not in expected}
    assert rest == {k: v for k, v in sample.items() if k not in expected}
    assert conf[("server", "listen")] == ["127.0.0.1:8080"]
    store_dir = os.path.dirname(conf[("store", "path")][0])
    root = conf[("destination", "root")][0].rstrip("/")
    assert unit_values(unit_text, "ReadWritePaths") == [f"{store_dir} {root}"], unit_text
    assert unit_values(unit_text, "User") == [], "apubid starts as root, drops to [server] user"


def assert_valid(conf_text, tmp_path):
    """apubid -n accepts it. -n checks the directories the file names, as
    the user apubid would run as: they are moved under tmp_path (which that
    user could not enter) and checked as root."""
    f = tmp_path / "check.conf"
    for d in ("/var/lib/apubid", "/srv/cdn", "/srv/ingest"):
        assert d in conf_text, f"{d} is not in the configuration"
        (tmp_path / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
        conf_text = conf_text.replace(d, f"{tmp_path}{d}")
    f.write_text(conf_text.replace("\nuser = apubid\n", "\n"))
    p = subprocess.run([APUBID, "-n", "-f", str(f)], capture_output=True, text=True,
                       timeout=30, cwd="/")
    assert p.returncode == 0, p.stderr


def test_install_puts_every_file_in_place(tmp_path):
    dest = tmp_path / "stage"
    make("install", f"DESTDIR={dest}", "PREFIX=/usr")
    root = dest / "usr"
    for name, src in (("apubid", APUBID), ("apubictl", APUBICTL)):
        f = root / "sbin" / name
        assert filecmp.cmp(f, src, shallow=False), f"{f} differs from {src}"
        assert mode(f) == 0o755
    conf = dest / "etc/apubid/apubid.conf"
    assert mode(conf) & 0o007 == 0, "apubid.conf may hold passwords: not for others"
    for page, src in PAGES.items():
        f = root / "share/man" / page
        assert f.read_bytes() == (REPO / src).read_bytes(), f
        assert mode(f) == 0o644
    assert (root / "share/doc/apubid/README.md").is_file()
    unit = root / "lib/systemd/system/apubid.service"
    text = unit.read_text()
    assert mode(unit) == 0o644
    execs = [l for l in text.splitlines() if l.startswith("ExecStart=")]
    assert execs == ["ExecStart=/usr/sbin/apubid -f /etc/apubid/apubid.conf"], execs
    assert "/usr/local" not in text
    assert "Documentation=file:///usr/share/doc/apubid/README.md" in text
    assert_fits_the_unit(conf.read_text(), text)
    assert_valid(conf.read_text(), tmp_path)
    # Nothing else was installed.
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert got == sorted([
        "etc/apubid/apubid.conf", "usr/lib/systemd/system/apubid.service",
        "usr/sbin/apubid", "usr/sbin/apubictl", "usr/share/doc/apubid/README.md",
        *(f"usr/share/man/{p}" for p in PAGES)]), got
    # The installed binaries run.
    for name in ("apubid", "apubictl"):
        p = subprocess.run([str(root / "sbin" / name), "-V"], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0 and "0." in p.stdout, p


def test_install_keeps_an_existing_configuration(tmp_path):
    dest = tmp_path / "stage"
    conf = dest / "etc/apubid/apubid.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[server]\nlisten = 127.0.0.1:9999\n")
    p = make("install", f"DESTDIR={dest}", "PREFIX=/usr")
    assert conf.read_text() == "[server]\nlisten = 127.0.0.1:9999\n"
    new = dest / "etc/apubid/apubid.conf.new"
    unit = (dest / "usr/lib/systemd/system/apubid.service").read_text()
    assert_fits_the_unit(new.read_text(), unit)
    assert mode(new) & 0o007 == 0
    assert "apubid.conf.new" in p.stdout


def test_prefix_and_sysconfdir_reach_the_unit(tmp_path):
    dest = tmp_path / "stage"
    make("install", f"DESTDIR={dest}", "PREFIX=/opt/apubid", "SYSCONFDIR=/opt/etc")
    assert (dest / "opt/apubid/sbin/apubid").is_file()
    assert (dest / "opt/etc/apubid/apubid.conf").is_file()
    unit = (dest / "opt/apubid/lib/systemd/system/apubid.service").read_text()
    assert "ExecStart=/opt/apubid/sbin/apubid -f /opt/etc/apubid/apubid.conf\n" in unit


def test_the_unit_and_the_configuration_follow_the_directories(tmp_path):
    dest = tmp_path / "stage"
    make("install", f"DESTDIR={dest}", "PREFIX=/usr", "STOREDIR=/data/apubid/db",
         "CDNDIR=/data/www", "INGESTDIR=/data/in")
    conf = (dest / "etc/apubid/apubid.conf").read_text()
    unit = (dest / "usr/lib/systemd/system/apubid.service").read_text()
    assert_fits_the_unit(conf, unit, {**INSTALLED,
                                      ("store", "path"): ["/data/apubid/db/apubid.db"],
                                      ("source", "allow"): ["/data/in/"],
                                      ("destination", "root"): ["/data/www/"]})


def test_uninstall_removes_all_but_the_configuration(tmp_path):
    dest = tmp_path / "stage"
    make("install", f"DESTDIR={dest}", "PREFIX=/usr")
    make("install", f"DESTDIR={dest}", "PREFIX=/usr")  # leaves apubid.conf.new
    make("uninstall", f"DESTDIR={dest}", "PREFIX=/usr")
    left = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert left == ["etc/apubid/apubid.conf"], left


@pytest.mark.parametrize("page", sorted(PAGES.values()))
def test_manual_pages_render_without_warnings(page):
    src = REPO / page
    text = src.read_text()
    assert text.count("\n.TH ") + text.startswith(".TH ") == 1, f"{page}: one .TH expected"
    assert ".SH NAME" in text, f"{page} has no NAME section"
    groff = shutil.which("groff")
    if not groff:
        pytest.skip("groff is not installed (Debian package groff-base)")
    p = subprocess.run([groff, "-man", "-Tutf8", "-wall", "-z", str(src)], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert p.returncode == 0 and p.stderr == "", f"groff on {page}:\n{p.stderr}"
    if shutil.which("man"):
        p = subprocess.run(["man", "--warnings", "-l", str(src)], capture_output=True,
                           text=True, timeout=60,
                           env={**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "80",
                                "MANPAGER": "cat", "PAGER": "cat"})
        assert p.returncode == 0 and p.stderr == "", f"man -l {page}:\n{p.stderr}"
        assert "NAME" in p.stdout
