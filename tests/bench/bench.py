#!/usr/bin/python3
"""bench.py - the benchmark of apubid (`make bench`).

Starts apubid on temporary stores and, in the same run, an nginx that
answers every request with a body of the same size as apubid's GetTaskStatus
answer; everything listens on 127.0.0.1 on free ports. wrk (with the Lua
scripts beside this file) and a small Python client drive them with the
fixture envelopes of the APUBI spec. The result is a Markdown table, printed
and written to build/bench.md (or $BENCH_OUT).

Scenarios, and exactly what is timed:

* GetTaskStatus of a real, finished TaskId at 1, 16, 64 and 256 keep-alive
  connections (wrk -t2, -t1 for one connection): requests/s and p50/p99
  latency, apubid and nginx alternating, each run repeated; the table shows
  the median of the repetitions.
* The same GetTaskStatus at 64 connections over TLS, against nginx over
  TLS answering the same bytes: one self-signed P-256 certificate made with
  openssl in the run's directory, TLS 1.2 and 1.3 offered by both; wrk's
  connections are kept alive, so the handshakes are a small part.
* A normal client (wrk, 4 connections, GetTaskStatus) beside a crowd held
  by hold.py: CROWD_IDLE idle keep-alive connections (10,000) and
  CROWD_SLOW senders of one body byte a second (1,000), from 60 source
  addresses 127.0.0.2.. so that each stays under apubid's default
  max_connections_per_address (256); max_connections is raised to fit.
  p50/p99 against the same client with no crowd, in the same run; the
  peak RSS row of this scenario is apubid holding the crowd.
* LoadAsset acceptances/s at 64 connections: every request names a distinct
  destination, so each answer means a new task committed to the store.
  Afterwards apubid is killed with SIGKILL and the store must hold at least
  as many tasks as there were 200 answers (the durability check; it may hold
  a few more: requests in flight when wrk stopped). apubid's workers start
  carrying out those tasks meanwhile (a 1 KiB copy each, one worker): there
  is no switch to pause them, so they compete with the acceptor for the CPU.
* End to end: N files of 4 KiB (10,000), submitted by 8 client threads on
  keep-alive connections while one more thread polls GetTaskStatus, in
  submission order, until every task is SUCCESS. tasks/s = N / (time from
  the first submission to the last SUCCESS seen). Every published file is
  then checked for its size.
* One 1 GiB file of random data published local to local (source and
  destination root on one filesystem), against `cp` of the same file followed
  by `sync FILE` (an fsync of the copy: apubid fsyncs what it publishes).
  apubid's time runs from sending LoadAsset to the poll (every 10 ms) that
  sees SUCCESS. The file is in the page cache for both. ratio = cp time /
  apubid time, so 0.9 means apubid runs at 0.9 x the speed of cp.
* GetTaskStatus at 64 connections on one TaskId with 1,000 and with
  1,000,000 tasks stored: the stores are filled with copies of a real
  finished task row (inserted with sqlite3 while apubid is stopped; the
  state-history trigger writes their events), both daemons run side by side
  and are measured alternately.
* One GetTaskStatus whose operation element carries 40,000 attributes, and
  one with 30,000 namespace declarations, each also at half that number:
  seconds from sending to the answer, and its growth when the count
  doubles (linear handling: about x2).
* On PostgreSQL (a throwaway server started by the run, as the integration
  tests do, fsync on): LoadAsset acceptances/s at 64 connections against
  the same server's pgbench, 64 clients inserting one task-sized row per
  transaction (pg_accept); GetTaskStatus against the same on SQLite
  (pg_status); end to end, BENCH_PG_E2E_FILES files of 4 KiB (2,000)
  submitted by 8 client threads spread round robin over three nodes on one
  database and one shared destination root, each task polled to SUCCESS
  on the next node, against one node alone on another database of the
  same server (pg_cluster; each node with its default 4 workers).
* Peak RSS (VmHWM) of apubid in each scenario: reset through
  /proc/PID/clear_refs when the scenario starts; the 1,000,000-task daemon
  reports its whole life, start-up included.

Environment: APUBID (the binary; default ./apubid of the repository),
BENCH_OUT, BENCH_QUICK=1 (short runs and small sizes, to check the harness:
its numbers mean nothing), BENCH_SECONDS, BENCH_REPEAT, BENCH_E2E_FILES,
BENCH_PG_E2E_FILES, BENCH_BIG_MIB,
BENCH_MANY_TASKS, BENCH_CROWD_IDLE, BENCH_CROWD_SLOW, BENCH_THREADS and BENCH_WORKERS (apubid's [server] threads
and [workers] count; default: apubid's own defaults), BENCH_TMP (where the
temporary directory goes), BENCH_KEEP=1 (keep it).

A full run takes about 9 minutes on 2 cores (GetTaskStatus about 2.5,
the 1,000,000-task store about 1 to fill and 0.5 to measure, the crowd
about 1.5); BENCH_QUICK=1 about 50 seconds. Arguments, when given, name
the scenarios to run (status, status_tls, crowd, accept, pg_accept,
pg_status, pg_cluster, e2e, big, many, attributes).

Exit status: 0 when every scenario ran, 1 when one could not run or got
error answers (the table flags them), 2 for a usage or set-up problem.
Targets that are missed are reported as "no" in the table; they do not
change the exit status.
"""
import datetime
import http.client
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APUBID = os.environ.get("APUBID", str(REPO / "apubid"))
FIXTURES = REPO / "tests" / "fixtures"
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


def env_num(name, full, quick, kind=int):
    v = os.environ.get(name)
    return kind(v) if v else (quick if QUICK else full)


SECONDS = env_num("BENCH_SECONDS", 5, 2, float)
REPEAT = env_num("BENCH_REPEAT", 3, 1)
E2E_FILES = env_num("BENCH_E2E_FILES", 10000, 1000)
PG_E2E_FILES = env_num("BENCH_PG_E2E_FILES", 2000, 300)
BIG_MIB = env_num("BENCH_BIG_MIB", 1024, 64)
MANY_TASKS = env_num("BENCH_MANY_TASKS", 1000000, 50000)
FEW_TASKS = 1000
CONNS = (1, 16, 64, 256)
CROWD_IDLE = env_num("BENCH_CROWD_IDLE", 10000, 1000)
CROWD_SLOW = env_num("BENCH_CROWD_SLOW", 1000, 100)
# The crowd comes from 127.0.0.2, 127.0.0.3, ...: 60 addresses keep each one
# (11,000 / 60 = 184 connections) under the default
# max_connections_per_address of 256, which so stays as shipped.
CROWD_FIRST_SOURCE, CROWD_SOURCES = 2, 60
CROWD_READY_TIMEOUT = 600   # seconds to open the whole crowd
NORMAL_CONNS = 4            # the normal client measured beside the crowd
OUT = Path(os.environ.get("BENCH_OUT", str(REPO / "build" / "bench.md")))
SERVER_THREADS = os.environ.get("BENCH_THREADS")
WORKERS = os.environ.get("BENCH_WORKERS")

START_TIMEOUT = 15     # seconds until a server must accept connections
HTTP_TIMEOUT = 15      # seconds for one exchange of the Python client
E2E_TIMEOUT = 300      # seconds the end-to-end scenario may take
BIG_TIMEOUT = 300      # seconds one big publish may take
SUBMIT_THREADS = 8

