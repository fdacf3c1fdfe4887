"""Group commit: the store writes of many sources in one transaction.

Every store write of a pass runs on one thread. While one transaction commits, the sources
that finish meanwhile queue up, and the next transaction takes them all: under load a commit
carries dozens of sources, when quiet it carries one, and no source ever waits for a batch to
fill. Each job is still all-or-nothing: if the shared transaction fails, it is rolled back and
every job of it runs again in a transaction of its own, so one bad source fails alone and its
error names it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from aggregator.store import Store, StoreTransaction

log = logging.getLogger("aggregator")

T = TypeVar("T")
Job = Callable[[StoreTransaction], Any]

# Jobs per transaction at most: bounds how much one rollback has to redo.
MAX_JOBS = 64


class GroupWriter:
    def __init__(self, store: Store, thread: Executor) -> None:
        self._store = store
        self._thread = thread
        self._loop = asyncio.get_running_loop()
        self._pending: list[tuple[Job, asyncio.Future[Any]]] = []
        self._draining = False

    async def run(self, job: Callable[[StoreTransaction], T]) -> T:
        """Run `job` in a write transaction (shared with others) and return its result once
        committed; its exception if it, or its own transaction, failed."""
        future: asyncio.Future[T] = self._loop.create_future()
        self._pending.append((job, future))
        if not self._draining:
            self._draining = True
            self._loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_JOBS], self._pending[MAX_JOBS:]
                jobs = [job for job, _ in batch]
                try:
                    outcomes = await self._loop.run_in_executor(self._thread, self._commit, jobs)
                except Exception as broken:  # the thread itself failed: no caller may hang
                    outcomes = [(None, broken)] * len(batch)
                for (_, future), (result, failure) in zip(batch, outcomes, strict=True):
                    if future.done():  # its caller was cancelled meanwhile
                        continue
                    if failure is not None:
                        future.set_exception(failure)
                    else:
                        future.set_result(result)
        finally:
            self._draining = False

    def _commit(self, jobs: list[Job]) -> list[tuple[Any, BaseException | None]]:
        """On the store thread: all jobs in one transaction, else each in its own."""
        if len(jobs) > 1:
            try:
                with self._store.transaction() as transaction:
                    return [(job(transaction), None) for job in jobs]
            except Exception as error:  # each job runs again on its own below, to fail alone
                log.debug(
                    "a grouped save failed (%s); saving its %d jobs one by one", error, len(jobs)
                )
        outcomes: list[tuple[Any, BaseException | None]] = []
        for job in jobs:
            try:
                with self._store.transaction() as transaction:
                    outcomes.append((job(transaction), None))
            except Exception as error:
                outcomes.append((None, error))
        return outcomes
