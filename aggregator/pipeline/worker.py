"""How a worker process of a pass begins. Light on purpose: the pool unpickles `start_worker`
by importing this module in every worker, before its first job, and whatever it imported
would sit in each worker's memory (the main process's store, config and HTTP stacks)."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

from aggregator.pipeline import heap

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def start_worker(parent: int) -> None:
    """Die with the process that started this one, however that one ends (a SIGKILL leaves it
    no time to stop its pool), then load the CPU stages and settle the heap."""
    _die_with(parent)
    heap.settle("aggregator.pipeline.process")


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
