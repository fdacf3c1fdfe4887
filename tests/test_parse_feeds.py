"""Feed parsing, feedparser-style: one fixture file per case, one test walks them all.

A case is `<name>.<ext>` (the body as served) with `<name>.expected.json`: the `request` (url,
optional content_type and zone), then either `error` (what the EntryError must say) or the
feed's parser, title, link, problems (substrings, one per problem, in order) and entries.
Every well-formed XML case also goes through the feedparser fallback, which must give the same
entries as the lxml path.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from lxml import etree
from lxml import html as lxml_html

from aggregator.errors import EntryError
from aggregator.models import Document, Entry
from aggregator.parse import ParsedFeed, parse_date, parse_feed
from aggregator.parse.charsets import decode_xml
from aggregator.parse.fallback import parse_with_feedparser
from aggregator.parse.feeds import parse_xml_feed
from tests.helpers import entry_fields

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
EXPECTED = ".expected.json"
CASES = sorted(path for path in FIXTURES.iterdir() if not path.name.endswith(EXPECTED))
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _expectation(case: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(case.with_suffix(EXPECTED).read_text(encoding="utf-8"))
    return data


def _document(case: Path, request: dict[str, str]) -> Document:
    url = request["url"]
    return Document("test", url, case.read_bytes(), url, request.get("content_type"))


def _text(html: str) -> str:
    if not html.strip():
        return ""
    return " ".join(lxml_html.fragment_fromstring(html, create_parent="div").text_content().split())


def _fields(entry: Entry) -> dict[str, Any]:
    return {**entry_fields(entry), "text": _text(entry.content_html)}


def _check_problems(feed: ParsedFeed, expected: list[str], url: str) -> None:
    assert len(feed.problems) == len(expected), feed.problems
    for problem, wanted in zip(feed.problems, expected, strict=True):
        assert wanted in problem
        if "entry" in wanted:
            assert problem.startswith(f"{url} entry "), "a skipped entry is named with its feed"


def test_every_case_has_an_expectation() -> None:
    assert len(CASES) >= 25
    for case in CASES:
        assert case.with_suffix(EXPECTED).exists(), case


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.stem)
def test_feed_fixture(case: Path) -> None:
    expected = _expectation(case)
    request = expected["request"]
    document = _document(case, request)
    zone = ZoneInfo(request.get("zone", "UTC"))
    if "error" in expected:
        with pytest.raises(EntryError) as raised:
            parse_feed(document, zone)
        assert request["url"] in str(raised.value)
        assert expected["error"] in str(raised.value)
        return
    feed = parse_feed(document, zone)
    assert feed.parser == expected["parser"]
    assert (feed.title, feed.link) == (expected["title"], expected["link"])
    _check_problems(feed, expected["problems"], request["url"])
    assert [_fields(entry) for entry in feed.entries] == expected["entries"]
    for entry in feed.entries:
        assert entry.source == "test"
        assert entry.origin.startswith(f"{request['url']} entry ")
        assert entry.published.tzinfo is not None
        assert entry.updated >= entry.published
        assert entry.updated.utcoffset() is not None
    for expected_entry, entry in zip(expected["entries"], feed.entries, strict=True):
        if not entry.dated:
            assert entry.published.microsecond == 0, "first seen, in whole seconds"
            continue
        wanted = datetime.fromisoformat(expected_entry["published"])
        assert entry.published.utcoffset() == wanted.utcoffset(), "the zone is kept"
    for fragment in expected.get("content_has", []):
        assert any(fragment in entry.content_html for entry in feed.entries), fragment
    if feed.parser == "lxml":
        # The fallback must read a well-formed feed exactly as the fast path does.
        text = decode_xml(document.data, document.content_type, document.origin)
        slow = parse_with_feedparser(text, document, zone, why="test")
        assert slow.parser == "feedparser"
        assert (slow.title, slow.link) == (feed.title, feed.link)
        assert slow.problems[0] == "recovered with feedparser: test"
        assert slow.problems[1:] == feed.problems
        assert [_fields(entry) for entry in slow.entries] == expected["entries"]


def test_malformed_feeds_name_the_syntax_error_with_its_real_line() -> None:
    feed = parse_feed(
        Document("test", "u", (FIXTURES / "malformed_unescaped_ampersand.xml").read_bytes())
    )
    assert feed.problems[0].startswith("recovered with feedparser: xmlParseEntityRef")
    assert "line 2," in feed.problems[0]


@pytest.mark.parametrize("name", ["xxe_external_entity.xml", "xxe_billion_laughs.xml"])
def test_entities_never_expand_on_either_path(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    document = Document("test", "https://example.org/x.xml", data, "https://example.org/x.xml")
    started = time.perf_counter()
    slow = parse_feed(document)
    text = decode_xml(data, None, "x")
    try:
        fast: ParsedFeed | None = parse_xml_feed(text, document, UTC)
    except etree.XMLSyntaxError as error:
        fast = None  # libxml2 refuses to build the entity bomb at all
        assert "amplification" in error.msg
    assert time.perf_counter() - started < 2
    for feed in (slow, fast):
        if feed is None:
            continue
        (entry,) = feed.entries
        dumped = repr(feed)
        assert "root:" not in dumped
        assert "lollol" not in dumped
        assert "&" in entry.title, "the reference stays written out, unexpanded"


def test_a_feed_served_as_json_but_written_in_xml_is_read_as_xml() -> None:
    body = (FIXTURES / "utf8_bom.xml").read_bytes()
    feed = parse_feed(Document("test", "u", body, content_type="application/json"))
    assert feed.parser == "lxml"


def test_a_body_without_a_declared_charset_that_is_not_utf8_is_still_read() -> None:
    body = (FIXTURES / "gbk_encoded.xml").read_bytes().replace(b' encoding="GBK"', b"")
    feed = parse_feed(Document("test", "u", body, content_type="application/rss+xml"))
    assert feed.entries[0].title.startswith("朱镕基会见王堃")


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("Tue, 02 Jan 2024 08:00:00 +0800", UTC, "2024-01-02T08:00:00+08:00"),
        ("Tue, 02 Jan 2024 08:00:00 GMT", SHANGHAI, "2024-01-02T08:00:00+00:00"),
        ("Tue, 02 Jan 2024 08:00:00 CST", UTC, "2024-01-02T08:00:00-06:00"),
        ("Tue, 02 Jan 2024 08:00:00 CST", SHANGHAI, "2024-01-02T08:00:00+08:00"),
        ("Tue, 02 Jan 2024 08:00:00 -0000", SHANGHAI, "2024-01-02T08:00:00+08:00"),
        ("Tue, 02 Jan 2024 08:00:00 UTC+08:00", UTC, "2024-01-02T08:00:00+08:00"),
        ("2024-01-02T08:00:00Z", SHANGHAI, "2024-01-02T08:00:00+00:00"),
        ("2024-01-02", SHANGHAI, "2024-01-02T00:00:00+08:00"),
        ("2024年1月2日 8:05", SHANGHAI, "2024-01-02T08:05:00+08:00"),
        ("January 2, 2024 8:05 PM", UTC, "2024-01-02T20:05:00+00:00"),
        ("发布时间：2024年01月02日 08:05 来源：新华社", SHANGHAI, "2024-01-02T08:05:00+08:00"),
        ("2024-01-02T08:05:00+08:00[Asia/Shanghai]", UTC, "2024-01-02T08:05:00+08:00"),
        (
            "Tue Jan 02 2024 08:05:00 GMT+0800 (China Standard Time)",
            UTC,
            "2024-01-02T08:05:00+08:00",
        ),
    ],
)
def test_parse_date(text: str, zone: ZoneInfo, expected: str) -> None:
    parsed = parse_date(text, zone)
    assert parsed is not None
    assert parsed.isoformat() == expected


@pytest.mark.parametrize("text", ["", "soon", "10", "March 5", "2024-13-45", "2024-01-02T8x"])
def test_parse_date_never_invents_a_date(text: str) -> None:
    assert parse_date(text, UTC) is None
