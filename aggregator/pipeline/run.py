"""A pass: choose the due sources, ingest them concurrently, render the feeds."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import multiprocessing
import os
import socket
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from aggregator.config import Config, SourceConfig
from aggregator.fetch import Fetcher, shared_windows
from aggregator.models import SourceState
from aggregator.nodes import node_name
from aggregator.pipeline.claims import claim_due, claim_named, keep_leases
from aggregator.pipeline.ingest import Ingest
from aggregator.pipeline.report import SourceReport
from aggregator.pipeline.worker import start_worker
from aggregator.sources.schedule import health
from aggregator.store import Store

__all__ = [
    "PassReport",
    "SourceReport",
    "open_store",
    "run_pass",
    "run_pass_async",
    "shared_windows",
]

log = logging.getLogger("aggregator")

_workers: ProcessPoolExecutor | None = None
_exit_registered = False


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
    only: Collection[str] | None = None,
) -> PassReport:
    """Ingest every enabled source that is not backing off, then re-render the feeds.

    `due_only` (the daemon): only sources whose next_fetch_at has come. Either way only what
    changed is rendered: the feeds of the tags the pass touched, the index when a source's
    health moved, everything when the config is newer than the output. `stop` (set by a
    signal) lets sources in flight finish and starts no more; `progress` hears (sources done,
    sources chosen). `only`: these sources alone (`aggregator fetch NAME`); what changed is
    still rendered from the whole config.
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
            only=only,
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
    only: Collection[str] | None = None,
) -> PassReport:
    def clock() -> datetime:
        return now or datetime.now(UTC)

    started = clock()
    chosen: list[tuple[SourceConfig, SourceState]] = []
    reports: list[SourceReport] = []
    while True:
        if due_only and not retry_failed and only is None:
            # The daemon: a bounded batch, and another as long as batches come back full.
            claimed = claim_due(config, store, clock())
        else:
            claimed = claim_named(config, store, started, retry_failed=retry_failed, only=only)
        reports += claimed.held
        chosen += claimed.chosen
        if claimed.chosen:
            reports += await _ingest_all(
                config,
                store,
                claimed.chosen,
                lease=claimed.lease,
                now=clock(),
                stop=stop,
                progress=progress,
                transport=transport,
            )
        if not claimed.more or (stop is not None and stop.is_set()):
            break
    if stop is not None and stop.is_set():  # leases of sources it never got to, given back
        store.release(node_name(), [state for _, state in chosen])
    # The workers' part is over. Between the daemon's passes an idle worker would hold 60 MB
    # for nothing (most passes are small enough to run in-process: INLINE_JOBS); in any pass,
    # it would still hold them while the feeds are rendered, the main process's peak.
    _stop_workers()
    report = PassReport(sources=tuple(reports))
    if chosen:
        before = {state.name: state for _, state in chosen}
        after = store.source_states(list(before))
        if _health_moved(config, before, after, started):
            store.health_changed()  # every node's index, this one's too
    # What the store changed since this output folder last rendered: this pass's saves, and
    # any whose render a kill (or another node) left undone.
    newest, changed = store.changes_to_render(render_key(config))
    stale = changed is None or _output_stale(config)
    if stale or changed:
        # The renderer (feedgen, lxml) is imported only for a pass with something to render.
        from aggregator.pipeline.publish import publish  # noqa: PLC0415

        # Every feed when the output may not match the config; else the tags changed.
        touched = None if stale else (report.touched_tags | (changed or frozenset())) - {""}
        written = publish(config, store, touched)
        store.rendered(render_key(config), newest)
        if stale:
            _mark_up_to_date(config)
    else:
        written = ()  # nothing a reader or the status page would see has changed
    return PassReport(sources=report.sources, written=written)


