"""The daemon: one asyncio loop that polls due sources on a local clock and serves the feeds.

The schedule of record is each source's next_fetch_at in the store; APScheduler only wakes the
loop every few seconds to run a pass over the sources that are due. Passes run in a worker
thread, so parsing and rendering never stall the HTTP server.

Signals, after rq's worker: the first SIGTERM or SIGINT lets the sources in flight finish and
commit, starts no more, and exits 0; a second one exits at once. SIGHUP reloads the config.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from aggregator.config import Config, format_duration
from aggregator.daemon.metrics import DaemonMetrics, Nodes
from aggregator.daemon.notify import Notifier, watchdog_period
from aggregator.daemon.reload import apply_intervals, reloaded
from aggregator.pipeline.publish import recover
from aggregator.pipeline.run import PassReport, open_store, run_pass, shared_windows
from aggregator.serve import HealthStatus, create_app, log_accept_errors, server_config
from aggregator.sources.schedule import health
from aggregator.store import Store

log = logging.getLogger("aggregator")

MAX_TICK_SECONDS = 1.0
MIN_TICK_SECONDS = 0.5
SUMMARY_SECONDS = 10.0
STOP_GRACE_SECONDS = 8.0  # in-flight sources get this long; systemd waits 10 s for the exit
STUCK_PASS_SECONDS = 30 * 60  # a pass running longer stops the watchdog: systemd restarts us
EXIT_FORCED = 1


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon owns SIGTERM, SIGINT and SIGHUP."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def shortest_interval(config: Config) -> float | None:
    """Seconds between two fetches of the most frequent enabled source; None without any."""
    intervals = [config.interval(source) for source in config.sources if source.enabled]
    return min(intervals).total_seconds() if intervals else None


def tick_seconds(config: Config) -> float:
    """How often to look for due sources: each second (a tick with nothing due is one indexed
    query), or every half second when an interval is that short."""
    shortest = shortest_interval(config) or timedelta(minutes=15).total_seconds()
    return max(MIN_TICK_SECONDS, min(MAX_TICK_SECONDS, shortest / 4))


def _summarise(config: Config, store: Store) -> tuple[list[str], Nodes]:
    """The sources failing now, and the sources per node (fetched last, held now)."""
    now = datetime.now(UTC)
    # Only sources with an error streak can be failing: those are read, not all.
    troubled = {state.name: state for state in store.troubled_states()}
    failing = [
        source.name
        for source in config.sources
        if source.name in troubled
        and health(troubled[source.name], now, enabled=source.enabled)
        in ("failing", "backing off", "dead")
    ]
    fetched_by, claims = store.node_counts(now)
    return failing, Nodes(fetched_by=fetched_by, claims=claims)


def run_daemon(config: Config) -> int:
    """Serve and poll until a signal; the exit status."""
    return asyncio.run(Daemon(config).run())


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = DaemonMetrics(config.output.title)
        self.notifier = Notifier.from_environment()
        self._stop = threading.Event()  # seen by the pass thread between sources
        self._stopping = asyncio.Event()
        self._pending: Config | None = None  # a reloaded config, applied before the next pass
        self._pass: asyncio.Future[tuple[PassReport, list[str], Nodes]] | None = None
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        executor_log = logging.getLogger("apscheduler.executors.default")
        if not executor_log.isEnabledFor(logging.INFO):
            # "skipped: maximum number of running instances" each tick of a long pass is noise.
            executor_log.setLevel(logging.ERROR)
        self._store: Store | None = None
        self._reloads: set[asyncio.Task[None]] = set()
        self._summary: tuple[float, list[str], Nodes] | None = None  # when, failing, nodes

    async def run(self) -> int:
        config = self.config
        loop = asyncio.get_running_loop()
        self._store = store = await asyncio.to_thread(open_store, config)
        try:
            written = await asyncio.to_thread(recover, config, store)
            log.info("startup: %d feed files brought up to date", len(written))
            server_settings, guard = server_config(
                create_app(config.output.dir, health=self.health, metrics=self.metrics.exposition),
                host=config.server.host,
                port=config.server.port,
                log_level="warning",
                log_config=None,  # uvicorn's warnings go through our one-line format
                access_log=False,
                timeout_graceful_shutdown=1,
            )
            log_accept_errors(loop, guard)
            self.metrics.watch_server(guard.stats)
            self.metrics.watch_hosts(shared_windows().snapshot)
            server = _Server(server_settings)
            serving = asyncio.create_task(_serve(server))
            while not server.started and not serving.done():
                await asyncio.sleep(0.02)
            if not server.started:
                log.error(
                    "cannot serve on %s:%d (see above)", config.server.host, config.server.port
                )
                return EXIT_FORCED
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_stop, signum)
            loop.add_signal_handler(signal.SIGHUP, self._on_reload)
            # Staleness counts from the first tick: start-up's recovery render is not late.
            self.metrics.started = time.monotonic()
            self._schedule()
            log.info(
                "serving %s on http://%s:%d/ (at most %d connections)",
                config.output.dir,
                config.server.host,
                config.server.port,
                guard.cap,
            )
            self._count_sources(config)
            self.notifier.ready(self.metrics.summary())
            watchdog = asyncio.create_task(self._watchdog())
            await self._stopping.wait()
            return await self._shutdown(server, serving, watchdog)
        finally:
            store.close()

    # -- the clock ------------------------------------------------------------------------

    def _schedule(self) -> None:
        # A tick that finds the last pass still running is skipped, by design (max_instances=1):
        # APScheduler's warning for each is noise. A pass longer than an interval is worth a
        # line, and _tick says it.
        logging.getLogger("apscheduler.scheduler").addFilter(_NotTheSkippedTick())
        self._scheduler.add_job(
            self._tick,
            "interval",
            seconds=tick_seconds(self.config),
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            id="poll",
        )
        self._scheduler.start()

    async def _tick(self) -> None:
        if self._stop.is_set() or self._store is None:
            return
        if self._pending is not None:
            config, self._pending = self._pending, None
            await asyncio.to_thread(apply_intervals, self.config, config, self._store)
            self.config = config
            self._count_sources(config)
        loop = asyncio.get_running_loop()
        config, store = self.config, self._store
        self.metrics.pass_started = started = time.monotonic()
        self._pass = loop.run_in_executor(None, self._one_pass, config, store)
        try:
            report, failing, nodes = await asyncio.shield(self._pass)
        except asyncio.CancelledError:
            return  # shutting down: _shutdown waits for the pass itself
        except Exception as error:
            log.exception("pass failed")
            self.metrics.pass_failed(error)
            return
        finally:
            self.metrics.pass_started = None
        seconds = time.monotonic() - started
        self.metrics.passed(report, seconds, failing, nodes)
        interval = self.metrics.interval
        if interval is not None and seconds > interval:
            log.warning(
                "pass took %s, longer than the shortest interval (%s): sources are fetched late",
                format_duration(timedelta(seconds=round(seconds))),
                format_duration(timedelta(seconds=interval)),
            )
        if report.sources:
            log.info(
                "pass: %d sources, %d new, %d failed, %d files written in %.1f s",
                len(report.sources),
                report.new,
                len(report.failed),
                len(report.written),
                seconds,
            )
        if report.new or report.failed or report.written:
            self.notifier.status(self.metrics.summary())

    def _one_pass(self, config: Config, store: Store) -> tuple[PassReport, list[str], Nodes]:
        report = run_pass(config, store, due_only=True, stop=self._stop)
        _give_back_memory()
        # The failing list and the node counts scan every source: for /metrics and the
        # status line, every few seconds is current enough, but at once when this pass made
        # a source fail or fetched one that was failing.
        if (
            self._summary is None
            or report.failed
            or time.monotonic() - self._summary[0] >= SUMMARY_SECONDS
            or any(source.name in self._summary[1] for source in report.sources)
        ):
            self._summary = (time.monotonic(), *_summarise(config, store))
        _, failing, nodes = self._summary
        return report, failing, nodes

    def _count_sources(self, config: Config) -> None:
        self.metrics.sources = sum(source.enabled for source in config.sources)
        self.metrics.interval = shortest_interval(config)

    # -- health -----------------------------------------------------------------------------

    def health(self) -> tuple[HealthStatus, dict[str, Any]]:
        """/healthz: failing (503) when unhealthy, degraded while the feeds may go stale."""
        return self.metrics.health(healthy=self.healthy())

    def healthy(self) -> bool:
        return (
            not self._stopping.is_set()
            and self._scheduler.running
            and not self.metrics.stuck(STUCK_PASS_SECONDS)
        )

    async def _watchdog(self) -> None:
        period = watchdog_period()
        if period is None:
            return
        while True:
            await asyncio.sleep(period.total_seconds())
            # A blocked loop never gets here; a stuck pass or a dead scheduler says so.
            if self.healthy():
                self.notifier.watchdog()
            else:
                log.error("unhealthy: not petting the watchdog (a pass is stuck?)")

    # -- signals ----------------------------------------------------------------------------

    def _on_stop(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stopping.is_set():
            log.warning("%s again: exiting now", name)
            self.notifier.stopping("exiting at once")
            _flush_and_exit(EXIT_FORCED)
        log.info("%s: finishing the sources in flight, then exiting (again: exit now)", name)
        self._stop.set()
        self._stopping.set()
        self.notifier.stopping("stopping: finishing the sources in flight")

    def _on_reload(self) -> None:
        # Held until done: a task nobody references may be collected mid-way.
        task = asyncio.get_running_loop().create_task(self._reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reload(self) -> None:
        """Whatever goes wrong, the running config stays, the failure is counted and logged,
        and systemd hears READY again."""
        self.notifier.send(RELOADING="1", STATUS="reloading the config")
        loaded: Config | None = None
        try:
            loaded = await asyncio.to_thread(reloaded, self.config)
            if loaded is not None:
                self._pending = loaded
                job = self._scheduler.get_job("poll")
                if job is not None:
                    job.reschedule("interval", seconds=tick_seconds(loaded))
                    job.modify(next_run_time=datetime.now(UTC))
        except Exception:
            log.exception("reload failed; the running config stays")
            loaded = None
        finally:
            self.metrics.reloads.labels("error" if loaded is None else "ok").inc()
            self.notifier.send(READY="1", STATUS=self.metrics.summary())

    async def _shutdown(
        self, server: uvicorn.Server, serving: asyncio.Task[None], watchdog: asyncio.Task[None]
    ) -> int:
        self._scheduler.shutdown(wait=False)
        watchdog.cancel()
        if self._pass is not None and not self._pass.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._pass), STOP_GRACE_SECONDS)
            except TimeoutError:
                # Each source commits in one transaction, so leaving now loses nothing that
                # was committed; the sources cut short are still due and run at the next start.
                log.warning("sources still in flight after %.0f s: leaving", STOP_GRACE_SECONDS)
                _flush_and_exit(0)
            except Exception:
                log.debug("the last pass failed (logged above); stopping anyway")
        server.should_exit = True
        try:
            await asyncio.wait_for(serving, 2)
        except TimeoutError:
            server.force_exit = True
        log.info("stopped")
        return 0


class _NotTheSkippedTick(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in record.getMessage()


async def _serve(server: uvicorn.Server) -> None:
    # uvicorn answers a socket it cannot bind with sys.exit(3), which would escape the loop.
    with contextlib.suppress(SystemExit):
        await server.serve()


def _flush_and_exit(status: int) -> None:
    # os._exit: worker threads blocked in a fetch must not hold the process past the deadline.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(status)


def _give_back_memory() -> None:
    """Return the heap a pass freed to the system. glibc keeps freed memory for reuse, so an
    idle daemon would go on holding the peak of its last pass (tens of MB of bodies and
    articles); malloc_trim gives it back. Elsewhere than glibc, nothing to do."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
