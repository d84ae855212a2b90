"""apubid on a PostgreSQL store ([store] url): the real daemon against a
real PostgreSQL 15 server started by the test on 127.0.0.1.

- A task published on PostgreSQL is SUCCESS, and still there after a
  restart.
- Two daemons on one database share one task table: each accepts tasks,
  and the other answers GetTaskStatus for them.
- While the database is down, submissions and GetTaskStatus are refused
  with 503 and Retry-After, /healthz answers 503, no daemon exits, and once it is back the daemon takes tasks
  again by itself.
- The password in the URL never reaches the log.
- A node killed while it runs a task loses it to another node once its
  lease runs out; the other node finishes it, the file intact.
- An operator's cancel reaches the node that runs the task.
"""
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import APUBID, Daemon, assert_fault, hidden_entries, post
from pg import PostgresServer
from servers import FtpServer

REPO = Path(__file__).resolve().parents[2]
APUBICTL = os.environ.get("APUBICTL", str(REPO / "apubictl"))


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    server = PostgresServer(tmp_path_factory.mktemp("pg"))
    server.start()
    yield server
    server.close()


@pytest.fixture
def db(pg, request):
    """A new database for one test; its URL."""
    name = "t_" + request.node.name[5:50].lower()
    return pg.create_database(name)


def wait_until(predicate, timeout, what, d=None):
    end = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout}s waiting for {what}"
                        + (f"\n{d.log_tail()}" if d else ""))
        time.sleep(0.1)


def test_a_task_published_on_postgresql_is_still_there_after_a_restart(make_daemon, db):
    d = make_daemon(store={"url": db})
    data = os.urandom(100_000)
    (d.ingest / "movie.ts").write_bytes(data)
    tid = d.load(f"file://{d.ingest}/movie.ts", "movies/movie.ts")
    st, dest = d.wait_for_status(tid)
    assert st == "SUCCESS", d.log_tail()
    assert dest == f"file://{d.cdn}/movies/movie.ts"
    assert (d.cdn / "movies" / "movie.ts").read_bytes() == data
    # The task lives in PostgreSQL, not in a SQLite file beside the daemon.
    assert not (d.tmp / "apubid.db").exists()
    d.restart()
    assert d.status(tid) == ("SUCCESS", dest)
    view = d.view(tid)
    assert view["state"] == "succeeded", view


def test_two_daemons_on_one_database_answer_for_each_others_tasks(make_daemon, db):
    a = make_daemon(store={"url": db})
    # One shared destination root and source directory, as a cluster has.
    b = make_daemon(store={"url": db},
                    source={"allow": f"file://{a.ingest}/"},
                    destination={"root": a.root_url, "allow": "ftp://CDN:21/data/cdn/"})
    files = {f"f{i}.ts": os.urandom(20_000 + i) for i in range(6)}
    for name, data in files.items():
        (a.ingest / name).write_bytes(data)
    ids = {}
    for i, name in enumerate(files):
        node = a if i % 2 == 0 else b
        ids[name] = (node, node.load(f"file://{a.ingest}/{name}", f"out/{name}"))
    for name, (node, tid) in ids.items():
        other = b if node is a else a
        st, dest = other.wait_for_status(tid)
        assert st == "SUCCESS", f"{name} on {other.port}: {st}\n{other.log_tail()}"
        assert dest == f"file://{a.cdn}/out/{name}"
        assert (a.cdn / "out" / name).read_bytes() == files[name]
        # The node that accepted it answers the same.
        assert node.status(tid) == ("SUCCESS", dest)


def test_submissions_get_503_while_the_database_is_down_and_resume_when_it_is_back(
        make_daemon, pg, db):
    d = make_daemon(store={"url": db})
    (d.ingest / "a.ts").write_bytes(b"a" * 1000)
    before = d.load(f"file://{d.ingest}/a.ts", "before.ts")
    assert d.wait_for_status(before)[0] == "SUCCESS"
    pg.stop()
    try:
        def refused():
            r = d.load_reply(f"file://{d.ingest}/a.ts", "during.ts")
            return r if r.status == 503 else None
        r = wait_until(refused, 30, "a 503 while the database is down", d)
        assert_fault(r, "Server", 503)
        assert r.headers.get("Retry-After", "").isdigit(), dict(r.headers)
        assert b"TaskId" not in r.body
        # GetTaskStatus cannot be answered either: 503 too, not a crash.
        s = d.status_reply(before)
        assert_fault(s, "Server", 503)
        assert s.headers.get("Retry-After", "").isdigit(), dict(s.headers)
        h = post(d.port, None, {}, path="/healthz", method="GET")
        assert h.status == 503, (h.status, h.body[:300])
        assert d.proc.poll() is None, "apubid exited while the database was down"
    finally:
        pg.start()
    # Back: the daemon reconnects by itself and accepts and runs tasks.
    def accepted():
        r = d.load_reply(f"file://{d.ingest}/a.ts", "after.ts")
        return r if r.status == 200 else None
    wait_until(accepted, 60, "a task accepted once the database is back", d)
    wait_until(lambda: (d.cdn / "after.ts").exists(), 60, "after.ts published", d)
    assert (d.cdn / "after.ts").read_bytes() == b"a" * 1000


