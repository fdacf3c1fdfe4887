"""Group commit: sources saved together, each still all-or-nothing, none left waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from aggregator.models import SourceState
from aggregator.pipeline.writer import GroupWriter
from aggregator.store import Store, StoreTransaction


def _save(name: str) -> Callable[[StoreTransaction], str]:
    def job(transaction: StoreTransaction) -> str:
        transaction.save_state(SourceState(name=name, last_result="ok"))
        return name

    return job


def _broken(transaction: StoreTransaction) -> None:
    transaction.save_state(SourceState(name="broken", last_result="ok"))
    raise RuntimeError("a bug in one source's job")


def test_a_failing_job_fails_alone_and_the_others_commit(store: Store) -> None:
    async def scenario() -> list[object]:
        with ThreadPoolExecutor(1) as thread:
            writer = GroupWriter(store, thread)
            # Queued before the writer first runs: one shared transaction, then the fallback.
            results = await asyncio.gather(
                writer.run(_save("first")),
                writer.run(_broken),
                writer.run(_save("second")),
                return_exceptions=True,
            )
            return list(results)

    first, broken, second = asyncio.run(asyncio.wait_for(scenario(), timeout=30))

    assert (first, second) == ("first", "second")
    assert isinstance(broken, RuntimeError)
    saved = {state.name for state in store.source_states()}
    assert saved == {"first", "second"}  # the broken job's own write was rolled back


def test_a_failing_store_thread_fails_its_callers_instead_of_hanging(store: Store) -> None:
    class Gone(ThreadPoolExecutor):
        def submit(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            raise RuntimeError("cannot schedule new futures after shutdown")

    async def scenario() -> None:
        writer = GroupWriter(store, Gone(1))
        await writer.run(_save("never"))

    with pytest.raises(RuntimeError, match="after shutdown"):
        asyncio.run(asyncio.wait_for(scenario(), timeout=10))
