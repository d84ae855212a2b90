#!/usr/bin/python3
"""transfer.py - the transfer section of apubid's benchmark (`make bench`).

apubid moves files between servers; this measures how fast, beside the
tools people would otherwise use for the same job (rclone, lftp, curl, and
cp followed by sync), on the same servers and the same data, in the same
run. Every server is real and listens on 127.0.0.1 on a free port, started
here and stopped when the run ends, however it ends (the helpers of
tests/integration/servers.py): pyftpdlib for FTP, OpenSSH's sshd (with a
key pair of its own) for SFTP, nginx with its WebDAV module for WebDAV
uploads and plain HTTP downloads. One directory (srv/) is the root of all
three servers, so the FTP, SFTP and HTTP sources are the very files
apubid's local sources are.

The data: a package of PKG_FILES files of 64 KiB of random bytes in two
renditions plus three .m3u8 playlists (an HLS presentation has hundreds to
thousands of segments), and one file of BIG_MIB MiB of random bytes.

Scenarios (one row each):

* the package from an FTP source to a local root, and from a local source
  to an FTP, SFTP, WebDAV and local root;
* every file of the package as a task of its own (one LoadAsset per file),
  from an HTTP source to a local root;
* the big file from an HTTP and an FTP source to a local root, and from a
  local source to an FTP, SFTP and WebDAV root.

How apubid is driven: the binary named by APUBID runs with a configuration
whose [source] allow, [destination] root and [transfer] keys fit the
scenario (retries = 1: a failure shows as a failure, not as a slow run).
A run is the time from sending LoadAsset over SOAP to the GetTaskStatus
poll (every 10 ms) that answers SUCCESS; for the single files, from the
first LoadAsset to the last SUCCESS, 4 client threads submitting. apubid's
CPU seconds are its user + system time over the run (/proc/PID/stat); its
peak RSS is VmHWM, reset through /proc/PID/clear_refs when the run starts.

How a reference is driven: its command lines run one after the other
(rclone downloads from FTP with --multi-thread-streams 0: its parallel
ranged reads of one file end in "426 Transfer aborted" with pyftpdlib, as
with other FTP servers, rclone/rclone#3942 and #3445); a
reference that writes to the local disk ends with `sync -f DIR` (one
syncfs of the destination's file system), because apubid makes what it
publishes on a local root durable before it answers SUCCESS. Its CPU
seconds (the whole process tree) and peak RSS (its largest process) come
from GNU time. A reference that fails is reported as failed in its row,
and the row goes on with the others.

What the servers saw is counted per run as well, from their logs: for an
FTP end, logins, commands, and the client's pauses of 0.5 s or more right
after the 229 answer to EPSV; for an HTTP or WebDAV end, nginx's requests
by method. Two more tables show them.

Every run's result is checked before its time counts: the exact set of
files, every size, and the SHA-256 of a few files (of three 1 MiB pieces
of the big file), so a wrong result cannot be fast. Runs alternate
(apubid, then each reference, the order rotated each repetition) and each
row shows the median of REPEAT runs; ratio = the best reference's seconds
/ apubid's seconds, so 1.0 is as fast as the fastest tool and 0.5 half
as fast. Targets: ratio >= 1.0 and apubid's peak RSS <= 64 MiB.

Each run has a liveness bound (RUN_TIMEOUT): a run that takes longer is
killed and its row reports the failure; the other rows still run.

Environment: APUBID (the binary; default ./apubid of the repository),
BENCH_TRANSFER_OUT (the tables; default bench-transfer.md beside
BENCH_OUT, else build/bench-transfer.md), BENCH_QUICK=1 (100 files, 32 MiB, one run each:
checks the harness in about a minute; its numbers mean nothing),
BENCH_REPEAT, BENCH_PKG_FILES, BENCH_BIG_MIB, BENCH_RUN_TIMEOUT (seconds),
BENCH_SETTLE (seconds of quiet before each run, default 3; see clear()),
BENCH_TMP (where the temporary directory goes), BENCH_KEEP=1 (keep it),
BENCH_STRACE=1 (run apubid under `strace -f -c -w` and write each scenario's
system call summary beside the table, transfer-strace-SCENARIO.txt),
BENCH_PERF=1 (sample apubid with `perf record -g` and write the profile
by library and by function beside the table, transfer-perf-SCENARIO.txt):
both are for finding causes; their times mean little.
Arguments: scenario names to run only those: pkg-ftp-local, pkg-local-ftp,
pkg-local-sftp, pkg-local-dav, pkg-local-local, singles-http-local,
big-http-local, big-ftp-local, big-local-ftp, big-local-sftp,
big-local-dav.

A full run takes about 25 minutes on 2 busy cores (most of it apubid's
FTP packages); BENCH_QUICK=1 about one.

Exit status: 0 when every row ran and verified, 1 when one could not run
or produced a wrong result (the table says which), 2 for a set-up problem
(a tool missing, no binary). A missed target does not change it.
"""
import datetime
import hashlib
import http.client
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import servers  # noqa: E402  (the servers of the integration tests)

APUBID = os.environ.get("APUBID", str(REPO / "apubid"))
FIXTURES = REPO / "tests" / "fixtures"
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


def env_num(name, full, quick, kind=int):
    v = os.environ.get(name)
    return kind(v) if v else (quick if QUICK else full)


REPEAT = env_num("BENCH_REPEAT", 3, 1)
PKG_FILES = env_num("BENCH_PKG_FILES", 1000, 100)
BIG_MIB = env_num("BENCH_BIG_MIB", 1024, 32)
RUN_TIMEOUT = env_num("BENCH_RUN_TIMEOUT", 600, 120, float)
SETTLE = env_num("BENCH_SETTLE", 3, 0, float)  # seconds between runs (see clear)
STRACE = os.environ.get("BENCH_STRACE", "") not in ("", "0")
PERF = os.environ.get("BENCH_PERF", "") not in ("", "0")
_default_out = (Path(os.environ["BENCH_OUT"]).with_name("bench-transfer.md")
                if os.environ.get("BENCH_OUT") else REPO / "build" / "bench-transfer.md")