def test_the_database_password_never_reaches_the_log(make_daemon, pg, db):
    pg.psql("CREATE ROLE apubid_pw LOGIN PASSWORD 'Sup3r-s3cret-pw'")
    pg.psql(f'ALTER DATABASE "{db.rsplit("/", 1)[1]}" OWNER TO apubid_pw')
    url = db.replace("postgres@", "apubid_pw:Sup3r-s3cret-pw@")
    d = make_daemon(store={"url": url})
    (d.ingest / "a.ts").write_bytes(b"x")
    d.publish(f"file://{d.ingest}/a.ts", "a.ts")
    d.stop()
    log = d.log_text()
    assert "Sup3r-s3cret-pw" not in log
    assert "apubid_pw:***@" in log, log[-3000:]


def cluster_node(make_daemon, db, ftp, first=None, **store):
    """A node on database `db` whose sources may come from `ftp`; the
    nodes after the first share its destination root."""
    d = make_daemon(start=False)
    d.sections["store"].update({"url": db, **store})
    d.sections["source"]["allow"] = [f"file://{d.ingest}/", ftp.url("", credentials=False)]
    d.sections["workers"]["count"] = "2"
    if first is not None:
        d.sections["destination"]["root"] = first.root_url
        d.cdn = first.cdn
    d.conf.write_text(d.config_text())
    os.chmod(d.conf, 0o600)
    return d.start()


def test_a_killed_nodes_task_is_finished_by_another_node_after_its_lease(
        tmp_path, make_daemon, db):
    data = os.urandom(3 << 20)
    with FtpServer(tmp_path, throttle_bytes_per_sec=256 << 10) as ftp:
        (ftp.root / "long.ts").write_bytes(data)
        a = cluster_node(make_daemon, db, ftp, lease_timeout="3")
        tid = a.load(ftp.url("long.ts"), "long/long.ts")
        wait_until(lambda: a.view(tid)["progress"]["bytes_done"] > 0, 60,
                   "the transfer under way on the first node", a)
        b = cluster_node(make_daemon, db, ftp, first=a, lease_timeout="3")
        # b starts while a runs the task: a's lease is live, b leaves it.
        time.sleep(1.5)
        assert a.view(tid)["attempts"] == 1
        a.kill9()
        t0 = time.monotonic()
        st, dest = b.wait_for_status(tid, timeout=120)
        took = time.monotonic() - t0
        assert st == "SUCCESS", b.log_tail()
        assert (a.cdn / "long" / "long.ts").read_bytes() == data
        assert hidden_entries(a.cdn) == []
        view = b.view(tid)
        assert view["attempts"] == 2, view
        # Not a timing assertion: the takeover needs the lease to run out
        # (3 s), then the copy itself at the server's pace.
        assert took > 2, f"taken over {took:.1f}s after the kill, before the lease ran out"


def test_an_operators_cancel_reaches_the_node_that_runs_the_task(tmp_path, make_daemon, db):
    with FtpServer(tmp_path, throttle_bytes_per_sec=32 << 10) as ftp:
        (ftp.root / "slow.ts").write_bytes(b"s" * (4 << 20))
        a = cluster_node(make_daemon, db, ftp)
        b = cluster_node(make_daemon, db, ftp, first=a)
        tid = a.load(ftp.url("slow.ts"), "slow.ts")
        wait_until(lambda: a.view(tid).get("state") == "running", 60, "the task running", a)
        # apubictl with the other node's configuration: the same database.
        p = subprocess.run([APUBICTL, "-c", b.conf, "cancel", tid], capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, (p.stdout, p.stderr)
        st, _ = b.wait_for_status(tid, timeout=60)
        assert st == "FAILED"
        assert a.view(tid)["state"] == "cancelled"


def test_a_postgresql_node_needs_no_store_directory_but_a_spool_it_can_write(tmp_path):
    """apubid -n on a node whose [store] url names its tasks: the SQLite
    path's directory is not asked for; a [store] spool set is checked."""
    d = Daemon(tmp_path / "n", {"store": {"url": "postgresql://apubid@127.0.0.1/apubid",
                                          "path": str(tmp_path / "missing" / "apubid.db")}})
    r = subprocess.run([APUBID, "-n", "-f", str(d.conf)], capture_output=True, text=True,
                       timeout=30, cwd=d.tmp)
    assert r.returncode == 0, r.stderr
    d.sections["store"]["spool"] = str(tmp_path / "no-spool")
    d.conf.write_text(d.config_text())
    r = subprocess.run([APUBID, "-n", "-f", str(d.conf)], capture_output=True, text=True,
                       timeout=30, cwd=d.tmp)
    assert r.returncode != 0
    assert "[store] spool" in r.stderr and "no-spool" in r.stderr, r.stderr
