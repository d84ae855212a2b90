"""Inputs the fuzzer found interesting, replayed against the real daemon.

Every file in tests/fuzz/regressions/ (a crash or hang the fuzzer found,
kept after the fix) and every seed tests/fuzz/seeds.sh makes from the
fixtures is sent as the raw bytes of one connection. After each, the daemon
must still be running and must answer the next request correctly.
"""
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import FIXTURES

REPO = Path(__file__).resolve().parents[2]
REGRESSIONS = REPO / "tests" / "fuzz" / "regressions"


def _inputs(tmp_path_factory):
    seeds = tmp_path_factory.mktemp("seeds")
    subprocess.run(["sh", str(REPO / "tests" / "fuzz" / "seeds.sh"), str(seeds), str(FIXTURES)],
                   check=True, timeout=30)
    files = sorted(seeds.iterdir()) + sorted(p for p in REGRESSIONS.glob("*") if p.is_file()
                                             and p.name != "README")
    assert len(files) >= 10, "the seed corpus should hold every fixture"
    return files


def _send_raw(port, data, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading it all
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if not s.recv(65536):
                    break
            except (ConnectionResetError, TimeoutError, socket.timeout):
                break
    finally:
        s.close()


def test_fuzz_inputs_leave_the_daemon_serving(make_daemon, tmp_path_factory):
    d = make_daemon(server={"recv_timeout": "2", "request_timeout": "4"})
    for path in _inputs(tmp_path_factory):
        _send_raw(d.port, path.read_bytes())
        assert d.proc.poll() is None, f"apubid died on {path.name}\n{d.log_tail()}"
        status, _, body = d.status_reply("TestAssetA")
        assert status == 500 and b"Task Id does not exist" in body, \
            f"after {path.name}: HTTP {status}: {body[:300]!r}"
