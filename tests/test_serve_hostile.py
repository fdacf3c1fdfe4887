"""Hostile clients against the real server of `aggregator serve`, in a child process that has
the 1,024 open files a default system gives it: idle and trickling connections, oversized and
unfinished request heads, a client that stops reading, and a descriptor shortage. The server
must go on answering, stay under its descriptor limit, and keep its log short.

Timeouts are shortened through `Limits`, the server's internal settings, so this file runs in
seconds; every loop here is bounded in count and in time."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aggregator.serve.resources import connection_cap
from tests.daemonproc import free_port

ROOT = Path(__file__).resolve().parent.parent
FILES = 1024  # the soft and hard RLIMIT_NOFILE of the server process
HEADER_TIMEOUT = 2.0
KEEP_ALIVE = 1
SEND_TIMEOUT = 1.0
QUICK = 1.0  # seconds a normal request may take while the server is under attack

# The server as `aggregator serve` runs it, with limits passed in as JSON and its descriptors
# capped before anything is imported.
_LAUNCHER = """
import json, resource, sys
from pathlib import Path
files = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
from aggregator.serve import Limits, serve
serve(Path(sys.argv[1]), "127.0.0.1", int(sys.argv[2]), limits=Limits(**json.loads(sys.argv[4])))
"""


class Server:
    """`serve()` in a child process, its stderr in a file."""

    def __init__(self, folder: Path, *, files: int = FILES, **limits: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"serve-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _LAUNCHER,
                    str(folder / "public"),
                    str(self.port),
                    str(files),
                    json.dumps(limits),
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        deadline = time.monotonic() + 20
        while True:
            assert self.process.poll() is None, self.stderr()
            assert time.monotonic() < deadline, "the server did not start\n" + self.stderr()
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            time.sleep(0.05)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class FdWatch:
    """The most descriptors the server held, sampled every few milliseconds in a thread."""

    def __init__(self, server: Server) -> None:
        self.most = 0
        self._server = server
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FdWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            with contextlib.suppress(OSError):
                self.most = max(self.most, self._server.fds())


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    public = root / "public"
    public.mkdir()
    (public / "all.atom").write_text("<feed>" + "<entry/>" * 2000 + "</feed>", encoding="utf-8")
    # Incompressible and far larger than the socket buffers: a reader that stops stalls it.
    (public / "big.bin").write_bytes(os.urandom(16 * 1024 * 1024))
    return root


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[Server]:
    running = Server(
        folder, header_timeout=HEADER_TIMEOUT, keep_alive=KEEP_ALIVE, send_timeout=SEND_TIMEOUT
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room in this process for a few thousand client sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    assert wanted >= 2200, f"the hard open-files limit ({hard}) leaves no room for the clients"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _timed_get(server: Server, path: str) -> float:
    """Seconds a GET took on a new connection, which it asserts was a 200."""
    started = time.monotonic()
    response = httpx.get(f"{server.url}{path}", timeout=5)
    took = time.monotonic() - started
    assert response.status_code == 200, (path, response.status_code)
    return took


def _closed(sock: socket.socket) -> bool:
    """Whether the server has closed `sock` (read without waiting)."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def _raw(server: Server, head: bytes) -> bytes:
    """Sends `head` on a new connection and reads until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        with contextlib.suppress(OSError):  # the server may close before it has read it all
            sock.sendall(head)
        received = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
        return received


def _request(headers: bytes = b"", path: bytes = b"/all.atom") -> bytes:
    return (
        b"GET "
        + path
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + headers
        + b"Connection: close\r\n\r\n"
    )


def test_two_thousand_idle_and_trickling_connections_do_not_stop_it(
    server: Server, many_files: None
) -> None:
    cap = connection_cap(FILES)
    assert cap < 2000  # so the flood is larger than what the server keeps open
    idle: list[socket.socket] = []
    trickling: list[socket.socket] = []
    timings: list[float] = []
    try:
        with FdWatch(server) as watch:
            for number in range(2000):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                (trickling if number % 4 == 0 else idle).append(sock)
                if number % 50 == 49:
                    time.sleep(0.02)  # a burst a busy machine still drains between bursts
            timings += [_timed_get(server, "/healthz"), _timed_get(server, "/all.atom")]
            head = _request()
            for second in range(3):  # one byte a second from each trickler
                for sock in trickling:
                    with contextlib.suppress(OSError):
                        sock.send(head[second : second + 1])
                timings += [_timed_get(server, "/healthz"), _timed_get(server, "/all.atom")]
                time.sleep(1)
        assert max(timings) < QUICK, timings
        assert watch.most < FILES - 64, watch.most
        # The idle and the trickling alike were closed, by eviction or by the header timeout.
        deadline = time.monotonic() + HEADER_TIMEOUT + 2
        while not all(_closed(sock) for sock in idle + trickling):
            assert time.monotonic() < deadline, "connections left open past the header timeout"
            time.sleep(0.2)
    finally:
        for sock in idle + trickling:
            sock.close()
    log = server.stderr()
    assert "Traceback" not in log
    assert "cannot accept" not in log


def test_a_1mb_header_is_refused_and_a_15kb_one_is_not(server: Server) -> None:
    huge = _raw(server, _request(b"X-Padding: " + b"a" * (1 << 20) + b"\r\n"))
    # 431, or a reset when the server closed while the client was still sending.
    assert huge == b"" or huge.startswith(b"HTTP/1.1 431 "), huge[:100]
    encoding = _raw(server, _request(b"Accept-Encoding: " + b"br;q=0.5, " * 100_000 + b"\r\n"))
    assert encoding == b"" or encoding.startswith(b"HTTP/1.1 431 "), encoding[:100]
    many = b"".join(b"X-Header-%d: 1\r\n" % number for number in range(200))
    assert _raw(server, _request(many)).startswith(b"HTTP/1.1 431 ")
    fine = _raw(server, _request(b"X-Padding: " + b"a" * (15 * 1024) + b"\r\n"))
    assert fine.startswith(b"HTTP/1.1 200 ")
    assert _timed_get(server, "/healthz") < QUICK


def test_an_unfinished_head_is_closed_after_the_header_timeout(server: Server) -> None:
    """A silent connection, half a head, a head trickled a byte every 0.2 s and a keep-alive
    connection left idle: each closed on time, the half head with a 408."""
    address = ("127.0.0.1", server.port)
    with (
        socket.create_connection(address, timeout=5) as silent,
        socket.create_connection(address, timeout=5) as half,
        socket.create_connection(address, timeout=5) as trickle,
        socket.create_connection(address, timeout=5) as kept,
    ):
        started = time.monotonic()
        half.sendall(b"GET /all.atom HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept.recv(65536).startswith(b"HTTP/1.1 200 ")
        closed_at: dict[str, float] = {}
        sockets = {"silent": silent, "half": half, "trickle": trickle, "kept": kept}
        head = _request()
        sent = 0
        while len(closed_at) < len(sockets) and time.monotonic() - started < HEADER_TIMEOUT + 3:
            with contextlib.suppress(OSError):
                trickle.send(head[sent : sent + 1])
                sent += 1
            time.sleep(0.2)
            for name, sock in sockets.items():
                if name not in closed_at and _closed(sock):
                    closed_at[name] = time.monotonic() - started
        assert set(closed_at) == set(sockets), closed_at
        assert KEEP_ALIVE - 0.5 < closed_at["kept"] < KEEP_ALIVE + 1.5, closed_at
        for name in ("silent", "half", "trickle"):
            assert HEADER_TIMEOUT - 0.5 < closed_at[name] < HEADER_TIMEOUT + 1.5, closed_at
        assert sent < len(head)  # the trickled head was still unfinished when it was closed
    answer = _raw(server, b"GET /all.atom HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]


def test_a_client_that_stops_reading_is_dropped(server: Server) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(_request(path=b"/big.bin"))
        time.sleep(SEND_TIMEOUT + 1.5)  # not reading: the server's writes stall, then it gives up
        received = 0
        with contextlib.suppress(OSError):
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
                assert received < 16 * 1024 * 1024, "the whole file came through"
    assert _timed_get(server, "/healthz") < QUICK


def test_accept_errors_are_logged_once_per_burst(folder: Path) -> None:
    """Out of descriptors (64 open files, a cap above that): a burst of failed accepts is one
    line when it starts and one when it ends, and the server recovers."""
    # A quiet period longer than asyncio's one second between accept retries, or one burst
    # would read as several.
    server = Server(folder, files=64, max_connections=1000, accept_error_quiet=2.5)
    clients: list[socket.socket] = []
    try:
        for _ in range(150):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.port))
            clients.append(sock)
        deadline = time.monotonic() + 15
        while "cannot accept" not in server.stderr():
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.1)
        time.sleep(2)  # asyncio retries the accept every second: more errors, no more lines
        for sock in clients:
            sock.close()
        clients.clear()
        while "accepting connections again" not in server.stderr():
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.1)
        # Answering at all is the point: asyncio waits a second after each failed accept, and
        # the SYN of a connection that found the listen queue full is sent again a second later.
        _timed_get(server, "/healthz")
    finally:
        for sock in clients:
            sock.close()
        server.stop()
    lines = server.stderr().splitlines()
    assert sum("cannot accept connections" in line for line in lines) == 1, lines
    assert sum("accepting connections again" in line for line in lines) == 1, lines
    assert "Too many open files" in "\n".join(lines)
    assert not any("Traceback" in line for line in lines), lines
