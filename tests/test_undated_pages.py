"""A page source whose articles carry no date: each is stored, dated when first seen, and
counted as undated in `aggregator status`; a later pass keeps that first-seen date."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_aggregator, serving, status_rows

STORIES = ("Harbour reopens", "Night market returns", "New tram line")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A news listing on 127.0.0.1 linking three articles, none of which says when it was
    written: no <time>, no meta date, no JSON-LD, no date in the URL."""
    root = tmp_path / "www"
    (root / "news").mkdir(parents=True)
    links = "".join(
        f'<li><a href="/news/story-{number}.html">{title}</a></li>'
        for number, title in enumerate(STORIES)
    )
    (root / "index.html").write_text(
        f"<!DOCTYPE html><html><body><ul class='headlines'>{links}</ul></body></html>", "utf-8"
    )
    for number, title in enumerate(STORIES):
        body = " ".join(f"{title}: paragraph {n} of what happened in the city." for n in range(8))
        (root / "news" / f"story-{number}.html").write_text(
            f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
            f"<article><h1>{title}</h1><p>{body}</p><p>{body}</p></article></body></html>",
            "utf-8",
        )
    with serving(partial(_Quiet, directory=str(root))) as url:
        yield url


def test_undated_page_articles_are_stored_dated_when_first_seen(tmp_path: Path, site: str) -> None:
    config = tmp_path / "aggregator.yaml"
    config.write_text(
        f'store: {{url: "sqlite:///{tmp_path / "agg.db"}"}}\n'
        f"output: {{dir: {tmp_path / 'public'}}}\n"
        "sources:\n"
        f"  - {{name: city, kind: page, url: '{site}/', selector: 'ul.headlines a',"
        " tags: [city]}\n",
        encoding="utf-8",
    )
    before = datetime.now(UTC).replace(microsecond=0)
    first = run_aggregator(config, "run", "--once")
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert first.returncode == 0, first.stderr
    assert "city: 3 new, 0 changed, 0 skipped, 3 undated (dated when first seen)" in first.stderr

    row = status_rows(config)["city"]
    assert (row["health"], row["items"], row["new_items"], row["undated"]) == ("ok", 3, 3, 3)

    feed = json.loads((tmp_path / "public" / "tags" / "city.json").read_text(encoding="utf-8"))
    dated = {item["title"]: item["date_published"] for item in feed["items"]}
    assert set(dated) == set(STORIES)
    for published in dated.values():
        assert before <= datetime.fromisoformat(published) <= after, published

    # The next pass reads the listing again; the articles it knows keep their first-seen date.
    second = run_aggregator(config, "run", "--once")
    assert second.returncode == 0, second.stderr
    again = json.loads((tmp_path / "public" / "tags" / "city.json").read_text(encoding="utf-8"))
    assert {item["title"]: item["date_published"] for item in again["items"]} == dated
