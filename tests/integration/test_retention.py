"""Retention: finished tasks older than [store] retention_days are deleted
every [store] prune_interval seconds, after which GetTaskStatus answers
exactly as for a TaskId that never existed; recent tasks, unfinished
tasks and tasks whose notification is still pending stay.

Tasks are aged by moving their updated_ms back 40 days with Python's
sqlite3 while apubid runs (the store is in WAL mode, so both may have it
open; a busy timeout covers apubid's own writes).
"""
import json
import signal
import sqlite3
import time
import uuid

import pytest

from conftest import free_port

DAY_MS = 86400 * 1000


def age(d, ids, days=40):
    db = sqlite3.connect(d.tmp / "apubid.db", timeout=10)
    try:
        with db:
            for tid in ids:
                n = db.execute("UPDATE task SET updated_ms = updated_ms - ? WHERE id = ?",
                               (days * DAY_MS, tid)).rowcount
                assert n == 1, f"task {tid} not in the store"
    finally:
        db.close()


def in_store(d, tid):
    db = sqlite3.connect(d.tmp / "apubid.db", timeout=10)
    try:
        return db.execute("SELECT COUNT(*) FROM task WHERE id = ?", (tid,)).fetchone()[0] == 1
    finally:
        db.close()


def unknown_answers(d, tid):
    """GetTaskStatus and the JSON view of `tid` next to those of a TaskId
    that never existed, with the ids themselves taken out of the bodies."""
    other = str(uuid.uuid4()).upper()
    st = d.status_reply(tid)
    st_other = d.status_reply(other)
    view = d.get(f"/tasks/{tid}.json")
    view_other = d.get(f"/tasks/{other}.json")
    return ((st.status, st.body), (st_other.status, st_other.body),
            (view[0], view[1].replace(tid.encode(), b"ID")),
            (view_other[0], view_other[1].replace(other.encode(), b"ID")))


def is_gone(d, tid):
    status, _, _ = d.status_reply(tid)
    return status != 200


def wait_gone(d, ids, timeout=10):
    deadline = time.monotonic() + timeout
    while not all(is_gone(d, t) for t in ids):
        if time.monotonic() > deadline:
            pytest.fail(f"aged tasks still answered after {timeout}s\n{d.log_tail()}")
        time.sleep(0.1)


def finish_loads(d, n):
    (d.ingest / "a.ts").write_bytes(b"x" * 100)
    ids = [d.load(f"{d.ingest}/a.ts", f"t{i}.ts") for i in range(n)]
    done = d.wait_all(ids)
    assert all(st == "SUCCESS" for st, _ in done.values())
    return ids


def test_aged_finished_tasks_are_pruned_and_read_as_unknown(make_daemon):
    closed = free_port()
    d = make_daemon(store={"prune_interval": "1"}, start=False)
    d.sections["source"]["allow"] = [f"file://{d.ingest}/", f"ftp://127.0.0.1:{closed}/in/"]
    # A task that cannot reach its source waits an hour to retry: an
    # unfinished task, however old, is never pruned.
    d.sections["transfer"] = {"retries": "100", "retry_delay": "3600", "retry_max_delay": "3600",
                              "retry_max_time": "86400", "connect_timeout": "2"}
    d.conf.write_text(d.config_text())
    d.start()
    ids = finish_loads(d, 4)
    waiting = d.load(f"ftp://127.0.0.1:{closed}/in/a.ts", "w.ts")
    deadline = time.monotonic() + 15
    while task_state(d, waiting) != "retry":
        assert time.monotonic() < deadline, f"task {waiting} never waited to retry\n{d.log_tail()}"
        time.sleep(0.1)
    old, recent = ids[:2], ids[2:]
    age(d, old + [waiting])
    wait_gone(d, old)
    for tid in old:
        assert not in_store(d, tid)
        st, st_other, view, view_other = unknown_answers(d, tid)
        assert st == st_other, f"GetTaskStatus of a pruned task differs: {st!r} vs {st_other!r}"
        assert view == view_other
        assert view[0] == 404
    time.sleep(1.5)  # at least one more pruning run
    for tid in recent:
        assert d.status(tid)[0] == "SUCCESS"
    assert d.status(waiting)[0] == "IN_PROGRESS"
    assert "store: pruned 2 tasks finished more than 30 days ago" in d.log_text()


def task_state(d, tid):
    status, body = d.get(f"/tasks/{tid}.json")
    assert status == 200, body
    return json.loads(body)["state"]


def test_retention_zero_keeps_tasks_until_sighup_sets_it(make_daemon):
    d = make_daemon(store={"prune_interval": "1", "retention_days": "0"})
    ids = finish_loads(d, 2)
    age(d, ids, days=4000)
    time.sleep(2.5)  # two pruning runs at least
    for tid in ids:
        assert d.status(tid)[0] == "SUCCESS", "retention_days = 0 must keep finished tasks"
    d.sections["store"]["retention_days"] = "30"
    d.conf.write_text(d.config_text())
    d.proc.send_signal(signal.SIGHUP)
    wait_gone(d, ids)


def test_task_with_a_pending_notification_is_kept(make_daemon):
    down = free_port()  # nothing listens: every delivery fails
    d = make_daemon(store={"prune_interval": "1"},
                    notify={"url": f"http://127.0.0.1:{down}/hook", "retries": "4",
                            "retry_delay": "2", "retry_max_delay": "2"})
    ids = finish_loads(d, 1)
    age(d, ids)
    time.sleep(1.5)  # a pruning run at least, well before the 4th attempt
    assert d.status(ids[0])[0] == "SUCCESS", "a task with a pending notification was pruned"
    # Once the notification is given up, the task goes.
    wait_gone(d, ids, timeout=20)
    assert "notification given up after 4 attempts" in d.log_text()
