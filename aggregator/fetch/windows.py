"""How many requests each host gets at once: a window per host, learnt from its answers.

TCP's AIMD, kept per host rather than per connection, with latency as a sign of a busy server
as Scrapy's AutoThrottle reads it:

    start   defaults.per_host requests at once (2)
    grow    +1 per clean answer up to the ceiling (defaults.per_host_max, 16): a healthy host
            goes 2, 4, 8, 16 in as many round trips. Once the host has been in trouble, +1 per
            window's worth of clean answers (one per round trip) until it is back at the ceiling
    halve   (never below 1) on a timeout, a connection error, 429, 5xx, or a latency above
            twice the host's best
    pause   429 or 503 with Retry-After: no request to the host starts before then

Clean: the host answered and says nothing is wrong (1xx-3xx, 304 and redirects included, 404,
410); other 4xx neither grow nor halve, and neither does a fetch we stopped ourselves (a
refused address, a bad URL). An answer to a request sent before the host's last halving counts
for nothing either way: it was sent under the old window, and one bad moment with sixteen
requests in flight halves once, not sixteen times (TCP too cuts once per window).

Latency is the time from sending a request to its response headers, on a connection that had
been used before: a new connection's TCP and TLS handshakes are not the server's load. It is
smoothed (a quarter of each new sample), and is slow above twice the host's best and more than
SLOW_MARGIN above it, so the jitter of a host a few milliseconds away is no trouble. The best
is the lowest sample of the last BEST_FOR seconds; after that the current one replaces it (as
BBR keeps its minimum RTT), so a host that moved farther away is not held back for ever.

What is learnt lives in a HostWindows, keyed by host (with the port when it is not the
scheme's): the daemon's passes share one per process (`shared_windows()`), so each pass starts
where the last one left off and a pause outlives the pass that was told of it. What waits for
a window is per Fetcher (HostSlots), on that Fetcher's event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

# A longer pause fails the fetch at once (with the time to retry) rather than holding its turn
# in the pass while other hosts' sources wait behind it.
WAIT_FOR_PAUSE = 5.0
# Retry-After is believed up to here for the host; the source itself still waits the whole of
# it (its schedule). One feed's absurd header must not silence a host's other feeds for days.
MAX_PAUSE = 3600.0
BEST_FOR = 600.0
SLOW_FACTOR = 2.0
SLOW_MARGIN = 0.05  # seconds
SMOOTHING = 0.25
FORGET_AFTER = 6 * 3600.0  # a host idle this long starts afresh, and its memory is freed
_SWEEP_EVERY = 60.0
_CLEAN_ERRORS = frozenset({404, 410})


class HostPausedError(Exception):
    """The host asked for a pause (Retry-After) that ends later than a fetch waits for."""

    def __init__(self, host: str, until: datetime) -> None:
        self.host = host
        self.until = until
        super().__init__(
            f"not sent: {host} asked for a pause until {until.isoformat(timespec='seconds')}"
            " (Retry-After)"
        )


@dataclass(frozen=True, slots=True)
class HostWindow:
    """One host's window as it stands: what /metrics shows."""

    host: str
    window: int  # requests it may have in flight now
    ceiling: int
    paused_until: datetime | None  # no request starts before this; None when not paused
    requests: int  # sent since the host was first seen (or last forgotten)
    halvings: int
    # Halved, and not grown back to the ceiling since: the host is being spared.
    held_back: bool
    latency: float | None  # smoothed seconds to the response headers
    best_latency: float | None


@dataclass
class Answer:
    """What one request told of its host; filled in by the fetch as it learns it."""

    status: int | None = None
    latency: float | None = None  # None: unknown, or the request opened a new connection
    pause: float | None = None  # seconds, from Retry-After
    failed: bool = False  # timed out or lost its connection


