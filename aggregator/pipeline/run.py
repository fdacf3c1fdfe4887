"""A pass: choose the due sources, ingest them concurrently, render the feeds."""

from __future__ import annotations

import asyncio
import atexit
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from aggregator.config import Config, SourceConfig
from aggregator.fetch import Fetcher
from aggregator.models import SourceState
from aggregator.pipeline.ingest import Ingest, SourceReport
from aggregator.pipeline.publish import publish
from aggregator.schedule import is_backing_off, is_due
from aggregator.store import Store

__all__ = ["PassReport", "SourceReport", "open_store", "publish", "run_pass", "run_pass_async"]

log = logging.getLogger("aggregator")

_workers: ProcessPoolExecutor | None = None


@dataclass(frozen=True, slots=True)
class PassReport:
    sources: tuple[SourceReport, ...] = ()
    written: tuple[Path, ...] = ()

    @property
    def touched_tags(self) -> frozenset[str]:
        return frozenset().union(*(report.touched_tags for report in self.sources))

    @property
    def new(self) -> int:
        return sum(report.new for report in self.sources)

    @property
    def failed(self) -> tuple[SourceReport, ...]:
        return tuple(report for report in self.sources if report.error)

    @property
    def skipped(self) -> int:
        return sum(len(report.skipped) for report in self.sources)


def open_store(config: Config) -> Store:
    store = Store(config.store.url)
    store.migrate()
    return store


def run_pass(
    config: Config,
    store: Store,
    *,
    retry_failed: bool = False,
    due_only: bool = False,
    now: datetime | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PassReport:
    """Ingest every enabled source that is not backing off, then re-render the feeds.

    `due_only` (the daemon): only sources whose next_fetch_at has come, and feeds are rendered
    only when something changed or nothing was rendered yet, and then only the feeds of the tags
    the pass touched. `stop` (set by a signal) lets sources in flight finish and starts no
    more; `progress` hears (sources done, sources chosen).
    """
    return asyncio.run(
        run_pass_async(
            config,
            store,
            retry_failed=retry_failed,
            due_only=due_only,
            now=now,
            stop=stop,
            progress=progress,
        )
    )


async def run_pass_async(
    config: Config,
    store: Store,
    *,
    retry_failed: bool = False,
    due_only: bool = False,
    now: datetime | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PassReport:
    now = now or datetime.now(UTC)
    states = {state.name: state for state in store.source_states()}
    chosen: list[tuple[SourceConfig, SourceState]] = []
    reports: list[SourceReport] = []
    for source in config.sources:
        if not source.enabled:
            continue
        state = states.get(source.name) or SourceState(name=source.name)
        if retry_failed:
            chosen.append((source, state))
        elif state.disabled_reason:
            log.warning("%s: disabled: %s", source.name, state.disabled_reason)
        elif is_backing_off(state, now):
            if not due_only:
                log.warning(
                    "%s: backing off after %d failures; next try %s (--retry-failed tries now)",
                    source.name,
                    state.error_streak,
                    state.next_fetch_at,
                )
                reports.append(SourceReport(source.name, backing_off_until=state.next_fetch_at))
        elif not due_only or is_due(state, now):
            chosen.append((source, state))
    web = any(source.kind != "posts" for source, _ in chosen)
    with ThreadPoolExecutor(1, thread_name_prefix="store") as writer:
        async with Fetcher(
            per_host=config.defaults.per_host,
            total=config.defaults.concurrency,
            transport=transport,
        ) as fetcher:
            ingest = Ingest(config, store, fetcher, _worker_pool if web else None, writer, now)
            # Backpressure: fetched bodies and parsed articles wait for the one store thread,
            # so only as many sources are in flight as may fetch at once.
            gate = asyncio.Semaphore(config.defaults.concurrency)

            done = 0

            async def one(source: SourceConfig, state: SourceState) -> SourceReport:
                nonlocal done
                if stop is not None and stop.is_set():
                    return SourceReport(source.name)  # still due: the next start fetches it
                report = await ingest.source(source, state)
                done += 1
                if progress is not None:
                    progress(done, len(chosen))
                return report

            async def gated(source: SourceConfig, state: SourceState) -> SourceReport:
                async with gate:
                    return await one(source, state)

            # Local folders first, one by one in config order, so which copy of a story comes
            # first (and speaks for it) does not depend on timing; then the web, concurrently.
            for source, state in chosen:
                if source.kind == "posts":
                    reports.append(await one(source, state))
            reports += await asyncio.gather(
                *(gated(source, state) for source, state in chosen if source.kind != "posts")
            )
    changed = any(report.new or report.changed or report.error for report in reports)
    needs_render = not due_only or changed or not (config.output.dir / "index.html").exists()
    report = PassReport(sources=tuple(reports))
    touched = report.touched_tags if due_only else None
    written = publish(config, store, touched) if needs_render else ()
    return PassReport(sources=report.sources, written=written)


def _worker_pool() -> Executor:
    """Worker processes for parsing and cleaning, kept for the life of the process."""
    global _workers  # noqa: PLW0603 - one pool per process, started on first need
    if _workers is None:
        # spawn, not fork: the daemon's process has threads (uvicorn, the store writer).
        context = multiprocessing.get_context("spawn")
        _workers = ProcessPoolExecutor(max_workers=os.cpu_count() or 2, mp_context=context)
        atexit.register(_workers.shutdown, wait=False, cancel_futures=True)
    return _workers
