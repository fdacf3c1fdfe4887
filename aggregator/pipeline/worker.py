"""How a worker process of a pass begins. Light on purpose: the pool unpickles `start_worker`
by importing this module in every worker, before its first job, and whatever it imported
would sit in each worker's memory (the main process's store, config and HTTP stacks)."""

from __future__ import annotations

import atexit
import ctypes
import gc
import logging
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def start_worker(parent: int) -> None:
    """Die with the process that started this one, however that one ends (a SIGKILL leaves it
    no time to stop its pool); exit without a last walk of the collector (see quick_exit)."""
    _die_with(parent)
    quick_exit()


def quick_exit() -> None:
    """At exit, the interpreter's collections walk every object the imports made (SQLAlchemy,
    pydantic, httpx, lxml), though the process is ending: frozen, they are skipped. Registered
    first, it runs last, after every other exit handler has closed what it holds. Its gain on
    each command and pass is in benchmarks/README.md."""
    atexit.register(gc.freeze)


def _die_with(parent: int) -> None:
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        logging.getLogger("aggregator").warning(
            "worker %d cannot follow its parent's death", os.getpid()
        )
    elif os.getppid() != parent:
        os._exit(1)  # the parent died before the request took effect
