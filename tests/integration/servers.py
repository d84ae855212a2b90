"""Real file-transfer servers on 127.0.0.1 for apubid's integration tests.

Each class starts one real server in a subprocess, on a free port of
127.0.0.1, serving a local directory `root` that the test may populate and
inspect directly:

    with FtpServer(tmp_path) as s:                # plain FTP (pyftpdlib)
    with FtpServer(tmp_path, tls=True) as s:      # explicit FTPS (AUTH TLS)
    with SftpServer(tmp_path) as s:               # OpenSSH sshd, key auth
    with WebDavServer(tmp_path) as s:             # nginx: GET/PUT/DELETE/
    with WebDavServer(tmp_path, tls=True) as s:   #   MKCOL/COPY/MOVE, Basic

Every server exposes host ("127.0.0.1"), port, root (pathlib.Path), user,
password, url(path="") (a URL with credentials), path(rel) (root / rel),
log_path / log() (the server's own output, appended across restarts),
start(), stop(), kill(), restart() and running.  stop() and start() keep the
SAME port (and, for FTP, the same passive ports), so a test can have a
server "down at first and up later", or cut a transfer in the middle: use a
throttled server (FtpServer(throttle_bytes_per_sec=...),
WebDavServer(limit_rate=...)), stop() or kill() it mid-transfer, then
start() it again.  Every start waits (10 s at most) until the port accepts
TCP connections and raises ServerError with the server's log otherwise.
Every stop ends the whole process tree (sshd's per-connection children
included) and waits until it is gone, so the port is free again at once.

Nothing here contacts any address other than 127.0.0.1.

Debian packages needed (installed by the Makefile's deps target, not here):

    python3-pyftpdlib python3-openssl   FTP, FTPS (pyOpenSSL for TLS)
    openssh-server openssh-client       sshd, ssh-keygen (sftp for debugging)
    nginx                               nginx 1.22 with the built-in
                                        ngx_http_dav_module (Debian 12's
                                        nginx-light is only nginx plus the
                                        echo module)
    libnginx-mod-http-dav-ext           PROPFIND, with which apubid lists a
                                        WebDAV stage before its commit
    openssl                             self-signed certificates, htpasswd
    curl                                used by the self-test

The FTP server is run by /usr/bin/python3 (Debian's, where pyftpdlib is
installed), whatever interpreter runs the tests; this file is its script.
"""
import atexit
import base64
import hashlib
import os
import pwd
import grp
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from urllib.parse import quote

HOST = "127.0.0.1"
START_TIMEOUT = 10.0     # seconds until a started server must accept TCP
STOP_TIMEOUT = 5.0       # seconds a server may take to end after SIGTERM
TOOL_TIMEOUT = 30.0      # seconds for openssl / ssh-keygen

FTP_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SSHD = "/usr/sbin/sshd"   # sshd refuses to run unless started by absolute path
NGINX = "/usr/sbin/nginx"
DAV_EXT_MODULE = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"


class ServerError(RuntimeError):
    """A server did not start (the message ends with its log)."""


# ---- ports ---------------------------------------------------------------

_given_ports = set()
_ports_lock = threading.Lock()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_ports(count=1):
    """`count` consecutive TCP ports free on 127.0.0.1, never handed out
    before by this process.

    They are taken BELOW the kernel's ephemeral range (usually 20000-32767),
    so that no outgoing connection is given one of them by the kernel while
    a server is stopped: a stopped server can start again on its port."""
    lo, _ = _ephemeral_range()
    first, last = 20000, lo - 1
    if last - first < 1000:       # odd ephemeral range: use the upper ports
        first, last = 10000, 65535 - count
    with _ports_lock:
        for _ in range(500):
            base = random.randint(first, last - count + 1)
            ports = list(range(base, base + count))
            if any(p in _given_ports for p in ports):
                continue
            if all(_bindable(p) for p in ports):
                _given_ports.update(ports)
                return ports
    raise ServerError(f"no {count} free consecutive ports in {first}-{last}")