# Where the fixtures' destinations live: apubid is configured to accept
# this prefix and publish below its root, so the envelopes keep their shape.
CDN_PREFIX = "ftp://ORIGIN:21/srv/vod/"
FIXTURE_DEST = "ftp://publisher:s3cr3t-dst@ORIGIN:21/srv/vod/"

TASKID_RE = re.compile(rb"<(?:\w+:)?TaskId>([0-9A-F-]{36})</(?:\w+:)?TaskId>")
STATUS_RE = re.compile(rb"<(?:\w+:)?Status>\s*(\w+)\s*</(?:\w+:)?Status>")
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}


class BenchError(Exception):
    """A scenario could not run."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- fixtures -----------------------------------------------------------

def fixture(name):
    """The text of tests/fixtures/NAME."""
    return (FIXTURES / name).read_text(encoding="utf-8")


def replace_element(xml, name, value):
    """The fixture with the text of element `name` replaced by `value`."""
    out, n = re.subn(rf"(<{name}>)[^<]*(</{name}>)",
                     lambda m: m.group(1) + value + m.group(2), xml, count=1)
    if n != 1:
        raise BenchError(f"fixture has no <{name}>")
    return out


def load_envelope(source, destination):
    """load-file-ftp.xml with its source and destination replaced."""
    xml = replace_element(fixture("load-file-ftp.xml"), "SourceAssetUrl", source)
    return replace_element(xml, "DestinationAsset", destination).encode("utf-8")


def status_envelope(task_id):
    return replace_element(fixture("get-task-status.xml"), "TaskId", task_id).encode("utf-8")


# ---- processes ----------------------------------------------------------

PROCS = []   # every process started, stopped on the way out


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, logfile):
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode} while starting\n"
                             + tail(logfile))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not listen on {port} within {START_TIMEOUT}s\n"
                             + tail(logfile))
        time.sleep(0.05)


def tail(path, n=30):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return f"---- {path} (last {n} lines) ----\n" + "\n".join(lines[-n:])


def die_with_parent():
    """Runs in the child before exec: SIGKILL it when the harness dies, so
    no server outlives a harness killed outright (PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def stop_proc(p, timeout=20):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
    if p in PROCS:
        PROCS.remove(p)


class Apubid:
    """One apubid in its own directory (ingest/, cdn/, store, config, log)."""

    def __init__(self, base, name, binary, **overrides):
        self.dir = Path(base) / name
        self.name = name
        self.binary = binary
        self.ingest = self.dir / "ingest"
        self.cdn = self.dir / "cdn"
        self.ingest.mkdir(parents=True, exist_ok=True)
        self.cdn.mkdir(parents=True, exist_ok=True)
        self.store = self.dir / "apubid.db"
        self.logfile = self.dir / "apubid.log"
        self.port = free_port()
        self.proc = None
        sections = {
            "server": {"listen": f"127.0.0.1:{self.port}", "endpoint": "/apubi"},
            "store": {"path": str(self.store)},
            "workers": {},
            "source": {"allow": f"file://{self.ingest}/"},
            "destination": {"root": f"file://{self.cdn}/", "allow": CDN_PREFIX},
            "log": {"level": "warn"},
        }
        if SERVER_THREADS:
            sections["server"]["threads"] = SERVER_THREADS
        if WORKERS:
            sections["workers"]["count"] = WORKERS
        self.sections = sections
        self.conf = self.dir / "apubid.conf"
        self.configure(**overrides)

    def configure(self, **overrides):
        """Writes the configuration with `overrides` ({section: {key:
        value}}) applied; it takes effect at the next start."""
        for section, kv in overrides.items():
            self.sections.setdefault(section, {}).update(kv)
        lines = []
        for section, kv in self.sections.items():
            lines.append(f"[{section}]")
            lines += [f"{k} = {v}" for k, v in kv.items()]
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def url(self):
        scheme = "https" if "tls" in self.sections else "http"
        return f"{scheme}://127.0.0.1:{self.port}/apubi"

    def start(self):
        with open(self.logfile, "ab") as logf:
            self.proc = subprocess.Popen([self.binary, "-f", str(self.conf)], cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         preexec_fn=die_with_parent)
        PROCS.append(self.proc)
        wait_port(self.port, self.proc, f"apubid ({self.name})", self.logfile)
        return self

    def stop(self):
        if self.proc is not None:
            p, self.proc = self.proc, None
            stop_proc(p)
            if p.returncode != 0:
                raise BenchError(f"apubid ({self.name}) exited {p.returncode} on SIGTERM\n"
                                 + tail(self.logfile))

    def kill9(self):
        if self.proc is not None:
            p, self.proc = self.proc, None
            p.kill()
            p.wait(timeout=10)
            PROCS.remove(p)

    def alive(self):
        if self.proc is None or self.proc.poll() is not None:
            raise BenchError(f"apubid ({self.name}) is not running\n" + tail(self.logfile))

    def rss_reset(self):
        """Resets VmHWM to the current RSS (Linux >= 4.0)."""
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        except OSError as e:
            log(f"cannot reset the peak RSS of apubid ({e}); the peak covers its whole life")

    def rss_peak(self, field="VmHWM"):
        """VmHWM (or another field of /proc/PID/status) in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise BenchError(f"no {field} in /proc/PID/status")


class Nginx:
    """nginx answering every request with `body`, as text/xml; over TLS
    when `tls` is (certificate file, key file)."""

    def __init__(self, base, body, name="nginx", tls=None):
        self.dir = Path(base) / name
        self.tls = tls
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.logfile = self.dir / "error.log"
        text = body.decode("utf-8")
        if "$" in text:     # a variable in `return`; keep the size, drop the text
            text = "x" * len(body)
        quoted = text.replace("\\", "\\\\").replace("'", "\\'")
        t = self.dir / "tmp"
        listen = f"127.0.0.1:{self.port}"
        if tls:
            # TLS 1.3 as apubid offers it (nginx 1.22 leaves it out by default).
            listen += (f" ssl;\n        ssl_certificate {tls[0]};\n"
                       f"        ssl_certificate_key {tls[1]};\n"
                       f"        ssl_protocols TLSv1.2 TLSv1.3")
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(f"""\
daemon off;
worker_processes auto;
pid {self.dir}/nginx.pid;
error_log {self.logfile} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    keepalive_timeout 15s;
    keepalive_requests 1000;
    server {{
        listen {listen};
        location / {{
            default_type text/xml;
            charset utf-8;
            return 200 '{quoted}';
        }}
    }}
}}
""")
        self.proc = None

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/apubi"

    def start(self):
        with open(self.dir / "stderr.log", "ab") as logf:
            self.proc = subprocess.Popen(
                ["nginx", "-p", str(self.dir), "-e", str(self.logfile), "-c", str(self.conf)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                preexec_fn=die_with_parent)
        PROCS.append(self.proc)
        wait_port(self.port, self.proc, "nginx", self.logfile)
        return self

    def stop(self):
        if self.proc is not None:
            p, self.proc = self.proc, None
            stop_proc(p)


# ---- the Python client --------------------------------------------------

class Client:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def post(self, body):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=HTTP_TIMEOUT)
            try:
                self.conn.request("POST", "/apubi", body=body, headers=HEADERS)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle or exhausted keep-alive connection.
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def load(self, source, destination):
        status, data = self.post(load_envelope(source, destination))
        m = TASKID_RE.search(data)
        if status != 200 or not m:
            raise BenchError(f"LoadAsset {destination}: HTTP {status}: {data[:500]!r}")
        return m.group(1).decode()

    def status(self, task_id):
        status, data = self.post(status_envelope(task_id))
        m = STATUS_RE.search(data)
        if status != 200 or not m:
            raise BenchError(f"GetTaskStatus {task_id}: HTTP {status}: {data[:500]!r}")
        return m.group(1).decode(), data

    def wait(self, task_id, timeout, interval=0.01):
        deadline = time.monotonic() + timeout
        while True:
            st, data = self.status(task_id)
            if st != "IN_PROGRESS":
                return st, data
            if time.monotonic() > deadline:
                raise BenchError(f"task {task_id} still IN_PROGRESS after {timeout}s")
            time.sleep(interval)


def publish_one(d, source, name, timeout=60):
    """LoadAsset of a file in d's ingest/, waited for: its TaskId."""
    c = Client(d.port)
    try:
        tid = c.load(f"file://{source}", FIXTURE_DEST + name)
        st, data = c.wait(tid, timeout)
        if st != "SUCCESS":
            raise BenchError(f"publishing {source} ended {st}: {data[:500]!r}\n" + tail(d.logfile))
        return tid
    finally:
        c.close()


