"""A pass whose store is slower than its parsing keeps only a few parsed feeds waiting for it:
the articles of every fetched feed never pile up in memory."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import load_config
from aggregator.pipeline import ingest, run
from aggregator.pipeline.run import open_store, run_pass
from aggregator.store import StoreTransaction
from tests.farm import Farm, FarmConfig
from tests.helpers import farm_config

FEEDS = 24


def test_parsed_feeds_waiting_for_a_slow_store_stay_within_the_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = peak = 0
    cpu, save = ingest.Ingest._cpu, StoreTransaction.save_articles

    async def counted_cpu(self: ingest.Ingest, job: str, *args: Any) -> Any:
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
    with Farm(FarmConfig(feeds=FEEDS, items=2, churn=0.0, bad_citizens=False)) as farm:
        path = farm_config(tmp_path, farm.feed_urls())
        os.chdir(tmp_path)
        config = load_config(path)
        store = open_store(config)
        try:
            report = run_pass(config, store)
        finally:
            store.close()
    assert report.new == FEEDS * 2
    assert waiting == 0
    assert 1 < peak <= ingest.BACKLOG
