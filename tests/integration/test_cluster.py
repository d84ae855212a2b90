"""Three apubid nodes on one PostgreSQL database and one destination root:
a cluster behind a load balancer.

- Loads spread over the nodes, each polled on another node than the one
  that accepted it, all end SUCCESS with the bytes of their source.
- A load on one node and a purge of it on another, sent together: the
  purge is ordered after the load, nothing is left.
- A node restarted while the others run tasks takes none of theirs: every
  task is attempted once.
- A node frozen past its lease loses its task to another node; woken, it
  says so (not "cancelled by an operator"), stops, and leaves the task's
  stage and record to the new owner, which publishes the file whole.
- Each notification is POSTed once across the cluster, and pruning
  deletes each task once.
- The database stopped for a few seconds under load: submissions get 503
  with Retry-After meanwhile, no node exits, and every task acknowledged
  before, during or after ends SUCCESS.
"""
import http.server
import json
import os
import signal
import threading
import time

import pytest

from conftest import Daemon
from pg import PostgresServer
from servers import FtpServer


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    server = PostgresServer(tmp_path_factory.mktemp("pg"))
    server.start()
    yield server
    server.close()


_n = [0]


@pytest.fixture
def cluster(tmp_path, pg, make_daemon):
    """cluster(n, **sections) -> n started nodes sharing a new database,
    the first one's ingest as source and its cdn as destination root."""
    def make(n=3, **sections):
        _n[0] += 1
        url = pg.create_database(f"cluster_{_n[0]}")
        nodes = []
        for i in range(n):
            d = make_daemon(start=False, sub=f"node{i}")
            d.sections["store"]["url"] = url
            d.sections["workers"]["count"] = "2"
            for section, kv in sections.items():
                d.sections.setdefault(section, {}).update(kv)
            if nodes:
                first = nodes[0]
                d.sections["destination"]["root"] = first.root_url
                allow = d.sections["source"]["allow"]
                allow = allow if isinstance(allow, list) else [allow]
                d.sections["source"]["allow"] = allow + [f"file://{first.ingest}/"]
                d.cdn = first.cdn
            d.conf.write_text(d.config_text())
            os.chmod(d.conf, 0o600)
            nodes.append(d.start())
        return nodes
    return make