# ---- wrk ----------------------------------------------------------------

def wrk(url, script, conns, seconds, env):
    threads = min(2, conns)
    seconds = max(1, round(seconds))   # wrk takes whole seconds
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "2s",
           "-s", str(HERE / script), url]
    e = dict(os.environ, BENCH_LUA=str(HERE), **env)
    r = subprocess.run(cmd, env=e, capture_output=True, text=True,
                       timeout=seconds + 60)
    line = next((l for l in r.stdout.splitlines() if l.startswith("BENCH ")), None)
    if r.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({r.returncode}): {r.stdout}\n{r.stderr}")
    out = {}
    for kv in line.split()[1:]:
        k, v = kv.split("=")
        out[k] = float(v)
    out["sock_errors"] = out["connect"] + out["read"] + out["write"] + out["timeout"]
    return out


def median_of(runs):
    """Medians of rps and latencies over repetitions; errors summed."""
    m = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_us", "p99_us")}
    for k in ("requests", "status", "connect", "read", "write", "timeout", "sock_errors"):
        m[k] = sum(r[k] for r in runs)
    return m


# ---- the table ----------------------------------------------------------

ROWS = []        # (scenario, apubid, reference, ratio, target, holds)
NOTES = []       # lines for the list above the table
PROBLEMS = []    # scenarios that could not run or got error answers


def row(scenario, apubid, reference="", ratio="", target="", holds=""):
    ROWS.append((scenario, apubid, reference, ratio, target, holds))


def yes(ok):
    return "yes" if ok else "**no**"


def fmt_rate(x):
    return f"{x:,.0f}/s"


def fmt_ms(us):
    return f"{us / 1000:.2f} ms"


def errors_note(m, what):
    """A flag for the table when a run saw errors; HTTP errors are problems."""
    notes = []
    if m["status"]:
        notes.append(f"{m['status']:.0f} HTTP errors")
        PROBLEMS.append(f"{what}: {m['status']:.0f} answers with an HTTP error status")
    for k in ("connect", "read", "write", "timeout"):
        if m[k]:
            notes.append(f"{m[k]:.0f} {k} errors")
    return (" (**" + ", ".join(notes) + "**)") if notes else ""


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1048576:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}){mem}, Linux {platform.release()}"


def filesystem(path):
    r = subprocess.run(["df", "--output=fstype,source", str(path)],
                       capture_output=True, text=True)
    lines = r.stdout.split("\n")
    return " on ".join(lines[1].split()) if r.returncode == 0 and len(lines) > 1 else "unknown"


def commit():
    r = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "unknown"


def version(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    return (r.stdout + r.stderr).strip().splitlines()[0] if (r.stdout + r.stderr).strip() else "?"


def table(base, started, elapsed):
    out = []
    out.append(f"apubid benchmark, {started:%Y-%m-%d %H:%M} UTC, commit {commit()}"
               + (" - QUICK run: short and small, numbers not meaningful" if QUICK else ""))
    out.append("")
    out.append(f"- machine: {machine()}; temporary files on {filesystem(base)}")
    out.append(f"- load: {version(['wrk', '-v'])}, {version(['nginx', '-v'])}; "
               f"each wrk run {SECONDS:g} s, {REPEAT} repetition(s), medians shown")
    out.append(f"- apubid: [server] threads = {SERVER_THREADS or 'default'}, "
               f"[workers] count = {WORKERS or 'default'}; whole run {elapsed:.0f} s")
    out += [f"- {n}" for n in NOTES]
    out.append("")
    head = ("scenario", "apubid", "reference", "ratio", "target", "holds?")
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join(["---"] * len(head)) + "|")
    rows = list(ROWS)
    for what, kib in RSS:
        rows.append((f"peak RSS, {what}", f"{kib / 1024:.1f} MiB", "", "", "<= 64 MiB",
                     yes(kib <= 64 * 1024)))
    if RSS:
        kib = max(k for _, k in RSS)
        rows.append(("peak RSS, highest of all scenarios", f"{kib / 1024:.1f} MiB", "", "",
                     "<= 64 MiB", yes(kib <= 64 * 1024)))
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    if PROBLEMS:
        out.append("")
        out.append("Problems:")
        out += [f"- {p}" for p in PROBLEMS]
    return "\n".join(out) + "\n"


# ---- scenarios ----------------------------------------------------------

RSS = []   # (scenario, KiB)


def rss_row(what, d):
    """Notes d's peak RSS for the table's RSS rows, which come last."""
    RSS.append((what, d.rss_peak()))


def scenario_status(base, binary):
    """GetTaskStatus against nginx at every connection count."""
    d = Apubid(base, "status", binary).start()
    src = d.ingest / "feature.ts"
    src.write_bytes(os.urandom(4096))
    tid = publish_one(d, src, "feature_20240517143000.ts")
    body = status_envelope(tid)
    c = Client(d.port)
    st, answer = c.status(tid)
    c.close()
    log(f"GetTaskStatus answer: {len(answer)} bytes ({st})")
    (base / "status.xml").write_bytes(body)
    n = Nginx(base, answer).start()
    try:
        c = Client(n.port)
        code, ref = c.post(body)
        c.close()
        if code != 200 or len(ref) != len(answer):
            raise BenchError(f"nginx answered {code} with {len(ref)} bytes, "
                             f"not {len(answer)}")
        env = {"BENCH_BODY": str(base / "status.xml")}
        d.rss_reset()
        for conns in CONNS:
            runs = {"apubid": [], "nginx": []}
            for rep in range(REPEAT):
                for who, url in (("apubid", d.url), ("nginx", n.url)):
                    log(f"GetTaskStatus {who} c={conns} #{rep + 1}")
                    runs[who].append(wrk(url, "status.lua", conns, SECONDS, env))
                d.alive()
            a, r = median_of(runs["apubid"]), median_of(runs["nginx"])
            ratio = a["rps"] / r["rps"] if r["rps"] else 0
            if conns == 1:
                per = [x[0]["bytes"] / x[0]["requests"] if x[0]["requests"] else 0
                       for x in (runs["apubid"], runs["nginx"])]
                NOTES.append(f"GetTaskStatus answer: {len(answer)} bytes of body from both "
                             f"servers; {per[0]:.0f} (apubid) and {per[1]:.0f} (nginx) bytes "
                             f"with the headers")
            what = f"GetTaskStatus, {conns} conn{'s' if conns > 1 else ''}"
            target, holds = "", ""
            if conns == 64:
                target, holds = ">= 0.5 x nginx", yes(ratio >= 0.5)
            row(f"{what}: req/s", fmt_rate(a["rps"]) + errors_note(a, what),
                f"nginx {fmt_rate(r['rps'])}" + errors_note(r, what + " (nginx)"),
                f"{ratio:.2f}", target, holds)
            target, holds = "", ""
            if conns == 64:
                target, holds = "p99 <= 5 ms", yes(a["p99_us"] <= 5000)
            if conns == 256:
                target = "p99 <= 20 ms, no errors (starvation)"
                holds = yes(a["p99_us"] <= 20000 and a["status"] + a["sock_errors"] == 0)
            row(f"{what}: p50 / p99", f"{fmt_ms(a['p50_us'])} / {fmt_ms(a['p99_us'])}",
                f"nginx {fmt_ms(r['p50_us'])} / {fmt_ms(r['p99_us'])}", "", target, holds)
        rss_row("GetTaskStatus 1-256 conns", d)
        d.stop()
    finally:
        n.stop()
        d.kill9()


