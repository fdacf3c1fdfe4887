"""`aggregator fetch NAME`: one source polled now, through the pipeline, whatever its schedule;
a lease another node holds is respected; a mistyped name gets the nearest ones."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from aggregator.store import Store
from tests.helpers import run_aggregator, serving, status_rows


class _Site(SimpleHTTPRequestHandler):
    asked: list[str] = []  # noqa: RUF012 - the paths asked for, cleared by the fixture

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _rss(titles: list[str]) -> str:
    items = "".join(
        f"<item><title>{title}</title><link>http://127.0.0.1/{number}</link>"
        f"<guid>story-{number}</guid><pubDate>Wed, 01 May 2024 0{number}:00:00 GMT</pubDate>"
        f"<description>&lt;p&gt;{title}, told at length.&lt;/p&gt;</description></item>"
        for number, title in enumerate(titles)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{items}</channel></rss>'
    )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 over a folder of feeds: its URL and the folder."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "news.xml").write_text(_rss(["First story", "Second story"]), encoding="utf-8")
    (root / "other.xml").write_text(_rss(["Elsewhere"]), encoding="utf-8")
    _Site.asked.clear()
    with serving(partial(_Site, directory=str(root))) as url:
        yield url, root


@pytest.fixture
def config(tmp_path: Path, site: tuple[str, Path]) -> Path:
    url, _ = site
    path = tmp_path / "aggregator.yaml"
    path.write_text(
        f'store: {{url: "sqlite:///{tmp_path / "agg.db"}"}}\n'
        f"output: {{dir: {tmp_path / 'public'}}}\n"
        "sources:\n"
        f"  - {{name: news, kind: feed, url: '{url}/news.xml', tags: [news]}}\n"
        f"  - {{name: other, kind: feed, url: '{url}/other.xml', tags: [other]}}\n"
        f"  - {{name: gone, kind: feed, url: '{url}/gone.xml'}}\n"
        f"  - {{name: resting, kind: feed, url: '{url}/other.xml', enabled: false}}\n",
        encoding="utf-8",
    )
    return path


def _titles(config: Path, tag: str) -> set[str]:
    feed = config.parent / "public" / "tags" / f"{tag}.json"
    return {item["title"] for item in json.loads(feed.read_text(encoding="utf-8"))["items"]}


def test_fetch_polls_one_source_now_and_says_what_it_got(
    config: Path, site: tuple[str, Path]
) -> None:
    _, root = site
    first = run_aggregator(config, "run", "--once")
    assert first.returncode == 0, first.stderr
    # Every source was just read: none is due for 15 minutes. The feed changes meanwhile, a
    # minute later by its Last-Modified (in whole seconds: the first pass may well end within
    # the second the feed was first written, and the server would answer 304).
    news = root / "news.xml"
    written = news.stat().st_mtime
    news.write_text(_rss(["First story", "Second story", "Third story"]), "utf-8")
    os.utime(news, (written + 60, written + 60))
    _Site.asked.clear()
    fetched = run_aggregator(config, "fetch", "news")
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.startswith("news: 1 new, 0 updated, 0 skipped; ")
    assert _Site.asked == ["/news.xml"], "only the source asked for is fetched"
    # Stored and rendered like any pass: the feed of its tag has the new story.
    assert "Third story" in _titles(config, "news")
    assert status_rows(config)["news"]["new_items"] == 1

    again = run_aggregator(config, "fetch", "news")
    assert again.returncode == 0, again.stderr
    assert again.stdout == "news: not modified since the last fetch: 0 new, 0 updated (unchanged)\n"


def test_a_failing_source_is_fetched_despite_its_backoff_and_its_error_named_once(
    config: Path, site: tuple[str, Path]
) -> None:
    _, root = site
    failed = run_aggregator(config, "fetch", "gone")
    assert failed.returncode == 1
    assert "error: gone: failed: HTTP 404 Not Found\n" in failed.stderr
    assert status_rows(config)["gone"]["health"] == "backing off"
    (root / "gone.xml").write_text(_rss(["Back again"]), encoding="utf-8")
    back = run_aggregator(config, "fetch", "gone")
    assert back.returncode == 0, back.stderr
    assert back.stdout.startswith("gone: 1 new, 0 updated, 0 skipped; ")
    assert "gone: recovered after 1 failures" in back.stderr
    assert status_rows(config)["gone"]["health"] == "ok"


def test_a_source_another_node_holds_is_left_to_it(config: Path) -> None:
    store = Store(f"sqlite:///{config.parent / 'agg.db'}")
    try:
        store.migrate()
        (claimed,) = store.claim(
            "elsewhere:1", ["news"], datetime.now(UTC), timedelta(minutes=10), due_only=False
        )
        assert claimed.claimed_by == "elsewhere:1"
    finally:
        store.close()
    result = run_aggregator(config, "fetch", "news")
    assert result.returncode == 1
    assert result.stderr.endswith(
        "error: news: not fetched: elsewhere:1 is fetching it now (its lease); try again later\n"
    )
    assert _Site.asked == []


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("nwes", "did you mean 'news'?"),
        ("zzz", "the sources are gone, news, other, resting"),
    ],
)
def test_an_unknown_name_gets_the_nearest_ones_and_nothing_is_fetched(
    config: Path, typed: str, said: str
) -> None:
    result = run_aggregator(config, "fetch", typed)
    assert result.returncode == 1
    assert result.stderr == f"error: no source named {typed!r} in {config}; {said}\n"
    assert _Site.asked == []


def test_a_disabled_source_is_not_fetched(config: Path) -> None:
    result = run_aggregator(config, "fetch", "resting")
    assert result.returncode == 1
    assert result.stderr == (
        f"error: resting: it is disabled in {config}; `aggregator sources enable resting` first\n"
    )
    assert _Site.asked == []
