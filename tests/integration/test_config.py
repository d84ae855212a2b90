"""Configuration: `apubid -n -f FILE` checks a file and exits 0, or 1 with
"FILE:LINE: reason" on stderr; the daemon refuses to start on a bad file.
"""
import subprocess
from pathlib import Path

import pytest

from conftest import APUBID, Daemon

SAMPLE = Path(__file__).resolve().parents[2] / "etc" / "apubid.conf"


def check(conf, cwd):
    return subprocess.run([APUBID, "-n", "-f", str(conf)], cwd=cwd, capture_output=True,
                          text=True, timeout=10)


def bad_config(tmp_path, section, line):
    """The suite's base config with `line` appended to `section`; returns
    (path, line number of the inserted line)."""
    d = Daemon(tmp_path)
    lines = d.config_text().splitlines()
    at = lines.index(f"[{section}]") + 1
    lines.insert(at, line)
    path = tmp_path / "bad.conf"
    path.write_text("\n".join(lines) + "\n")
    return path, at + 1


def test_valid_config_checks_ok(tmp_path):
    d = Daemon(tmp_path)
    r = check(d.conf, tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("section,line", [
    ("server", "no_such_key = 1"),
    ("workers", "threds = 4"),
    ("log", "colour = yes"),
], ids=["server", "workers", "log"])
def test_unknown_key_is_reported_with_file_and_line(tmp_path, section, line):
    path, lineno = bad_config(tmp_path, section, line)
    r = check(path, tmp_path)
    assert r.returncode != 0
    assert f"bad.conf:{lineno}" in r.stderr, r.stderr


def test_unknown_section_is_reported_with_file_and_line(tmp_path):
    d = Daemon(tmp_path)
    text = d.config_text() + "[nosuchsection]\nkey = value\n"
    path = tmp_path / "bad.conf"
    path.write_text(text)
    header = text.splitlines().index("[nosuchsection]") + 1
    r = check(path, tmp_path)
    assert r.returncode != 0
    assert f"bad.conf:{header}" in r.stderr or f"bad.conf:{header + 1}" in r.stderr, r.stderr


@pytest.mark.parametrize("section,line", [
    ("server", "threads = many"),
    ("server", "client_fault_status = 418"),
    ("server", "max_request_size = lots"),
    ("log", "level = chatty"),
], ids=["threads", "client_fault_status", "max_request_size", "level"])
def test_bad_value_is_reported_with_file_and_line(tmp_path, section, line):
    path, lineno = bad_config(tmp_path, section, line)
    r = check(path, tmp_path)
    assert r.returncode != 0
    assert f"bad.conf:{lineno}" in r.stderr, r.stderr


def test_daemon_refuses_to_start_with_a_bad_config(tmp_path):
    path, lineno = bad_config(tmp_path, "server", "no_such_key = 1")
    r = subprocess.run([APUBID, "-f", str(path)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=10)
    assert r.returncode != 0
    assert f"bad.conf:{lineno}" in r.stderr, r.stderr


def test_shipped_sample_config_checks_ok(tmp_path):
    assert SAMPLE.exists(), f"{SAMPLE} is missing"
    r = check(SAMPLE, tmp_path)
    assert r.returncode == 0, r.stderr


def test_help_and_version_in_long_and_short_form(tmp_path):
    for opt in ("--help", "-h"):
        r = subprocess.run([APUBID, opt], cwd=tmp_path, capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 0 and r.stdout.startswith("usage: apubid"), r
        assert "--help" in r.stdout and "--version" in r.stdout, r.stdout
    for opt in ("--version", "-V"):
        r = subprocess.run([APUBID, opt], cwd=tmp_path, capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 0 and r.stdout.startswith("apubid "), r
        assert len(r.stdout.splitlines()) == 1, r.stdout


def test_unknown_long_option_is_a_usage_error(tmp_path):
    r = subprocess.run([APUBID, "--no-such-option"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2 and "usage: apubid" in r.stderr, r
