"""Limits on what one HTTP connection may cost, for `aggregator serve` and the daemon alike.

uvicorn's httptools protocol (the one that runs, since httptools is installed) enforces none of
them by itself: it keeps a connection that sends nothing, or half a request head, open for ever
(its keep-alive timeout is armed only once a response is complete); it reads a request head of
any size; `limit_concurrency` is checked only once a head is complete, so idle connections are
never counted against it; and `h11_max_incomplete_event_size` applies to the h11 protocol only.
So the protocol here is uvicorn's, with a guard around it:

- a request head must be complete within `header_timeout` of the connection opening or of the
  previous response, whatever trickles in meanwhile (uvicorn's keep-alive timer still closes a
  silent keep-alive connection sooner);
- a request head is at most `max_head_bytes` and `max_headers` headers: 431, then close;
- a response the client stops reading is abandoned after `send_timeout`;
- at most `max_connections` connections are open. At the cap a new connection takes the place
  of the oldest one that is waiting for a request head; when every connection is busy with a
  request, the new one is closed at once. Either way file descriptors never run out, and a
  flood of idle sockets cannot lock out a real client.

The cap is sized from RLIMIT_NOFILE, whose soft limit is first raised to the hard one, and
accept errors (EMFILE and the like) are logged a burst at a time: see resources.py.
"""

from __future__ import annotations

import asyncio
import http
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aggregator.serve.resources import (
    ACCEPT_QUIET_SECONDS,
    connection_cap,
    listen_backlog,
    raise_open_files_limit,
)

HEADER_TIMEOUT = 10.0
KEEP_ALIVE_SECONDS = 5
SEND_TIMEOUT = 30.0
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100

# Parsed in slices so a head that grows past the limit is noticed within one slice of it,
# whatever the size of the read.
_SLICE = 4096

