"""A pass whose store is slower than its parsing keeps only a few parsed feeds waiting for it:
the articles of every fetched feed never pile up in memory, and fetching still runs ahead."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import Config, load_config
from aggregator.fetch import Fetcher
from aggregator.models import FetchRequest, FetchResult
from aggregator.pipeline import ingest, run
from aggregator.pipeline.run import open_store, run_pass
from aggregator.sources.schedule import is_due
from aggregator.store import Store, StoreTransaction
from tests.farm import Farm, FarmConfig
from tests.helpers import farm_config

FEEDS = 24


@contextmanager
def _store_for(
    tmp_path: Path, urls: list[str], defaults: str = ""
) -> Iterator[tuple[Config, Store]]:
    """The config (one feed source per URL, `defaults` appended) and its opened store."""
    path = farm_config(tmp_path, urls)
    if defaults:
        path.write_text(path.read_text(encoding="utf-8") + defaults + "\n", encoding="utf-8")
    os.chdir(tmp_path)
    config = load_config(path)
    store = open_store(config)
    try:
        yield config, store
    finally:
        store.close()


def test_parsed_feeds_waiting_for_a_slow_store_stay_within_the_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = peak = 0
    cpu, save = ingest.Ingest._cpu, StoreTransaction.save_articles

    async def counted_cpu(self: ingest.Ingest, job: Any, *args: Any) -> Any:
        nonlocal waiting, peak
        result = await cpu(self, job, *args)
        waiting += 1
        peak = max(peak, waiting)
        return result

    def slow_save(self: StoreTransaction, *args: Any) -> Any:
        nonlocal waiting
        time.sleep(0.05)  # a store far slower than parsing two small items
        waiting -= 1
        return save(self, *args)

    monkeypatch.setattr(ingest.Ingest, "_cpu", counted_cpu)
    monkeypatch.setattr(StoreTransaction, "save_articles", slow_save)
    monkeypatch.setattr(run, "_worker_pool", lambda start=True: None)  # CPU work on threads
    quiet = FarmConfig(feeds=FEEDS, items=2, churn=0.0, bad_citizens=False)
    with Farm(quiet) as farm, _store_for(tmp_path, farm.feed_urls()) as (config, store):
        report = run_pass(config, store)
    assert report.new == FEEDS * 2
    assert waiting == 0
    assert 1 < peak <= ingest.BACKLOG


def test_a_slow_server_last_in_the_list_is_asked_early_not_after_the_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fetching runs at the network's pace while bodies wait their turn for the CPU stages
    (in memory or in files): a server that hangs until the timeout, listed after every other
    source, is asked while the others are still being saved, not after them (which held the
    pass up by its whole timeout)."""
    events: list[str] = []
    save, fetch = StoreTransaction.save_articles, Fetcher.fetch

    def slow_save(self: StoreTransaction, source: str, *args: Any) -> Any:
        time.sleep(0.1)  # 24 saves: 2.4 s
        events.append(f"saved {source}")
        return save(self, source, *args)

    async def noted_fetch(self: Fetcher, request: FetchRequest) -> FetchResult:
        events.append(f"fetching {request.source}")
        return await fetch(self, request)

    monkeypatch.setattr(StoreTransaction, "save_articles", slow_save)
    monkeypatch.setattr(Fetcher, "fetch", noted_fetch)
    monkeypatch.setattr(run, "_worker_pool", lambda start=True: None)  # CPU work on threads
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    with Farm(FarmConfig(feeds=FEEDS, items=2, churn=0.0, hang=30)) as farm:
        # Four sources fetching at once: the hang's turn is the 25th. Before, a source kept
        # its turn until saved, so the hang was asked after 21 saves.
        urls = [*farm.feed_urls(), farm.bad_urls()["hang"]]
        with _store_for(tmp_path, urls, "defaults: {concurrency: 4, timeout: 1s}") as opened:
            config, store = opened
            report = run_pass(config, store)
            hang = store.source_state(f"feed-{FEEDS}")
    assert report.new == FEEDS * 2
    assert hang is not None and "timed out" in (hang.last_error or "")
    asked = events.index(f"fetching feed-{FEEDS}")
    saved_before = sum(event.startswith("saved") for event in events[:asked])
    assert saved_before < 8, events
    assert not list(temporary.iterdir()), "the bodies' folder is removed with the pass"


def test_a_stop_mid_pass_fetches_no_more_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's first SIGTERM: a source whose turn to fetch comes after it is not fetched
    (it stays due for the next start); what is saved was fetched before it."""
    monkeypatch.setattr(run, "_worker_pool", lambda start=True: None)
    stop = threading.Event()

    def progress(done: int, _chosen: int) -> None:
        if done >= 2:
            stop.set()

    slow = FarmConfig(feeds=FEEDS, items=2, churn=0.0, latency=0.3, bad_citizens=False)
    two_at_once = "defaults: {concurrency: 2}"
    with Farm(slow) as farm, _store_for(tmp_path, farm.feed_urls(), two_at_once) as opened:
        config, store = opened
        report = run_pass(config, store, stop=stop, progress=progress)
        fetched = {log.path for log in farm.requests}
        states = store.source_states()
        now = datetime.now(UTC)
    assert 2 <= len(fetched) < FEEDS
    saved = {r.name for r in report.sources if r.new}
    assert 2 <= len(saved) <= len(fetched)
    # The others were left untouched: never fetched, still due, and not held by this node.
    assert {state.name for state in states if state.last_fetch_at} == saved
    left = [state for state in states if state.name not in saved]
    assert all(is_due(state, now) and state.claimed_by is None for state in left)


def test_a_stop_leaves_bodies_still_waiting_for_a_place_to_the_next_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every feed is fetched at once, and the store is slow: when the stop comes, the feeds
    with a place in the backlog finish; those still waiting are not parsed or saved (their
    sources stay due), so stopping never waits for a whole pass's worth of parsing."""
    save = StoreTransaction.save_articles
    stop = threading.Event()

    def slow_save(self: StoreTransaction, *args: Any) -> Any:
        time.sleep(0.1)
        stop.set()  # at the first save: every feed is fetched by now, most are waiting
        return save(self, *args)

    monkeypatch.setattr(StoreTransaction, "save_articles", slow_save)
    monkeypatch.setattr(run, "_worker_pool", lambda start=True: None)
    feeds = ingest.BACKLOG + 12
    with Farm(FarmConfig(feeds=feeds, items=2, churn=0.0, bad_citizens=False)) as farm:
        with _store_for(tmp_path, farm.feed_urls()) as (config, store):
            started = time.monotonic()
            report = run_pass(config, store, stop=stop)
            took = time.monotonic() - started
            states = store.source_states()
            now = datetime.now(UTC)
        fetched = len(farm.requests)
    saved = {r.name for r in report.sources if r.new}
    assert fetched == feeds
    assert 1 <= len(saved) <= ingest.BACKLOG  # only those that had a place
    # The others untouched: never fetched as far as the store knows, still due, not held.
    assert {state.name for state in states if state.last_fetch_at} == saved
    left = [state for state in states if state.name not in saved]
    assert all(is_due(state, now) and state.claimed_by is None for state in left)
    assert took < 0.1 * ingest.BACKLOG + 5
