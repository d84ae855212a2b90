"""refuse_private_sources: a client cannot make apubid fetch from its own
network. The address is checked on every connection after DNS resolution,
so a host name or an FTP data connection cannot get around it."""
import sqlite3
from contextlib import closing

from servers import WebDavServer


def _task(d, tid):
    con = sqlite3.connect(f"file:{d.tmp}/apubid.db?mode=ro", uri=True, timeout=10)
    with closing(con):
        con.row_factory = sqlite3.Row
        return dict(con.execute("SELECT * FROM task WHERE id = ?", (tid,)).fetchone())


def _allow(d_ingest, server):
    return [f"file://{d_ingest}/", f"http://127.0.0.1:{server.port}/",
            f"http://localhost:{server.port}/"]


def test_loopback_source_is_refused_at_once_when_private_sources_are_refused(tmp_path,
                                                                              make_daemon):
    with WebDavServer(tmp_path / "web", auth=False) as web:
        (web.root / "a.ts").write_bytes(b"media")
        d = make_daemon(start=False, transfer={"refuse_private_sources": "yes", "retries": "3",
                                               "retry_delay": "1"})
        d.sections["source"]["allow"] = _allow(d.ingest, web)
        d.conf.write_text(d.config_text())
        d.start()
        for host in ("127.0.0.1", "localhost"):
            tid = d.load(f"http://{host}:{web.port}/a.ts", f"{host}.ts")
            assert d.wait_for_status(tid)[0] == "FAILED"
            row = _task(d, tid)
            assert "refused to connect to" in row["reason"], row["reason"]
            assert "refuse_private_sources" in row["reason"], row["reason"]
            assert row["attempts"] == 1, "a refused address is not worth a retry"
            assert not (d.cdn / f"{host}.ts").exists()
        assert "GET /a.ts" not in web.access_log()


def test_loopback_source_is_fetched_when_private_sources_are_allowed(tmp_path, make_daemon):
    with WebDavServer(tmp_path / "web", auth=False) as web:
        (web.root / "a.ts").write_bytes(b"media")
        d = make_daemon(start=False)
        d.sections["source"]["allow"] = _allow(d.ingest, web)
        d.conf.write_text(d.config_text())
        d.start()
        tid = d.load(f"http://127.0.0.1:{web.port}/a.ts", "a.ts")
        assert d.wait_for_status(tid)[0] == "SUCCESS"
        assert (d.cdn / "a.ts").read_bytes() == b"media"
