"""Checking a source before it goes into the config: fetch once, parse, and when a feed URL
turns out to be an HTML page, follow the feed it announces (<link rel="alternate">)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aggregator.errors import EntryError
from aggregator.fetch import Fetcher
from aggregator.models import Document, FetchRequest
from aggregator.parse import discover_feeds, find_article_links, parse_feed

_CHECK = "check"


@dataclass(frozen=True, slots=True)
class Checked:
    """What one fetch of a would-be source showed."""

    url: str  # the URL to put in the config: the feed itself when `page_url` announced it
    ok: bool
    message: str  # what a user reads: what was found, or why it failed
    page_url: str | None = None  # the HTML page the feed was discovered on
    title: str | None = None
    entries: int = 0
    home: str | None = None  # the site the feed names as its own (its <link>, home_page_url)


async def _get(fetcher: Fetcher, url: str, timeout: float, max_bytes: int) -> Document | str:
    request = FetchRequest(source=_CHECK, url=url, timeout=timeout, max_bytes=max_bytes)
    result = await fetcher.fetch(request)
    if result.document is None:
        # Without the URL: the Checked it ends up in carries it, and the CLI names it once.
        return result.error or f"HTTP {result.status}, no body"
    return result.document


def _feed(document: Document, page_url: str | None) -> Checked:
    url = document.origin
    try:
        feed = parse_feed(document)
    except EntryError as error:
        return Checked(url, False, error.reason, page_url)
    if not feed.entries and feed.problems:
        return Checked(url, False, "malformed feed: " + "; ".join(feed.problems[:3]), page_url)
    found = f"{len(feed.entries)} {'entry' if len(feed.entries) == 1 else 'entries'}"
    named = f" ({feed.title})" if feed.title else ""
    via = f", announced by {page_url}" if page_url else ""
    message = f"a feed{named} with {found}{via}"
    return Checked(url, True, message, page_url, feed.title, len(feed.entries), feed.link)


async def check_feed(url: str, timeout: float = 20.0, max_bytes: int = 5_000_000) -> Checked:
    """Fetch `url`; a feed is read as it is, an HTML page is searched for the feed it announces
    and that feed is fetched and read instead."""
    async with Fetcher(per_host=2, total=4) as fetcher:
        got = await _get(fetcher, url, timeout, max_bytes)
        if isinstance(got, str):
            return Checked(url, False, got)
        checked = _feed(got, None)
        if checked.ok:
            return checked
        try:
            announced = discover_feeds(got)
        except EntryError:
            announced = []
        if not announced:
            return checked
        feed_url = announced[0]
        feed_document = await _get(fetcher, feed_url, timeout, max_bytes)
        if isinstance(feed_document, str):
            return Checked(feed_url, False, feed_document, url)
        return _feed(feed_document, url)


async def check_page(
    url: str, selector: str, timeout: float = 20.0, max_bytes: int = 5_000_000
) -> Checked:
    """Fetch a listing page and count the article links the selector picks on it."""
    async with Fetcher(per_host=2, total=4) as fetcher:
        got = await _get(fetcher, url, timeout, max_bytes)
    if isinstance(got, str):
        return Checked(url, False, got)
    try:
        links = find_article_links(got, selector)
    except EntryError as error:
        return Checked(url, False, error.reason)
    if not links:
        return Checked(url, False, f"the selector {selector!r} picks no article link on the page")
    return Checked(url, True, f"a page where {selector!r} picks {len(links)} article links")


def check_source(
    url: str, kind: str, selector: str | None = None, timeout: float = 20.0
) -> Checked:
    """The blocking entry point for the CLI."""
    if kind == "page" and selector:
        return asyncio.run(check_page(url, selector, timeout))
    return asyncio.run(check_feed(url, timeout))
