"""How a worker process of a pass begins, and the process-wide settings every command's start
shares with it (quick_exit, return_large_blocks). Light on purpose: the pool unpickles
`start_worker` by importing this module in every worker, before its first job, and whatever it
imported would sit in each worker's memory (the main process's store, config and HTTP stacks)."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import logging
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_M_TRIM_THRESHOLD = -1  # malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value
_TRIM_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling for the threshold it would have raised


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


def return_large_blocks() -> None:
    """Keep glibc's malloc giving every block of 128 KiB or more its own mapping, unmapped when
    freed. Left to itself, glibc raises that threshold to the size of each such block freed:
    once the first feed bodies and worker results of a pass (hundreds of KB each) went back,
    the later ones came from the heap, and the holes they left were kept, a large share of
    the main process's peak in a large pass. Fixing it would also keep the heap's trim
    threshold at 128 KiB, and giving the top of the heap back and taking it again after
    nearly every free cost CPU: that one is set high, as glibc's own raising would have set
    it (benchmarks/README.md, session 13)."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(AttributeError, OSError):  # no mallopt: the libc's policy stands
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)


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