def free_port():
    """One TCP port free on 127.0.0.1 (see free_ports)."""
    return free_ports(1)[0]


def port_open(port, host=HOST, timeout=0.5):
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port, deadline=START_TIMEOUT, host=HOST, proc=None, log_path=None):
    """Waits until host:port accepts a TCP connection, for `deadline`
    seconds at most; raises ServerError (with the end of `log_path`) if it
    does not, or as soon as `proc` (a Popen) has exited."""
    end = time.monotonic() + deadline
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"server exited with status {proc.returncode} "
                              f"before {host}:{port} accepted connections"
                              + _log_tail(log_path))
        if port_open(port, host, timeout=0.5):
            return
        if time.monotonic() >= end:
            raise ServerError(f"{host}:{port} did not accept connections "
                              f"within {deadline} s" + _log_tail(log_path))
        time.sleep(0.02)


def _log_tail(log_path, limit=4000):
    if not log_path:
        return ""
    try:
        text = Path(log_path).read_text(errors="replace")
    except OSError:
        return ""
    return f"\n--- {log_path} ---\n{text[-limit:]}"


# ---- processes -------------------------------------------------------------
#
# Servers are spawned from one long-lived daemon thread with
# PR_SET_PDEATHSIG: if the test process dies, even by SIGKILL, the kernel
# kills the servers (the signal fires when the spawning THREAD ends, which is
# why it is a thread that lives as long as the process).  An atexit hook
# stops whatever is still running on a normal exit.

_spawn_queue = queue.Queue()
_spawner = None
_live = weakref.WeakSet()


def _die_with_parent():
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG
    except Exception:
        pass


def _spawn_loop():
    while True:
        fn, box, done = _spawn_queue.get()
        try:
            box.append((True, fn()))
        except BaseException as e:   # handed back to the caller
            box.append((False, e))
        done.set()


def _popen(*args, **kwargs):
    global _spawner
    if _spawner is None or not _spawner.is_alive():
        _spawner = threading.Thread(target=_spawn_loop, name="servers-spawner",
                                    daemon=True)
        _spawner.start()
    box, done = [], threading.Event()
    kwargs.setdefault("preexec_fn", _die_with_parent)
    _spawn_queue.put((lambda: subprocess.Popen(*args, **kwargs), box, done))
    done.wait()
    ok, value = box[0]
    if not ok:
        raise value
    return value