def self_signed(base):
    """A P-256 certificate for 127.0.0.1 and its key, made with openssl in
    the run's directory: (certificate file, key file)."""
    cert, key = base / "tls-cert.pem", base / "tls-key.pem"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                        "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def https_post(port, body):
    """One POST over TLS, the certificate unchecked (it is the run's own):
    (status, answer, the TLS version and suite)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT, context=ctx)
    try:
        conn.request("POST", "/apubi", body=body, headers=HEADERS)
        r = conn.getresponse()
        data = r.read()
        return r.status, data, f"{conn.sock.version()} {conn.sock.cipher()[0]}"
    finally:
        conn.close()


def scenario_status_tls(base, binary):
    """GetTaskStatus at 64 connections over TLS, against nginx over TLS
    with the same certificate and the same answer."""
    d = Apubid(base, "status-tls", binary).start()
    try:
        src = d.ingest / "feature.ts"
        src.write_bytes(os.urandom(4096))
        tid = publish_one(d, src, "feature_20240517143000.ts")
        d.stop()
        cert, key = self_signed(base)
        d.configure(tls={"cert_file": cert, "key_file": key})
        d.start()
        body = status_envelope(tid)
        (base / "status-tls.xml").write_bytes(body)
        code, answer, suite = https_post(d.port, body)
        if code != 200:
            raise BenchError(f"GetTaskStatus over TLS: HTTP {code}: {answer[:300]!r}")
        n = Nginx(base, answer, "nginx-tls", (cert, key)).start()
        try:
            code, ref, ref_suite = https_post(n.port, body)
            if code != 200 or len(ref) != len(answer):
                raise BenchError(f"nginx over TLS answered {code} with {len(ref)} bytes, "
                                 f"not {len(answer)}")
            NOTES.append(f"over TLS: a self-signed P-256 certificate; apubid negotiates "
                         f"{suite}, nginx {ref_suite} (with Python's client)")
            env = {"BENCH_BODY": str(base / "status-tls.xml")}
            d.rss_reset()
            runs = {"apubid": [], "nginx": []}
            for rep in range(REPEAT):
                for who, url in (("apubid", d.url), ("nginx", n.url)):
                    log(f"GetTaskStatus over TLS {who} c=64 #{rep + 1}")
                    runs[who].append(wrk(url, "status.lua", 64, SECONDS, env))
                d.alive()
            a, r = median_of(runs["apubid"]), median_of(runs["nginx"])
            ratio = a["rps"] / r["rps"] if r["rps"] else 0
            what = "GetTaskStatus over TLS, 64 conns"
            row(f"{what}: req/s", fmt_rate(a["rps"]) + errors_note(a, what),
                f"nginx over TLS {fmt_rate(r['rps'])}" + errors_note(r, what + " (nginx)"),
                f"{ratio:.2f}", ">= 0.5 x nginx", yes(ratio >= 0.5))
            row(f"{what}: p50 / p99", f"{fmt_ms(a['p50_us'])} / {fmt_ms(a['p99_us'])}",
                f"nginx {fmt_ms(r['p50_us'])} / {fmt_ms(r['p99_us'])}", "", "p99 <= 5 ms",
                yes(a["p99_us"] <= 5000))
            rss_row("GetTaskStatus over TLS, 64 conns", d)
        finally:
            n.stop()
        d.stop()
    finally:
        d.kill9()


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def scenario_crowd(base, binary):
    """A normal client's GetTaskStatus latency while CROWD_IDLE idle
    keep-alive connections and CROWD_SLOW one-byte-a-second senders are
    connected (tests/bench/hold.py holds them), against the same client
    with no crowd; and apubid's peak RSS meanwhile."""
    crowd = CROWD_IDLE + CROWD_SLOW
    d = Apubid(base, "crowd", binary, server={"max_connections": str(crowd + 1000),
                                              "keepalive_timeout": "3600"})
    d.start()
    holder = None
    try:
        src = d.ingest / "feature.ts"
        src.write_bytes(os.urandom(4096))
        tid = publish_one(d, src, "feature_20240517143000.ts")
        (base / "status-crowd.xml").write_bytes(status_envelope(tid))
        env = {"BENCH_BODY": str(base / "status-crowd.xml")}
        quiet = []
        for rep in range(REPEAT):
            log(f"GetTaskStatus c={NORMAL_CONNS}, no crowd #{rep + 1}")
            quiet.append(wrk(d.url, "status.lua", NORMAL_CONNS, SECONDS, env))
        fds_before = open_fds(d.proc.pid)
        d.rss_reset()
        rss_before = d.rss_peak("VmRSS")
        log(f"opening {CROWD_IDLE:,} idle and {CROWD_SLOW:,} slow connections")
        t0 = time.monotonic()
        holder = subprocess.Popen(
            [sys.executable, str(HERE / "hold.py"), str(d.port), str(CROWD_IDLE),
             str(CROWD_SLOW), str(CROWD_FIRST_SOURCE), str(CROWD_SOURCES)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=die_with_parent)
        PROCS.append(holder)
        ready = []
        reader = threading.Thread(target=lambda: ready.append(holder.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(CROWD_READY_TIMEOUT)
        if not ready or not ready[0].startswith("READY"):
            holder.kill()
            raise BenchError(f"the crowd did not connect: {ready} {holder.stderr.read()[-2000:]}")
        log(f"crowd connected in {time.monotonic() - t0:.1f} s")
        time.sleep(2)   # a couple of bytes from every slow sender first
        held = open_fds(d.proc.pid) - fds_before
        loaded = []
        for rep in range(REPEAT):
            log(f"GetTaskStatus c={NORMAL_CONNS}, crowd connected #{rep + 1}")
            loaded.append(wrk(d.url, "status.lua", NORMAL_CONNS, SECONDS, env))
            d.alive()
        held = min(held, open_fds(d.proc.pid) - fds_before)
        rss_row(f"{CROWD_IDLE:,} idle + {CROWD_SLOW:,} slow connections, under load", d)
        rss_crowd = d.rss_peak("VmRSS")
        holder.send_signal(signal.SIGTERM)
        done, _ = holder.communicate(timeout=60)
        PROCS.remove(holder)
        NOTES.append(f"crowd: {CROWD_IDLE:,} idle keep-alive connections (one GET /healthz "
                     f"answered each) and {CROWD_SLOW:,} senders of one body byte a second, "
                     f"from {CROWD_SOURCES} addresses 127.0.0.{CROWD_FIRST_SOURCE}.. (default "
                     f"max_connections_per_address), max_connections = {crowd + 1000}; apubid "
                     f"held at least {held:,} more descriptors than before it, and its RSS "
                     f"went from {rss_before / 1024:.1f} MiB to {rss_crowd / 1024:.1f} MiB "
                     f"({(rss_crowd - rss_before) / crowd:.1f} KiB a connection); "
                     f"the holder said: {done.strip()}")
        a, q = median_of(loaded), median_of(quiet)
        what = (f"GetTaskStatus, {NORMAL_CONNS} conns, beside {CROWD_IDLE:,} idle + "
                f"{CROWD_SLOW:,} slow conns")
        row(f"{what}: p50 / p99", f"{fmt_ms(a['p50_us'])} / {fmt_ms(a['p99_us'])}"
            + errors_note(a, what),
            f"no crowd: {fmt_ms(q['p50_us'])} / {fmt_ms(q['p99_us'])}"
            + errors_note(q, what + " (no crowd)"),
            f"{a['p99_us'] / q['p99_us']:.2f}" if q["p99_us"] else "", "p99 <= 20 ms",
            yes(a["p99_us"] <= 20000 and held >= crowd * 0.99))
        row(f"{what}: req/s", fmt_rate(a["rps"]), f"no crowd: {fmt_rate(q['rps'])}",
            f"{a['rps'] / q['rps']:.2f}" if q["rps"] else "", "", "")
        d.stop()
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        d.kill9()


def scenario_accept(base, binary):
    """LoadAsset acceptances/s at 64 connections, then the durability check."""
    d = Apubid(base, "accept", binary, workers={"count": "1", "queue_limit": "100000000"})
    d.start()
    try:
        src = d.ingest / "feature.ts"
        src.write_bytes(os.urandom(1024))
        split = "\x00SPLIT\x00"
        env_xml = load_envelope(f"file://{src}", FIXTURE_DEST + "accept/feature_" + split + ".ts")
        prefix, suffix = env_xml.split(split.encode())
        (base / "load.prefix").write_bytes(prefix)
        (base / "load.suffix").write_bytes(suffix)
        d.rss_reset()
        runs = []
        for rep in range(REPEAT):
            log(f"LoadAsset c=64 #{rep + 1}")
            runs.append(wrk(d.url, "load.lua", 64, SECONDS,
                            {"BENCH_PREFIX": str(base / "load.prefix"),
                             "BENCH_SUFFIX": str(base / "load.suffix"),
                             "BENCH_RUN": f"r{rep}"}))
            d.alive()
        m = median_of(runs)
        rss_row("LoadAsset 64 conns", d)
        acked = int(sum(r["requests"] - r["status"] for r in runs))
        d.kill9()   # what is in the store now was committed before the kill
        db = sqlite3.connect(d.store)
        stored = db.execute("SELECT count(*) FROM task").fetchone()[0]
        db.close()
        what = "LoadAsset, 64 conns"
        row(f"{what}: acceptances/s", fmt_rate(m["rps"]) + errors_note(m, what), "", "",
            ">= 10,000/s", yes(m["rps"] >= 10000 and not m["status"]))
        durable = stored >= acked
        row(f"{what}: tasks in the store after SIGKILL", f"{stored:,}",
            f"{acked:,} answered 200", "", ">= answered", yes(durable))
        if not durable:
            PROBLEMS.append(f"LoadAsset: {acked} tasks acknowledged, {stored} in the store")
    finally:
        d.kill9()


def scenario_e2e(base, binary):
    """N small files submitted concurrently and polled to SUCCESS."""
    d = Apubid(base, "e2e", binary, workers={"queue_limit": "100000000"})
    src_dir = d.ingest / "e2e"
    src_dir.mkdir()
    log(f"writing {E2E_FILES} files of 4 KiB")
    for i in range(E2E_FILES):
        (src_dir / f"f{i:05d}.ts").write_bytes(os.urandom(4096))
    d.start()
    try:
        d.rss_reset()
        lock = threading.Lock()
        todo = iter(range(E2E_FILES))
        submitted = [None] * E2E_FILES   # index -> TaskId, in submission order below
        order = []                       # indices in the order their answers came
        errors = []
        got = threading.Condition(lock)

        def submitter():
            c = Client(d.port)
            try:
                while not errors:
                    with lock:
                        i = next(todo, None)
                    if i is None:
                        return
                    tid = c.load(f"file://{src_dir}/f{i:05d}.ts",
                                 FIXTURE_DEST + f"e2e/f{i:05d}.ts")
                    with got:
                        submitted[i] = tid
                        order.append(i)
                        got.notify_all()
            except Exception as e:   # reported below, the run is flagged
                errors.append(f"submitting: {e}")
            finally:
                c.close()

        finished = {}

        def poller():
            c = Client(d.port)
            deadline = time.monotonic() + E2E_TIMEOUT
            try:
                for k in range(E2E_FILES):
                    with got:
                        while len(order) <= k and not errors:
                            got.wait(0.5)
                            if time.monotonic() > deadline:
                                raise BenchError("submissions stalled")
                        if errors:
                            return
                        i = order[k]
                    st, _ = c.wait(submitted[i], max(1, deadline - time.monotonic()), 0.002)
                    finished[i] = st
                    if st != "SUCCESS":
                        errors.append(f"task for f{i:05d} ended {st}")
                        return
            except Exception as e:
                errors.append(f"polling: {e}")
            finally:
                c.close()

        log(f"end to end: {E2E_FILES} tasks")
        t0 = time.monotonic()
        subs = [threading.Thread(target=submitter) for _ in range(SUBMIT_THREADS)]
        poll = threading.Thread(target=poller)
        for t in subs + [poll]:
            t.start()
        for t in subs:
            t.join()
        submit_span = time.monotonic() - t0   # tells a slow client from slow workers
        poll.join()
        elapsed = time.monotonic() - t0
        rss_row(f"end to end {E2E_FILES:,} x 4 KiB", d)
        what = f"end to end, {E2E_FILES:,} files of 4 KiB"
        if errors:
            PROBLEMS.append(f"{what}: {errors[0]}")
            row(f"{what}: tasks/s", f"(**failed: {errors[0]}**)", "", "", ">= 2,000/s", "**no**")
            return
        bad = 0
        for i in range(E2E_FILES):
            p = d.cdn / "e2e" / f"f{i:05d}.ts"
            if not p.is_file() or p.stat().st_size != 4096:
                bad += 1
        if bad:
            PROBLEMS.append(f"{what}: {bad} published files missing or of the wrong size")
        # The store's own clock, as a cross-check of the polling: from the
        # first acceptance to the last task finished.
        db = sqlite3.connect(f"file:{d.store}?mode=ro", uri=True)
        first, last, done = db.execute("SELECT min(created_ms), max(updated_ms), count(*)"
                                       " FROM task WHERE state = 3").fetchone()
        db.close()
        store_span = ((last - first) / 1000) if done else 0
        rate = E2E_FILES / elapsed
        row(f"{what}: tasks/s", fmt_rate(rate) + (f" (**{bad} files wrong**)" if bad else ""),
            f"all submitted in {submit_span:.2f} s; store: {done:,} finished in "
            f"{store_span:.2f} s", "", ">= 2,000/s",
            yes(rate >= 2000 and not bad))
        d.stop()
    finally:
        d.kill9()


def scenario_big(base, binary):
    """A big file published local to local, against cp + sync."""
    d = Apubid(base, "big", binary)
    src = d.ingest / "big.bin"
    log(f"writing {BIG_MIB} MiB of random data")
    chunk = os.urandom(1 << 20)
    with open(src, "wb") as f:
        for i in range(BIG_MIB):
            # A fresh MiB now and then keeps the data from being one repeated block.
            if i % 16 == 0:
                chunk = os.urandom(1 << 20)
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    size = src.stat().st_size
    d.start()
    try:
        d.rss_reset()
        cp_times, ap_times = [], []
        copy = d.cdn / "cp-copy.bin"
        c = Client(d.port)
        for rep in range(REPEAT):
            log(f"publish {BIG_MIB} MiB #{rep + 1}")

            def by_cp():
                t0 = time.monotonic()
                subprocess.run(["cp", str(src), str(copy)], check=True)
                subprocess.run(["sync", str(copy)], check=True)
                cp_times.append(time.monotonic() - t0)
                copy.unlink()
                os.sync()

            def by_apubid():
                name = f"big/big-{rep}.bin"
                t0 = time.monotonic()
                tid = c.load(f"file://{src}", FIXTURE_DEST + name)
                st, data = c.wait(tid, BIG_TIMEOUT)
                ap_times.append(time.monotonic() - t0)
                if st != "SUCCESS":
                    raise BenchError(f"big publish ended {st}: {data[:500]!r}\n"
                                     + tail(d.logfile))
                dest = d.cdn / name
                if dest.stat().st_size != size:
                    raise BenchError(f"{dest} has {dest.stat().st_size} bytes, not {size}")
                dest.unlink()
                os.sync()

            # Whoever goes first alternates, so neither always meets a busier disk.
            for step in ((by_cp, by_apubid) if rep % 2 == 0 else (by_apubid, by_cp)):
                step()
        c.close()
        cp_t, ap_t = statistics.median(cp_times), statistics.median(ap_times)
        mib = size / 1048576
        ratio = cp_t / ap_t
        what = f"publish {mib:,.0f} MiB local to local"
        row(f"{what}: seconds", f"{ap_t:.2f} s ({mib / ap_t:,.0f} MiB/s)",
            f"cp + sync {cp_t:.2f} s ({mib / cp_t:,.0f} MiB/s)", f"{ratio:.2f}",
            ">= 0.9 (speed vs cp)", yes(ratio >= 0.9))
        rss_row(f"publish {mib:,.0f} MiB", d)
        d.stop()
    finally:
        d.kill9()
        src.unlink(missing_ok=True)


def clone_tasks(store, template_id, first, count):
    """Inserts `count` copies of the task `template_id`, in one transaction,
    each with a fresh TaskId and its own destination."""
    db = sqlite3.connect(store)
    try:
        # A big page cache keeps the random inserts into the TaskId index
        # from going to disk page by page; one transaction, one commit.
        db.execute("PRAGMA cache_size = -262144")
        db.row_factory = sqlite3.Row
        t = db.execute("SELECT * FROM task WHERE id = ?", (template_id,)).fetchone()
        if t is None:
            raise BenchError(f"no task {template_id} in {store}")
        cols = [k for k in t.keys() if k != "seq"]
        name = "feature_20240517143000"
        text_cols = {k for k in cols if isinstance(t[k], str) and name in t[k]}
        sql = (f"INSERT INTO task ({', '.join(cols)}) VALUES "
               f"({', '.join('?' for _ in cols)})")
        now = int(time.time() * 1000)

        def rows():
            for i in range(first, first + count):
                tag = f"clone{i:07d}"
                yield [str(uuid.uuid4()).upper() if k == "id"
                       else t[k].replace(name, tag) if k in text_cols
                       else now if k in ("created_ms", "updated_ms")
                       else t[k] for k in cols]

        with db:
            db.executemany(sql, rows())
        return db.execute("SELECT count(*) FROM task").fetchone()[0]
    finally:
        db.close()


def scenario_many(base, binary):
    """GetTaskStatus with FEW_TASKS and MANY_TASKS tasks stored."""
    few = Apubid(base, "few", binary).start()
    try:
        src = few.ingest / "feature.ts"
        src.write_bytes(os.urandom(4096))
        tid = publish_one(few, src, "feature_20240517143000.ts")
        few.stop()
    finally:
        few.kill9()
    n = clone_tasks(few.store, tid, 1, FEW_TASKS - 1)
    many = Apubid(base, "many", binary)
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(few.store) + suffix)
        if p.exists():
            shutil.copyfile(p, str(many.store) + suffix)
    log(f"inserting {MANY_TASKS - FEW_TASKS:,} tasks")
    t0 = time.monotonic()
    m = clone_tasks(many.store, tid, FEW_TASKS, MANY_TASKS - FEW_TASKS)
    log(f"{m:,} tasks stored in {time.monotonic() - t0:.1f} s")
    if (n, m) != (FEW_TASKS, MANY_TASKS):
        raise BenchError(f"stores hold {n} and {m} tasks, not {FEW_TASKS} and {MANY_TASKS}")
    few.start()
    many.start()
    try:
        (base / "status-few.xml").write_bytes(status_envelope(tid))
        env = {"BENCH_BODY": str(base / "status-few.xml")}
        for d in (few, many):
            c = Client(d.port)
            st, _ = c.status(tid)
            c.close()
            if st != "SUCCESS":
                raise BenchError(f"task {tid} is {st} in {d.name}")
        few.rss_reset()
        runs = {"few": [], "many": []}
        for rep in range(REPEAT):
            for who, d in (("few", few), ("many", many)):
                log(f"GetTaskStatus c=64 with {who} tasks #{rep + 1}")
                runs[who].append(wrk(d.url, "status.lua", 64, SECONDS, env))
                d.alive()
        a, r = median_of(runs["many"]), median_of(runs["few"])
        what = f"GetTaskStatus, 64 conns, {MANY_TASKS:,} tasks stored"
        ratio50 = a["p50_us"] / r["p50_us"] if r["p50_us"] else 0
        ratio99 = a["p99_us"] / r["p99_us"] if r["p99_us"] else 0
        row(f"{what}: p50 / p99", f"{fmt_ms(a['p50_us'])} / {fmt_ms(a['p99_us'])}"
            + errors_note(a, what),
            f"{FEW_TASKS:,} tasks: {fmt_ms(r['p50_us'])} / {fmt_ms(r['p99_us'])}"
            + errors_note(r, f"GetTaskStatus with {FEW_TASKS} tasks"),
            f"{ratio50:.2f} / {ratio99:.2f}", "p50 <= 1.2 x", yes(ratio50 <= 1.2))
        row(f"{what}: req/s", fmt_rate(a["rps"]), f"{FEW_TASKS:,} tasks: {fmt_rate(r['rps'])}",
            f"{a['rps'] / r['rps']:.2f}" if r["rps"] else "", "", "")
        rss_row(f"{FEW_TASKS:,} tasks stored, under load", few)
        rss_row(f"{MANY_TASKS:,} tasks stored (whole life, under load)", many)
        few.stop()
        many.stop()
    finally:
        few.kill9()
        many.kill9()


def scenario_attributes(base, binary):
    """One GetTaskStatus whose operation element carries N attributes (or N
    namespace declarations), then 2N: the time to the answer, and how it
    grows. Linear handling takes about twice as long for 2N."""
    d = Apubid(base, "attributes", binary)
    d.start()
    try:
        for what, n, target in (("attributes", 40_000, 2.0), ("xmlns", 30_000, 2.0)):
            took = []
            for k in (n // 2, n):
                attrs = (b" ".join(b'a%d="1"' % i for i in range(k)) if what == "attributes"
                         else b" ".join(b'xmlns:p%d="urn:%d"' % (i, i) for i in range(k)))
                body = status_envelope("x").replace(b"<GetTaskStatus ",
                                                    b"<GetTaskStatus " + attrs + b" ", 1)
                log(f"GetTaskStatus with {k:,} {what}")
                conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=300)
                t0 = time.monotonic()
                try:
                    conn.request("POST", "/apubi", body=body, headers=HEADERS)
                    r = conn.getresponse()
                    r.read()
                finally:
                    conn.close()
                took.append(time.monotonic() - t0)
                if r.status != 500:
                    PROBLEMS.append(f"{k} {what}: HTTP {r.status}, expected the unknown-task fault")
                d.alive()
            growth = took[1] / took[0] if took[0] > 0 else float("inf")
            row(f"GetTaskStatus with {n:,} {what}: seconds to the answer", f"{took[1]:.2f} s",
                f"{n // 2:,}: {took[0]:.2f} s", f"x{growth:.1f} for x2",
                f"<= {target:g} s, about x2", yes(took[1] <= target and growth < 3))
    finally:
        d.kill9()


def scenario_pg_accept(base, binary):
    """LoadAsset acceptances/s at 64 connections on a PostgreSQL store,
    against the same server's pgbench with 64 clients inserting one
    task-sized row per transaction; both with PostgreSQL's default
    durability (fsync on)."""
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    from pg import PG_BIN, PostgresServer
    pg = PostgresServer(base / "pg")
    pg.start()
    d = None
    try:
        url = pg.create_database("bench")
        d = Apubid(base, "pg-accept", binary,
                   store={"url": url}, workers={"count": "1", "queue_limit": "100000000"})
        d.start()
        src = d.ingest / "feature.ts"
        src.write_bytes(os.urandom(1024))
        split = "\x00SPLIT\x00"
        env_xml = load_envelope(f"file://{src}", FIXTURE_DEST + "pg/feature_" + split + ".ts")
        prefix, suffix = env_xml.split(split.encode())
        (base / "pgload.prefix").write_bytes(prefix)
        (base / "pgload.suffix").write_bytes(suffix)
        runs = []
        for rep in range(REPEAT):
            log(f"LoadAsset on PostgreSQL c=64 #{rep + 1}")
            runs.append(wrk(d.url, "load.lua", 64, SECONDS,
                            {"BENCH_PREFIX": str(base / "pgload.prefix"),
                             "BENCH_SUFFIX": str(base / "pgload.suffix"),
                             "BENCH_RUN": f"p{rep}"}))
            d.alive()
        m = median_of(runs)
        rss_row("LoadAsset on PostgreSQL, 64 conns", d)
        d.kill9()
        # The reference: a bare SQL client, one INSERT of a task-sized row
        # per transaction, into a table shaped like apubid's.
        pg.psql("CREATE TABLE t (seq bigserial PRIMARY KEY, id text UNIQUE, kind int,"
                " state int, source text, destination text, dest_path text,"
                " created_ms bigint, updated_ms bigint, dest_key bytea)", "bench")
        script = base / "pgbench.sql"
        script.write_text(
            "INSERT INTO t (id, kind, state, source, destination, dest_path, created_ms,"
            " updated_ms, dest_key) VALUES (gen_random_uuid()::text, 1, 0,"
            f" 'file://{src}', 'pg/feature_x.ts', 'pg/feature_x.ts',"
            " 1733400000000, 1733400000000, '\\x2f70672f')\n")
        tps = []
        for rep in range(REPEAT):
            log(f"pgbench c=64 #{rep + 1}")
            r = subprocess.run([str(PG_BIN / "pgbench"), "-n", "-c64", "-j2", f"-T{max(1, int(SECONDS))}",
                                "-f", str(script), "-h", "127.0.0.1", "-p", str(pg.port),
                                "-U", "postgres", "bench"],
                               capture_output=True, text=True, timeout=SECONDS * 10 + 60)
            got = re.search(r"tps = ([0-9.]+)", r.stdout)
            if r.returncode != 0 or not got:
                raise BenchError(f"pgbench failed: {r.stderr[-300:]}")
            tps.append(float(got.group(1)))
        ref = statistics.median(tps)
        ratio = m["rps"] / ref if ref else 0
        what = "LoadAsset on PostgreSQL, 64 conns"
        row(f"{what}: acceptances/s", fmt_rate(m["rps"]) + errors_note(m, what),
            f"pgbench one-row inserts, 64 clients: {fmt_rate(ref)}", f"{ratio:.2f}x",
            ">= 1x", yes(ratio >= 1 and not m["status"]))
    finally:
        if d:
            d.kill9()
        pg.close()


def scenario_pg_status(base, binary):
    """GetTaskStatus req/s at 64 connections with the task in PostgreSQL,
    against the same request with the task in SQLite."""
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    from pg import PostgresServer
    pg = PostgresServer(base / "pg-status")
    pg.start()
    nodes = []
    try:
        url = pg.create_database("status")
        results = {}
        for name, store in (("sqlite", {}), ("postgresql", {"url": url})):
            d = Apubid(base, f"status-{name}", binary, store=store)
            nodes.append(d)
            d.start()
            src = d.ingest / "feature.ts"
            src.write_bytes(os.urandom(4096))
            tid = publish_one(d, src, "feature_20240517143000.ts")
            (base / f"status-{name}.xml").write_bytes(status_envelope(tid))
            runs = []
            for rep in range(REPEAT):
                log(f"GetTaskStatus on {name} c=64 #{rep + 1}")
                runs.append(wrk(d.url, "status.lua", 64, SECONDS,
                                {"BENCH_BODY": str(base / f"status-{name}.xml")}))
                d.alive()
            results[name] = median_of(runs)
            d.kill9()
        a, r = results["postgresql"], results["sqlite"]
        ratio = a["rps"] / r["rps"] if r["rps"] else 0
        what = "GetTaskStatus on PostgreSQL, 64 conns"
        row(f"{what}: req/s", fmt_rate(a["rps"]) + errors_note(a, what),
            f"on SQLite {fmt_rate(r['rps'])}", f"{ratio:.2f}", "", "")
    finally:
        for d in nodes:
            d.kill9()
        pg.close()


def pg_nodes(base, binary, name, url, n):
    """n apubid nodes on the PostgreSQL database `url`, sharing the first
    one's ingest/ as source and its cdn/ as destination root (a cluster on
    one machine: the shared root is a local directory)."""
    nodes = []
    for i in range(n):
        d = Apubid(base, f"{name}-{i}", binary, store={"url": url},
                   workers={"queue_limit": "100000000"})
        if nodes:
            first = nodes[0]
            d.configure(source={"allow": f"file://{first.ingest}/"},
                        destination={"root": f"file://{first.cdn}/", "allow": CDN_PREFIX})
            d.ingest, d.cdn = first.ingest, first.cdn
        nodes.append(d)
    return nodes


def e2e_over(nodes, src_dir, count, sub):
    """`count` LoadAssets of src_dir/fNNNNN.ts by SUBMIT_THREADS threads,
    spread round robin over `nodes`, each polled to SUCCESS on the next
    node; returns (tasks/s, seconds to submit all, first error or None)."""
    lock = threading.Lock()
    todo = iter(range(count))
    submitted = [None] * count
    order = []
    errors = []
    got = threading.Condition(lock)

    def submitter(k):
        c = Client(nodes[k % len(nodes)].port)
        try:
            while not errors:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                tid = c.load(f"file://{src_dir}/f{i:05d}.ts", FIXTURE_DEST + f"{sub}/f{i:05d}.ts")
                with got:
                    submitted[i] = (tid, k % len(nodes))
                    order.append(i)
                    got.notify_all()
        except Exception as e:
            errors.append(f"submitting: {e}")
        finally:
            c.close()

    def poller():
        clients = [Client(d.port) for d in nodes]
        deadline = time.monotonic() + E2E_TIMEOUT
        try:
            for k in range(count):
                with got:
                    while len(order) <= k and not errors:
                        got.wait(0.5)
                        if time.monotonic() > deadline:
                            raise BenchError("submissions stalled")
                    if errors:
                        return
                    i = order[k]
                tid, at = submitted[i]
                c = clients[(at + 1) % len(nodes)]
                st, _ = c.wait(tid, max(1, deadline - time.monotonic()), 0.002)
                if st != "SUCCESS":
                    errors.append(f"task for f{i:05d} ended {st}")
                    return
        except Exception as e:
            errors.append(f"polling: {e}")
        finally:
            for c in clients:
                c.close()

    t0 = time.monotonic()
    subs = [threading.Thread(target=submitter, args=(k,)) for k in range(SUBMIT_THREADS)]
    poll = threading.Thread(target=poller)
    for t in subs + [poll]:
        t.start()
    for t in subs:
        t.join()
    submit_span = time.monotonic() - t0
    poll.join()
    return count / (time.monotonic() - t0), submit_span, (errors[0] if errors else None)


def scenario_pg_cluster(base, binary):
    """End to end small-file tasks on PostgreSQL: three nodes on one
    database and one shared root, the load spread over them, against one
    node alone on the same server; peak RSS of every node."""
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    from pg import PostgresServer
    pg = PostgresServer(base / "pg-cluster")
    pg.start()
    all_nodes = []
    try:
        rates = {}
        for n in (1, 3):
            nodes = pg_nodes(base, binary, f"pg{n}", pg.create_database(f"e2e{n}"), n)
            all_nodes += nodes
            src_dir = nodes[0].ingest / "e2e"
            src_dir.mkdir()
            log(f"writing {PG_E2E_FILES} files of 4 KiB")
            for i in range(PG_E2E_FILES):
                (src_dir / f"f{i:05d}.ts").write_bytes(os.urandom(4096))
            for d in nodes:
                d.start()
                d.rss_reset()
            log(f"end to end on PostgreSQL, {n} node(s): {PG_E2E_FILES} tasks")
            rate, span, err = e2e_over(nodes, src_dir, PG_E2E_FILES, "e2e")
            what = f"end to end on PostgreSQL, {PG_E2E_FILES:,} files of 4 KiB, {n} node(s)"
            if err:
                PROBLEMS.append(f"{what}: {err}")
                raise BenchError(f"{what}: {err}")
            bad = sum(1 for i in range(PG_E2E_FILES)
                      if not (nodes[0].cdn / "e2e" / f"f{i:05d}.ts").is_file()
                      or (nodes[0].cdn / "e2e" / f"f{i:05d}.ts").stat().st_size != 4096)
            if bad:
                PROBLEMS.append(f"{what}: {bad} published files missing or of the wrong size")
            rates[n] = (rate, span, bad)
            for k, d in enumerate(nodes):
                rss_row(f"end to end on PostgreSQL, {n} node(s), node {k + 1}", d)
            for d in nodes:
                d.stop()
        (r1, s1, b1), (r3, s3, b3) = rates[1], rates[3]
        ratio = r3 / r1 if r1 else 0
        row(f"end to end on PostgreSQL, {PG_E2E_FILES:,} files of 4 KiB: tasks/s, three nodes",
            fmt_rate(r3) + (f" (**{b3} files wrong**)" if b3 else "")
            + f"; all submitted in {s3:.2f} s",
            f"one node {fmt_rate(r1)}" + (f" (**{b1} files wrong**)" if b1 else "")
            + f"; all submitted in {s1:.2f} s", f"{ratio:.2f}x", "", "")
    finally:
        for d in all_nodes:
            d.kill9()
        pg.close()


SCENARIOS = [
    ("GetTaskStatus vs nginx", scenario_status),
    ("GetTaskStatus over TLS vs nginx over TLS", scenario_status_tls),
    ("a normal client beside a crowd", scenario_crowd),
    ("LoadAsset acceptances", scenario_accept),
    ("LoadAsset acceptances on PostgreSQL", scenario_pg_accept),
    ("GetTaskStatus on PostgreSQL", scenario_pg_status),
    ("end to end on PostgreSQL, three nodes against one", scenario_pg_cluster),
    ("end to end", scenario_e2e),
    ("big publish", scenario_big),
    ("many tasks", scenario_many),
    ("many attributes", scenario_attributes),
]


def main():
    for tool in ("wrk", "nginx", "cp", "sync", "df"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            print(f"bench: {tool} is not installed (Debian package: {tool})", file=sys.stderr)
            return 2
    if shutil.which("nginx") is None:
        os.environ["PATH"] += os.pathsep + "/usr/sbin"
    if not os.access(APUBID, os.X_OK):
        print(f"bench: {APUBID} is not an executable (set APUBID)", file=sys.stderr)
        return 2
    only = set(sys.argv[1:])   # scenario function names to run, e.g. "status"
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="apubid-bench-", dir=os.environ.get("BENCH_TMP")))
    # SIGTERM and SIGHUP unwind like Ctrl-C, so every server is stopped.
    def interrupted(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    try:
        # The daemon runs from a copy: a rebuild during the run changes nothing.
        binary = base / "apubid"
        shutil.copy2(APUBID, binary)
        log(f"working in {base}" + (" (QUICK)" if QUICK else ""))
        for what, fn in SCENARIOS:
            if only and fn.__name__.removeprefix("scenario_") not in only:
                continue
            try:
                fn(base, str(binary))
            except (BenchError, OSError, subprocess.SubprocessError, sqlite3.Error) as e:
                log(f"{what}: {e}")
                PROBLEMS.append(f"{what} could not run: {str(e).splitlines()[0]}")
                row(what, "(**could not run**)", "", "", "", "")
        text = table(base, started, time.monotonic() - t0)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(text)
        print(text)
        log(f"table written to {OUT}")
        return 1 if PROBLEMS else 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        for p in list(PROCS):
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        if os.environ.get("BENCH_KEEP") not in (None, "", "0"):
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