OUT = Path(os.environ.get("BENCH_TRANSFER_OUT", str(_default_out)))

SEG = 64 * 1024               # bytes per package file
RSS_TARGET_MIB = 64
SUBMIT_THREADS = 4            # clients submitting the single-file tasks
HTTP_TIMEOUT = 30             # seconds for one SOAP exchange
USER, PASSWORD = "apubi", "s3cret"

# A command or reply in pyftpdlib's log: time, client address, direction, word.
FTP_LINE_RE = re.compile(r"^(\S+ \S+) (\d+\.\d+\.\d+\.\d+:\d+)-\[[^\]]*\] (<-|->) (\S+)")
TASKID_RE = re.compile(rb"<(?:\w+:)?TaskId>([0-9A-F-]{36})</(?:\w+:)?TaskId>")
STATUS_RE = re.compile(rb"<(?:\w+:)?Status>\s*(\w+)\s*</(?:\w+:)?Status>")
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}

GNU_TIME = "/usr/bin/time"
NGINX_DAV_EXT = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"

# Every tool the section runs, with the Debian package that brings it.
TOOLS = {GNU_TIME: "time", NGINX_DAV_EXT: "libnginx-mod-http-dav-ext", "rclone": "rclone", "lftp": "lftp", "curl": "curl", "cp": "coreutils",
         "sync": "coreutils", "ssh": "openssh-client", "ssh-keygen": "openssh-client",
         "openssl": "openssl", servers.SSHD: "openssh-server", servers.NGINX: "nginx"}


class BenchError(Exception):
    """A run could not be made or gave a wrong result."""


def log(msg):
    print(f"[transfer {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def check_tools():
    """None when every tool is there, else the message naming what to install."""
    missing = sorted({pkg for tool, pkg in TOOLS.items()
                      if (shutil.which(tool) if "/" not in tool else
                          (tool if os.access(tool, os.R_OK) else None)) is None})
    r = subprocess.run([servers.FTP_PYTHON, "-c", "import pyftpdlib"], capture_output=True)
    if r.returncode != 0:
        missing.append("python3-pyftpdlib")
    if missing:
        return (f"transfer bench: missing {', '.join(missing)}: "
                f"apt-get install {' '.join(missing)} (or make deps-bench)")
    return None


# ---- the data and its checks ------------------------------------------------

class Expect:
    """What a correct result holds: {relative path: size}, and for a few
    files the SHA-256 of pieces [(offset, length, hex digest)]."""

    def __init__(self, files, samples):
        self.files = files
        self.samples = samples

    def verify(self, top, what):
        top = Path(top)
        if not top.is_dir():
            raise BenchError(f"{what}: {top} was not created")
        found = {}
        for dirpath, _, names in os.walk(top):
            for n in names:
                p = Path(dirpath, n)
                found[str(p.relative_to(top))] = p.stat().st_size
        if set(found) != set(self.files):
            extra = sorted(set(found) - set(self.files))[:3]
            lost = sorted(set(self.files) - set(found))[:3]
            raise BenchError(f"{what}: {len(found)} files instead of {len(self.files)}"
                             f" (unexpected {extra}, missing {lost})")
        wrong = [k for k, v in self.files.items() if found[k] != v]
        if wrong:
            raise BenchError(f"{what}: wrong size for {wrong[:3]}")
        for rel, pieces in self.samples.items():
            if piece_hashes(top / rel, [(o, n) for o, n, _ in pieces]) != [h for _, _, h in pieces]:
                raise BenchError(f"{what}: {rel} differs from its source")


def piece_hashes(path, pieces):
    out = []
    with open(path, "rb") as f:
        for off, n in pieces:
            f.seek(off)
            out.append(hashlib.sha256(f.read(n)).hexdigest())
    return out


def make_package(top):
    """PKG_FILES segments of 64 KiB in two renditions and three playlists:
    its Expect. Names are unique across the package, so the same files can
    also land side by side in one directory (the single-file scenario)."""
    files = {}
    half = PKG_FILES // 2
    for r, count in ((1, half), (2, PKG_FILES - half)):
        d = top / f"v{r}"
        d.mkdir(parents=True)
        names = [f"v{r}-{i:05d}.ts" for i in range(count)]
        for n in names:
            (d / n).write_bytes(os.urandom(SEG))
            files[f"v{r}/{n}"] = SEG
        pl = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n" + "".join(
            f"#EXTINF:2.0,\n{n}\n" for n in names) + "#EXT-X-ENDLIST\n"
        (d / f"video-{r}.m3u8").write_text(pl)
        files[f"v{r}/video-{r}.m3u8"] = len(pl)
    master = ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=2000000\nv1/video-1.m3u8\n"
              "#EXT-X-STREAM-INF:BANDWIDTH=4000000\nv2/video-2.m3u8\n")
    (top / "master.m3u8").write_text(master)
    files["master.m3u8"] = len(master)
    samples = {}
    for rel in ("master.m3u8", "v1/video-1.m3u8", "v1/v1-00000.ts",
                f"v2/v2-{PKG_FILES - half - 1:05d}.ts"):
        size = files[rel]
        samples[rel] = [(0, size, piece_hashes(top / rel, [(0, size)])[0])]
    return Expect(files, samples)


