"""kill -9 at random moments during ingest, restarting each time: no article lost, none stored
twice, and a reader polling the served feeds throughout never gets a malformed one."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from lxml import etree

from tests.daemonproc import Daemon, free_port, write_config
from tests.farm import Farm, FarmConfig

KILLS = 20
FEEDS = 6
ITEMS = 10  # held by each farm feed; fewer churn rounds than this, so none falls off unread
CHURN_EVERY = 3  # rounds


class Reader(threading.Thread):
    """Polls the served feeds like a feed reader, parsing every 200 answer."""

    PATHS = ("/all.atom", "/all.rss", "/all.json", "/tags/farm.atom", "/tags/farm.json")

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.parsed = 0
        self.malformed: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=2) as client:
            while not self.done.is_set():
                for path in self.PATHS:
                    try:
                        response = client.get(path)
                    except httpx.HTTPError:
                        time.sleep(0.05)  # the daemon is down between a kill and its restart
                        continue
                    if response.status_code == 200:
                        self._check(path, response.content)

    def _check(self, path: str, body: bytes) -> None:
        try:
            if path.endswith(".json"):
                assert isinstance(json.loads(body)["items"], list)
            else:
                root = etree.fromstring(body)
                assert root.tag in ("rss", "{http://www.w3.org/2005/Atom}feed")
        except Exception as error:
            self.malformed.append(f"{path}: {error!r}: {body[:200]!r}")
        else:
            self.parsed += 1


def _published(farm: Farm, seen: dict[str, set[str]]) -> None:
    for url in farm.feed_urls():
        seen.setdefault(url, set()).update(item.title for item in farm.items(url))


def test_kill_9_during_ingest_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    chooser = random.Random(20240501)
    port = free_port()
    # Answers take 0.6 s and one host takes two requests at a time, so a pass over the six
    # feeds lasts about two seconds, its sources committing one after another: a kill in the
    # 1.5 s after the first request lands mid-ingest even on a fast or a busy machine.
    config = FarmConfig(
        feeds=FEEDS, items=ITEMS, churn=0.5, latency=0.6, bad_citizens=False, seed=3
    )
    with Farm(config) as farm:
        feeds = [(f"farm-{n}", url, f"feed-{n}") for n, url in enumerate(farm.feed_urls())]
        path = write_config(tmp_path, port, feeds, interval="1s", items_per_feed=500)
        published: dict[str, set[str]] = {}
        _published(farm, published)
        reader = Reader(f"http://127.0.0.1:{port}")
        reader.start()
        mid_ingest = 0  # kills that landed after fetching began and before the pass ended
        try:
            settled = False  # a pass has completed, so the farm's first items are stored
            for round_number in range(KILLS):
                # Churn drops a feed's oldest item, which must have been read once before.
                if settled and round_number % CHURN_EVERY == 0:
                    farm.next_pass()
                    _published(farm, published)
                asked = len(farm.requests)
                daemon = Daemon(path, port).start()
                # Killed at a random moment once the first fetch of this run reached the farm.
                deadline = time.monotonic() + 20
                while len(farm.requests) == asked and time.monotonic() < deadline:
                    time.sleep(0.01)
                delay = chooser.uniform(0.0, 1.5)  # drawn every round: the others' stay as seeded
                if round_number == KILLS // 2 and not settled:
                    # On a busy machine every kill so far can have come before a pass ended, so
                    # no feed exists to read: this daemon lives until its pass ends and writes them.
                    deadline = time.monotonic() + 60
                    while "INFO pass:" not in daemon.stderr() and time.monotonic() < deadline:
                        time.sleep(0.05)
                else:
                    time.sleep(delay)
                daemon.kill()
                completed = "INFO pass:" in daemon.stderr()
                settled = settled or completed
                if len(farm.requests) > asked and not completed:
                    mid_ingest += 1
            # Torn files would show up while daemons are killed, so that is when reads count.
            parsed_while_killing = reader.parsed
            with Daemon(path, port) as daemon:
                daemon.wait_healthy()
                everything = set().union(*published.values())
                deadline = time.monotonic() + 30
                served: list[str] = []
                while time.monotonic() < deadline:
                    # No feed yet when every kill came before the first commit: the first pass
                    # of this start writes it.
                    answer = httpx.get(f"{daemon.url}/all.json", timeout=5)
                    if answer.status_code == 200:
                        served = [item["title"] for item in answer.json()["items"]]
                        if everything <= set(served):
                            break
                    time.sleep(0.2)
                status, _ = daemon.stop()
                assert status == 0
        finally:
            reader.done.set()
            reader.join(timeout=10)

    assert mid_ingest >= KILLS // 2, mid_ingest
    assert not reader.malformed, reader.malformed[:3]
    # Any read at all: how many fit between kills depends on the machine's load (thousands on
    # a quiet one, dozens on a busy CI runner).
    assert parsed_while_killing > 0
    # Every article the farm ever published is served, each exactly once.
    counts = Counter(served)
    assert set(counts) == everything
    assert all(count == 1 for count in counts.values()), counts.most_common(3)
    # And stored once under its own source.
    with sqlite3.connect(tmp_path / "state" / "agg.db") as db:
        rows = db.execute("SELECT source, count(*) FROM article GROUP BY source").fetchall()
    stored = dict(rows)
    for (name, url, _), expected in zip(feeds, published.values(), strict=True):
        assert url in published
        assert stored[name] == len(expected), (name, stored[name], len(expected))
    assert not list((tmp_path / "public").rglob("*.tmp"))
