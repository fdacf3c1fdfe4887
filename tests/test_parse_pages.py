"""Page parsing: one HTML fixture per page, `<name>.expected.json` lists the calls to make on
it (find_article_links, extract_article, discover_feeds) and what each must give; one test walks
them all."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from aggregator.errors import EntryError
from aggregator.models import Document, Entry
from aggregator.parse import discover_feeds, extract_article, find_article_links
from tests.helpers import entry_fields

FIXTURES = Path(__file__).parent / "fixtures" / "pages"
PAGES = sorted(FIXTURES.glob("*.html"))
SELECTORS = ("content_selector", "title_selector", "date_selector")


def _run(document: Document, check: dict[str, Any], zone: ZoneInfo) -> object:
    if check["call"] == "find_article_links":
        return find_article_links(document, check["selector"])
    if check["call"] == "discover_feeds":
        return discover_feeds(document)
    assert check["call"] == "extract_article"
    selectors = {name: check.get(name) for name in SELECTORS}
    return extract_article(document, default_zone=zone, **selectors)


def test_every_page_has_an_expectation() -> None:
    assert len(PAGES) >= 5
    for page in PAGES:
        assert page.with_suffix(".expected.json").exists(), page


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.stem)
def test_page_fixture(page: Path) -> None:
    expected = json.loads(page.with_suffix(".expected.json").read_text(encoding="utf-8"))
    request = expected["request"]
    document = Document(
        "test", request["url"], page.read_bytes(), request["url"], request.get("content_type")
    )
    zone = ZoneInfo(request.get("zone", "UTC"))
    for check in expected["checks"]:
        if "error" in check:
            with pytest.raises(EntryError) as raised:
                _run(document, check, zone)
            assert request["url"] in str(raised.value)
            assert check["error"] in str(raised.value)
            continue
        result = _run(document, check, zone)
        if check["call"] == "find_article_links":
            assert result == check["links"], check["selector"]
        elif check["call"] == "discover_feeds":
            assert result == check["feeds"]
        elif check.get("undated"):
            # A page without a date is kept, dated when first seen.
            assert isinstance(result, Entry)
            assert not result.dated
            assert result.published.microsecond == 0
        else:
            assert isinstance(result, Entry)
            assert entry_fields(result) == check["entry"]
            wanted = datetime.fromisoformat(check["entry"]["published"])
            assert result.published.utcoffset() == wanted.utcoffset()
            assert result.source == "test"
            assert result.origin == request["url"]
            assert result.content_html.startswith(check["content_starts"])
            for fragment in check.get("content_has", []):
                assert fragment in result.content_html, fragment
            for fragment in check.get("content_lacks", []):
                assert fragment not in result.content_html, fragment


def test_a_page_is_parsed_from_its_bytes_only() -> None:
    # No base URL and a file origin: links that stay relative are dropped, never fetched.
    page = FIXTURES / "feed_alternates.html"
    document = Document("test", str(page), page.read_bytes())
    assert discover_feeds(document) == ["https://alt.example.org/feed.atom"]
