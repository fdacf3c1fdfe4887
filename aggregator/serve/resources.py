"""The process's file descriptors: how many it may hold, how many connections that allows,
and accept errors when they run out, for `aggregator serve` and the daemon alike.

The soft RLIMIT_NOFILE is first raised to the hard one; the listen backlog and the connection
guard's cap are sized from it, leaving descriptors for everything but client connections.
Accept errors (EMFILE and the like) still reach asyncio's exception handler once per attempt,
with a traceback each; `AcceptErrorLog` turns a burst of them into one line when it starts and
one when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aggregator.serve.guard import ConnectionGuard

log = logging.getLogger("aggregator.serve")

MAX_CONNECTIONS = 4096
MIN_CONNECTIONS = 16
# Descriptors kept for everything but client connections: the store, log files, worker pipes,
# the daemon's own fetches.
FD_RESERVE = 256
# The listen queue is also how many sockets asyncio accepts in one go, before any of them
# reaches the guard; a few such batches can be on their way at once.
MIN_BACKLOG = 64
MAX_BACKLOG = 2048  # uvicorn's default
ACCEPT_BATCHES_IN_FLIGHT = 3
ACCEPT_QUIET_SECONDS = 10.0  # an accept error burst ends after this long without one
_INFINITE_NOFILE = 1 << 20  # what to ask for when the hard limit is unlimited
_ACCEPT_ERROR = "socket.accept() out of system resource"


def raise_open_files_limit() -> int:
    """Raises the soft RLIMIT_NOFILE to the hard limit where allowed; the soft limit now.

    Nothing is asked for when they are equal, as under the shipped unit's LimitNOFILE=."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _INFINITE_NOFILE
    target = _INFINITE_NOFILE if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as error:
            log.debug("open files limit stays at %d: %s", soft, error)
        else:
            soft = target
    return soft


def listen_backlog(open_files: int) -> int:
    """The listen queue: long enough to take a burst of connections without dropping SYNs,
    short enough that a few accept batches fit in the descriptors."""
    return max(MIN_BACKLOG, min(MAX_BACKLOG, open_files // 8))


def connection_cap(open_files: int, *, ceiling: int = MAX_CONNECTIONS) -> int:
    """How many connections fit in `open_files` descriptors.

    Each connection may hold a second descriptor (the file it is sending); accepted sockets
    exist before the guard sees them, and an evicted one until the loop's next turn."""
    in_flight = ACCEPT_BATCHES_IN_FLIGHT * listen_backlog(open_files)
    spare = open_files - FD_RESERVE - in_flight
    return max(MIN_CONNECTIONS, min(ceiling, spare // 2))


class AcceptErrorLog:
    """An asyncio exception handler that logs a burst of accept errors as two lines.

    CPython answers EMFILE on accept() by pausing the listener for a second, yet it goes on
    trying the rest of its accept batch first, and reports every attempt with a traceback."""

    def __init__(self, loop: asyncio.AbstractEventLoop, guard: ConnectionGuard) -> None:
        self._loop = loop
        self._guard = guard
        self._quiet = guard.limits.accept_error_quiet
        self._previous = loop.get_exception_handler()
        self._last = 0.0
        self._burst = 0
        self._check: asyncio.TimerHandle | None = None

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != _ACCEPT_ERROR:
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self._guard.accept_errors += 1
        self._last = time.monotonic()
        self._burst += 1
        if self._burst == 1:
            log.error(
                "cannot accept connections: %s (%d open, at most %d); "
                "further accept errors are counted until they stop",
                context.get("exception"),
                self._guard.open,
                self._guard.cap,
            )
            self._check = loop.call_later(self._quiet, self._end_of_burst)

    def _end_of_burst(self) -> None:
        quiet = time.monotonic() - self._last
        if quiet < self._quiet:
            self._check = self._loop.call_later(self._quiet - quiet, self._end_of_burst)
            return
        self._check = None
        log.warning("accepting connections again after %d accept errors", self._burst)
        self._burst = 0


def log_accept_errors(loop: asyncio.AbstractEventLoop, guard: ConnectionGuard) -> None:
    """Installs `AcceptErrorLog` on `loop`, chaining to the handler it had."""
    loop.set_exception_handler(AcceptErrorLog(loop, guard))
