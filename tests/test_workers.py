"""Worker processes live and die with the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Starts the pass's worker pool, prints its workers' pids, then keeps every worker busy (a
# busy worker never reads the pipe that would tell it its parent is gone).
_PARENT = """
import os, time
from aggregator.pipeline.run import _worker_pool
pool = _worker_pool(True)
futures = [pool.submit(os.getpid) for _ in range(8)]
pids = {future.result(timeout=60) for future in futures}
busy = [pool.submit(time.sleep, 60) for _ in pids]
print(" ".join(map(str, sorted(pids))), flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_workers_die_when_their_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert parent.stdout is not None
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert workers and all(_alive(pid) for pid in workers)
        assert parent.pid not in workers
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in workers if _alive(pid)], "a worker outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
