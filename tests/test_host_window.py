"""Each host's window of requests at once, watched from the servers' side: real HTTP/1.1 servers
on 127.0.0.1 and 127.0.0.2 that log when every request arrives and how many were in flight.

A healthy host's window grows to the ceiling; a host in trouble (Retry-After, slow, 5xx,
timeouts, refused connections) gets fewer requests, and no other host does.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.daemon.metrics import HOST_SERIES, DaemonMetrics
from aggregator.fetch import Fetcher, HostWindow, HostWindows
from aggregator.models import FetchRequest, FetchResult


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay: float = 0.0  # seconds before the answer starts
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Seen:
    path: str
    arrived: float  # time.monotonic()
    answered: float = 0.0


@dataclass
class Host:
    """One listening server: what it answers (given the request's number, from 0) and saw."""

    answer: Callable[[int], Reply]
    base: str = ""
    key: str = ""  # the host as the fetcher names it
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def url(self, number: int) -> str:
        return f"{self.base}/feed/{number}.xml"

    def arrivals_after(self, moment: float) -> list[float]:
        return sorted(seen.arrived for seen in self.seen if seen.arrived > moment)


class Servers:
    """Servers on one event loop in a thread of their own; each answers with keep-alive."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._servers: list[asyncio.Server] = []

    def add(self, answer: Callable[[int], Reply], address: str = "127.0.0.1") -> Host:
        host = Host(answer)

        async def start() -> asyncio.Server:
            return await asyncio.start_server(
                lambda reader, writer: self._serve(host, reader, writer), address, 0
            )

        server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(5)
        self._servers.append(server)
        port = server.sockets[0].getsockname()[1]
        host.base, host.key = f"http://{address}:{port}", f"{address}:{port}"
        return host

    async def _serve(
        self, host: Host, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                seen = Seen(head.split(b" ", 2)[1].decode(), time.monotonic())
                number = len(host.seen)
                host.seen.append(seen)
                host.in_flight += 1
                host.max_in_flight = max(host.max_in_flight, host.in_flight)
                try:
                    reply = host.answer(number)
                    await asyncio.sleep(reply.delay)
                    lines = [f"HTTP/1.1 {reply.status} Whatever", "Content-Length: 2"]
                    lines += [f"{name}: {value}" for name, value in reply.headers]
                    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + b"ok")
                    seen.answered = time.monotonic()
                    await writer.drain()
                finally:
                    host.in_flight -= 1
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client left, or the test is over
        finally:
            writer.close()

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            current = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@pytest.fixture
def servers() -> Iterator[Servers]:
    running = Servers()
    try:
        yield running
    finally:
        running.close()


def steady(delay: float, status: int = 200) -> Callable[[int], Reply]:
    return lambda _: Reply(status, delay)


async def fetch_each(fetcher: Fetcher, urls: list[str], timeout: float = 5.0) -> list[FetchResult]:
    return list(
        await asyncio.gather(
            *(fetcher.fetch(FetchRequest("s", url, timeout=timeout)) for url in urls)
        )
    )


def run(fetcher: Fetcher, urls: list[str], timeout: float = 5.0) -> list[FetchResult]:
    async def go() -> list[FetchResult]:
        # A request left waiting for ever would otherwise hang the test run.
        async with asyncio.timeout(20), fetcher:
            return await fetch_each(fetcher, urls, timeout)

    return asyncio.run(go())


def window_of(fetcher: Fetcher, host: Host) -> HostWindow:
    return next(window for window in fetcher.host_windows() if window.host == host.key)


def first_burst(host: Host, start: int = 0) -> int:
    """Requests that arrived, from request `start` on, before the first of them was answered."""
    seen = sorted(host.seen[start:], key=lambda s: s.arrived)
    return sum(1 for s in seen if s.arrived < seen[0].answered)


def test_a_healthy_host_grows_from_two_to_the_ceiling(servers: Servers) -> None:
    host = servers.add(steady(0.05))
    fetcher = Fetcher(per_host=2, per_host_max=16, total=100)
    results = run(fetcher, [host.url(n) for n in range(80)])
    assert all(result.status == 200 for result in results)
    # Polite at first: two requests, and the third only once one has been answered ...
    assert first_burst(host) == 2
    # ... fast once the host has shown it copes, and never past the ceiling.
    assert host.max_in_flight == 16
    window = window_of(fetcher, host)
    assert (window.window, window.halvings, window.held_back) == (16, 0, False)


def test_retry_after_pauses_that_host_and_halves_its_window_only(servers: Servers) -> None:
    def limited(number: int) -> Reply:
        return Reply(429, 0, (("Retry-After", "2"),)) if number == 20 else Reply(200, 0.1)

    busy = servers.add(limited)
    other = servers.add(steady(0.1), address="127.0.0.2")  # another host, not just a port
    fetcher = Fetcher(per_host=8, per_host_max=8, total=100)
    urls = [busy.url(n) for n in range(60)] + [other.url(n) for n in range(180)]
    results = run(fetcher, urls)

    statuses = [result.status for result in results[:60]]
    assert statuses.count(429) == 1 and statuses.count(200) == 59
    told = busy.seen[20]
    later = busy.arrivals_after(told.answered)
    # Requests the fetcher sent before it had read the 429 still arrive just after it ...
    crossed = [arrived for arrived in later if arrived < told.answered + 0.2]
    assert len(crossed) < 8
    # ... then not one while the host asked for quiet, and back at once when it is over ...
    resumed = later[len(crossed) :]
    assert 2.0 - 0.01 <= resumed[0] - told.answered < 2.5
    # ... with half the window it had.
    assert sum(1 for arrived in resumed if arrived < resumed[0] + 0.05) == 4
    assert window_of(fetcher, busy).halvings == 1

    # The other host kept its whole window throughout the pause.
    during = [t for t in other.arrivals_after(told.answered) if t < told.answered + 2.0]
    assert len(during) >= 64
    assert other.max_in_flight == 8
    assert (window_of(fetcher, other).window, window_of(fetcher, other).halvings) == (8, 0)


def test_a_retry_after_longer_than_a_short_wait_fails_the_host_s_other_fetches_at_once(
    servers: Servers,
) -> None:
    def limited(number: int) -> Reply:
        return Reply(429, 0, (("Retry-After", "60"),)) if number == 0 else Reply(200, 0.05)

    busy = servers.add(limited)
    other = servers.add(steady(0.05), address="127.0.0.2")
    windows = HostWindows()
    fetcher = Fetcher(per_host=1, per_host_max=8, windows=windows)
    started = time.monotonic()
    results = run(fetcher, [busy.url(n) for n in range(10)] + [other.url(n) for n in range(10)])
    assert time.monotonic() - started < 5

    assert results[0].status == 429
    assert len(busy.seen) == 1  # nothing else was sent to the host that asked for a minute
    soon = datetime.now(UTC) + timedelta(seconds=60)
    for result in results[1:10]:
        assert result.error_kind == "paused" and result.status is None
        assert result.error is not None and busy.key in result.error
        assert "Retry-After" in result.error
        assert result.retry_after is not None  # the source's schedule waits for it too
        assert abs((result.retry_after - soon).total_seconds()) < 3
    assert all(result.status == 200 for result in results[10:])
    paused = window_of(fetcher, busy).paused_until
    assert paused is not None and abs((paused - soon).total_seconds()) < 3

    # The pause outlives the Fetcher that heard it, for every Fetcher sharing the windows
    # (the daemon's passes), and no other host's.
    again = run(Fetcher(per_host=1, per_host_max=8, windows=windows), [busy.url(99), other.url(99)])
    assert again[0].error_kind == "paused" and again[1].status == 200
    assert len(busy.seen) == 1


def test_retry_after_as_an_http_date_on_503_pauses_the_host(servers: Servers) -> None:
    # Whole seconds on the wire: the pause ends at the date, whatever fraction is left now.
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    stamp = until.strftime("%a, %d %b %Y %H:%M:%S GMT")

    def unavailable(number: int) -> Reply:
        return Reply(503, 0, (("Retry-After", stamp),)) if number == 0 else Reply(200, 0.02)

    host = servers.add(unavailable)
    fetcher = Fetcher(per_host=1, per_host_max=4)

    async def go() -> list[FetchResult]:
        async with fetcher:
            first = await fetch_each(fetcher, [host.url(0)])
            return first + await fetch_each(fetcher, [host.url(n) for n in range(1, 4)])

    results = asyncio.run(go())
    assert results[0].status == 503 and results[0].retry_after == until
    assert [result.status for result in results[1:]] == [200, 200, 200]
    resumed = time.time() - (time.monotonic() - min(seen.arrived for seen in host.seen[1:]))
    assert resumed >= until.timestamp() - 0.05


def test_a_slow_host_shrinks_its_own_window_and_no_other(servers: Servers) -> None:
    slowing = servers.add(lambda number: Reply(200, 0.04 if number < 24 else 0.4))
    steady_host = servers.add(steady(0.04), address="127.0.0.2")
    fetcher = Fetcher(per_host=8, per_host_max=8, total=100)
    results = run(
        fetcher, [slowing.url(n) for n in range(36)] + [steady_host.url(n) for n in range(150)]
    )
    assert all(result.status == 200 for result in results)

    slow = window_of(fetcher, slowing)
    # Twelve slow answers, but only two windows' worth: halved once for each, 8 -> 4 -> 2.
    assert (slow.window, slow.halvings) == (2, 2)
    assert slow.best_latency is not None and slow.best_latency < 0.2
    assert first_burst(slowing, 32) == 4  # the round sent after the first halving

    fine = window_of(fetcher, steady_host)
    assert (fine.window, fine.halvings) == (8, 0)
    assert steady_host.max_in_flight == 8


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/feed.xml"


def test_5xx_timeouts_and_refused_connections_halve_429_too_404_does_not(
    servers: Servers,
) -> None:
    failing = servers.add(lambda number: Reply(500) if number < 4 else Reply(200, 0.1))
    hanging = servers.add(steady(5.0))
    missing = servers.add(steady(0, status=404))
    limited = servers.add(steady(0, status=429))  # no Retry-After: no pause
    refused = _refused_url()
    fetcher = Fetcher(per_host=8, per_host_max=8)

    async def one(url: str, timeout: float = 5.0) -> int:
        result = (await fetch_each(fetcher, [url], timeout))[0]
        assert result.error is not None  # each of these fails the fetch, halved or not
        return next(w.window for w in fetcher.host_windows() if url.startswith(f"http://{w.host}/"))

    async def go() -> dict[str, list[int]]:
        async with fetcher:
            windows = {
                "500": [await one(failing.url(n)) for n in range(4)],
                "timeout": [await one(hanging.url(n), timeout=0.3) for n in range(2)],
                "refused": [await one(refused) for _ in range(2)],
                "404": [await one(missing.url(n)) for n in range(2)],
                "429": [await one(limited.url(n)) for n in range(2)],
            }
            # Halved to one, the host gets one request at a time until it has answered well.
            await fetch_each(fetcher, [failing.url(n) for n in range(4, 10)])
            return windows

    windows = asyncio.run(go())
    assert windows == {
        "500": [4, 2, 1, 1],
        "timeout": [4, 2],
        "refused": [4, 2],
        "404": [8, 8],
        "429": [4, 2],
    }
    assert first_burst(failing, 4) == 1
    assert failing.max_in_flight < 8
    assert window_of(fetcher, limited).paused_until is None


def test_windows_learnt_in_one_pass_carry_to_the_next(servers: Servers) -> None:
    host = servers.add(steady(0.05))
    windows = HostWindows()
    run(Fetcher(per_host=2, per_host_max=8, windows=windows), [host.url(n) for n in range(40)])
    learnt = len(host.seen)
    run(Fetcher(per_host=2, per_host_max=8, windows=windows), [host.url(n) for n in range(16)])
    assert first_burst(host, learnt) == 8  # the next pass starts where the last one ended
    fresh = len(host.seen)
    run(Fetcher(per_host=2, per_host_max=8), [host.url(n) for n in range(16)])
    assert first_burst(host, fresh) == 2  # a Fetcher of its own starts over


def _scrape(metrics: DaemonMetrics) -> dict[tuple[str, str], float]:
    text = metrics.exposition()[0].decode()
    found = re.findall(r'^(aggregator_hosts?\w*)\{(\w+)="([^"]*)"\} (\S+)$', text, re.M)
    return {(name, label): float(value) for name, _, label, value in found}


def test_metrics_show_the_paused_and_busiest_hosts_windows(servers: Servers) -> None:
    hosts = [servers.add(steady(0.01)) for _ in range(HOST_SERIES + 5)]
    paused = servers.add(lambda _: Reply(429, 0, (("Retry-After", "60"),)))
    fetcher = Fetcher(per_host=2, per_host_max=16)
    urls = [host.url(n) for host in hosts for n in range(2)]
    run(fetcher, [*urls, hosts[0].url(99), paused.url(0)])
    metrics = DaemonMetrics("t")
    metrics.watch_hosts(fetcher.host_windows)
    scraped = _scrape(metrics)

    shown = {label for name, label in scraped if name == "aggregator_host_window"}
    assert len(shown) == HOST_SERIES  # bounded, however many hosts
    # The paused host is shown though it had the fewest requests, and the busiest one too.
    assert {paused.key, hosts[0].key} <= shown
    assert scraped["aggregator_host_window", paused.key] == 1  # 2, halved by the 429
    assert scraped["aggregator_host_window", hosts[0].key] == 5  # 2, +1 per clean answer
    until = scraped["aggregator_host_paused_until_timestamp_seconds", paused.key]
    assert abs(until - (time.time() + 60)) < 3
    assert scraped["aggregator_host_paused_until_timestamp_seconds", hosts[0].key] == 0
    assert scraped["aggregator_hosts", "paused"] == 1
    assert scraped["aggregator_hosts", "open"] == HOST_SERIES + 5
    assert scraped["aggregator_hosts", "held_back"] == 0
