"""The real daemon (`python -m aggregator run`) as a child process, for end-to-end tests and the
serve benchmark."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(
    folder: Path,
    port: int,
    feeds: Sequence[tuple[str, str, str]],  # name, url, tag
    *,
    interval: str = "2s",
    timeout: str = "5s",
    title: str = "Aggregator",
    items_per_feed: int = 50,
    store_url: str = "sqlite:///state/agg.db",
) -> Path:
    lines = [
        f'store: {{url: "{store_url}"}}',
        f"output: {{dir: public, base_url: 'http://127.0.0.1:{port}/', title: '{title}',"
        f" items_per_feed: {items_per_feed}}}",
        f"server: {{host: 127.0.0.1, port: {port}}}",
        f"defaults: {{interval: {interval}, timeout: {timeout}}}",
        "sources:" if feeds else "sources: []",
    ]
    for name, url, tag in feeds:
        lines += [f"  - name: {name}", "    kind: feed", f"    url: {url}", f"    tags: [{tag}]"]
    path = folder / "aggregator.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Daemon:
    """`aggregator run` in its own session (so kill() takes its worker processes too), stderr
    in a file so a chatty daemon never blocks on a full pipe."""

    def __init__(self, config: Path, port: int, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = config.parent / f"daemon-{time.monotonic_ns()}.log"
        self._env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "aggregator", "--config", str(self.config), "run"],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=self._env,
                start_new_session=True,
            )
        return self

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.stderr()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the daemon did not come up in {timeout} s:\n{self.stderr()}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 10) -> tuple[int, float]:
        """SIGTERM; the exit status and how long the exit took."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=timeout)
        return status, time.monotonic() - started

    def kill(self) -> None:
        """kill -9 of the daemon and every process it started, as a power cut would."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
