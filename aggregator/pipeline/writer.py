"""Group commit: the store writes of many sources in one transaction, each in a savepoint.

Every store write of a pass runs on one thread, in a transaction that stays open while more
work is on its way. Each job runs in a savepoint of its own, so a failing job is undone alone
and the others go on. A job is *applied* once its savepoint is released, and *committed* when
the transaction is: `submit` returns at the first, with a future for the second, so a caller
can let go of what it held (a worker's articles, a place in the pass's queue) without waiting
for the commit. The transaction commits once no job is on its way (no caller is inside
`expecting`), or once it is MAX_AGE old.

Why not commit each time the queue runs dry: every commit writes each page it dirtied, and the
indexes of the article table (id, link hash, text hash, cluster) take random inserts, so small
commits write the same index pages again and again: a large first pass committing a few
sources at a time spent a third of its time in COMMIT (benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from aggregator.store import Store, StoreTransaction

log = logging.getLogger("aggregator")

T = TypeVar("T")
Job = Callable[[StoreTransaction], Any]

# Seconds a transaction stays open at most: how long a save may wait for its commit, and how
# long the write lock is held at a stretch (another writer waits up to busy_timeout, 5 s).
MAX_AGE = 1.0
# Jobs a transaction takes from the queue in one go on the store thread.
BATCH = 64


@dataclass
class _Queued:
    job: Job
    applied: asyncio.Future[asyncio.Future[Any]]  # set once the job ran: to its commit future


class _Open:
    """The transaction the store thread keeps open between batches (only that thread uses it)."""

    def __init__(self, store: Store) -> None:
        self._stack = contextlib.ExitStack()
        self.transaction = self._stack.enter_context(store.transaction())
        self.started = time.monotonic()

    def commit(self) -> None:
        self._stack.close()

    def rollback(self, error: BaseException) -> None:
        with contextlib.suppress(Exception):
            self._stack.__exit__(type(error), error, error.__traceback__)


class GroupWriter:
    def __init__(self, store: Store, thread: Executor) -> None:
        self._store = store
        self._thread = thread
        self._loop = asyncio.get_running_loop()
        self._queue: list[_Queued] = []
        self._open: _Open | None = None
        self._uncommitted: list[tuple[asyncio.Future[Any], Any]] = []
        self._expected = 0
        self._wake = asyncio.Event()
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, job: Callable[[StoreTransaction], T]) -> T:
        """Run `job` in the shared transaction and return its result once committed; its
        exception if it (or the transaction) failed."""
        committed: asyncio.Future[T] = await self.submit(job)
        return await committed

    async def submit(self, job: Callable[[StoreTransaction], T]) -> asyncio.Future[T]:
        """Run `job` in the shared transaction; return once it ran, with a future of its result
        at the commit. A job that failed has that future failed already."""
        queued = _Queued(job, self._loop.create_future())
        self._queue.append(queued)
        self._wake.set()
        if not self._draining:
            self._draining = True
            self._drainer = self._loop.create_task(self._drain())
        return await queued.applied

    async def settle(self) -> None:
        """Wait until every job submitted so far is committed or rolled back: the store thread
        must outlive the last commit (a lease renewal may come in as the pass ends)."""
        if self._drainer is not None:
            await asyncio.gather(self._drainer, return_exceptions=True)

    @contextlib.contextmanager
    def expecting(self) -> Iterator[None]:
        """While inside, a job from this caller may come: the open transaction waits for it
        (up to MAX_AGE) rather than commit without it."""
        self._expected += 1
        try:
            yield
        finally:
            self._expected -= 1
            if self._expected == 0:
                self._wake.set()

    async def _drain(self) -> None:
        try:
            while self._queue or self._open is not None:
                age = time.monotonic() - self._open.started if self._open else 0.0
                # The age limit first: a store slower than its callers always has a job
                # waiting, and would otherwise never commit until the pass ends.
                if self._open is not None and age >= MAX_AGE:
                    await self._commit()
                    continue
                if self._queue:
                    batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
                    await self._apply(batch)
                    continue
                if self._expected == 0:
                    await self._commit()
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), MAX_AGE - age)
        finally:
            self._draining = False

    async def _apply(self, batch: list[_Queued]) -> None:
        jobs = [queued.job for queued in batch]
        try:
            outcomes, broken = await self._loop.run_in_executor(
                self._thread, self._apply_here, jobs
            )
        except Exception as error:  # the thread itself failed: no caller may hang
            outcomes = [(None, error)] * len(batch)
            # No transaction left (a broken one rolled back, its successor never began):
            # what earlier batches applied went with it.
            broken = error if self._open is None else None
        if broken is not None:  # rolled back: what earlier batches applied is gone too
            failed, self._uncommitted = self._uncommitted, []
            _fail_all(failed, broken)
        for queued, (result, failure) in zip(batch, outcomes, strict=True):
            committed: asyncio.Future[Any] = self._loop.create_future()
            if failure is not None:
                committed.set_exception(failure)
                committed.exception()  # retrieved here: a caller that left must not warn
            else:
                self._uncommitted.append((committed, result))
            if not queued.applied.done():
                queued.applied.set_result(committed)

    def _apply_here(
        self, jobs: list[Job]
    ) -> tuple[list[tuple[Any, BaseException | None]], BaseException | None]:
        """On the store thread: each job in a savepoint of the open transaction. Returns the
        outcomes, and the error that broke the transaction if one did (it was rolled back, and
        the jobs after it ran in a new one)."""
        outcomes: list[tuple[Any, BaseException | None]] = []
        broken: BaseException | None = None
        for job in jobs:
            if self._open is None:
                self._open = _Open(self._store)
            transaction = self._open.transaction
            try:
                with transaction.savepoint():
                    outcomes.append((job(transaction), None))
            except Exception as error:
                outcomes.append((None, error))
                if transaction.broken:
                    log.debug("a save broke its transaction (%s); rolling it back", error)
                    self._open.rollback(error)
                    self._open = None
                    # The batch's earlier successes went with it; its failures keep their own.
                    outcomes = [(None, failure or error) for _, failure in outcomes]
                    broken = error
        return outcomes, broken

    async def _commit(self) -> None:
        open_, self._open = self._open, None
        assert open_ is not None
        waiting, self._uncommitted = self._uncommitted, []
        try:
            await self._loop.run_in_executor(self._thread, open_.commit)
        except Exception as error:
            await self._loop.run_in_executor(self._thread, open_.rollback, error)
            _fail_all(waiting, error)
            return
        for committed, result in waiting:
            if not committed.done():
                committed.set_result(result)


def _fail_all(waiting: list[tuple[asyncio.Future[Any], Any]], error: BaseException) -> None:
    for committed, _ in waiting:
        if not committed.done():
            committed.set_exception(error)
            committed.exception()
