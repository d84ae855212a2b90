"""`make install` and `make uninstall`, staged under a temporary DESTDIR.

Every file lands where PREFIX and SYSCONFDIR say, the systemd unit starts
the installed binary with the installed configuration, an operator's
apubid.conf is never overwritten, and the manual pages render without a
warning (with groff, when it is installed). The binaries installed are the
ones under test (APUBID, APUBICTL), so nothing is rebuilt here.
"""
import filecmp
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import APUBID, REPO

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


def test_install_puts_every_file_in_place(tmp_path):
    dest = tmp_path / "stage"
    make("install", f"DESTDIR={dest}", "PREFIX=/usr")
    root = dest / "usr"
    for name, src in (("apubid", APUBID), ("apubictl", APUBICTL)):
        f = root / "sbin" / name
        assert filecmp.cmp(f, src, shallow=False), f"{f} differs from {src}"
        assert mode(f) == 0o755
    conf = dest / "etc/apubid/apubid.conf"
    assert conf.read_text() == (REPO / "etc/apubid.conf").read_text()
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
    assert new.read_text() == (REPO / "etc/apubid.conf").read_text()
    assert "apubid.conf.new" in p.stdout


def test_prefix_and_sysconfdir_reach_the_unit(tmp_path):
    dest = tmp_path / "stage"
    make("install", f"DESTDIR={dest}", "PREFIX=/opt/apubid", "SYSCONFDIR=/opt/etc")
    assert (dest / "opt/apubid/sbin/apubid").is_file()
    assert (dest / "opt/etc/apubid/apubid.conf").is_file()
    unit = (dest / "opt/apubid/lib/systemd/system/apubid.service").read_text()
    assert "ExecStart=/opt/apubid/sbin/apubid -f /opt/etc/apubid/apubid.conf\n" in unit


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
