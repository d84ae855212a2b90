"""Configuration: `apubid -n -f FILE` checks a file and exits 0, or 1 with
"FILE:LINE: reason" on stderr; the daemon refuses to start on a bad file.
The directories the file names are checked too, and apubid creates none:
a missing store directory, destination root or ingest directory is
reported with the line of its setting, every problem at once.
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
    ("server", "public_endpoint = /apubi"),
    ("server", "public_endpoint = https://publish.example.com/apubi?x=1"),
    ("server", "public_endpoint = https://user@publish.example.com/apubi"),
    ("server", "public_endpoint = https://a.example/<x>"),
], ids=["threads", "client_fault_status", "max_request_size", "level",
        "public_endpoint-relative", "public_endpoint-query", "public_endpoint-user",
        "public_endpoint-markup"])
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
    # Its paths are relative to the working directory, and must exist.
    for sub in ("var/ingest", "var/cdn"):
        (tmp_path / sub).mkdir(parents=True)
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


def line_of(conf, prefix):
    """The 1-based line of the first line of `conf` starting with `prefix`."""
    return [l.startswith(prefix) for l in conf.read_text().splitlines()].index(True) + 1


def test_missing_destination_root_is_reported_with_file_and_line(tmp_path):
    d = Daemon(tmp_path)
    d.cdn.rmdir()
    r = check(d.conf, tmp_path)
    assert r.returncode == 1, r
    assert r.stderr == (f"apubid: {d.conf}:{line_of(d.conf, 'root = ')}: [destination] root "
                        f"{d.cdn} does not exist: No such file or directory\n"), r.stderr
    assert "is valid" not in r.stdout


def test_missing_store_directory_is_reported_with_file_and_line(tmp_path):
    d = Daemon(tmp_path)
    store_dir = tmp_path / "no-such-dir"
    d.sections["store"]["path"] = f"{store_dir}/apubid.db"
    d.conf.write_text(d.config_text())
    r = check(d.conf, tmp_path)
    assert r.returncode == 1, r
    assert r.stderr == (f"apubid: {d.conf}:{line_of(d.conf, 'path = ')}: the store's directory "
                        f"{store_dir} does not exist: No such file or directory\n"), r.stderr
    # The daemon refuses to start the same way, before SQLite is asked.
    p = subprocess.run([APUBID, "-f", str(d.conf)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 1 and p.stderr == r.stderr, p
    assert "unable to open database file" not in p.stderr


def test_ingest_that_is_a_file_is_reported_with_file_and_line(tmp_path):
    d = Daemon(tmp_path)
    d.ingest.rmdir()
    d.ingest.write_bytes(b"not a directory")
    r = check(d.conf, tmp_path)
    assert r.returncode == 1, r
    assert r.stderr == (f"apubid: {d.conf}:{line_of(d.conf, 'allow = file://')}: [source] allow "
                        f"{d.ingest} is not a directory: Not a directory\n"), r.stderr


def test_every_path_problem_is_listed(tmp_path):
    d = Daemon(tmp_path)
    d.cdn.rmdir()
    d.ingest.rmdir()
    d.sections["store"]["path"] = f"{tmp_path}/gone/apubid.db"
    d.conf.write_text(d.config_text())
    r = check(d.conf, tmp_path)
    assert r.returncode == 1, r
    lines = r.stderr.splitlines()
    assert len(lines) == 3, lines
    assert any(f":{line_of(d.conf, 'path = ')}: the store's directory" in l for l in lines)
    assert any(f":{line_of(d.conf, 'root = ')}: [destination] root" in l for l in lines)
    assert any(f":{line_of(d.conf, 'allow = file://')}: [source] allow" in l for l in lines)


def test_built_in_configuration_names_itself_and_its_lines(tmp_path):
    r = subprocess.run([APUBID, "-n"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1, r
    assert ("apubid: (built-in defaults):10: [destination] root "
            f"{tmp_path}/var/cdn does not exist: No such file or directory") in r.stderr, r.stderr
    for sub in ("var/ingest", "var/cdn"):
        (tmp_path / sub).mkdir(parents=True)
    r = subprocess.run([APUBID, "-n"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    # apubid created nothing.
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == ["cdn", "ingest"]