def test_loads_spread_over_three_nodes_all_succeed_polled_on_another_node(cluster):
    nodes = cluster(3)
    src = nodes[0].ingest
    files = {f"a{i:03d}.ts": os.urandom(1000 + i) for i in range(300)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    accepted = {}
    for i, name in enumerate(files):
        node = nodes[i % 3]
        accepted[name] = (i % 3, node.load(f"file://{src}/{name}", f"c/{name}"))
    for name, (k, tid) in accepted.items():
        other = nodes[(k + 1) % 3]
        st, dest = other.wait_for_status(tid, timeout=180)
        assert st == "SUCCESS", f"{name}: {st}\n{other.log_tail()}"
        assert dest == f"file://{nodes[0].cdn}/c/{name}"
    for name, data in files.items():
        assert (nodes[0].cdn / "c" / name).read_bytes() == data


def test_a_load_on_one_node_and_its_purge_on_another_at_once_leave_nothing(cluster):
    nodes = cluster(3)
    src = nodes[0].ingest
    (src / "pkg").mkdir()
    for i in range(20):
        (src / "pkg" / f"seg{i}.ts").write_bytes(os.urandom(50_000))
    load = nodes[0].load(f"file://{src}/pkg/", "show/pkg/")
    purge = nodes[1].purge("show/pkg/")
    assert nodes[2].wait_for_status(load, timeout=120)[0] == "SUCCESS"
    assert nodes[2].wait_for_status(purge, timeout=120)[0] == "SUCCESS"
    assert not (nodes[0].cdn / "show" / "pkg").exists()


def test_a_restarted_node_takes_none_of_the_tasks_the_others_run(tmp_path, cluster):
    with FtpServer(tmp_path, throttle_bytes_per_sec=512 << 10) as ftp:
        for i in range(4):
            (ftp.root / f"long{i}.ts").write_bytes(os.urandom(2 << 20))
        nodes = cluster(3, source={"allow": [ftp.url("", credentials=False)]})
        # The third node is down while the first two claim every task
        # (two workers each).
        assert nodes[2].stop() == 0
        ids = [nodes[i % 2].load(ftp.url(f"long{i}.ts"), f"long/long{i}.ts") for i in range(4)]
        wait_until_all_running(nodes[0], ids)
        # Started, then crashed and started again, while they run.
        nodes[2].start()
        time.sleep(1)
        nodes[2].kill9()
        nodes[2].start()
        done = nodes[2].wait_all(ids, timeout=300)
        assert all(st == "SUCCESS" for st, _ in done.values()), done
        for tid in ids:
            assert nodes[2].view(tid)["attempts"] == 1, nodes[2].view(tid)


def test_a_lease_lost_to_another_node_is_logged_as_such_and_its_stage_kept(tmp_path,
                                                                            cluster):
    data = os.urandom(8 << 20)
    with FtpServer(tmp_path, throttle_bytes_per_sec=1 << 20) as ftp:
        (ftp.root / "long.ts").write_bytes(data)
        nodes = cluster(2, source={"allow": [ftp.url("", credentials=False)]},
                        store={"lease_timeout": "3"})
        # The second node is down while the first claims the task.
        assert nodes[1].stop() == 0
        tid = nodes[0].load(ftp.url("long.ts"), "long/long.ts")
        wait_until_all_running(nodes[0], [tid])
        time.sleep(1)
        # Frozen past its lease: the second node takes the task over.
        nodes[0].proc.send_signal(signal.SIGSTOP)
        try:
            nodes[1].start()
            end = time.monotonic() + 60
            while nodes[1].view(tid)["attempts"] < 2:
                assert time.monotonic() < end, f"no takeover\n{nodes[1].log_tail()}"
                time.sleep(0.2)
        finally:
            nodes[0].proc.send_signal(signal.SIGCONT)
        st, _ = nodes[1].wait_for_status(tid, timeout=300)
        assert st == "SUCCESS", f"{st}\n{nodes[1].log_tail()}\n{nodes[0].log_tail()}"
        assert (nodes[0].cdn / "long" / "long.ts").read_bytes() == data
        log0 = nodes[0].log_text()
        end = time.monotonic() + 30
        while f"task {tid}: another node took its lease over" not in log0:
            assert time.monotonic() < end, f"the first node never said so\n{nodes[0].log_tail()}"
            time.sleep(0.2)
            log0 = nodes[0].log_text()
        assert "cancel requested by an operator" not in log0
        assert "cancelled by an operator" not in log0


def wait_until_all_running(d, ids, timeout=60):
    end = time.monotonic() + timeout
    while not all(d.view(tid)["state"] == "running" for tid in ids):
        assert time.monotonic() < end, f"not all running after {timeout}s\n{d.log_tail()}"
        time.sleep(0.1)


class _Receiver(http.server.BaseHTTPRequestHandler):
    posts = []
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            self.posts.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_each_notification_is_posted_once_across_the_cluster(cluster):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.posts = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        nodes = cluster(3, notify={"url": f"http://127.0.0.1:{srv.server_address[1]}/hook"})
        src = nodes[0].ingest
        ids = []
        for i in range(30):
            (src / f"n{i}.ts").write_bytes(b"n" * (i + 1))
            ids.append(nodes[i % 3].load(f"file://{src}/n{i}.ts", f"n/n{i}.ts"))
        nodes[0].wait_all(ids, timeout=120)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            with _Receiver.lock:
                if len(_Receiver.posts) >= len(ids):
                    break
            time.sleep(0.1)
        time.sleep(2)  # a second POST of any task would come within this
        with _Receiver.lock:
            posted = [p.get("id") or p.get("task_id") for p in _Receiver.posts]
        assert sorted(posted) == sorted(ids), (len(posted), len(ids))
    finally:
        srv.shutdown()
        srv.server_close()


def test_pruning_deletes_each_task_once_across_the_cluster(cluster, pg):
    nodes = cluster(3, store={"retention_days": "1", "prune_interval": "1"})
    src = nodes[0].ingest
    ids = []
    for i in range(40):
        (src / f"p{i}.ts").write_bytes(b"p")
        ids.append(nodes[i % 3].load(f"file://{src}/p{i}.ts", f"p/p{i}.ts"))
    nodes[0].wait_all(ids, timeout=120)
    # Finished two days ago, as far as the store knows.
    db = nodes[0].sections["store"]["url"].rsplit("/", 1)[1]
    pg.psql("UPDATE task SET updated_ms = updated_ms - 2 * 86400000", db)
    end = time.monotonic() + 60
    while pg.psql("SELECT count(*) FROM task", db).strip() != "0":
        assert time.monotonic() < end, "the aged tasks were not pruned within 60 s"
        time.sleep(0.2)
    time.sleep(1.5)  # every node has had a pruning round since
    pruned = 0
    for d in nodes:
        for line in d.log_text().splitlines():
            if "store: pruned " in line:
                pruned += int(line.split("store: pruned ", 1)[1].split()[0])
    assert pruned == len(ids), f"{pruned} deletions logged for {len(ids)} tasks"
    for tid in ids[:3]:
        assert b"does not exist" in nodes[1].status_reply(tid).body


def test_the_database_stopped_under_load_loses_no_acknowledged_task(cluster, pg):
    nodes = cluster(3)
    src = nodes[0].ingest
    (src / "s.ts").write_bytes(os.urandom(10_000))
    acked, refused, other = [], [], []
    stop = threading.Event()

    def submit(k):
        i = 0
        while not stop.is_set():
            i += 1
            r = nodes[k].load_reply(f"file://{src}/s.ts", f"load/n{k}/{i}.ts")
            if r.status == 200:
                acked.append((k, nodes[k]._task_id(r, "LoadAsset")))
            elif r.status == 503 and r.headers.get("Retry-After", "").isdigit():
                refused.append(k)
                time.sleep(0.1)
            else:
                other.append((k, r.status, r.body[:300]))
    threads = [threading.Thread(target=submit, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        pg.stop()
        time.sleep(4)
        pg.start()
        time.sleep(4)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not other, other[:5]
    assert refused, "no submission was refused while the database was down"
    for d in nodes:
        assert d.proc.poll() is None, f"a node exited\n{d.log_tail()}"
    done = nodes[0].wait_all([tid for _, tid in acked], timeout=300)
    assert all(st == "SUCCESS" for st, _ in done.values()), \
        [(t, v) for t, v in done.items() if v[0] != "SUCCESS"][:5]
