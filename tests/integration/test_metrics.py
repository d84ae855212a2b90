"""GET /metrics: the Prometheus text exposition format 0.0.4.

A fresh daemon gets a known sequence of requests (loads, a refused load,
status calls, task views, a GET of an unknown path); then the exposition is
parsed line by line (every line must be a HELP, a TYPE or a well-formed
sample of a declared family, no series twice) and the counters must be
exactly what was sent: requests by operation and status, each histogram
cumulative and ending in +Inf equal to its _count, tasks by state, the
queue depth, bytes and files of the loads, and no errors or retries.
"""
import math
import re
import time

from conftest import post
from servers import free_port

SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'                                   # name
    r'(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'         # first label
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})?'   # more labels
    r' ([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|Inf|NaN))'       # value
    r'(?: -?[0-9]+)?$')                                              # timestamp
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_exposition(text):
    """{(name, frozenset(labels.items())): value} and {family: type};
    asserts that every line follows the format."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    samples, types, helps = {}, {}, set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n}: {line!r}"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helps, f"second HELP for {name}, {where}"
            assert len(line.split(" ", 3)) == 4 and line.split(" ", 3)[3], where
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            assert len(parts) == 4 and parts[3] in TYPES, where
            assert parts[2] not in types, f"second TYPE for {parts[2]}, {where}"
            types[parts[2]] = parts[3]
            continue
        assert not line.startswith("#") and line.strip(), f"unexpected {where}"
        m = SAMPLE_RE.match(line)
        assert m, f"malformed sample, {where}"
        name = m.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name) \
            if types.get(re.sub(r"_(bucket|sum|count)$", "", name)) == "histogram" else name
        assert family in types, f"sample before its TYPE, {where}"
        labels = frozenset(LABEL_RE.findall(m.group(2) or ""))
        key = (name, labels)
        assert key not in samples, f"series twice, {where}"
        samples[key] = float(m.group(3).replace("Inf", "inf"))
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples, name):
    return {k[1]: v for k, v in samples.items() if k[0] == name}


def scrape(d):
    r = post(d.port, None, {}, path="/metrics", method="GET")
    assert r.status == 200, r
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
    return parse_exposition(r.body.decode("utf-8"))


def test_counters_after_a_known_sequence_of_requests(daemon):
    d = daemon
    sizes = {"one.ts": 1000, "two.ts": 20_000, "pkg/a.ts": 333, "pkg/b.ts": 4444}
    for rel, size in sizes.items():
        (d.ingest / rel).parent.mkdir(parents=True, exist_ok=True)
        (d.ingest / rel).write_bytes(b"m" * size)
    tids = [d.load(f"file://{d.ingest}/one.ts", "one.ts"),
            d.load(f"file://{d.ingest}/two.ts", "two.ts"),
            d.load(f"file://{d.ingest}/pkg/", "pkg/")]
    refused = d.load_reply(f"file://{d.ingest}/absent.ts", "absent.ts")
    assert refused.status == 500, refused

    views = 0
    for tid in tids:
        while True:
            r = post(d.port, None, {}, path=f"/tasks/{tid}.json?status_only=true", method="GET")
            views += 1
            assert r.status == 200 and views < 2000, r
            if b"IN_PROGRESS" not in r.body:
                assert b"SUCCESS" in r.body, r.body
                break
    for tid in tids[:2]:
        assert d.status(tid)[0] == "SUCCESS"
    assert post(d.port, None, {}, path="/nowhere", method="GET").status == 404

    s, types = scrape(d)
    assert types["apubid_requests_total"] == "counter"
    assert types["apubid_request_duration_seconds"] == "histogram"
    assert types["apubid_tasks"] == "gauge"
    req = series(s, "apubid_requests_total")
    assert req == {
        frozenset({("op", "LoadAsset"), ("status", "200")}): 3,
        frozenset({("op", "LoadAsset"), ("status", "500")}): 1,
        frozenset({("op", "GetTaskStatus"), ("status", "200")}): 2,
        frozenset({("op", "view"), ("status", "200")}): views,
        frozenset({("op", "other"), ("status", "404")}): 1,
    }, req

    per_op = {"LoadAsset": 4, "GetTaskStatus": 2, "view": views, "other": 1}
    for op, count in per_op.items():
        buckets = sorted(((float(dict(k)["le"].replace("Inf", "inf")), v)
                          for k, v in series(s, "apubid_request_duration_seconds_bucket").items()
                          if dict(k)["op"] == op))
        bounds = [b for b, _ in buckets]
        assert bounds[0] == 0.0005 and bounds[-2] == 5 and math.isinf(bounds[-1]), bounds
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), f"{op}: buckets not cumulative: {counts}"
        assert counts[-1] == count, f"{op}: +Inf {counts[-1]} != {count}"
        assert value(s, "apubid_request_duration_seconds_count", op=op) == count
        total = value(s, "apubid_request_duration_seconds_sum", op=op)
        assert 0 < total < 5 * count, (op, total)
    assert not [k for k in series(s, "apubid_request_duration_seconds_count")
                if dict(k)["op"] not in per_op]

    assert value(s, "apubid_tasks", state="succeeded") == 3
    for st in ("queued", "running", "retry", "failed", "cancelled"):
        assert value(s, "apubid_tasks", state=st) == 0, st
    assert value(s, "apubid_queue_depth") == 0
    assert value(s, "apubid_transferred_files_total") == len(sizes)
    assert value(s, "apubid_transferred_bytes_total") == sum(sizes.values())
    assert value(s, "apubid_retries_total") == 0
    assert sum(series(s, "apubid_transfer_errors_total").values()) == 0
    assert sum(series(s, "apubid_notifications_total").values()) == 0
    build = series(s, "apubid_build_info")
    assert len(build) == 1 and list(build.values()) == [1]
    assert dict(next(iter(build)))["version"]
    assert value(s, "apubid_process_start_time_seconds") > 1.7e9

    # The scrape above counts once it is answered, not in its own text.
    s2, _ = scrape(d)
    assert value(s2, "apubid_requests_total", op="metrics", status="200") == 1
    assert value(s2, "apubid_requests_total", op="LoadAsset", status="200") == 3


def test_a_task_waiting_to_retry_counts_in_the_gauges_and_error_counters(make_daemon):
    # Workers cannot be paused from outside; a task waiting to retry is a
    # state a test can hold: a load from a port where nobody listens, with
    # a long retry delay.
    port = free_port()
    d = make_daemon(start=False)
    d.sections["source"]["allow"] = [f"file://{d.ingest}/", f"ftp://127.0.0.1:{port}/"]
    d.sections["transfer"] = {"retries": "5", "retry_delay": "60", "retry_max_delay": "60",
                              "connect_timeout": "2"}
    d.conf.write_text(d.config_text())
    d.start()
    tid = d.load(f"ftp://u:p@127.0.0.1:{port}/x.ts", "x.ts")
    deadline = time.monotonic() + 15
    while True:
        s, _ = scrape(d)
        if value(s, "apubid_tasks", state="retry") == 1:
            break
        assert time.monotonic() < deadline, f"task {tid} never waited to retry\n{d.log_tail()}"
        time.sleep(0.05)
    assert value(s, "apubid_queue_depth") == 1
    assert sum(series(s, "apubid_tasks").values()) == 1
    assert value(s, "apubid_transfer_errors_total", kind="transient") == 1
    assert value(s, "apubid_transfer_errors_total", kind="permanent") == 0
    assert value(s, "apubid_retries_total") == 1
    assert value(s, "apubid_transferred_files_total") == 0
