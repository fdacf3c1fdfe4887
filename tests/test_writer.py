"""Group commit: sources saved together in one open transaction, each in a savepoint of it (so
still all-or-nothing), none told of a commit that has not happened, none left waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from aggregator.models import SourceState
from aggregator.pipeline import writer as writer_module
from aggregator.pipeline.writer import GroupWriter
from aggregator.store import Store, StoreTransaction
from aggregator.store.bands import PendingBands


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


def test_an_applied_job_is_not_reported_before_its_commit(store: Store) -> None:
    """While another caller is still preparing a job, the transaction stays open: the first
    job is applied, its caller may go on, but its result waits for the commit, and no other
    connection sees its write before then."""

    async def scenario() -> tuple[bool, set[str], set[str], str]:
        with ThreadPoolExecutor(1) as thread:
            writer = GroupWriter(store, thread)
            with writer.expecting():
                committed = await writer.submit(_save("early"))
                await asyncio.sleep(0.05)
                reported_early = committed.done()
                seen_before = {state.name for state in store.source_states()}
            result = await asyncio.wait_for(committed, timeout=5)
            seen_after = {state.name for state in store.source_states()}
            return reported_early, seen_before, seen_after, result

    reported_early, before, after, result = asyncio.run(scenario())

    assert not reported_early
    assert before == set()
    assert (after, result) == ({"early"}, "early")


def test_a_transaction_commits_at_its_age_limit_even_while_more_is_expected(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "MAX_AGE", 0.2)

    async def scenario() -> tuple[str, set[str]]:
        with ThreadPoolExecutor(1) as thread:
            writer = GroupWriter(store, thread)
            with writer.expecting():  # a caller that never delivers
                result = await asyncio.wait_for(writer.run(_save("waited")), timeout=5)
                return result, {state.name for state in store.source_states()}

    assert asyncio.run(scenario()) == ("waited", {"waited"})


def test_a_transaction_commits_at_its_age_limit_while_the_queue_never_runs_dry(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store slower than its callers (a slow disk, a distant PostgreSQL) always has a job
    waiting: the age limit must still commit, or one transaction would hold the write lock,
    and every held band row in memory, for the whole pass."""
    monkeypatch.setattr(writer_module, "MAX_AGE", 0.2)

    def slow(name: str) -> Callable[[StoreTransaction], str]:
        def job(transaction: StoreTransaction) -> str:
            time.sleep(0.02)
            transaction.save_state(SourceState(name=name, last_result="ok"))
            return name

        return job

    async def scenario() -> float:
        with ThreadPoolExecutor(1) as thread:
            writer = GroupWriter(store, thread)
            started = time.monotonic()
            with writer.expecting():
                committed = await writer.submit(slow("first"))
                submitted: list[asyncio.Task[asyncio.Future[str]]] = []
                while not committed.done() and time.monotonic() - started < 3:
                    submitted.append(asyncio.create_task(writer.submit(slow(f"s{len(submitted)}"))))
                    await asyncio.sleep(0.005)  # four times as fast as the store applies them
                waited = time.monotonic() - started
                applied = await asyncio.gather(*submitted)
            # Every job committed before the store is closed: an open transaction would
            # hold its connection, and PostgreSQL the schema the test drops.
            await asyncio.wait_for(asyncio.gather(*applied), timeout=10)
            return waited

    waited = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert waited < 1.0, f"first commit after {waited:.2f} s with MAX_AGE 0.2 s"
    assert "first" in {state.name for state in store.source_states()}


def test_a_job_that_breaks_the_transaction_fails_what_it_held_and_the_rest_goes_on(
    store: Store,
) -> None:
    """A job that leaves the transaction unusable (here it rolls the whole of it back under
    the savepoint's feet) fails, and so do the jobs applied before it in that transaction,
    whose writes went with it; the jobs after it commit in a new one."""

    def wrecker(transaction: StoreTransaction) -> None:
        transaction._connection.exec_driver_sql("ROLLBACK")
        raise RuntimeError("wrecked")

    async def scenario() -> list[object]:
        with ThreadPoolExecutor(1) as thread:
            writer = GroupWriter(store, thread)
            return list(
                await asyncio.gather(
                    writer.run(_save("before")),
                    writer.run(_broken),
                    writer.run(wrecker),
                    writer.run(_save("after")),
                    return_exceptions=True,
                )
            )

    before, bug, wrecked, after = asyncio.run(asyncio.wait_for(scenario(), timeout=30))

    assert str(wrecked) == "wrecked"
    assert str(before) == "wrecked"  # its write was rolled back: it must not succeed
    assert str(bug) == "a bug in one source's job"  # a failure keeps its own reason
    assert after == "after"
    assert {state.name for state in store.source_states()} == {"after"}


def test_held_band_rows_roll_back_with_their_savepoint() -> None:
    pending = PendingBands()
    pending.add([(1, 10), (2, 10)])
    mark = pending.mark()
    pending.add([(3, 11), (1, 11)])
    pending.discard([(2, 10)])  # a changed article drops its old rows inside the savepoint
    assert sorted(pending.matches([1, 2, 3])) == [(10, 1), (11, 1), (11, 3)]

    pending.rollback_to(mark)

    assert sorted(pending.matches([1, 2, 3])) == [(10, 1), (10, 2)]
    mark = pending.mark()
    pending.add([(4, 12)])
    pending.rollback_to(mark)
    assert pending.matches([4]) == []


def test_a_job_submitted_as_the_pass_ends_commits_before_the_store_thread_goes(
    store: Store,
) -> None:
    """A lease renewal that comes in while a pass finishes: its caller gives up waiting (it is
    cancelled), yet the job commits, and the store thread is not shut down under it."""

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as thread:
            writer = GroupWriter(store, thread)
            waiting = asyncio.ensure_future(writer.run(_save("late")))
            await asyncio.sleep(0)  # submitted, not committed
            waiting.cancel()
            await writer.settle()

    asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert [state.name for state in store.source_states()] == ["late"]
