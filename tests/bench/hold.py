#!/usr/bin/python3
"""hold.py - holds a crowd of connections to apubid for the benchmark.

    hold.py PORT IDLE SLOW FIRST_SOURCE SOURCES

Opens IDLE keep-alive connections, each of which makes one request
(GET /healthz), reads its answer and then stays silent, and SLOW
connections that send the headers of a POST announcing a 100,000-byte body
and then one byte of that body a second. Connections are spread over
SOURCES source addresses 127.0.0.FIRST_SOURCE, 127.0.0.FIRST_SOURCE+1, ...,
so that each address stays within apubid's max_connections_per_address.

When every connection is open (and every idle one answered) it prints
"READY idle=N slow=M" and keeps them so, reconnecting any that apubid
closes (a slow sender is cut at request_timeout; it then comes back, as a
real one would). On SIGTERM or SIGINT it prints one line,
"DONE idle_cut=A slow_cut=B reconnect_errors=C", and exits.

One thread, one selector; the open-files limit is raised to fit.
"""
import resource
import selectors
import signal
import socket
import sys
import time

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
SLOW_HEAD = (b"POST /apubi HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
             b"Content-Length: 100000\r\n\r\n")
CONNECT_TIMEOUT = 10


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    want_hard = hard if hard == resource.RLIM_INFINITY or hard >= need else need
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, want_hard))
    except (ValueError, OSError) as e:
        sys.exit(f"hold: cannot raise the open-files limit to {need} (now {soft}/{hard}): {e}")


class Crowd:
    def __init__(self, port, first, sources):
        self.port = port
        self.sources = [f"127.0.0.{first + i}" for i in range(sources)]
        self.next_source = 0
        self.sel = selectors.DefaultSelector()
        self.slow = set()
        self.idle_cut = self.slow_cut = self.errors = 0

    def connect(self):
        src = self.sources[self.next_source % len(self.sources)]
        self.next_source += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.settimeout(CONNECT_TIMEOUT)
        s.connect(("127.0.0.1", self.port))
        return s

    def open_idle(self):
        s = self.connect()
        s.sendall(REQUEST)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = s.recv(4096)
            if not data:
                raise OSError("closed before answering")
            answer += data
        if not answer.startswith(b"HTTP/1.1 200"):
            raise OSError(f"answered {answer[:40]!r}")
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ, "idle")

    def open_slow(self):
        s = self.connect()
        s.sendall(SLOW_HEAD)
        s.setblocking(False)
        self.slow.add(s)
        self.sel.register(s, selectors.EVENT_READ, "slow")

    def reopen(self, s, kind):
        self.sel.unregister(s)
        self.slow.discard(s)
        s.close()
        try:
            self.open_idle() if kind == "idle" else self.open_slow()
        except OSError:
            self.errors += 1

    def events(self, timeout):
        for key, _ in self.sel.select(timeout):
            s, kind = key.fileobj, key.data
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data and kind == "idle":
                continue   # nothing is expected, but nothing is lost either
            # A slow sender is answered (408) when cut; either way it is gone.
            if kind == "idle":
                self.idle_cut += 1
            else:
                self.slow_cut += 1
            self.reopen(s, kind)

    def trickle(self):
        for s in list(self.slow):
            try:
                s.send(b"<")
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.slow_cut += 1
                self.reopen(s, "slow")


def main():
    port, idle, slow, first, sources = (int(a) for a in sys.argv[1:6])
    raise_nofile(idle + slow + 256)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    c = Crowd(port, first, sources)
    for _ in range(idle):
        c.open_idle()
    for _ in range(slow):
        c.open_slow()
    print(f"READY idle={idle} slow={slow}", flush=True)
    next_byte = time.monotonic() + 1
    while not stop:
        c.events(max(0.0, next_byte - time.monotonic()))
        if time.monotonic() >= next_byte:
            next_byte += 1
            c.trickle()
    print(f"DONE idle_cut={c.idle_cut} slow_cut={c.slow_cut} reconnect_errors={c.errors}",
          flush=True)


if __name__ == "__main__":
    main()