def _descendants(pid):
    """Pids of every process below `pid` (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _signal(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def run_tool(cmd, input=None, cwd=None):
    """Runs a helper command (openssl, ssh-keygen), bounded in time; returns
    its stdout, raises ServerError with its output if it fails."""
    try:
        r = subprocess.run(cmd, input=input, cwd=cwd, capture_output=True,
                           timeout=TOOL_TIMEOUT, stdin=None if input is not None
                           else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ServerError(f"{cmd[0]} took more than {TOOL_TIMEOUT} s")
    if r.returncode != 0:
        raise ServerError(f"{' '.join(map(str, cmd))} failed ({r.returncode}): "
                          f"{r.stderr.decode(errors='replace')}")
    return r.stdout


def make_cert(directory, name="server"):
    """A self-signed certificate for 127.0.0.1 / localhost (EC P-256, valid
    7 days) made with the openssl command: returns (certfile, keyfile).  The
    certificate is its own CA: give certfile to curl as --cacert."""
    directory = Path(directory)
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    if not (cert.exists() and key.exists()):
        run_tool(["openssl", "req", "-x509", "-newkey", "ec",
                  "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", str(key), "-out", str(cert), "-days", "7",
                  "-subj", "/CN=127.0.0.1",
                  "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
    return cert, key


def _current_user():
    return pwd.getpwuid(os.geteuid()).pw_name


def _q(s):
    return quote(str(s), safe="")


def _qpath(path):
    return quote(str(path), safe="/~")


# ---- the common part ---------------------------------------------------------

class _Server:
    """Runs one server process; subclasses build the configuration in
    __init__ and give its command line in _command()."""
    kind = "server"

    def __init__(self, tmpdir, root=None):
        base = Path(str(tmpdir))
        base.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.kind}-", dir=base)).resolve()
        self.root = Path(root).resolve() if root else self.dir / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = free_port()
        self.log_path = self.dir / f"{self.kind}.log"
        self.proc = None
        self.starts = 0

    # to be provided
    def _command(self):
        raise NotImplementedError

    def _env(self):
        return None

    # public
    def path(self, rel=""):
        """The local file behind `rel` (a path relative to the served root)."""
        return self.root / str(rel).lstrip("/")

    def log(self):
        """Everything the server wrote so far (all runs)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.running else None

    def start(self, timeout=START_TIMEOUT):
        """Starts the server (on the same port as before, if restarted) and
        waits until it accepts connections; no-op if it already runs."""
        if self.running:
            return self
        if port_open(self.port):
            raise ServerError(f"{self.kind}: port {self.port} is still taken "
                              "by another process")
        with open(self.log_path, "ab") as log:
            log.write(f"=== {time.strftime('%H:%M:%S')} start #{self.starts + 1}: "
                      f"{' '.join(map(str, self._command()))}\n".encode())
            log.flush()
            self.proc = _popen([str(c) for c in self._command()], cwd=self.dir,
                               stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT, env=self._env(),
                               start_new_session=True)
        self.starts += 1
        _live.add(self)
        try:
            wait_port(self.port, timeout, self.host, self.proc, self.log_path)
        except BaseException:
            self.stop(kill=True)
            raise
        return self

    def stop(self, kill=False, timeout=STOP_TIMEOUT):
        """Stops the server and every process it started; open connections
        are cut.  kill=True sends SIGKILL at once (an abrupt crash), else
        SIGTERM then SIGKILL after `timeout` seconds.  Returns once all the
        processes are gone, so the port can be bound again."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        pids = [proc.pid] + _descendants(proc.pid) if proc.poll() is None else \
            _descendants(proc.pid)
        _signal(pids, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal([proc.pid], signal.SIGKILL)
            proc.wait(timeout)
        # children (sshd sessions) were reparented: make sure they are gone
        end = time.monotonic() + timeout
        rest = [p for p in pids[1:] if _alive(p)]
        while rest and time.monotonic() < end:
            time.sleep(0.02)
            rest = [p for p in rest if _alive(p)]
        _signal(rest, signal.SIGKILL)
        with open(self.log_path, "ab") as log:
            log.write(f"=== {time.strftime('%H:%M:%S')} stopped "
                      f"({'SIGKILL' if kill else 'SIGTERM'}), "
                      f"status {proc.returncode}\n".encode())

    def kill(self):
        """stop(kill=True): SIGKILL, the way a crash or a cut looks."""
        self.stop(kill=True)

    def restart(self, down_for=0.0, kill=False):
        """stop(), wait `down_for` seconds, start() on the same port."""
        self.stop(kill=kill)
        if down_for:
            time.sleep(down_for)
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __del__(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.stop(kill=True)
        except Exception:
            pass

    def __repr__(self):
        return (f"<{type(self).__name__} {self.host}:{self.port} root={self.root}"
                f" {'running' if self.running else 'stopped'}>")


@atexit.register
def _stop_all():
    for server in list(_live):
        try:
            server.stop(kill=True)
        except Exception:
            pass


# ---- FTP / FTPS (pyftpdlib) ------------------------------------------------------

class FtpServer(_Server):
    """pyftpdlib in a subprocess (so that it can be killed mid-transfer).

    FtpServer(tmpdir, tls=False, user="apubi", password="s3cret", root=None,
              throttle_bytes_per_sec=0, passive_port_count=8,
              tls_required=True, perm="elradfmwMT", commands_off=())

    tls=True: explicit FTPS (AUTH TLS on the same port; URLs stay ftp://,
    use curl --ssl-reqd / CURLOPT_USE_SSL=CURLUSESSL_ALL) with a self-signed
    certificate: cafile (= certfile), keyfile.  With tls_required (default)
    the server refuses USER before AUTH TLS and data without PROT P.
    throttle_bytes_per_sec limits each data connection, both ways
    (ThrottledDTPHandler), so that a transfer lasts long enough to be cut.
    passive_ports: the consecutive ports used for PASV/EPSV.
    The user has every permission (elradfmwMT): REST (resumed RETR and STOR),
    APPE, SIZE, MDTM, MFMT, RNFR/RNTO, MKD, RMD, DELE all work.  A wrong
    password is answered "530" after 0.2 s (pyftpdlib's default is 3 s).
    commands_off: commands the server does not know (answered "500"), as
    on a server without them, e.g. ("MLST", "MLSD").
    """
    kind = "ftp"

    def __init__(self, tmpdir, tls=False, user="apubi", password="s3cret",
                 root=None, throttle_bytes_per_sec=0, passive_port_count=8,
                 tls_required=True, perm="elradfmwMT", commands_off=()):
        super().__init__(tmpdir, root)
        self.commands_off = tuple(c.upper() for c in commands_off)
        self.tls = tls
        self.user = user
        self.password = password
        self.perm = perm
        self.throttle_bytes_per_sec = int(throttle_bytes_per_sec or 0)
        self.tls_required = tls_required
        self.passive_ports = free_ports(passive_port_count)
        self.scheme = "ftp"
        self.cafile = self.certfile = self.keyfile = None
        if tls:
            self.certfile, self.keyfile = make_cert(self.dir)
            self.cafile = self.certfile

    def _command(self):
        return [FTP_PYTHON, "-W", "ignore", os.path.abspath(__file__), "ftpd",
                self.host, self.port, self.root, self.user, self.password,
                self.perm, f"{self.passive_ports[0]}-{self.passive_ports[-1]}",
                self.throttle_bytes_per_sec, self.certfile or "",
                self.keyfile or "", int(bool(self.tls_required)),
                ",".join(self.commands_off)]

    def url(self, path="", credentials=True):
        """ftp://user:password@127.0.0.1:PORT/path (path relative to root)."""
        auth = f"{_q(self.user)}:{_q(self.password)}@" if credentials else ""
        return f"ftp://{auth}{self.host}:{self.port}/{_qpath(str(path).lstrip('/'))}"


def _ftpd_main(argv):
    """The FTP server process: servers.py ftpd HOST PORT ROOT USER PASSWORD
    PERM PASV_FIRST-PASV_LAST THROTTLE CERTFILE KEYFILE TLS_REQUIRED
    COMMANDS_OFF (comma-separated, may be empty)"""
    import logging
    (host, port, root, user, password, perm, pasv, throttle, certfile,
     keyfile, tls_required, commands_off) = argv
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib import handlers
    from pyftpdlib.servers import FTPServer

    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(asctime)s %(message)s")
    throttle = int(throttle)
    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, root, perm=perm)

    class CurlTLS_DTPHandler(handlers.TLS_DTPHandler):
        """pyftpdlib 1.5.7 closes a data connection that turns readable
        before the transfer command arrives; curl (7.88) starts the TLS
        handshake right after connecting, so every FTPS transfer failed with
        "curl: (13) Bad PASV/EPSV response: 200" (giampaolo/pyftpdlib#604,
        fixed upstream in 1.5.8 by #612): stay readable while accepting."""
        def readable(self):
            if self._ssl_accepting:
                return True
            return super().readable()

    class SmoothThrottledDTPHandler(handlers.ThrottledDTPHandler):
        """ThrottledDTPHandler lets 2 x limit bytes through at once, then
        sleeps 2 s: a small file is sent in one burst.  This one paces every
        chunk (at most 1/20 s of data each) to the limit."""
        def __init__(self, sock, cmd_channel):
            super().__init__(sock, cmd_channel)
            chunk = max(1024, throttle // 20)
            self.ac_in_buffer_size = min(self.ac_in_buffer_size, chunk)
            self.ac_out_buffer_size = min(self.ac_out_buffer_size, chunk)
            self._due = 0.0

        def _throttle_bandwidth(self, len_chunk, max_speed):
            now = time.monotonic()
            self._due = max(self._due, now) + len_chunk / max_speed
            delay = self._due - now
            if delay > 0.005 and self.connected:
                def unsleep():
                    self.add_channel(events=self.ioloop.READ if self.receive
                                     else self.ioloop.WRITE)
                self.del_channel()
                self._cancel_throttler()
                self._throttler = self.ioloop.call_later(
                    delay, unsleep, _errback=self.handle_error)

    if certfile:
        base, dtp = handlers.TLS_FTPHandler, CurlTLS_DTPHandler
        if throttle:
            # TLS first in the MRO, so that the throttle counts what the
            # TLS layer really sends and receives.
            dtp = type("ThrottledTLS_DTPHandler",
                       (CurlTLS_DTPHandler, SmoothThrottledDTPHandler), {})
    else:
        base = handlers.FTPHandler
        dtp = SmoothThrottledDTPHandler if throttle else handlers.DTPHandler
    if throttle:
        dtp = type("LimitedDTP", (dtp,), {"read_limit": throttle,
                                           "write_limit": throttle})

    class Handler(base):
        proto_cmds = {k: v for k, v in base.proto_cmds.items()
                      if k not in commands_off.split(",")}

    Handler.authorizer = authorizer
    Handler.dtp_handler = dtp
    lo, hi = (int(x) for x in pasv.split("-"))
    Handler.passive_ports = list(range(lo, hi + 1))
    Handler.banner = "apubid test FTP server ready."
    Handler.timeout = 120
    Handler.auth_failed_timeout = 0.2   # default 3 s before "530"
    if certfile:
        Handler.certfile = certfile
        Handler.keyfile = keyfile
        Handler.tls_control_required = bool(int(tls_required))
        Handler.tls_data_required = bool(int(tls_required))

    server = FTPServer((host, int(port)), Handler)   # sets SO_REUSEADDR
    server.max_cons = 64
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    server.serve_forever()   # timeout None: wake up for the throttle timers


# ---- SFTP (OpenSSH sshd) -------------------------------------------------------------

class SftpServer(_Server):
    """OpenSSH's sshd with `Subsystem sftp internal-sftp`, public key
    authentication only (password authentication would need the real
    account's system password).

    SftpServer(tmpdir, user=<current user>, root=None, key_type="ed25519")

    key_path / pubkey_path: the client key pair (no passphrase) whose public
    key is the only authorized key; key_type "ed25519" (OpenSSH format) or
    "rsa" (2048 bits, PEM format, for old libssh2).
    known_hosts: a file with "[127.0.0.1]:PORT ssh-ed25519 AAAA..."
    hostkey_path / hostkey_pub_path, hostkey_type ("ssh-ed25519"),
    hostkey_sha256 (base64, no "SHA256:" and no padding, as ssh-keygen -l
    prints it; curl --hostpubsha256 / CURLOPT_SSH_HOST_PUBLIC_KEY_SHA256),
    hostkey_md5 (32 hex digits; curl --hostpubmd5).
    password is None.  url(path) is sftp://USER@127.0.0.1:PORT/<root>/<path>
    (an absolute path on the server: root is absolute).
    """
    kind = "sftp"

    def __init__(self, tmpdir, user=None, root=None, key_type="ed25519"):
        super().__init__(tmpdir, root)
        self.user = user or _current_user()
        self.password = None
        self.scheme = "sftp"
        if not os.path.exists(SSHD):
            raise ServerError(f"{SSHD} missing: apt-get install openssh-server")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privsep dir
        d = self.dir
        self.hostkey_path = d / "ssh_host_ed25519_key"
        self.hostkey_pub_path = d / "ssh_host_ed25519_key.pub"
        run_tool(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                  "apubid-test-host", "-f", str(self.hostkey_path)])
        self.key_type = key_type
        self.key_path = d / f"id_{key_type}"
        self.pubkey_path = d / f"id_{key_type}.pub"
        if key_type == "rsa":
            run_tool(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM",
                      "-N", "", "-C", "apubid-test-client", "-f", str(self.key_path)])
        else:
            run_tool(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C",
                      "apubid-test-client", "-f", str(self.key_path)])
        self.authorized_keys = d / "authorized_keys"
        self.authorized_keys.write_text(self.pubkey_path.read_text())
        ktype, blob = self.hostkey_pub_path.read_text().split()[:2]
        raw = base64.b64decode(blob)
        self.hostkey_type = ktype
        self.hostkey_sha256 = base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
        self.hostkey_md5 = hashlib.md5(raw).hexdigest()
        self.known_hosts = d / "known_hosts"
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {ktype} {blob}\n")
        self.config_path = d / "sshd_config"
        self.config_path.write_text(f"""\
# generated by tests/integration/servers.py
Port {self.port}
ListenAddress {self.host}
AddressFamily inet
HostKey {self.hostkey_path}
PidFile {d / 'sshd.pid'}
AuthorizedKeysFile {self.authorized_keys}
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {self.user}
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTunnel no
LoginGraceTime 30
MaxStartups 64:30:128
MaxSessions 64
LogLevel VERBOSE
{self._extra_config()}Subsystem sftp internal-sftp
""")

    def _extra_config(self):
        # libssh2 1.10 signs with RSA keys as "ssh-rsa" (SHA-1), which
        # OpenSSH >= 8.8 refuses by default.
        if self.key_type == "rsa":
            return "PubkeyAcceptedAlgorithms +ssh-rsa\n"
        return ""

    def _command(self):
        return [SSHD, "-D", "-e", "-f", self.config_path]

    def url(self, path="", credentials=True):
        """sftp://USER@127.0.0.1:PORT/<absolute root>/<path>"""
        auth = f"{_q(self.user)}@" if credentials else ""
        full = str(self.root).rstrip("/") + "/" + str(path).lstrip("/")
        return f"sftp://{auth}{self.host}:{self.port}{_qpath(full)}"

    def remote_path(self, rel=""):
        """The absolute path on the server of `rel` (for curl -Q commands)."""
        return str(self.root).rstrip("/") + "/" + str(rel).lstrip("/")