@dataclass(slots=True)
class _Learnt:
    window: float
    threshold: float | None = None  # None: grow fast all the way (no trouble seen)
    halvings: int = 0
    best: float | None = None
    best_at: float = 0.0
    smoothed: float | None = None
    paused_until: float = 0.0  # monotonic
    requests: int = 0
    used: float = 0.0  # monotonic

    def limit(self, ceiling: int) -> int:
        return max(1, min(ceiling, int(self.window)))

    def grow(self, ceiling: int) -> None:
        if self.threshold is None or self.window < self.threshold:
            self.window += 1
        else:
            self.window += 1 / self.window
        if self.window >= ceiling:
            self.window, self.threshold = float(ceiling), None

    def halve(self) -> None:
        self.window = self.threshold = float(max(1, int(self.window) // 2))
        self.halvings += 1
        # The next samples judge the smaller window; the old average would halve it again.
        self.smoothed = None

    def note_best(self, latency: float, now: float) -> None:
        if self.best is None or latency < self.best or now - self.best_at > BEST_FOR:
            self.best, self.best_at = latency, now

    def slow(self, latency: float) -> bool:
        smoothed = self.smoothed
        smoothed = latency if smoothed is None else smoothed + SMOOTHING * (latency - smoothed)
        self.smoothed = smoothed
        best = self.best if self.best is not None else latency
        return smoothed > max(SLOW_FACTOR * best, best + SLOW_MARGIN)


def host_key(url: httpx.URL) -> str:
    """The host a window belongs to: its name, with the port when not the scheme's own."""
    host = url.host.lower()
    if ":" in host:
        host = f"[{host}]"
    return host if url.port is None else f"{host}:{url.port}"


class HostWindows:
    """What is learnt of each host, shared by the Fetchers given it.

    Read from any thread (snapshot, for /metrics while a pass runs in another); changed only by
    the Fetcher's event loop, one pass at a time.
    """

    def __init__(self, start: int = 2, ceiling: int | None = None) -> None:
        self._lock = threading.Lock()
        self._hosts: dict[str, _Learnt] = {}
        self._swept = time.monotonic()
        self.start = start
        self.ceiling = max(start, ceiling or start)

    def configure(self, start: int, ceiling: int | None) -> None:
        """The window new hosts start at, and the one none goes above (at least `start`: a
        config that asks for more at once than the ceiling gets what it asks)."""
        self.start = start
        self.ceiling = max(start, ceiling or start)
        with self._lock:
            for learnt in self._hosts.values():
                learnt.window = min(learnt.window, self.ceiling)

    def learnt(self, key: str) -> _Learnt:
        """The host's record, made on its first request."""
        learnt = self._hosts.get(key)
        if learnt is None:
            with self._lock:
                self._sweep()
                learnt = self._hosts.setdefault(key, _Learnt(float(self.start)))
        return learnt

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._swept < _SWEEP_EVERY:
            return
        self._swept = now
        idle = [
            key
            for key, learnt in self._hosts.items()
            if now - learnt.used > FORGET_AFTER and learnt.paused_until <= now
        ]
        for key in idle:
            del self._hosts[key]

    def snapshot(self) -> list[HostWindow]:
        """Every host seen (and not forgotten), as it stands now."""
        with self._lock:
            hosts = list(self._hosts.items())
        now, wall = time.monotonic(), time.time()
        ceiling = self.ceiling
        return [
            HostWindow(
                host=key,
                window=learnt.limit(ceiling),
                ceiling=ceiling,
                paused_until=datetime.fromtimestamp(wall + learnt.paused_until - now, UTC)
                if learnt.paused_until > now
                else None,
                requests=learnt.requests,
                halvings=learnt.halvings,
                held_back=learnt.threshold is not None,
                latency=learnt.smoothed,
                best_latency=learnt.best,
            )
            for key, learnt in hosts
        ]


_shared = HostWindows()


def shared_windows() -> HostWindows:
    """The windows of this process: the daemon's passes learn into one and start from it."""
    return _shared


class _Gate:
    """One host's window on one event loop: its requests in flight, and those waiting."""

    def __init__(self, key: str, learnt: _Learnt, windows: HostWindows) -> None:
        self.key = key
        self.learnt = learnt
        self.windows = windows
        self.busy = 0
        self.waiting: deque[asyncio.Future[None]] = deque()
        self.timer: asyncio.TimerHandle | None = None

    def paused_for(self, now: float) -> float:
        return self.learnt.paused_until - now

    def paused(self, wait: float) -> HostPausedError:
        return HostPausedError(self.key, datetime.fromtimestamp(time.time() + wait, UTC))

    def hand_off(self) -> None:
        """Give free places to the requests waiting, first come first served."""
        wait = self.paused_for(time.monotonic())
        if wait > 0:
            if wait > WAIT_FOR_PAUSE:
                while self.waiting:
                    waiter = self.waiting.popleft()
                    if not waiter.done():
                        waiter.set_exception(self.paused(wait))
            elif self.timer is None and self.waiting:
                self.timer = asyncio.get_running_loop().call_later(wait, self._resume)
            return
        limit = self.learnt.limit(self.windows.ceiling)
        while self.waiting and self.busy < limit:
            waiter = self.waiting.popleft()
            if not waiter.done():  # else cancelled while it waited
                self.busy += 1
                waiter.set_result(None)

    def _resume(self) -> None:
        self.timer = None
        self.hand_off()


@dataclass(frozen=True, slots=True)
class Ticket:
    """A place in a host's window, to give back with what the request learnt."""

    gate: _Gate
    halvings: int  # the host's halvings when the request was sent


class HostSlots:
    """A Fetcher's hold on the windows: waits for a place, and learns from each answer."""

    def __init__(self, windows: HostWindows) -> None:
        self.windows = windows
        self._gates: dict[str, _Gate] = {}

    async def take(self, key: str) -> Ticket:
        """A place in `key`'s window; HostPausedError when the host asked for a pause longer than
        WAIT_FOR_PAUSE."""
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate(key, self.windows.learnt(key), self.windows)
        learnt = gate.learnt
        wait = gate.paused_for(time.monotonic())
        if wait > WAIT_FOR_PAUSE:
            raise gate.paused(wait)
        if wait > 0 or gate.waiting or gate.busy >= learnt.limit(self.windows.ceiling):
            waiter = asyncio.get_running_loop().create_future()
            gate.waiting.append(waiter)
            gate.hand_off()
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    gate.busy -= 1  # handed a place it will not use: the next one's
                    gate.hand_off()
                raise
        else:
            gate.busy += 1
        learnt.requests += 1
        learnt.used = time.monotonic()
        return Ticket(gate, learnt.halvings)

    def give_back(self, ticket: Ticket, answer: Answer) -> None:
        """The place back, and what the answer says of the host."""
        gate = ticket.gate
        learnt = gate.learnt
        ceiling = self.windows.ceiling
        now = time.monotonic()
        gate.busy -= 1
        status = answer.status
        clean = status is not None and (status < 400 or status in _CLEAN_ERRORS)
        if clean and answer.latency is not None:
            learnt.note_best(answer.latency, now)
        if ticket.halvings == learnt.halvings:
            trouble = answer.failed or (status is not None and (status == 429 or status >= 500))
            if not trouble and clean and answer.latency is not None:
                trouble = learnt.slow(answer.latency)
            if trouble:
                learnt.halve()
            elif clean:
                learnt.grow(ceiling)
        if answer.pause is not None and answer.pause > 0:
            until = now + min(answer.pause, MAX_PAUSE)
            learnt.paused_until = max(learnt.paused_until, until)
        gate.hand_off()
