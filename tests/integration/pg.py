"""A real PostgreSQL server on 127.0.0.1 for apubid's integration tests.

    with PostgresServer(tmp_path) as pg:
        url = pg.create_database("t1")   # postgresql://postgres@127.0.0.1:PORT/t1

Debian's postgresql 15 (/usr/lib/postgresql/15/bin): a throwaway cluster
made by initdb (trust authentication, user postgres), on a free port of
127.0.0.1 with a socket directory of its own. initdb and the server refuse
to run as root, so as root both run as the postgres account through
runuser, in a directory of /tmp that account owns (pytest's own temporary
directories are closed to it). stop() and start() keep the port and the
data: a test can take the database away and bring it back. The directory
is removed when the object is closed or the tests end.

Debian package needed (the Makefile's CHECK_DEPS): postgresql.
"""
import atexit
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from servers import START_TIMEOUT, STOP_TIMEOUT, ServerError, _Server, _alive

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
# initdb takes 1-2 s on an idle machine; a loaded one gets ten times that.
INITDB_TIMEOUT = 60.0

_servers = set()


class PostgresServer(_Server):
    kind = "postgres"

    def __init__(self, tmpdir):
        super().__init__(tmpdir)
        self.user = "postgres"
        self.as_root = os.geteuid() == 0
        self.data_parent = Path(tempfile.mkdtemp(prefix="apubid-pg-", dir="/tmp"))
        _servers.add(self)
        self.data = self.data_parent / "data"
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.data_parent, pw.pw_uid, pw.pw_gid)
        os.chmod(self.data_parent, 0o700)
        if not (PG_BIN / "initdb").exists():
            raise ServerError(f"{PG_BIN}/initdb is missing (Debian package postgresql)")
        r = subprocess.run(self._as([PG_BIN / "initdb", "-D", self.data, "-U", "postgres",
                                     "-A", "trust", "--no-sync"]),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=INITDB_TIMEOUT)
        if r.returncode != 0:
            raise ServerError(f"initdb failed: {r.stdout[-2000:]!r} {r.stderr[-2000:]!r}")

    def _as(self, cmd):
        cmd = [str(c) for c in cmd]
        return ["runuser", "-u", "postgres", "--"] + cmd if self.as_root else cmd

    def _command(self):
        return self._as([PG_BIN / "postgres", "-D", self.data, "-p", self.port,
                         "-c", "listen_addresses=127.0.0.1",
                         "-c", f"unix_socket_directories={self.data_parent}",
                         "-c", "max_connections=300"])

    def start(self, timeout=START_TIMEOUT):
        super().start(timeout)
        # The port is open a moment before the server takes sessions.
        end = time.monotonic() + max(timeout, 30.0)
        while subprocess.run([PG_BIN / "pg_isready", "-q", "-h", self.host, "-p",
                              str(self.port)]).returncode != 0:
            if time.monotonic() > end or not self.running:
                raise ServerError("PostgreSQL did not take sessions\n" + self.log()[-4000:])
            time.sleep(0.05)
        return self

    def _postmaster(self):
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self, kill=False, timeout=STOP_TIMEOUT):
        """A fast shutdown (SIGINT to the server itself: runuser would
        SIGKILL it two seconds after a SIGTERM), waiting until the server
        is gone so that it can start again on the same data; kill=True is
        a crash (SIGKILL)."""
        pid = self._postmaster() if self.running else None
        if pid and not kill:
            os.kill(pid, signal.SIGINT)
            end = time.monotonic() + max(timeout, 60.0)
            while _alive(pid) and time.monotonic() < end:
                time.sleep(0.05)
        super().stop(kill=kill, timeout=timeout)

    def url(self, dbname="postgres"):
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def psql(self, sql, dbname="postgres"):
        """Runs SQL with psql as the administrator; returns its output."""
        r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                            "-d", self.url(dbname), "-c", sql],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise ServerError(f"psql {sql!r}: {r.stderr}")
        return r.stdout

    def create_database(self, name):
        """A new empty database; returns its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self):
        self.stop()
        shutil.rmtree(self.data_parent, ignore_errors=True)
        _servers.discard(self)

    def __exit__(self, *exc):
        self.close()


@atexit.register
def _close_all():
    for server in list(_servers):
        try:
            server.close()
        except Exception:
            pass