# ---- WebDAV / HTTP(S) (nginx) ---------------------------------------------------------

class WebDavServer(_Server):
    """nginx with its built-in WebDAV module, serving root over HTTP(S).

    WebDavServer(tmpdir, tls=False, user="apubi", password="s3cret",
                 root=None, limit_rate=None, auth=True, locations="")

    Methods: GET/HEAD (with Range; autoindex for directories), PUT (with
    create_full_put_path), DELETE, MKCOL, COPY, MOVE, and PROPFIND from the
    dav-ext module.
    Basic authentication (htpasswd from `openssl passwd -apr1`) unless
    auth=False.  tls=True: HTTPS with a self-signed certificate (cafile).
    locations: nginx location blocks placed before the catch-all one, e.g.
    'location = /vod/a/seg3.ts { return 503; }' for a failing file.
    limit_rate: nginx's limit_rate for responses (downloads) only, e.g.
    131072 (bytes/s) or "128k".  nginx sends the first second's worth at
    once (limit_rate bytes per connection), then paces: to cut a download
    in the middle, serve a file several times limit_rate long.  nginx runs as ONE process (master_process
    off) and as the current user, so that written files belong to the test
    and stop() frees the port at once.
    """
    kind = "dav"

    def __init__(self, tmpdir, tls=False, user="apubi", password="s3cret",
                 root=None, limit_rate=None, auth=True, locations=""):
        super().__init__(tmpdir, root)
        if not os.path.exists(NGINX):
            raise ServerError(f"{NGINX} missing: apt-get install nginx")
        if not os.path.exists(DAV_EXT_MODULE):
            raise ServerError(f"{DAV_EXT_MODULE} missing: "
                              "apt-get install libnginx-mod-http-dav-ext")
        self.tls = tls
        self.user = user
        self.password = password
        self.auth = auth
        self.limit_rate = limit_rate
        self.scheme = "https" if tls else "http"
        self.cafile = self.certfile = self.keyfile = None
        d = self.dir
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.htpasswd = d / "htpasswd"
        if auth:
            hashed = run_tool(["openssl", "passwd", "-apr1", "-stdin"],
                              input=password.encode() + b"\n").decode().strip()
            self.htpasswd.write_text(f"{user}:{hashed}\n")
        if tls:
            self.certfile, self.keyfile = make_cert(d)
            self.cafile = self.certfile
        runas = ""
        if os.geteuid() == 0:
            runas = (f"user {pwd.getpwuid(os.geteuid()).pw_name} "
                     f"{grp.getgrgid(os.getegid()).gr_name};")
        listen = f"listen {self.host}:{self.port}{' ssl' if tls else ''};"
        tls_conf = (f"ssl_certificate {self.certfile};\n"
                    f"        ssl_certificate_key {self.keyfile};\n"
                    f"        ssl_protocols TLSv1.2 TLSv1.3;") if tls else ""
        auth_conf = (f'auth_basic "apubid test";\n'
                     f"            auth_basic_user_file {self.htpasswd};") if auth else ""
        rate = f"limit_rate {limit_rate};" if limit_rate else ""
        self.config_path = d / "nginx.conf"
        self.config_path.write_text(f"""\
# generated by tests/integration/servers.py
load_module {DAV_EXT_MODULE};
daemon off;
master_process off;
{runas}
worker_processes 1;
pid {d / 'nginx.pid'};
error_log {self.log_path} info;
events {{ worker_connections 256; }}
http {{
    access_log {d / 'access.log'};
    client_body_temp_path {d / 'tmp/body'};
    proxy_temp_path {d / 'tmp/proxy'};
    fastcgi_temp_path {d / 'tmp/fastcgi'};
    uwsgi_temp_path {d / 'tmp/uwsgi'};
    scgi_temp_path {d / 'tmp/scgi'};
    types {{ }}
    default_type application/octet-stream;
    sendfile on;
    server_tokens off;
    server {{
        {listen}
        server_name 127.0.0.1 localhost;
        {tls_conf}
        root {self.root};
        {locations}
        location / {{
            dav_methods PUT DELETE MKCOL COPY MOVE;
            dav_ext_methods PROPFIND OPTIONS;
            create_full_put_path on;
            dav_access user:rw group:rw all:r;
            client_max_body_size 0;
            client_body_timeout 60s;
            autoindex on;
            {rate}
            {auth_conf}
        }}
    }}
}}
""")
        self.access_log_path = d / "access.log"

    def _command(self):
        # -e: the error log before the configuration is read (nginx >= 1.19.5)
        return [NGINX, "-p", self.dir, "-e", self.log_path, "-c", self.config_path]

    def url(self, path="", credentials=True):
        """http(s)://user:password@127.0.0.1:PORT/path.  For the Destination
        header of COPY/MOVE use credentials=False (nginx compares the host)."""
        auth = (f"{_q(self.user)}:{_q(self.password)}@"
                if credentials and self.auth else "")
        return (f"{self.scheme}://{auth}{self.host}:{self.port}/"
                f"{_qpath(str(path).lstrip('/'))}")

    def access_log(self):
        try:
            return self.access_log_path.read_text(errors="replace")
        except OSError:
            return ""


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "ftpd":
        _ftpd_main(sys.argv[2:])
    else:
        sys.exit("usage: servers.py ftpd HOST PORT ROOT USER PASSWORD PERM "
                 "PASV_FIRST-PASV_LAST THROTTLE CERTFILE KEYFILE TLS_REQUIRED")
