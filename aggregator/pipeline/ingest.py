"""One source through one pass: fetch (or read), process in a worker, cluster, save.

I/O stays on the event loop, CPU work goes to worker processes, and every store call runs on
one writer thread, so a slow parse or a database write never stalls the fetches of others.
Fetches run at the network's pace; their bodies wait for the CPU stages in a WaitingRoom
(pipeline/waiting.py), whose places bound what is parsed and not saved yet. A source's
articles and its new state are saved in one transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from aggregator import __version__
from aggregator.config import Config, SourceConfig
from aggregator.errors import SourceError, describe
from aggregator.fetch import Fetcher
from aggregator.models import Article, Document, FetchRequest, FetchResult, SourceState
from aggregator.pipeline.recipe import Processed, Recipe, run_job
from aggregator.pipeline.waiting import WaitingRoom
from aggregator.pipeline.writer import GroupWriter
from aggregator.sources.schedule import failed, poll_url, succeeded
from aggregator.store import SaveResult, Store, StoreTransaction
from aggregator.urls import canonical_url

log = logging.getLogger("aggregator")

T = TypeVar("T")
# What a source's work ends with: its report, once its save has committed.
Finish = Callable[[], Awaitable["SourceReport"]]

INLINE_JOBS = 4  # documents a pass works on in-process before it starts the worker processes
# A pass expecting more bodies than this starts the worker processes at its first document: it
# will need them anyway, and work done in-process first would load the parse, clean and dedupe
# stages (lxml, numpy: some 40 MB) into the main process for nothing.
LARGE_PASS = 64
# Fetched feeds between their parse and their save at most (unbounded, parsed articles would
# pile up in front of the store thread). The worker and the store take turns being the slower
# one, and 16 lets each run on while the other stalls: a 20k-article first pass took 21.2-22.3 s
# against 23.8-24.1 s with 8, for 3 MB more (32 was no faster, and 5 MB more).
BACKLOG = 16
# Fetched feeds waiting in memory for a place in the backlog; the others wait in files
# (pipeline/waiting.py): a pass fetches far faster than it parses. 4 and 16 ran alike; 4 holds
# less.
WAITING_IN_MEMORY = 4


@dataclass(frozen=True, slots=True)
class SourceReport:
    name: str
    new: int = 0
    changed: int = 0
    skipped: tuple[str, ...] = ()  # one message per post or entry that was skipped
    error: str | None = None  # the whole source failed
    backing_off_until: datetime | None = None  # not fetched this pass
    not_modified: bool = False
    touched_tags: frozenset[str] = frozenset()  # slugs whose feeds this source's save changed


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
    now: datetime
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

    def __post_init__(self) -> None:
        self._saves = GroupWriter(self.store, self.writer)
        self._turns = asyncio.Semaphore(self.turns)

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def close(self) -> None:
        """Remove what the pass left behind (the folder of bodies waiting in files)."""
        self._waiting.close()

    @staticmethod
    def inline_jobs_for(chosen: Iterable[tuple[SourceConfig, SourceState]]) -> int:
        """How many documents a pass of these sources works on in-process: what counts is the
        bodies it expects (sources without validators send one), not the sources it asks. A
        re-pass of 1000 304s and one changed feed parses that one here rather than start a
        worker for it (0.07 s less, in alternating runs of `run --once`)."""
        expected = sum(
            source.kind != "posts" and not (state.etag or state.last_modified)
            for source, state in chosen
        )
        return INLINE_JOBS if expected <= LARGE_PASS else 0

    async def source(self, source: SourceConfig, state: SourceState) -> SourceReport:
        """Fetch (or read), process and save one source; its report once the save commits
        (the shared transaction commits about once a second)."""
        with self._saves.expecting():
            try:
                finish = await self._ingest(source, state)
            except Exception as error:  # whatever broke, it breaks this source alone
                log.debug("%s: failed", source.name, exc_info=True)
                finish = await self._failed(source, state, describe(error), None)
        try:
            return await finish()
        except Exception as error:  # its save was refused and rolled back
            log.debug("%s: save failed", source.name, exc_info=True)
            reason = f"store: {describe(error)}"
        try:
            return await (await self._failed(source, state, reason, None))()
        except Exception:  # the store cannot even take the failure: report it all the same
            log.exception("%s: failed, and its state could not be saved", source.name)
            return SourceReport(source.name, error=reason)

    async def _ingest(self, source: SourceConfig, state: SourceState) -> Finish:
        recipe = Recipe.of(self.config, source)
        if source.kind == "posts" and source.path is not None:
            processed = await self._cpu("process_posts", source.path, recipe)
            return await self._save(source, state, processed, None)
        async with self._turns:
            if self._stopping():
                return _when(None, SourceReport(source.name))  # still due: the next pass
            fetch = await self._fetch(source, state, poll_url(source.url or "", state))
        if fetch.error:
            return await self._failed(source, state, fetch.error, fetch)
        if fetch.not_modified or fetch.document is None:
            return await self._unchanged(source, state, fetch)
        if source.kind != "feed":
            processed = await self._pages(source, fetch.document, recipe)
            return await self._save(source, state, processed, fetch)
        digest = body_digest(fetch.document, recipe)
        if digest == state.body_digest:
            # A server that sends no validators (or ignores them) resent what was processed
            # last time: nothing in it can be new or changed.
            log.debug("%s: same body as last time", source.name)
            return await self._unchanged(source, state, fetch)
        # From here the ticket alone holds the body: it may wait in a file.
        ticket = self._waiting.ticket(fetch.document)
        fetch = replace(fetch, document=None)
        try:
            async with ticket as document:
                if self._stopping():  # it waited: left for the next pass, which fetches it
                    return _when(None, SourceReport(source.name))
                processed = await self._cpu("process_feed", document, recipe)
                return await self._save(source, state, processed, fetch, digest)
        except SourceError as error:  # its file could not be read back
            return await self._failed(source, state, error.reason, fetch)

    async def _unchanged(
        self, source: SourceConfig, state: SourceState, fetch: FetchResult
    ) -> Finish:
        interval = self.config.interval(source)
        unchanged = succeeded(
            state, self.now, interval, result="not modified", fetch=fetch, configured_url=source.url
        )
        committed = await self._saves.submit(lambda transaction: transaction.save_state(unchanged))
        log.debug("%s: not modified", source.name)
        return _when(committed, SourceReport(source.name, not_modified=True))

    async def _save(
        self,
        source: SourceConfig,
        state: SourceState,
        processed: Processed,
        fetch: FetchResult | None,
        digest: str | None = None,
    ) -> Finish:
        """Cluster and save what the CPU work made of a source; its error fails the source.
        `digest`: the body's (see body_digest), kept with the new state on success."""
        if processed.error:
            return await self._failed(source, state, processed.error, fetch)
        interval = self.config.interval(source)
        new_state = succeeded(state, self.now, interval, fetch=fetch, configured_url=source.url)
        if digest is not None:
            new_state = replace(new_state, body_digest=digest)
        articles = list(processed.articles)
        undated = sum(not article.dated for article in articles)
        new_state = replace(
            new_state,
            skipped=len(processed.problems),
            undated=undated,
            limited=processed.limited,
        )

        # Imported on the first articles, not before: a pass of 304s never needs numpy.
        from aggregator.pipeline.cluster import cluster  # noqa: PLC0415

        def cluster_and_save(transaction: StoreTransaction) -> SaveResult:
            clustered = cluster(self.config, transaction, articles)
            return transaction.save_articles(source.name, clustered, new_state)

        committed = await self._saves.submit(cluster_and_save)
        # finish() keeps what the report needs, not the articles: those are in the
        # transaction now, and its commit may be a second away.
        problems, notes = processed.problems, processed.notes

        async def finish() -> SourceReport:
            saved: SaveResult = await committed
            for message in notes:
                log.info("%s: %s", source.name, message)
            for message in problems:
                log.warning("%s: skipped %s", source.name, message)
            log.info(
                "%s: %d new, %d changed, %d skipped, %d undated (dated when first seen)",
                source.name,
                len(saved.new),
                len(saved.changed),
                len(problems),
                undated,
            )
            return SourceReport(
                source.name,
                new=len(saved.new),
                changed=len(saved.changed),
                skipped=problems,
                touched_tags=saved.touched_tags,
            )

        return finish

    async def _failed(
        self, source: SourceConfig, state: SourceState, error: str, fetch: FetchResult | None
    ) -> Finish:
        new_state = failed(state, self.now, self.config.interval(source), error, fetch=fetch)
        committed = await self._saves.submit(lambda transaction: transaction.save_state(new_state))

        async def finish() -> SourceReport:
            await committed
            log.error("%s: failed: %s (next try %s)", source.name, error, new_state.next_fetch_at)
            return SourceReport(source.name, error=error)

        return finish

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
                jobs.append(self._cpu("process_article_page", result.document, recipe))
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
            )
        )

    async def _cpu(self, job: str, *args: object) -> Processed:
        """Run aggregator.pipeline.process.<job>(*args) in a worker, or on a thread here."""
        if self.workers is None:
            return await asyncio.to_thread(run_job, job, *args)
        pool = self.workers(self.inline_jobs <= 0)
        if pool is None:
            self.inline_jobs -= 1
            return await asyncio.to_thread(run_job, job, *args)
        return await self._loop.run_in_executor(pool, run_job, job, *args)

    async def _db(self, function: Callable[..., T], *args: object) -> T:
        return await self._loop.run_in_executor(self.writer, function, *args)


def body_digest(document: Document, recipe: Recipe) -> str:
    """A feed body's hash, with everything that shapes what processing makes of it: the
    source's recipe (tags, rules, clean settings, zone), the URL its links resolve against,
    the Content-Type (a charset) and this version of aggregator (a parser or cleaner fix)."""
    digest = hashlib.sha256(usedforsecurity=False)
    context = (__version__, repr(recipe), document.base_url, document.content_type)
    digest.update(repr(context).encode())
    digest.update(document.data)
    return digest.hexdigest()


def _when(committed: asyncio.Future[None] | None, report: SourceReport) -> Finish:
    async def finish() -> SourceReport:
        if committed is not None:
            await committed
        return report

    return finish
