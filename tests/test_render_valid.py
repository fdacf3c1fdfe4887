"""Render stage: RSS and Atom output stays valid for the values that once made it invalid.

Each class of problem the W3C Feed Validator reports (or that kept a feed from being written at
all) has a test here, through the real render path; the assertions check the property itself
(the output parses, a link is an RFC 3986 URI, a date is RFC 822 or RFC 3339), not the validator,
which is not a dependency (benchmarks/w3c_validate.py runs it over the real-world corpus).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import feedparser
from lxml import etree

from aggregator.models import FeedData, FeedItem, SiteSettings
from aggregator.render import render_site
from tests.test_render import make_item, site_for

ATOM = "{http://www.w3.org/2005/Atom}"

# RFC 3986 `URI` with a reg-name host, spelled out: what may stand in each part as it is.
_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
URI = re.compile(
    rf"[A-Za-z][A-Za-z0-9+.\-]*://(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{{2}})*"
    rf"(?:/{_PCHAR}*)*(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"
)
# RFC 822/2822 date-time as RSS 2.0 wants it: a four-digit year and an offset in hours and minutes.
RFC822 = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d [+-]\d{4}"
)
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def render_items(site: SiteSettings, *items: FeedItem) -> Path:
    render_site(site, [FeedData(None, "Aggregator", items)], [], [])
    return site.dir


def rss_channel(root: Path) -> etree._Element:
    channel = etree.fromstring((root / "all.rss").read_bytes()).find("channel")
    assert channel is not None
    return channel


def atom_feed(root: Path) -> etree._Element:
    return etree.fromstring((root / "all.atom").read_bytes())


def texts(elements: list[etree._Element], path: str = "") -> list[str]:
    """The text of each element (or of its child at `path`); every one must be there."""
    found = [element.findtext(path) if path else element.text for element in elements]
    assert all(text is not None for text in found), found
    return [text or "" for text in found]


def hrefs(elements: list[etree._Element]) -> list[str]:
    found = [element.get("href") for element in elements]
    assert all(href is not None for href in found), found
    return [href or "" for href in found]


def test_links_are_uris_that_keep_every_character(tmp_path: Path) -> None:
    # Web URLs as sources publish them: characters a URI may not hold as they are.
    links = [
        'https://example.org/search?q={term}|x^y`z&f[]=1&s="a"<b>\\c',
        "https://example.org/100%_sure/50%2Fhalf",
        "https://example.org/page#one#two",
        "https://example.org/list[1]/item?a[b]=c#frag[0]",
    ]
    items = [
        make_item(id=f"0b6f2a40-6c3e-4d0a-9a4e-00000000001{number}", link=link)
        for number, link in enumerate(links)
    ]
    site = replace(site_for(tmp_path), base_url="http://127.0.0.1:8080/my feeds/")
    root = render_items(site, *items)

    channel = rss_channel(root)
    feed = atom_feed(root)
    rss_links = texts(list(channel.iter("item")), "link")
    atom_links = hrefs(feed.findall(f"{ATOM}entry/{ATOM}link"))
    json_links = [
        entry["url"] for entry in json.loads((root / "all.json").read_text("utf-8"))["items"]
    ]
    for written in (rss_links, atom_links, json_links):
        assert len(written) == len(links)
        for link, uri in zip(links, written, strict=True):
            assert URI.fullmatch(uri), uri
            # Escaped, not changed: the same characters once the escapes are read.
            assert unquote(uri) == unquote(link)
    # The feed's own URLs and the site link too (a base_url with a space in it).
    feed_links = [*texts(channel.findall("link")), *hrefs(channel.findall(f"{ATOM}link"))]
    feed_links += hrefs(feed.findall(f"{ATOM}link"))
    for link in feed_links:
        assert URI.fullmatch(link), link
    assert channel.findtext("link") == "http://127.0.0.1:8080/my%20feeds/"


def test_a_uri_is_written_as_it_was(tmp_path: Path) -> None:
    # Byte-stable output: a link that is already a URI is not re-escaped or normalised, and an
    # IPv6 host keeps the brackets it must have.
    links = [
        "https://Example.org/a%20b/c;p?x=%7B1%7D&y=%5B%5D&z=~!$'()*+,;=:@/?#top/?:@",
        "http://[2001:db8::1]:8080/feed?x=1",
    ]
    items = [
        make_item(id=f"0b6f2a40-6c3e-4d0a-9a4e-00000000002{number}", link=link)
        for number, link in enumerate(links)
    ]
    root = render_items(site_for(tmp_path), *items)
    assert texts(list(rss_channel(root).iter("item")), "link") == links
    assert hrefs(atom_feed(root).findall(f"{ATOM}entry/{ATOM}link")) == links


def test_dates_whose_offset_has_seconds_are_written_in_utc(tmp_path: Path) -> None:
    # A zone's local mean time (Shanghai before 1928: +08:05:43), and an ISO offset with seconds.
    shanghai = datetime(1890, 1, 1, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    odd = datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30, seconds=15)))
    items = [
        make_item(id="0b6f2a40-6c3e-4d0a-9a4e-000000000021", published=shanghai, updated=shanghai),
        make_item(id="0b6f2a40-6c3e-4d0a-9a4e-000000000022", published=odd, updated=odd),
    ]
    root = render_items(site_for(tmp_path), *items)

    channel = rss_channel(root)
    dates = texts(list(channel.iter("item")), "pubDate") + texts(channel.findall("lastBuildDate"))
    for text in dates:
        assert RFC822.fullmatch(text), text
    assert [parsedate_to_datetime(text) for text in dates[:2]] == [shanghai, odd]

    feed = atom_feed(root)
    published = texts(feed.findall(f"{ATOM}entry/{ATOM}published"))
    stamps = [*published, *texts(feed.findall(f".//{ATOM}updated"))]
    for text in stamps:
        assert RFC3339.fullmatch(text), text
    assert [datetime.fromisoformat(text) for text in published] == [shanghai, odd]
    for entry in json.loads((root / "all.json").read_text("utf-8"))["items"]:
        assert RFC3339.fullmatch(entry["date_published"]), entry["date_published"]


def test_dates_before_year_1000_have_four_digit_years(tmp_path: Path) -> None:
    # .NET's DateTime.MinValue, as some feeds publish it, and the same in a local-mean-time zone
    # (the first day Python holds: the same instant in UTC would be out of range).
    first = datetime(1, 1, 1, tzinfo=UTC)
    local = datetime(1, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
    late = datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC)
    items = [
        make_item(id=f"0b6f2a40-6c3e-4d0a-9a4e-00000000003{number}", published=when, updated=when)
        for number, when in enumerate((first, local, late))
    ]
    root = render_items(site_for(tmp_path), *items)

    channel = rss_channel(root)
    assert texts(list(channel.iter("item")), "pubDate") == [
        "Mon, 01 Jan 0001 00:00:00 +0000",
        "Mon, 01 Jan 0001 00:00:00 +0000",
        "Tue, 31 Dec 0999 23:59:59 +0000",
    ]
    assert channel.findtext("lastBuildDate") == "Tue, 31 Dec 0999 23:59:59 +0000"
    for text in texts(atom_feed(root).findall(f"{ATOM}entry/{ATOM}published")):
        assert RFC3339.fullmatch(text), text


def test_a_title_or_author_of_only_xml_forbidden_characters_falls_back(tmp_path: Path) -> None:
    # Once the characters XML forbids are gone nothing is left: feedgen refused the Atom entry
    # ("Required fields not set") and the whole all.atom was not written.
    item = make_item(title="\x01\x02", author="\x0b", summary="")
    root = render_items(site_for(tmp_path), item)
    for name in ("all.rss", "all.atom"):
        parsed = feedparser.parse((root / name).read_bytes())
        assert parsed.bozo == 0, name
        assert parsed.entries[0].title == "(untitled)"
        assert parsed.entries[0].author == item.source
