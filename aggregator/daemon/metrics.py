"""What the daemon has done, for /metrics (Prometheus text), /healthz and systemd's STATUS=.

One registry per daemon rather than prometheus_client's global one, so a test can run several.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from aggregator.pipeline.run import PassReport

if TYPE_CHECKING:
    from aggregator.serve import GuardStats, HealthStatus

_PASS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# /healthz says degraded when no pass has completed for this many of the shortest interval.
STALE_INTERVALS = 2
# Hosts with a series of their own: a config of 50,000 feeds may name 20,000 hosts, and each
# would be a series in every scrape. The paused and held-back ones first (what an operator
# looks for), then the busiest (where a window matters most); the rest only in the counts.
HOST_SERIES = 20


class HostView(Protocol):
    """One host's fetch window as the fetcher shows it (aggregator.fetch.HostWindow)."""

    @property
    def host(self) -> str: ...
    @property
    def window(self) -> int: ...
    @property
    def paused_until(self) -> datetime | None: ...
    @property
    def requests(self) -> int: ...
    @property
    def held_back(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Nodes:
    """Sources per node of the store: by who read them last, and by who holds a lease now."""

    fetched_by: Mapping[str, int]
    claims: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class LastPass:
    finished: datetime
    seconds: float
    sources: int
    new: int
    changed: int
    failed: int
    written: int


@dataclass
class DaemonMetrics:
    title: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    last_pass: LastPass | None = None
    failing: tuple[str, ...] = ()  # sources whose last fetch failed
    sources: int = 0  # enabled sources in the running config
    pass_started: float | None = None  # monotonic, while a pass runs
    interval: float | None = None  # seconds, the shortest of an enabled source; None: none
    started: float = field(default_factory=time.monotonic)
    # monotonic: when a pass (or a tick that found nothing due) last returned without raising
    last_completed: float | None = None
    pass_error: str | None = None  # why the last pass raised; None once one completes

    def __post_init__(self) -> None:
        # *_created series double the output and no dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        registry = self.registry
        self.fetches = Counter(
            "aggregator_fetches", "Sources fetched, by result.", ["result"], registry=registry
        )
        self.items = Counter(
            "aggregator_items", "Articles stored, new or changed.", ["kind"], registry=registry
        )
        self.skipped = Counter(
            "aggregator_entries_skipped", "Malformed posts or entries skipped.", registry=registry
        )
        self.errors = Counter(
            "aggregator_errors", "Failures, by where they happened.", ["where"], registry=registry
        )
        self.files = Counter(
            "aggregator_files_written", "Output files rewritten.", registry=registry
        )
        self.durations = Histogram(
            "aggregator_pass_duration_seconds",
            "Wall time of one pass over the due sources.",
            buckets=_PASS_BUCKETS,
            registry=registry,
        )
        self.last_pass_time = Gauge(
            "aggregator_last_pass_timestamp_seconds",
            "When the last pass finished (Unix time).",
            registry=registry,
        )
        self.failing_gauge = Gauge(
            "aggregator_sources_failing", "Sources whose last fetch failed.", registry=registry
        )
        self.by_node = Gauge(
            "aggregator_sources_fetched_by",
            "Sources by the node whose pass read them last (several nodes on one store).",
            ["node"],
            registry=registry,
        )
        self.claims = Gauge(
            "aggregator_source_claims",
            "Sources a node holds a lease on now, to fetch them.",
            ["node"],
            registry=registry,
        )
        self.reloads = Counter(
            "aggregator_config_reloads", "SIGHUP reloads, by result.", ["result"], registry=registry
        )
        # Every label value known up front is shown at 0 from the start: a series that appears
        # only on its first event breaks rate() and alerts such as `reloads{result="error"} > 0`.
        for result in ("ok", "not_modified", "error", "held"):
            self.fetches.labels(result)
        for kind in ("new", "changed"):
            self.items.labels(kind)
        for where in ("source", "pass"):
            self.errors.labels(where)
        for result in ("ok", "error"):
            self.reloads.labels(result)

    def passed(
        self,
        report: PassReport,
        seconds: float,
        failing: Sequence[str],
        nodes: Nodes | None = None,
    ) -> None:
        self.last_completed = time.monotonic()
        self.pass_error = None
        self.failing = tuple(failing)
        self.failing_gauge.set(len(failing))
        if nodes is not None:
            for gauge, counts in ((self.by_node, nodes.fetched_by), (self.claims, nodes.claims)):
                gauge.clear()
                for node, count in counts.items():
                    gauge.labels(node).set(count)
        if not report.sources:
            return  # a tick that found nothing due is not a pass
        for source in report.sources:
            if source.held_by:
                self.fetches.labels("held").inc()
            elif source.error:
                self.fetches.labels("error").inc()
                self.errors.labels("source").inc()
            elif source.not_modified:
                self.fetches.labels("not_modified").inc()
            elif source.backing_off_until is None:
                self.fetches.labels("ok").inc()
            self.skipped.inc(len(source.skipped))
        self.items.labels("new").inc(report.new)
        self.items.labels("changed").inc(sum(source.changed for source in report.sources))
        self.files.inc(len(report.written))
        self.durations.observe(seconds)
        self.last_pass_time.set(time.time())
        self.last_pass = LastPass(
            finished=datetime.now(UTC),
            seconds=seconds,
            sources=len(report.sources),
            new=report.new,
            changed=sum(source.changed for source in report.sources),
            failed=len(report.failed),
            written=len(report.written),
        )

    def pass_failed(self, error: BaseException) -> None:
        self.errors.labels("pass").inc()
        self.pass_error = str(error) or type(error).__name__

    def watch_server(self, stats: Callable[[], GuardStats]) -> None:
        """Exports the HTTP server's connection counts, read at each scrape."""
        self.registry.register(_ServerCollector(stats))

    def watch_hosts(self, windows: Callable[[], Iterable[HostView]]) -> None:
        """Exports the fetcher's per-host windows, read at each scrape."""
        self.registry.register(_HostCollector(windows))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def stuck(self, limit: float) -> bool:
        started = self.pass_started
        return started is not None and time.monotonic() - started > limit

    def problems(self) -> list[str]:
        """Why the daemon is degraded: it serves, but its feeds may be going stale."""
        found: list[str] = []
        if self.pass_error is not None:
            found.append(f"the last pass failed: {self.pass_error}")
        if self.interval is not None:
            since = time.monotonic() - (self.last_completed or self.started)
            limit = STALE_INTERVALS * self.interval
            if since > limit:
                found.append(
                    f"no pass has completed for {since:.0f} s "
                    f"({STALE_INTERVALS} intervals are {limit:.0f} s)"
                )
        return found

    def health(self, *, healthy: bool) -> tuple[HealthStatus, dict[str, Any]]:
        """The status of /healthz and its details. `ok` is false only when failing (503)."""
        last = self.last_pass
        problems = self.problems()
        status: HealthStatus = "failing" if not healthy else "degraded" if problems else "ok"
        return status, {
            "ok": healthy,
            "problems": problems,
            "sources": self.sources,
            "failing_sources": list(self.failing),
            "pass_running": self.pass_started is not None,
            "last_pass": None
            if last is None
            else {
                "finished": last.finished.isoformat(timespec="seconds"),
                "seconds": round(last.seconds, 3),
                "sources": last.sources,
                "new": last.new,
                "changed": last.changed,
                "failed": last.failed,
                "files_written": last.written,
            },
        }

    def summary(self) -> str:
        """One line for systemd's STATUS= (shown by `systemctl status`)."""
        text = f"{self.title}: {self.sources} sources, {len(self.failing)} failing"
        last = self.last_pass
        if last is not None:
            text += (
                f"; last pass {last.finished:%H:%M:%S} UTC in {last.seconds:.1f}s: "
                f"{last.new} new, {last.changed} changed, {last.failed} failed"
            )
        return text


class _ServerCollector(Collector):
    def __init__(self, stats: Callable[[], GuardStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield GaugeMetricFamily(
            "aggregator_http_connections", "Open HTTP connections.", value=stats.open
        )
        yield GaugeMetricFamily(
            "aggregator_http_connections_max",
            "Connections the server keeps open at most (sized from the open-files limit).",
            value=stats.cap,
        )
        closed = CounterMetricFamily(
            "aggregator_http_connections_closed",
            "Connections the server closed early, by reason.",
            labels=["reason"],
        )
        for reason, count in stats.closed.items():
            closed.add_metric([reason], count)
        yield closed
        yield CounterMetricFamily(
            "aggregator_http_accept_errors",
            "Failed accept() calls (EMFILE and the like).",
            value=stats.accept_errors,
        )


class _HostCollector(Collector):
    def __init__(self, windows: Callable[[], Iterable[HostView]]) -> None:
        self._windows = windows

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        hosts = [
            (host.paused_until is not None and host.paused_until > now, host)
            for host in self._windows()
        ]
        paused = sum(is_paused for is_paused, _ in hosts)
        held_back = sum(host.held_back and not is_paused for is_paused, host in hosts)
        counts = GaugeMetricFamily(
            "aggregator_hosts",
            "Hosts fetched from lately, by state: paused (they sent Retry-After), held_back "
            "(window halved and not grown back yet), open.",
            labels=["state"],
        )
        counts.add_metric(["paused"], paused)
        counts.add_metric(["held_back"], held_back)
        counts.add_metric(["open"], len(hosts) - paused - held_back)
        yield counts
        shown = sorted(
            hosts, key=lambda pair: (pair[0], pair[1].held_back, pair[1].requests), reverse=True
        )[:HOST_SERIES]
        window = GaugeMetricFamily(
            "aggregator_host_window",
            f"Requests a host may have in flight now; the {HOST_SERIES} paused, held-back or "
            "busiest hosts.",
            labels=["host"],
        )
        until = GaugeMetricFamily(
            "aggregator_host_paused_until_timestamp_seconds",
            "Until when (Unix time) a host asked for no requests (Retry-After); 0: not paused.",
            labels=["host"],
        )
        for is_paused, host in shown:
            window.add_metric([host.host], host.window)
            stamp = host.paused_until.timestamp() if is_paused and host.paused_until else 0
            until.add_metric([host.host], stamp)
        yield window
        yield until
