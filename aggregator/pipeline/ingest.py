"""One source through one pass: fetch (or read), process in a worker, cluster, save.

I/O stays on the event loop, CPU work goes to worker processes, and every store call runs on
one writer thread, so a slow parse or a database write never stalls the fetches of others.
Fetches run at the network's pace; their bodies wait for the CPU stages in a WaitingRoom
(pipeline/waiting.py), whose places bound what is parsed and not saved yet. A source's
articles and its new state are saved in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from aggregator.config import Config, SourceConfig
from aggregator.errors import LeaseLostError, SourceError, describe
from aggregator.fetch import Fetcher
from aggregator.models import Article, Document, FetchRequest, FetchResult, SourceState
from aggregator.pipeline import process
from aggregator.pipeline.recipe import Processed, Recipe, body_digest
from aggregator.pipeline.report import Saved, SourceReport, Submitted
from aggregator.pipeline.waiting import WaitingRoom
from aggregator.pipeline.writer import GroupWriter
from aggregator.sources.schedule import failed, poll_url, succeeded
from aggregator.store import SaveResult, Store, StoreTransaction
from aggregator.urls import canonical_url

log = logging.getLogger("aggregator")

T = TypeVar("T")

INLINE_JOBS = 4  # documents a pass works on in-process before it starts the worker processes
# A pass expecting more bodies than this starts the worker processes at its first document: it
# will need them anyway, and work done in-process first would load the parse, clean and dedupe
# stages (lxml, nh3: tens of MB) into the main process for nothing.
LARGE_PASS = 64
# Fetched feeds between their parse and their save at most (unbounded, parsed articles would
# pile up in front of the store thread). The worker and the store take turns being the slower
# one, and 16 lets each run on while the other stalls (benchmarks/README.md).
BACKLOG = 16
# Fetched feeds waiting in memory for a place in the backlog; the others wait in files
# (pipeline/waiting.py): a pass fetches far faster than it parses, and more in memory ran no
# faster (benchmarks/README.md).
WAITING_IN_MEMORY = 4


@dataclass
class Ingest:
    """The machinery one pass shares between its sources."""

    config: Config
    store: Store
    fetcher: Fetcher
    # The worker processes, `workers(start)`: None when not running and start is false. A
    # small pass starts them once `inline_jobs` documents needed work: spawning two
    # interpreters costs more than parsing the one changed feed of a pass of 304s (see
    # inline_jobs_for). None: CPU work on threads.
    workers: Callable[[bool], Executor | None] | None
    writer: Executor  # one thread: every store call, in order
    now: datetime  # the pass's start (a test may set it); see _clock
    inline_jobs: int = INLINE_JOBS
    # Sources fetching at once at most; a source takes its turn before its first request and
    # gives it back with the answer, whatever is left of its work.
    turns: int = 50
    # Set (by a signal): a source not fetched yet, or fetched but still waiting for a place, is
    # left alone (still due: the next pass fetches it); those with a place finish and save.
    stop: threading.Event | None = None
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    _saves: GroupWriter = field(init=False)
    _waiting: WaitingRoom = field(
        default_factory=lambda: WaitingRoom(places=BACKLOG, in_memory=WAITING_IN_MEMORY)
    )
    _turns: asyncio.Semaphore = field(init=False)
    _started: float = field(default_factory=time.monotonic)
    # Source name: until when its lease holds, as last renewed (before that: as claimed).
    _leased_until: dict[str, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._saves = GroupWriter(self.store, self.writer)
        self._turns = asyncio.Semaphore(self.turns)

    def _clock(self) -> datetime:
        """Now, on the pass's clock: its start plus the time since. A source is scheduled from
        when it was fetched, not from when the pass began: a pass that stalled (a frozen
        process, a long backlog) must not leave it due again at once."""
        return self.now + timedelta(seconds=time.monotonic() - self._started)

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def close(self) -> None:
        """Let the last saves commit, then remove what the pass left behind (the folder of
        bodies waiting in files)."""
        try:
            await self._saves.settle()
        finally:
            self._waiting.close()

    @staticmethod
    def inline_jobs_for(chosen: Iterable[tuple[SourceConfig, SourceState]]) -> int:
        """How many documents a pass of these sources works on in-process: what counts is the
        bodies it expects (sources without validators send one), not the sources it asks. A
        re-pass of 1000 304s and one changed feed parses that one here rather than start a
        worker for it."""
        expected = sum(
            source.fetched and not (state.etag or state.last_modified) for source, state in chosen
        )
        return INLINE_JOBS if expected <= LARGE_PASS else 0

    async def source(self, source: SourceConfig, state: SourceState) -> SourceReport:
        """Fetch (or read), process and save one source; its report once the save commits
        (the shared transaction commits about once a second)."""
        with self._saves.expecting():
            try:
                submitted = await self._refresh(source, state)
            except Exception as error:  # whatever broke, it breaks this source alone
                log.debug("%s: failed", source.name, exc_info=True)
                submitted = await self._submit_failure(source, state, describe(error), None)
        try:
            report = await self._report(submitted)
        except LeaseLostError as error:  # another node has it now: its save, not ours, stands
            log.warning("%s: not saved: %s", source.name, error.reason)
            return SourceReport(source.name, held_by=error.holder)
        except Exception as error:  # its save was refused and rolled back
            log.debug("%s: save failed", source.name, exc_info=True)
            reason = f"store: {describe(error)}"
        else:
            if state.error_streak and not report.error and submitted.committed is not None:
                since = (
                    state.failing_since.isoformat(timespec="seconds")
                    if state.failing_since
                    else "-"
                )
                log.info(
                    "%s: recovered after %d failures (failing since %s)",
                    source.name,
                    state.error_streak,
                    since,
                )
            return report
        try:
            return await self._report(await self._submit_failure(source, state, reason, None))
        except Exception:  # the store cannot even take the failure: report it all the same
            log.exception("%s: failed, and its state could not be saved", source.name)
            return SourceReport(source.name, error=reason)

    async def _refresh(self, source: SourceConfig, state: SourceState) -> Submitted:
        """The whole job of one source, up to its save in the shared transaction."""
        recipe = Recipe.of(self.config, source)
        if not source.fetched:
            processed = await self._cpu(process.process_posts, source.path, recipe)
            return await self._submit(source, state, processed, None)

        async with self._turns:
            if self._stopping():
                return Submitted(SourceReport(source.name))  # still due: the next pass
            if self._lease_ran_out(state):
                log.warning(
                    "%s: not fetched: its lease ran out before its turn (was this node"
                    " stopped?); the node that claims it next fetches it",
                    source.name,
                )
                return Submitted(SourceReport(source.name))
            fetch = await self._fetch(source, state, poll_url(source.url or "", state))
        if fetch.error:
            return await self._submit_failure(source, state, fetch.error, fetch)
        if fetch.not_modified or fetch.document is None:
            return await self._submit_unchanged(source, state, fetch)

        if source.kind == "page":
            processed = await self._pages(source, fetch.document, recipe)
            return await self._submit(source, state, processed, fetch)

        digest = body_digest(fetch.document, recipe)
        if digest == state.body_digest:
            # A server that sends no validators (or ignores them) resent what was processed
            # last time: nothing in it can be new or changed.
            log.debug("%s: same body as last time", source.name)
            return await self._submit_unchanged(source, state, fetch)
        # From here the ticket alone holds the body: it may wait in a file. Its place is given
        # back once the save is in the transaction, before the commit.
        ticket = self._waiting.ticket(fetch.document)
        fetch = replace(fetch, document=None)
        try:
            async with ticket as document:
                if self._stopping():  # it waited: left for the next pass, which fetches it
                    return Submitted(SourceReport(source.name))
                processed = await self._cpu(process.process_feed, document, recipe)
                return await self._submit(source, state, processed, fetch, digest)
        except SourceError as error:  # its file could not be read back
            return await self._submit_failure(source, state, error.reason, fetch)

    async def _submit(
        self,
        source: SourceConfig,
        state: SourceState,
        processed: Processed,
        fetch: FetchResult | None,
        digest: str | None = None,
    ) -> Submitted:
        """Cluster and save what the CPU work made of a source; its error fails the source.
        `digest`: the body's (see recipe.body_digest), kept with the new state on success."""
        if processed.error:
            return await self._submit_failure(source, state, processed.error, fetch)
        interval = self.config.interval(source)
        new_state = succeeded(
            state, self._clock(), interval, fetch=fetch, configured_url=source.url
        )
        articles = list(processed.articles)
        undated = sum(not article.dated for article in articles)
        new_state = replace(
            new_state,
            body_digest=new_state.body_digest if digest is None else digest,
            skipped=len(processed.problems),
            undated=undated,
            limited=processed.limited,
        )

        # Imported on the first articles, not before: a pass of 304s never loads dedupe.
        from aggregator.pipeline.cluster import cluster  # noqa: PLC0415

        def cluster_and_save(transaction: StoreTransaction) -> SaveResult:
            clustered = cluster(self.config, transaction, articles)
            return transaction.save_articles(source.name, clustered, new_state)

        # What is kept for the report is its messages, not the articles: those are in the
        # transaction now, and its commit may be a second away.
        return Submitted(
            SourceReport(source.name, skipped=processed.problems),
            await self._saves.submit(cluster_and_save),
            saved=Saved(processed.notes, undated),
        )

    async def _submit_unchanged(
        self, source: SourceConfig, state: SourceState, fetch: FetchResult
    ) -> Submitted:
        interval = self.config.interval(source)
        unchanged = succeeded(
            state,
            self._clock(),
            interval,
            result="not modified",
            fetch=fetch,
            configured_url=source.url,
        )
        committed = await self._saves.submit(lambda transaction: transaction.save_state(unchanged))
        log.debug("%s: not modified", source.name)
        return Submitted(SourceReport(source.name, not_modified=True), committed)

    async def _submit_failure(
        self, source: SourceConfig, state: SourceState, error: str, fetch: FetchResult | None
    ) -> Submitted:
        new_state = failed(state, self._clock(), self.config.interval(source), error, fetch=fetch)
        committed = await self._saves.submit(lambda transaction: transaction.save_state(new_state))
        return Submitted(
            SourceReport(source.name, error=error), committed, next_try=new_state.next_fetch_at
        )

    async def _report(self, submitted: Submitted) -> SourceReport:
        """The source's report once what it submitted has committed, and its lines in the log."""
        result = await submitted.committed if submitted.committed is not None else None
        report = submitted.report
        if report.error:
            next_try = (
                submitted.next_try.isoformat(timespec="seconds") if submitted.next_try else "-"
            )
            log.error("%s: failed: %s (next try %s)", report.name, report.error, next_try)
        if submitted.saved is None or not isinstance(result, SaveResult):
            return report
        for message in submitted.saved.notes:
            log.info("%s: %s", report.name, message)
        for message in report.skipped:
            log.warning("%s: skipped %s", report.name, message)
        log.info(
            "%s: %d new, %d changed, %d skipped, %d undated (dated when first seen)",
            report.name,
            len(result.new),
            len(result.changed),
            len(report.skipped),
            submitted.saved.undated,
        )
        return replace(
            report,
            new=len(result.new),
            changed=len(result.changed),
            touched_tags=result.touched_tags,
        )

    async def _pages(self, source: SourceConfig, listing: Document, recipe: Recipe) -> Processed:
        """A listing page: fetch each article it links that this source has not stored yet."""
        from aggregator.parse import find_article_links  # noqa: PLC0415 - lxml only when needed

        links = find_article_links(listing, source.selector or "a")
        known = await self._db(
            self.store.known_keys, source.name, [canonical_url(u) for u in links]
        )
        fresh = [link for link in links if canonical_url(link) not in known]
        results = await asyncio.gather(
            *(self._fetch(source, SourceState(name=source.name), link) for link in fresh)
        )
        jobs = []
        problems: list[str] = []
        for link, result in zip(fresh, results, strict=True):
            if result.document is None:
                problems.append(f"{link}: {result.error or 'no body'}")
            else:
                jobs.append(self._cpu(process.process_article_page, result.document, recipe))
        articles: list[Article] = []
        limited = 0
        for processed in await asyncio.gather(*jobs):
            articles.extend(processed.articles)
            problems.extend(processed.problems)
            limited += processed.limited
        return Processed(tuple(articles), tuple(problems), limited=limited)

    async def _fetch(self, source: SourceConfig, state: SourceState, url: str) -> FetchResult:
        return await self.fetcher.fetch(
            FetchRequest(
                source=source.name,
                url=url,
                etag=state.etag,
                last_modified=state.last_modified,
                timeout=self.config.timeout(source).total_seconds(),
                max_bytes=self.config.max_bytes(source),
                private_network=source.private_network,
                user_agent=self.config.user_agent(source),
            )
        )

    async def renew_leases(self, node: str, tokens: dict[str, int], lease: timedelta) -> None:
        """Extend the leases `node` holds (name: fencing token) by `lease` from now, in the
        shared transaction; a lease another node took meanwhile is left alone."""
        until = self._clock() + lease
        try:
            committed = await self._saves.submit(
                lambda transaction: transaction.renew(node, tokens, until)
            )
            renewed = await committed
        except Exception:  # the next renewal tries again; the leases still hold until then
            log.debug("renewing leases failed", exc_info=True)
            return
        for name in renewed:
            self._leased_until[name] = until

    def _lease_ran_out(self, state: SourceState) -> bool:
        """Whether this node's lease on the source may have run out (the process was stopped
        longer than a lease): another node may be fetching it, so this one must not."""
        if state.claimed_by is None:
            return False
        until = self._leased_until.get(state.name, state.claimed_until)
        return until is not None and self._clock() >= until

    async def _cpu(self, job: process.Job, *args: object) -> Processed:
        """`job(*args)` in a worker process, or on a thread here (see `workers`)."""
        if self.workers is None:
            return await asyncio.to_thread(process.run_job, job, *args)
        pool = self.workers(self.inline_jobs <= 0)
        if pool is None:
            self.inline_jobs -= 1
            return await asyncio.to_thread(process.run_job, job, *args)
        return await self._loop.run_in_executor(pool, process.run_job, job, *args)

    async def _db(self, function: Callable[..., T], *args: object) -> T:
        return await self._loop.run_in_executor(self.writer, function, *args)