async def _ingest_all(
    config: Config,
    store: Store,
    chosen: list[tuple[SourceConfig, SourceState]],
    *,
    lease: timedelta,
    now: datetime,
    stop: threading.Event | None,
    progress: Callable[[int, int], None] | None,
    transport: httpx.AsyncBaseTransport | None,
) -> list[SourceReport]:
    """Each claimed source through Ingest: local folders first, then the web concurrently."""
    reports: list[SourceReport] = []
    if progress is not None:
        progress(0, len(chosen))  # the whole count from the start, not from the first finished
    # Claimed and not finished yet: their leases are renewed while the pass works on them.
    pending = {state.name: state.claim_token for _, state in chosen}
    web = sum(source.fetched for source, _ in chosen)
    with ThreadPoolExecutor(1, thread_name_prefix="store") as writer:
        # Each host's window, learnt in earlier passes of this process, carries on.
        async with Fetcher(
            per_host=config.defaults.per_host,
            per_host_max=config.defaults.per_host_max,
            total=config.defaults.concurrency,
            transport=transport,
            windows=shared_windows(),
        ) as fetcher:
            ingest = Ingest(
                config,
                store,
                fetcher,
                _worker_pool if web else None,
                writer,
                now,
                inline_jobs=Ingest.inline_jobs_for(chosen),
                turns=config.defaults.concurrency,
                stop=stop,
            )
            done = 0
            renewing = asyncio.create_task(keep_leases(ingest, pending, lease))

            async def one(source: SourceConfig, state: SourceState) -> SourceReport:
                nonlocal done
                if stop is not None and stop.is_set():
                    return SourceReport(source.name)  # still due: the next start fetches it
                report = await ingest.source(source, state)
                pending.pop(source.name, None)
                done += 1
                if progress is not None:
                    progress(done, len(chosen))
                return report

            # Local folders first, one by one in config order, so which copy of a story comes
            # first (and speaks for it) does not depend on timing; then the web, concurrently.
            try:
                for source, state in chosen:
                    if not source.fetched:
                        reports.append(await one(source, state))
                reports += await asyncio.gather(
                    *(one(source, state) for source, state in chosen if source.fetched)
                )
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
                await ingest.close()
    return reports


def render_key(config: Config) -> str:
    """How the store knows this node's output folder (each node renders its own)."""
    return f"{socket.gethostname()}:{config.output.dir.resolve()}"


def _output_stale(config: Config) -> bool:
    """No index yet, or a config edited since it was written (a new title, base URL, or
    item limit changes every feed, not only the tags a pass touched)."""
    try:
        rendered = (config.output.dir / "index.html").stat().st_mtime
        return config.path.stat().st_mtime > rendered
    except OSError:
        return True


def _mark_up_to_date(config: Config) -> None:
    """After a full render: the index, maybe left as it was (same bytes), is now as new as the
    config, or every later pass would render everything again."""
    try:
        os.utime(config.output.dir / "index.html")
    except OSError as error:
        log.warning("cannot touch %s: %s", config.output.dir / "index.html", error)


def _health_moved(
    config: Config,
    before: dict[str, SourceState],
    after: Sequence[SourceState],
    now: datetime,
) -> bool:
    """Whether a source's line on the status page changed: its health, or its error."""
    now_states = {state.name: state for state in after}
    for source in config.sources:
        old, new = before.get(source.name), now_states.get(source.name)
        if health(old, now, enabled=source.enabled) != health(new, now, enabled=source.enabled):
            return True
        if (old and old.last_error) != (new and new.last_error):
            return True
    return False


def _worker_pool(start: bool = True) -> Executor | None:
    """Worker processes for parsing and cleaning, kept for the life of the process; None when
    they are not running yet and `start` is false."""
    global _workers, _exit_registered  # noqa: PLW0603 - one pool per process, on first need
    if _workers is None and start:
        # Registered once, not per pool: the daemon starts a pool in many passes, and each
        # registration would keep its stopped pool alive until exit.
        if not _exit_registered:
            atexit.register(_leave_workers)
            _exit_registered = True
        # spawn, not fork: the daemon's process has threads (uvicorn, the store writer).
        context = multiprocessing.get_context("spawn")
        _workers = ProcessPoolExecutor(
            max_workers=worker_count(),
            mp_context=context,
            initializer=start_worker,
            initargs=(os.getpid(),),
        )
    return _workers


def worker_count(cpus: int | None = None) -> int:
    """One worker process per core but the one the main process keeps busy: in a large pass
    it fetches, unpickles, clusters and writes a large share of the pass's CPU; on 2 cores a
    second worker made the first pass no faster and cost its RSS (benchmarks/README.md)."""
    return max(1, (cpus or os.cpu_count() or 2) - 1)


def _stop_workers() -> None:
    global _workers  # noqa: PLW0603 - see _worker_pool
    if _workers is not None:
        _workers.shutdown(wait=True)
        _workers = None


def _leave_workers() -> None:
    if _workers is not None:
        _workers.shutdown(wait=False, cancel_futures=True)
