"""[staging] rules: scripted outcomes, against a real daemon.

What is checked, each rule kind shaping a task as configured:

* delay: the task stays IN_PROGRESS and is not started before its delay
  (the view's history and attempt log come after "delayed_until"), then is
  really published;
* polls=N: the first N GetTaskStatus answers are IN_PROGRESS even though
  the task has succeeded, the next one is SUCCESS; polls=forever never
  lets SUCCESS through while the view says "succeeded";
* fail: FAILED with the scripted reason, and no file is written;
* fault: the submission gets the scripted HTTP status and a SOAP fault
  (Server for 5xx, Client/Sender for 4xx) carrying the faultstring, and no
  task is recorded;
* destination: a success answers the scripted DestinationAsset (an empty
  element for destination="") while the asset is really published;
* matching: PurgeAsset rules, op=*, src= globs, the first matching rule
  wins, and a task no rule matches runs for real with "rule": null;
* configuration: a rule without enabled = yes, or a bad rule, stops
  `apubid -n` with file:line and the reason;
* SIGHUP: new rules govern the next submissions; a task accepted before
  keeps its rule.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import APUBID, REPO, HTTP_TIMEOUT, assert_fault, parse_response


def staging(*rules):
    return {"staging": {"enabled": "yes", "rule": list(rules)}}


def wait_state(d, tid, state, timeout=30):
    """Polls the view (never GetTaskStatus, which would spend polls)."""
    deadline = time.monotonic() + timeout
    while True:
        v = d.view(tid)
        if v["state"] == state:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"task {tid} is {v['state']}, not {state}, after {timeout}s\n"
                        f"{d.log_tail()}")
        time.sleep(0.05)


def wait_log(d, text, timeout=10):
    deadline = time.monotonic() + timeout
    while text not in d.log_text():
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} not in the log\n{d.log_tail()}")
        time.sleep(0.05)


def source(d, name, data=b"payload"):
    (d.ingest / name).write_bytes(data)
    return f"{d.ingest}/{name}"


def test_delay_holds_the_task_back_then_it_really_publishes(make_daemon):
    d = make_daemon(**staging("name=late op=LoadAsset dest=late/* delay=2s"))
    tid = d.load(source(d, "a.ts", b"late bytes"), "late/a.ts")
    assert d.status(tid) == ("IN_PROGRESS", None)
    v = d.view(tid)
    assert v["state"] == "queued"
    assert v["rule"]["name"] == "late"
    assert v["rule"]["fail"] is None and v["rule"]["destination"] is None
    assert v["rule"]["polls_left"] == 0
    until = v["rule"]["delayed_until"]
    assert until > v["created"]

    st, dest = d.wait_for_status(tid, timeout=30)
    assert st == "SUCCESS" and dest
    assert (d.cdn / "late" / "a.ts").read_bytes() == b"late bytes"
    v = d.view(tid)
    assert v["rule"]["name"] == "late" and "delayed_until" not in v["rule"]
    # ISO 8601 times of one format compare as text.
    running = [e["at"] for e in v["history"] if e["state"] == "running"]
    assert running and min(running) >= until, (until, v["history"])
    assert v["attempt_log"][0]["started"] >= until
    assert f"task {tid}: LoadAsset shaped by rule late" in d.log_text()


def test_polls_answer_in_progress_that_many_times_over_a_success(make_daemon):
    d = make_daemon(**staging("name=three op=LoadAsset dest=three/* polls=3"))
    tid = d.load(source(d, "a.ts"), "three/a.ts")
    v = wait_state(d, tid, "succeeded")
    assert (d.cdn / "three" / "a.ts").read_bytes() == b"payload"
    assert v["rule"]["polls_left"] == 3
    for i in range(3):
        assert d.status(tid) == ("IN_PROGRESS", None), f"poll {i + 1}"
        assert d.view(tid)["rule"]["polls_left"] == 2 - i
    st, dest = d.status(tid)
    assert st == "SUCCESS"
    assert dest and dest.endswith("three/a.ts")
    assert d.status(tid)[0] == "SUCCESS"
    assert d.view(tid)["rule"]["polls_left"] == 0


def test_polls_forever_never_lets_success_through(make_daemon):
    d = make_daemon(**staging("name=stuck op=* dest=stuck/* polls=forever"))
    tid = d.load(source(d, "a.ts"), "stuck/a.ts")
    wait_state(d, tid, "succeeded")
    for _ in range(5):
        assert d.status(tid) == ("IN_PROGRESS", None)
    v = d.view(tid)
    assert v["state"] == "succeeded" and v["status"] == "SUCCESS"
    assert v["rule"] == {"name": "stuck", "fail": None, "destination": None,
                         "polls_left": -1}
    assert (d.cdn / "stuck" / "a.ts").exists()


def test_fail_ends_failed_with_the_reason_and_writes_nothing(make_daemon):
    reason = "checksum mismatch (scripted)"
    d = make_daemon(**staging(f'name=broken op=LoadAsset dest=broken/* fail="{reason}"'))
    tid = d.load(source(d, "a.ts"), "broken/a.ts")
    assert d.wait_for_status(tid) == ("FAILED", None)
    v = d.view(tid)
    assert v["state"] == "failed"
    assert v["reason"] == reason
    assert v["rule"]["name"] == "broken" and v["rule"]["fail"] == reason
    assert not (d.cdn / "broken").exists()
    assert list(d.cdn.iterdir()) == []
    # The operator's tool says which rule failed it, too.
    ctl = os.environ.get("APUBICTL", str(REPO / "apubictl"))
    p = subprocess.run([ctl, "-c", str(d.conf), "show", tid], capture_output=True, text=True,
                       timeout=HTTP_TIMEOUT)
    assert p.returncode == 0, p.stderr
    assert f"staging rule:  broken, fails: {reason}" in p.stdout, p.stdout


def test_fault_rules_refuse_the_submission_and_record_nothing(make_daemon):
    d = make_daemon(**staging('name=busy op=* dest=busy/* fault=503 faultstring="CDN busy, come back"',
                              "name=bad op=LoadAsset dest=bad/* fault=400"))
    src = source(d, "a.ts")
    f = assert_fault(d.load_reply(src, "busy/a.ts"), "Server", 503)
    assert f.string == "CDN busy, come back"
    f = assert_fault(d.purge_reply("busy/a.ts"), "Server", 503)
    assert f.string == "CDN busy, come back"
    f = assert_fault(d.load_reply(src, "bad/a.ts"), "Client", 400)
    assert f.string == "refused by rule bad"
    f = assert_fault(d.load_reply(src, "bad/a.ts", version=12), "Sender", 400, version=12)
    assert f.string == "refused by rule bad"
    # A purge is not what "bad" matches: it runs for real.
    assert d.wait_for_status(d.purge("bad/a.ts"))[0] == "SUCCESS"

    status, body = d.get("/tasks")
    assert status == 200
    tasks = json.loads(body)["tasks"]
    assert len(tasks) == 1 and tasks[0]["kind"] == "purge" and tasks[0]["rule"] is None
    assert list(d.cdn.iterdir()) == []
    log = d.log_text()
    assert "LoadAsset refused by rule busy: HTTP 503" in log
    assert re.search(r"request op=LoadAsset status=400 .*fault=\"refused by rule bad\"", log)


def test_destination_rules_answer_the_scripted_destination_asset(make_daemon):
    d = make_daemon(**staging('name=cdn op=LoadAsset dest=odd/* destination="http://cdn.example/x"',
                              'name=empty op=LoadAsset dest=empty/* destination=""'))
    tid = d.load(source(d, "a.ts", b"odd"), "odd/a.ts")
    assert d.wait_for_status(tid) == ("SUCCESS", "http://cdn.example/x")
    assert (d.cdn / "odd" / "a.ts").read_bytes() == b"odd"
    v = d.view(tid)
    assert v["destination_asset"] == "http://cdn.example/x"
    assert v["rule"]["destination"] == "http://cdn.example/x"

    tid = d.load(source(d, "b.ts", b"empty"), "empty/b.ts")
    wait_state(d, tid, "succeeded")
    status, _, body = d.status_reply(tid)
    assert status == 200
    r = parse_response(body, "GetTaskStatus")
    assert r["Status"] == "SUCCESS"
    # Present and empty, not left out.
    assert r.get("DestinationAsset") == "", body
    assert (d.cdn / "empty" / "b.ts").read_bytes() == b"empty"
    assert d.view(tid)["rule"]["destination"] == ""


def test_matching_op_src_globs_purges_and_first_rule_wins(make_daemon):
    d = make_daemon(**staging(
        'name=purge-fail op=PurgeAsset dest=keep/* fail="purge refused by the CDN"',
        "name=ts op=LoadAsset dest=multi/* src=*.ts polls=1",
        "name=all op=* dest=multi/*",
    ))
    # Loads into keep/ match no rule (the rule is for purges): for real.
    tid = d.load(source(d, "k.ts"), "keep/k.ts")
    assert d.wait_for_status(tid)[0] == "SUCCESS"
    assert d.view(tid)["rule"] is None
    # The purge rule fails the purge; the file stays.
    tid = d.purge("keep/k.ts")
    assert d.wait_for_status(tid) == ("FAILED", None)
    v = d.view(tid)
    assert v["rule"]["name"] == "purge-fail" and v["reason"] == "purge refused by the CDN"
    assert (d.cdn / "keep" / "k.ts").exists()

    # "ts" comes first and matches the .ts source; "all" takes the rest.
    t1 = d.load(source(d, "a.ts"), "multi/a.ts")
    t2 = d.load(source(d, "b.mp4"), "multi/b.mp4")
    assert d.view(t1)["rule"]["name"] == "ts"
    assert d.view(t2)["rule"]["name"] == "all"
    wait_state(d, t1, "succeeded")
    assert d.status(t1) == ("IN_PROGRESS", None)
    assert d.status(t1)[0] == "SUCCESS"
    assert d.wait_for_status(t2)[0] == "SUCCESS"
    # src= never matches a purge: op=* "all" does, and only tags it.
    t3 = d.purge("multi/a.ts")
    assert d.view(t3)["rule"]["name"] == "all"
    assert d.wait_for_status(t3)[0] == "SUCCESS"
    assert not (d.cdn / "multi" / "a.ts").exists()

    status, body = d.get("/tasks")
    names = {t["id"]: (t["rule"] or {}).get("name") for t in json.loads(body)["tasks"]}
    assert names[t1] == "ts" and names[t2] == "all" and names[t3] == "all"
    status, body = d.get(f"/tasks/{t1}.xml")
    assert status == 200 and b"<rule><name>ts</name>" in body


def check(d):
    d.conf.write_text(d.config_text())
    return subprocess.run([APUBID, "-n", "-f", str(d.conf)], capture_output=True, text=True,
                          timeout=30)


def test_rules_without_enabled_or_malformed_are_refused(make_daemon):
    d = make_daemon(start=False, staging={"rule": "name=a op=*"})
    r = check(d)
    assert r.returncode != 0
    lines = d.config_text().splitlines()
    line = lines.index("rule = name=a op=*") + 1
    assert (f"{d.conf}:{line}: [staging] rule needs 'enabled = yes' in [staging]"
            in r.stderr), r.stderr

    d.sections["staging"] = {"enabled": "yes", "rule": ["name=a op=*", "name=b op=* polls=x"]}
    r = check(d)
    line = d.config_text().splitlines().index("rule = name=b op=* polls=x") + 1
    assert r.returncode != 0
    assert f"{d.conf}:{line}: rule b: polls must be a number" in r.stderr, r.stderr

    d.sections["staging"] = {"enabled": "yes", "rule": ["name=a op=* delay=1s"]}
    r = check(d)
    assert r.returncode == 0, r.stderr


def test_sighup_installs_new_rules_and_accepted_tasks_keep_theirs(make_daemon):
    d = make_daemon(**staging("name=first op=LoadAsset dest=hup/* delay=forever"))
    t1 = d.load(source(d, "a.ts"), "hup/a.ts")
    v = d.view(t1)
    assert v["rule"]["name"] == "first" and v["rule"]["delayed_until"] == "never"

    d.sections["staging"]["rule"] = ['name=second op=LoadAsset dest=hup/* fail="after reload"']
    d.conf.write_text(d.config_text())
    d.proc.send_signal(signal.SIGHUP)
    wait_log(d, "reload: applied staging.rule")
    t2 = d.load(source(d, "b.ts"), "hup/b.ts")
    assert d.wait_for_status(t2) == ("FAILED", None)
    assert d.view(t2)["reason"] == "after reload"
    # Accepted before: still the first rule's, still held back.
    v = d.view(t1)
    assert v["rule"]["name"] == "first" and v["state"] == "queued"
    assert d.status(t1) == ("IN_PROGRESS", None)

    # No rule any more: the next task runs for real.
    del d.sections["staging"]["rule"]
    d.conf.write_text(d.config_text())
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while d.log_text().count("reload: applied staging.rule") < 2:
        assert time.monotonic() < deadline, d.log_tail()
        time.sleep(0.05)
    t3 = d.load(source(d, "c.ts"), "hup/c.ts")
    assert d.wait_for_status(t3)[0] == "SUCCESS"
    assert d.view(t3)["rule"] is None
    assert (d.cdn / "hup" / "c.ts").exists() and not (d.cdn / "hup" / "a.ts").exists()
    assert d.view(t1)["rule"]["name"] == "first"