def make_big(path):
    """BIG_MIB MiB of random bytes (a fresh MiB every 16, so the file is
    not one repeated block): its Expect, relative to its directory."""
    chunk = b""
    with open(path, "wb") as f:
        for i in range(BIG_MIB):
            if i % 16 == 0:
                chunk = os.urandom(1 << 20)
            f.write(chunk)
    size = path.stat().st_size
    pieces = [(0, 1 << 20), ((size // 2) & ~4095, 1 << 20), (size - (1 << 20), 1 << 20)]
    hashes = piece_hashes(path, pieces)
    return Expect({path.name: size},
                  {path.name: [(o, n, h) for (o, n), h in zip(pieces, hashes)]})


def flat(expect):
    """The Expect of the package's files laid side by side in one directory."""
    return Expect({Path(k).name: v for k, v in expect.files.items()},
                  {Path(k).name: v for k, v in expect.samples.items()})


# ---- the FTP server's view ------------------------------------------------------

def ftp_view(text):
    """What one run did, seen from the FTP server's log: (logins, commands,
    pauses, paused seconds). A pause is a client waiting 0.5 s or more
    before its next command right after the server's 229 answer to EPSV:
    libcurl's easy interface waits exactly 1 s there when the answer was
    already in its buffer."""
    logins = commands = pauses = 0
    paused = 0.0
    last = {}
    for line in text.splitlines():
        m = FTP_LINE_RE.match(line)
        if not m:
            continue
        stamp, conn, way, word = m.groups()
        try:
            t = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        except ValueError:
            continue
        if way == "<-":
            commands += 1
            logins += word.upper() == "USER"
            prev = last.get(conn)
            if prev and prev[1] == "229" and t - prev[0] >= 0.5:
                pauses += 1
                paused += t - prev[0]
        last[conn] = (t, word if way == "->" else None)
    return logins, commands, pauses, paused


# ---- measuring a process tree ------------------------------------------------

def run_measured(cmds, timeout):
    """Runs the command lines one after the other, each in its own session,
    bounded by `timeout` seconds for all of them: (seconds, CPU seconds of
    the process trees, peak RSS in KiB of their largest process). A failure
    raises BenchError with the command's output.

    CPU and RSS come from GNU time, which reports wait4() of the command:
    wait4() of a child of this Python process would count Python's own
    memory as the child's (its RSS before exec), so the measured process
    must be forked by a small one."""
    cpu, rss = 0.0, 0
    t0 = time.monotonic()
    for cmd in cmds:
        left = timeout - (time.monotonic() - t0)
        out = tempfile.TemporaryFile()
        with tempfile.NamedTemporaryFile("r") as report:
            p = subprocess.Popen([GNU_TIME, "-f", "%U %S %M", "-o", report.name] + cmd,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 start_new_session=True)
            timer = threading.Timer(max(left, 0.1), lambda: os.killpg(p.pid, signal.SIGKILL))
            timer.start()
            try:
                p.wait()
            except BaseException:
                # Interrupted: the reference must not outlive the harness.
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                raise
            finally:
                timer.cancel()
            fields = report.read().split()
        if p.returncode == 0:
            try:
                user, system, maxrss = float(fields[-3]), float(fields[-2]), int(fields[-1])
            except (IndexError, ValueError):
                raise BenchError(f"{GNU_TIME} wrote no usage for {cmd[0]}: {fields}")
            cpu += user + system
            rss = max(rss, maxrss)
        else:
            out.seek(0)
            text = out.read().decode(errors="replace")[-2000:]
            late = time.monotonic() - t0 >= timeout
            raise BenchError(f"{cmd[0]} " + (f"killed after {timeout:.0f} s" if late else
                                             f"exited {p.returncode}") + f": {text}")
    return time.monotonic() - t0, cpu, rss


def proc_cpu(pid):
    """User + system seconds of a running process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise BenchError("no VmHWM in /proc/PID/status")


# ---- apubid -----------------------------------------------------------------------

def fixture_envelope(source, destination):
    xml = (FIXTURES / "load-file-ftp.xml").read_text(encoding="utf-8")
    for name, value in (("SourceAssetUrl", source), ("DestinationAsset", destination)):
        xml, n = re.subn(rf"(<{name}>)[^<]*(</{name}>)",
                         lambda m: m.group(1) + value + m.group(2), xml, count=1)
        if n != 1:
            raise BenchError(f"load-file-ftp.xml has no <{name}>")
    return xml.encode()


def status_envelope(task_id):
    xml = (FIXTURES / "get-task-status.xml").read_text(encoding="utf-8")
    return re.sub(r"(<TaskId>)[^<]*(</TaskId>)", rf"\g<1>{task_id}\g<2>", xml).encode()


class Client:
    """One keep-alive SOAP connection to apubid."""

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
                self.close()     # an idle keep-alive connection the server closed
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def load(self, source, destination):
        status, data = self.post(fixture_envelope(source, destination))
        m = TASKID_RE.search(data)
        if status != 200 or not m:
            raise BenchError(f"LoadAsset {destination}: HTTP {status}: {data[:400]!r}")
        return m.group(1).decode()

    def wait(self, task_id, deadline):
        """Polls every 10 ms until the task is final; raises unless SUCCESS."""
        while True:
            status, data = self.post(status_envelope(task_id))
            m = STATUS_RE.search(data)
            if status != 200 or not m:
                raise BenchError(f"GetTaskStatus {task_id}: HTTP {status}: {data[:400]!r}")
            st = m.group(1).decode()
            if st == "SUCCESS":
                return
            if st != "IN_PROGRESS":
                raise BenchError(f"task {task_id} ended {st}: {data[:600]!r}")
            if time.monotonic() > deadline:
                raise BenchError(f"task {task_id} still IN_PROGRESS after {RUN_TIMEOUT:.0f} s")
            time.sleep(0.01)


class Apubid:
    """One apubid for one scenario, in its own directory."""

    def __init__(self, base, name, binary, sections):
        self.dir = base / f"apubid-{name}"
        self.dir.mkdir()
        self.name = name
        self.port = servers.free_port()
        self.logfile = self.dir / "apubid.log"
        self.strace_out = self.dir / "strace.txt"
        conf = {"server": {"listen": f"127.0.0.1:{self.port}", "endpoint": "/apubi"},
                "store": {"path": str(self.dir / "apubid.db")},
                "log": {"level": "warn"}}
        for k, v in sections.items():
            conf.setdefault(k, {}).update(v)
        lines = []
        for section, kv in conf.items():
            lines.append(f"[{section}]")
            for k, v in kv.items():
                lines += [f"{k} = {x}" for x in (v if isinstance(v, list) else [v])]
        self.conf = self.dir / "apubid.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        os.chmod(self.conf, 0o600)
        cmd = [binary, "-f", str(self.conf)]
        if STRACE:
            cmd = ["strace", "-f", "-c", "-w", "-o", str(self.strace_out)] + cmd
        with open(self.logfile, "ab") as logf:
            self.proc = subprocess.Popen(cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf,
                                         preexec_fn=servers._die_with_parent)
        try:
            servers.wait_port(self.port, 15, proc=self.proc, log_path=self.logfile)
        except servers.ServerError as e:
            self.stop()
            raise BenchError(f"apubid did not start: {e}")
        self.pid = self._daemon_pid()
        self.perf = None
        if PERF:
            self.perf_data = self.dir / "perf.data"
            self.perf = subprocess.Popen(
                ["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-g",
                 "-o", str(self.perf_data), "-p", str(self.pid)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, preexec_fn=servers._die_with_parent)

    def _daemon_pid(self):
        """The pid of apubid itself (under strace, strace's child)."""
        if not STRACE:
            return self.proc.pid
        for _ in range(100):
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            if kids:
                return int(kids[0])
            time.sleep(0.05)
        raise BenchError("apubid under strace has no process")

    def tail(self):
        return servers._log_tail(self.logfile)

    def measure(self, submit):
        """Runs submit(client, deadline) and measures it: (seconds, CPU, KiB)."""
        if self.proc.poll() is not None:
            raise BenchError(f"apubid exited with {self.proc.returncode}" + self.tail())
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            pass      # VmHWM then covers apubid's life so far
        c0 = proc_cpu(self.pid)
        t0 = time.monotonic()
        try:
            submit(t0 + RUN_TIMEOUT)
        except BenchError as e:
            raise BenchError(f"{e}{self.tail()}")
        seconds = time.monotonic() - t0
        return seconds, proc_cpu(self.pid) - c0, proc_hwm(self.pid)

    def one_task(self, source, destination):
        def submit(deadline):
            c = Client(self.port)
            try:
                c.wait(c.load(source, destination), deadline)
            finally:
                c.close()
        return self.measure(submit)

    def many_tasks(self, pairs):
        """Every (source, destination) as a task of its own, submitted by
        SUBMIT_THREADS clients; done when the last one is SUCCESS."""
        def submit(deadline):
            ids, errors, lock = [], [], threading.Lock()
            todo = iter(pairs)

            def submitter():
                c = Client(self.port)
                try:
                    while not errors:
                        with lock:
                            pair = next(todo, None)
                        if pair is None:
                            return
                        tid = c.load(*pair)
                        with lock:
                            ids.append(tid)
                except Exception as e:    # raised below, once every thread ended
                    errors.append(e)
                finally:
                    c.close()

            threads = [threading.Thread(target=submitter) for _ in range(SUBMIT_THREADS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise BenchError(f"submitting: {errors[0]}")
            c = Client(self.port)
            try:
                for tid in ids:       # in submission order: the last one ends last
                    c.wait(tid, deadline)
            finally:
                c.close()
        return self.measure(submit)

    def perf_report(self, out):
        """Stops perf and writes where apubid's CPU time went: by library,
        then the top functions."""
        if self.perf is None:
            return
        p, self.perf = self.perf, None
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
        with open(out, "w") as f:
            for sort in ("dso", "dso,sym"):
                r = subprocess.run(["perf", "report", "-i", str(self.perf_data), "--stdio",
                                    "--no-children", "-g", "none", "--percent-limit", "0.5",
                                    "--sort", sort], capture_output=True, text=True,
                                   timeout=300)
                f.write(r.stdout)

    def stop(self):
        if self.perf is not None:
            self.perf.kill()
            self.perf.wait(timeout=10)
            self.perf = None
        if self.proc is None:
            return
        p, self.proc = self.proc, None
        if p.poll() is None:
            # Under strace, apubid itself is told to stop; strace writes its
            # summary and exits when apubid has.
            os.kill(self.pid, signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for pid in {self.pid, p.pid}:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                p.wait(timeout=10)


# ---- the servers and the references' settings ------------------------------------

# The integration tests' nginx has PROPFIND and OPTIONS from the dav-ext
# module (apubid lists a WebDAV stage with them), which rclone's WebDAV
# backend needs as well: it lists a directory before it writes into it.
DavServer = servers.WebDavServer


class World:
    """The data, the three servers and the references' configuration."""

    def __init__(self, base):
        self.base = base
        self.srv = base / "srv"              # the root of every server
        self.data = self.srv / "data"        # the sources
        self.local = base / "local"          # local destinations
        for d in (self.data, self.local):
            d.mkdir(parents=True)
        log(f"writing the package ({PKG_FILES + 3} files) and {BIG_MIB} MiB")
        self.pkg = make_package(self.data / "pkg")
        self.big = make_big(self.data / "big.bin")
        os.sync()
        self.ftp = servers.FtpServer(base, root=self.srv, user=USER, password=PASSWORD,
                                     passive_port_count=64).start()
        self.sftp = servers.SftpServer(base, root=self.srv).start()
        self.dav = DavServer(base, root=self.srv, user=USER, password=PASSWORD).start()
        self.rclone_conf = base / "rclone.conf"
        obscured = subprocess.run(["rclone", "obscure", PASSWORD], capture_output=True,
                                  text=True, check=True, timeout=30).stdout.strip()
        self.rclone_conf.write_text(f"""\
[ftp]
type = ftp
host = 127.0.0.1
port = {self.ftp.port}
user = {USER}
pass = {obscured}

[sftp]
type = sftp
host = 127.0.0.1
port = {self.sftp.port}
user = {self.sftp.user}
key_file = {self.sftp.key_path}
known_hosts_file = {self.sftp.known_hosts}
disable_hashcheck = true
shell_type = none

[dav]
type = webdav
url = http://127.0.0.1:{self.dav.port}/
vendor = other
user = {USER}
pass = {obscured}

[http]
type = http
url = http://{USER}:{PASSWORD}@127.0.0.1:{self.dav.port}/
""")
        self.ssh = (f"ssh -a -x -i {self.sftp.key_path} -o BatchMode=yes "
                    f"-o UserKnownHostsFile={self.sftp.known_hosts} "
                    f"-o StrictHostKeyChecking=yes")

    def stop(self):
        for s in (self.ftp, self.sftp, self.dav):
            try:
                s.stop()
            except Exception as e:      # the others must still stop
                log(f"stopping {s}: {e}")

    # URLs, with credentials, of a path below srv/ on each server
    def ftp_url(self, rel):
        return f"ftp://{USER}:{PASSWORD}@127.0.0.1:{self.ftp.port}/{rel}"

    def sftp_url(self, rel):
        return f"sftp://{self.sftp.user}@127.0.0.1:{self.sftp.port}{self.srv}/{rel}"

    def dav_url(self, rel):
        return f"http://{USER}:{PASSWORD}@127.0.0.1:{self.dav.port}/{rel}"

    def transfer_conf(self):
        return {"retries": "1", "connect_timeout": "15", "stall_timeout": "60",
                "task_timeout": str(int(RUN_TIMEOUT) + 60),
                "ssh_private_key": str(self.sftp.key_path),
                "ssh_public_key": str(self.sftp.pubkey_path),
                "ssh_known_hosts": str(self.sftp.known_hosts)}

    def rclone(self, *args):
        return ["rclone", "--config", str(self.rclone_conf), "-q", "--retries", "1",
                "--low-level-retries", "1"] + list(args)

    def lftp(self, script):
        """An lftp command running `script` with the settings every
        reference shares: stop at the first error, no TLS on the plain
        FTP server, overwrite, no retries."""
        head = ("set cmd:fail-exit yes; set net:max-retries 1; set ftp:ssl-allow no; "
                "set xfer:clobber yes; set ftp:passive-mode yes; "
                f"set sftp:connect-program \"{self.ssh}\"; ")
        return ["lftp", "-c", head + script]

    def lftp_open(self, kind):
        if kind == "ftp":
            return f"open -u {USER},{PASSWORD} ftp://127.0.0.1:{self.ftp.port}; "
        if kind == "sftp":
            return f"open -u {self.sftp.user}, sftp://127.0.0.1:{self.sftp.port}; "
        return f"open -u {USER},{PASSWORD} http://127.0.0.1:{self.dav.port}; "


# ---- scenarios ------------------------------------------------------------------------
#
# A scenario gives: its apubid configuration (beyond [server], [store], [log]),
# apubid's run (a function of the apubid and the run's destination name),
# the references (label, function of the destination directory giving the
# command lines), the directory where run N's result lands for apubid and
# for the references, and the Expect of that result.

class Scenario:
    def __init__(self, key, label, expect, conf, apubid_run, refs, dest_top, ftp=None):
        self.key, self.label, self.expect = key, label, expect
        self.conf, self.apubid_run, self.refs = conf, apubid_run, refs
        self.dest_top = dest_top      # where results land (a local directory)
        self.ftp = ftp                # the FTP server, when one end is FTP
        self.http = None              # nginx, when one end is HTTP or WebDAV


SCENARIO_KEYS = ["pkg-ftp-local", "pkg-local-ftp", "pkg-local-sftp", "pkg-local-dav",
                 "pkg-local-local", "singles-http-local", "big-http-local", "big-ftp-local",
                 "big-local-ftp", "big-local-sftp", "big-local-dav"]


def scenarios(w):
    """The scenarios over World w, in table order."""
    P, S = w.pkg, []
    data = w.data
    port = w.ftp.port
    tconf = w.transfer_conf()
    sync = lambda d: ["sync", "-f", str(d)]    # noqa: E731

    def local_root(extra_source):
        return {"source": {"allow": [f"file://{data}/"] + extra_source},
                "destination": {"root": f"file://{w.local}/"}, "transfer": tconf}

    def remote_root(root):
        return {"source": {"allow": [f"file://{data}/"]},
                "destination": {"root": root}, "transfer": tconf}

    # The package, FTP source -> local root.
    S.append(Scenario(
        "pkg-ftp-local", f"package ({PKG_FILES + 3:,} files), FTP source -> local root", P,
        local_root([f"ftp://127.0.0.1:{port}/data/"]),
        lambda d, name: d.one_task(w.ftp_url("data/pkg/"), f"{name}/"),
        [("lftp mirror --parallel=4", lambda dst: [
            w.lftp(w.lftp_open("ftp") + f"mirror --parallel=4 /data/pkg {dst}"), sync(dst)]),
         ("rclone copy", lambda dst: [
             w.rclone("copy", "--multi-thread-streams", "0", "ftp:data/pkg", str(dst)),
            sync(dst)])],
        w.local, w.ftp))

    # The package, local source -> FTP, SFTP, WebDAV and local roots.
    dest_ftp, dest_sftp, dest_dav = w.srv / "dest-ftp", w.srv / "dest-sftp", w.srv / "dest-dav"
    for d in (dest_ftp, dest_sftp, dest_dav):
        d.mkdir()
    S.append(Scenario(
        "pkg-local-ftp", "package, local -> FTP root", P,
        remote_root(w.ftp_url("dest-ftp/")),
        lambda d, name: d.one_task(f"file://{data}/pkg/", f"{name}/"),
        [("lftp mirror -R --parallel=4", lambda dst: [
            w.lftp(w.lftp_open("ftp") + f"mirror -R --parallel=4 {data}/pkg "
                   f"/dest-ftp/{dst.name}")]),
         ("rclone copy", lambda dst: [
             w.rclone("copy", str(data / "pkg"), f"ftp:dest-ftp/{dst.name}")])],
        dest_ftp, w.ftp))
    S.append(Scenario(
        "pkg-local-sftp", "package, local -> SFTP root", P,
        remote_root(w.sftp_url("dest-sftp/")),
        lambda d, name: d.one_task(f"file://{data}/pkg/", f"{name}/"),
        [("lftp mirror -R --parallel=4", lambda dst: [
            w.lftp(w.lftp_open("sftp") + f"mirror -R --parallel=4 {data}/pkg {dst}")]),
         ("rclone copy (sftp)", lambda dst: [
             w.rclone("copy", str(data / "pkg"), f"sftp:{dst}")])],
        dest_sftp))

    def curl_put_config(dst):
        """A curl -K file putting every package file through one connection."""
        cfg = w.base / f"curl-{dst.name}.cfg"
        cfg.write_text("".join(
            f'upload-file = "{data}/pkg/{rel}"\n'
            f'url = "http://127.0.0.1:{w.dav.port}/dest-dav/{dst.name}/{rel}"\n'
            for rel in P.files))
        return cfg

    S.append(Scenario(
        "pkg-local-dav", "package, local -> WebDAV root", P,
        remote_root(w.dav_url("dest-dav/")),
        lambda d, name: d.one_task(f"file://{data}/pkg/", f"{name}/"),
        [("curl -K (one connection)", lambda dst: [
            ["curl", "-sS", "--fail", "-u", f"{USER}:{PASSWORD}", "-K",
             str(curl_put_config(dst))]]),
         ("rclone copy (webdav)", lambda dst: [
             w.rclone("copy", "--no-check-dest", str(data / "pkg"),
                      f"dav:dest-dav/{dst.name}")])],
        dest_dav))
    S.append(Scenario(
        "pkg-local-local", "package, local -> local root", P,
        local_root([]),
        lambda d, name: d.one_task(f"file://{data}/pkg/", f"{name}/"),
        [("cp -r + sync", lambda dst: [["cp", "-r", str(data / "pkg"), str(dst)], sync(dst)])],
        w.local))

    # Every file of the package as a task of its own, HTTP source -> local root.
    F = flat(P)
    rels = sorted(P.files)

    def curl_get_config(dst):
        cfg = w.base / f"curl-{dst.name}.cfg"
        cfg.write_text("".join(
            f'url = "http://127.0.0.1:{w.dav.port}/data/pkg/{rel}"\n'
            f'output = "{dst}/{Path(rel).name}"\n' for rel in rels))
        return cfg

    S.append(Scenario(
        "singles-http-local", f"{len(rels):,} single files, HTTP source -> local (a task each)",
        F, local_root([f"http://127.0.0.1:{w.dav.port}/data/"]),
        lambda d, name: d.many_tasks(
            [(w.dav_url(f"data/pkg/{rel}"), f"{name}/{Path(rel).name}") for rel in rels]),
        [("lftp mget -P 4", lambda dst: [
            w.lftp(w.lftp_open("http") + f"mget -P 4 -O {dst} "
                   + " ".join(f"/data/pkg/{rel}" for rel in rels)), sync(dst)]),
         ("curl -K (one connection)", lambda dst: [
             ["curl", "-sS", "--fail", "--create-dirs", "-u", f"{USER}:{PASSWORD}", "-K",
              str(curl_get_config(dst))], sync(dst)])],
        w.local))

    # The big file.
    B = w.big
    big = data / "big.bin"
    mib = f"{BIG_MIB:,} MiB" if BIG_MIB % 1024 else f"{BIG_MIB // 1024} GiB"
    S.append(Scenario(
        "big-http-local", f"{mib}, HTTP source -> local root", B,
        local_root([f"http://127.0.0.1:{w.dav.port}/data/"]),
        lambda d, name: d.one_task(w.dav_url("data/big.bin"), f"{name}/big.bin"),
        [("lftp get", lambda dst: [
            w.lftp(w.lftp_open("http") + f"get /data/big.bin -o {dst}/big.bin"), sync(dst)]),
         ("curl -o", lambda dst: [
             ["curl", "-sS", "--fail", "--create-dirs", "-u", f"{USER}:{PASSWORD}", "-o",
              f"{dst}/big.bin", f"http://127.0.0.1:{w.dav.port}/data/big.bin"], sync(dst)])],
        w.local))
    S.append(Scenario(
        "big-ftp-local", f"{mib}, FTP source -> local root", B,
        local_root([f"ftp://127.0.0.1:{port}/data/"]),
        lambda d, name: d.one_task(w.ftp_url("data/big.bin"), f"{name}/big.bin"),
        [("lftp get", lambda dst: [
            w.lftp(w.lftp_open("ftp") + f"get /data/big.bin -o {dst}/big.bin"), sync(dst)]),
         ("rclone copy", lambda dst: [
             w.rclone("copy", "--multi-thread-streams", "0", "ftp:data/big.bin", str(dst)),
             sync(dst)])],
        w.local, w.ftp))
    S.append(Scenario(
        "big-local-ftp", f"{mib}, local -> FTP root", B,
        remote_root(w.ftp_url("dest-ftp/")),
        lambda d, name: d.one_task(f"file://{big}", f"{name}/big.bin"),
        [("lftp put", lambda dst: [
            w.lftp(w.lftp_open("ftp") + f"put {big} -o /dest-ftp/{dst.name}/big.bin")]),
         ("rclone copy", lambda dst: [
             w.rclone("copy", str(big), f"ftp:dest-ftp/{dst.name}")])],
        dest_ftp, w.ftp))
    S.append(Scenario(
        "big-local-sftp", f"{mib}, local -> SFTP root", B,
        remote_root(w.sftp_url("dest-sftp/")),
        lambda d, name: d.one_task(f"file://{big}", f"{name}/big.bin"),
        [("lftp put", lambda dst: [
            w.lftp(w.lftp_open("sftp") + f"put {big} -o {dst}/big.bin")]),
         ("rclone copy (sftp)", lambda dst: [
             w.rclone("copy", str(big), f"sftp:{dst}")])],
        dest_sftp))
    S.append(Scenario(
        "big-local-dav", f"{mib}, local -> WebDAV root", B,
        remote_root(w.dav_url("dest-dav/")),
        lambda d, name: d.one_task(f"file://{big}", f"{name}/big.bin"),
        [("curl -T", lambda dst: [
            ["curl", "-sS", "--fail", "-u", f"{USER}:{PASSWORD}", "-T", str(big),
             f"http://127.0.0.1:{w.dav.port}/dest-dav/{dst.name}/big.bin"]]),
         ("rclone copy (webdav)", lambda dst: [
             w.rclone("copy", "--no-check-dest", str(big), f"dav:dest-dav/{dst.name}")])],
        dest_dav))
    for sc in S:
        if "http" in sc.key or "dav" in sc.key:
            sc.http = w.dav
    return S


# ---- running a scenario -------------------------------------------------------------

def clear(path):
    """Removes a run's result, writes back what is dirty, and waits
    SETTLE seconds, so the next run meets a quiet disk and the same memory
    as every other run: a virtual machine whose balloon reports free pages
    to the host (virtio-balloon free page reporting, as on the machine the
    docs' numbers come from) gives the pages freed here back about two
    seconds later, and a run that starts sooner writes into pages the
    guest still holds, while one that starts later pays a host fault for
    each new page (a 1 GiB write costs 0.15 s of system time in the first
    case and 0.55-0.65 s in the second)."""
    shutil.rmtree(path, ignore_errors=True)
    os.sync()
    time.sleep(SETTLE)


class Row:
    def __init__(self, sc):
        self.sc = sc
        self.apubid = []            # (seconds, cpu, rss KiB) per run
        self.refs = {label: [] for label, _ in sc.refs}
        self.error = None           # why apubid's runs could not be made
        self.ref_errors = {}        # label: why that reference failed
        self.ftp = {}               # label: [ftp_view() per run]
        self.http = {}              # label: [{method: requests} per run]


def run_scenario(sc, base, binary):
    row = Row(sc)
    d = Apubid(base, sc.key, binary, sc.conf)
    try:
        for rep in range(REPEAT):
            who = [("apubid", None)] + list(sc.refs)
            k = rep % len(who)
            for label, ref in who[k:] + who[:k]:
                if label in row.ref_errors:
                    continue
                name = f"{sc.key}-{who.index((label, ref))}-{rep}"
                dst = sc.dest_top / name
                log(f"{sc.key} #{rep + 1}: {label}")
                ftp_from = sc.ftp.log_path.stat().st_size if sc.ftp else 0
                http_from = sc.http.access_log_path.stat().st_size if sc.http else 0
                try:
                    if ref is None:
                        m = sc.apubid_run(d, name)
                        sc.expect.verify(dst, f"apubid ({sc.key})")
                    else:
                        if not label.startswith("cp "):
                            # cp -r makes it; some others want it (rclone on
                            # pyftpdlib, lftp get): made before the clock starts.
                            dst.mkdir(parents=True)
                        try:
                            m = run_measured(ref(dst), RUN_TIMEOUT)
                            sc.expect.verify(dst, f"{label} ({sc.key})")
                        except BenchError as e:
                            # The row goes on with the other references.
                            row.ref_errors[label] = str(e)
                            log(f"{sc.key}: {e}")
                            continue
                finally:
                    clear(dst)
                (row.apubid if ref is None else row.refs[label]).append(m)
                if sc.ftp:
                    with open(sc.ftp.log_path, "rb") as f:
                        f.seek(ftp_from)
                        row.ftp.setdefault(label, []).append(
                            ftp_view(f.read().decode(errors="replace")))
                if sc.http:
                    with open(sc.http.access_log_path, "rb") as f:
                        f.seek(http_from)
                        methods = {}
                        for hit in re.finditer(rb'"([A-Z]+) /', f.read()):
                            verb = hit.group(1).decode()
                            methods[verb] = methods.get(verb, 0) + 1
                        row.http.setdefault(label, []).append(methods)
        d.perf_report(OUT.with_name(f"transfer-perf-{sc.key}.txt"))
        d.stop()
        if STRACE:
            shutil.copyfile(d.strace_out, OUT.with_name(f"transfer-strace-{sc.key}.txt"))
    except BenchError as e:
        row.error = str(e)
        log(f"{sc.key}: {e}")
    finally:
        d.stop()
    return row


# ---- the table ------------------------------------------------------------------------

def med(runs):
    return tuple(statistics.median(x[i] for x in runs) for i in range(3))


def cell(m, peak=None):
    s, cpu, rss = m
    return f"{s:.2f} s, CPU {cpu:.2f} s, {(peak or rss) / 1024:.0f} MiB"


def machine():
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)

    def version(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=10).stdout.splitlines()[0].strip()
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"
    return (f"{platform.node()}: {os.cpu_count()} x {cpu}, {mem:.0f} GiB, Linux "
            f"{platform.release()}; {version(['rclone', 'version'])}; "
            f"lftp {version(['lftp', '--version']).split('Version')[-1].split('|')[0].strip()}; "
            f"{' '.join(version(['curl', '--version']).split()[:2])}")


def table(rows, started, elapsed):
    out = [f"# apubid transfer benchmark, {started:%Y-%m-%d %H:%M} UTC",
           "",
           f"Machine: {machine()}.",
           f"Data: a package of {PKG_FILES + 3:,} files ({PKG_FILES:,} x 64 KiB + 3 .m3u8), "
           f"one file of {BIG_MIB:,} MiB; loopback pyftpdlib, OpenSSH sshd, nginx (WebDAV).",
           f"Each cell: the median of {REPEAT} run(s): seconds, CPU seconds (user + system), "
           "peak RSS. ratio = fastest reference's seconds / apubid's seconds."
           + (" QUICK run: the numbers mean nothing." if QUICK else ""),
           "",
           "| scenario | apubid | references | ratio | target (>= 1.0, <= 64 MiB) |",
           "|---|---|---|---|---|"]
    for r in rows:
        if r.error or not r.apubid:
            err = (r.error or "not run").splitlines()[0][:300].replace("|", "\\|")
            out.append(f"| {r.sc.label} | **failed: {err}** | | | |")
            continue
        a = med(r.apubid)
        peak = max(x[2] for x in r.apubid)
        refs = {label: med(runs) for label, runs in r.refs.items()
                if runs and label not in r.ref_errors}
        best = min(refs.items(), key=lambda kv: kv[1][0]) if refs else None
        ratio = best[1][0] / a[0] if best else 0
        cells = "<br>".join([f"{'**' if label == best[0] else ''}{label}"
                             f"{'**' if label == best[0] else ''}: {cell(m)}"
                             for label, m in refs.items()] +
                            [f"{label}: **failed: " + e.splitlines()[0][:200].replace("|", "\\|")
                             + "**" for label, e in r.ref_errors.items()])
        ok = ratio >= 1.0 and peak <= RSS_TARGET_MIB * 1024
        out.append(f"| {r.sc.label} | {cell(a, peak)} | {cells} | "
                   f"{f'{ratio:.2f}' if best else ''} | {'yes' if ok else '**no**'} |")
    views = [r for r in rows if r.ftp]
    if views:
        out += ["", "The FTP server's view, per run (median): logins (USER commands), "
                "commands, and pauses of 0.5 s or more by the client right after the "
                "server's 229 answer to EPSV (with their seconds).", "",
                "| scenario | " + " | ".join(["who", "logins", "commands", "pauses after 229"])
                + " |", "|---|---|---|---|---|"]
        for r in views:
            for label, runs in r.ftp.items():
                lg, cm, pa, ps = (statistics.median(x[i] for x in runs) for i in range(4))
                out.append(f"| {r.sc.label} | {label} | {lg:,.0f} | {cm:,.0f} | "
                           f"{pa:,.0f} ({ps:.1f} s) |")
    views = [r for r in rows if r.http]
    if views:
        out += ["", "nginx's view, per run (median): requests by method.", "",
                "| scenario | who | requests |", "|---|---|---|"]
        for r in views:
            for label, runs in r.http.items():
                methods = sorted({k for x in runs for k in x})
                out.append(f"| {r.sc.label} | {label} | " + ", ".join(
                    f"{k} {statistics.median(x.get(k, 0) for x in runs):,.0f}"
                    for k in methods) + " |")
    out += ["", f"Run took {elapsed / 60:.1f} min; `BENCH_ONLY=transfer make bench`."]
    return "\n".join(out) + "\n"


def main():
    problem = check_tools()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if not os.access(APUBID, os.X_OK):
        print(f"transfer bench: {APUBID} is not an executable (set APUBID)", file=sys.stderr)
        return 2
    for flag, tool, pkg in ((STRACE, "strace", "strace"), (PERF, "perf", "linux-perf")):
        if flag and shutil.which(tool) is None:
            print(f"transfer bench: {tool} is missing: apt-get install {pkg}", file=sys.stderr)
            return 2
    only = set(sys.argv[1:])
    unknown = only - set(SCENARIO_KEYS)
    if unknown:
        print(f"transfer bench: no scenario {', '.join(sorted(unknown))}; scenarios: "
              + ", ".join(SCENARIO_KEYS), file=sys.stderr)
        return 2
    OUT.parent.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="apubid-xbench-", dir=os.environ.get("BENCH_TMP")))
    os.chmod(base, 0o755)     # sshd checks the path of the authorized keys

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    w = None
    try:
        binary = base / "apubid"       # a copy: a rebuild during the run changes nothing
        shutil.copy2(APUBID, binary)
        log(f"working in {base}" + (" (QUICK)" if QUICK else ""))
        w = World(base)
        all_sc = scenarios(w)
        if [sc.key for sc in all_sc] != SCENARIO_KEYS:
            raise BenchError("SCENARIO_KEYS and scenarios() disagree")
        rows = [run_scenario(sc, base, str(binary)) for sc in all_sc
                if not only or sc.key in only]
        text = table(rows, started, time.monotonic() - t0)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(text)
        print(text)
        log(f"table written to {OUT}")
        return 1 if any(r.error or r.ref_errors for r in rows) else 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except (BenchError, servers.ServerError, OSError, subprocess.SubprocessError) as e:
        log(f"could not set up: {e}")
        return 2
    finally:
        if w is not None:
            w.stop()
        if os.environ.get("BENCH_KEEP") not in (None, "", "0"):
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