CLOSE_REASONS = (
    "evicted",  # waiting for a head when a new connection needed its place
    "refused",  # arrived at the cap while every connection was busy
    "header_timeout",
    "head_too_large",
    "send_timeout",
    "bad_request",
)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one server allows a connection; the defaults are for production, tests shorten
    the timeouts."""

    max_head_bytes: int = MAX_HEAD_BYTES
    max_headers: int = MAX_HEADERS
    header_timeout: float = HEADER_TIMEOUT
    keep_alive: int = KEEP_ALIVE_SECONDS  # uvicorn's timeout_keep_alive, whole seconds
    send_timeout: float = SEND_TIMEOUT
    max_connections: int | None = None  # None: sized from the open-files limit
    # Longer than asyncio's pause between accept retries (1 s), or one burst reads as several.
    accept_error_quiet: float = ACCEPT_QUIET_SECONDS


class _HeadTooLargeError(Exception):
    """Raised in a parser callback to stop parsing a head that breaks a limit."""


@dataclass(frozen=True, slots=True)
class GuardStats:
    open: int
    cap: int
    closed: dict[str, int]  # by reason, every one of CLOSE_REASONS
    accept_errors: int


class ConnectionGuard:
    """The connections of one server: the cap, and which of them wait for a request head."""

    def __init__(self, limits: Limits, cap: int) -> None:
        self.limits = limits
        self.cap = cap
        self.open = 0
        self.closed: Counter[str] = Counter({reason: 0 for reason in CLOSE_REASONS})
        self.accept_errors = 0
        # Insertion-ordered, so the first is the one that has waited longest.
        self._waiting: dict[GuardedHttpProtocol, None] = {}

    def admit(self, connection: GuardedHttpProtocol) -> bool:
        if self.open >= self.cap:
            oldest = next(iter(self._waiting), None)
            if oldest is None:
                self.closed["refused"] += 1
                return False
            self.closed["evicted"] += 1
            oldest.drop()
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1

    def waiting(self, connection: GuardedHttpProtocol) -> None:
        self._waiting.pop(connection, None)
        self._waiting[connection] = None

    def busy(self, connection: GuardedHttpProtocol) -> None:
        self._waiting.pop(connection, None)

    def stats(self) -> GuardStats:
        return GuardStats(self.open, self.cap, dict(self.closed), self.accept_errors)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under a `ConnectionGuard`; `guarded_protocol` binds one."""

    guard: ClassVar[ConnectionGuard]

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._admitted = False
        self._deadline: asyncio.TimerHandle | None = None
        self._stalled: asyncio.TimerHandle | None = None
        self._head_pending = False  # a head has begun and is not complete
        self._head_bytes = 0  # read since it began (an upper bound after a pipelined request)
        self._heads_begun = 0
        self._headers = 0

    # -- connection -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.admit(self):
            transport.abort()
            return
        self._admitted = True
        self._await_head(self.guard.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._cancel_deadline()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        self.guard.busy(self)
        if self._admitted:
            self._admitted = False
            self.guard.release()

    def drop(self) -> None:
        """Closes the connection to make room for another one."""
        self._cancel_deadline()
        self.guard.busy(self)
        # abort: a waiting connection has nothing to flush, and its socket goes at once.
        self.transport.abort()

    def _await_head(self, seconds: float) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, self._head_overdue)
        self.guard.waiting(self)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_overdue(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self.guard.closed["header_timeout"] += 1
        if self._head_pending:
            self._refuse(http.HTTPStatus.REQUEST_TIMEOUT)
        else:
            self.guard.busy(self)
            self.transport.close()

    def _refuse(self, status: http.HTTPStatus) -> None:
        self._cancel_deadline()
        self.guard.busy(self)
        if self.cycle is not None and not self.cycle.response_complete:
            # A response is under way: a status line now would land in the middle of it.
            self.transport.abort()
            return
        body = status.phrase.encode("ascii")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status.value, body, len(body), body)
        )
        self.transport.close()

    # -- reading ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        limit = self.guard.limits.max_head_bytes
        view = memoryview(data)
        offset = 0
        while offset < len(view) and not self.transport.is_closing():
            size = _SLICE
            if self._head_pending:
                room = limit - self._head_bytes
                if room <= 0:
                    self.guard.closed["head_too_large"] += 1
                    self._refuse(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
                    return
                size = min(size, room)
            piece = view[offset : offset + size]
            offset += len(piece)
            pending, begun = self._head_pending, self._heads_begun
            if not self._feed(piece):
                return
            if self._head_pending:
                if pending and begun == self._heads_begun:
                    self._head_bytes += len(piece)
                else:
                    self._head_bytes = len(piece)

    def _feed(self, piece: memoryview) -> bool:
        """Parses one slice; False once the connection is being closed."""
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserUpgrade:
            # No WebSocket here: the request is answered as plain HTTP, the rest ignored.
            return False
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, _HeadTooLargeError):
                self.guard.closed["head_too_large"] += 1
                self._refuse(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
                return False
            # uvicorn logs a warning for each of these; a client sending garbage is no news,
            # and one warning per request would let any client fill the journal.
            self.guard.closed["bad_request"] += 1
            self._cancel_deadline()
            self.guard.busy(self)
            self.send_400_response("Invalid HTTP request received.")
            return False
        return True

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_pending = True
        self._heads_begun += 1
        self._headers = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers += 1
        if self._headers > self.guard.limits.max_headers:
            raise _HeadTooLargeError
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_pending = False
        self._head_bytes = 0
        self._cancel_deadline()
        self.guard.busy(self)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its keep-alive timer only when the connection is now idle (no
        # pipelined request started), which is when the next head's clock starts.
        if self.timeout_keep_alive_task is not None and not self.transport.is_closing():
            limits = self.guard.limits
            self._await_head(limits.keep_alive + limits.header_timeout)

    # -- writing ----------------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(self.guard.limits.send_timeout, self._send_overdue)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _send_overdue(self) -> None:
        self._stalled = None
        if not self.transport.is_closing():
            self.guard.closed["send_timeout"] += 1
            self.transport.abort()


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedHttpProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to `guard`."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"guard": guard})


def server_config(
    app: Callable[..., Any],
    *,
    host: str,
    port: int,
    limits: Limits | None = None,
    **options: Any,
) -> tuple[uvicorn.Config, ConnectionGuard]:
    """A uvicorn config whose connections obey `limits`, and the guard that enforces them.

    Raises the open-files limit first; `options` go to uvicorn.Config as they are."""
    limits = limits or Limits()
    open_files = raise_open_files_limit()
    cap = limits.max_connections or connection_cap(open_files)
    guard = ConnectionGuard(limits, cap)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(guard),
        ws="none",
        backlog=listen_backlog(open_files),
        timeout_keep_alive=limits.keep_alive,
        server_header=False,
        **options,
    )
    return config, guard
