"""The slow path: feedparser's forgiving parser, for feeds lxml refuses as malformed.

feedparser is handed the text the charset rules already decoded, re-encoded as UTF-8 and
declared so, in a stream (never a string it could take for a URL or a file name), and its
entries go through the same rules as the lxml path's, so both paths give the same Entries.

No Content-Location is passed: with one, feedparser rewrites relative guids into URLs and the
key would change; relative links are resolved here instead, against the xml:base feedparser
reports, then the feed URL.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

import feedparser

from aggregator.errors import EntryError
from aggregator.models import Document
from aggregator.urls import absolute_url

from .common import (
    ParsedFeed,
    RawEntry,
    absolutize_html,
    assemble_feed,
    text_to_html,
)

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_BARE_AMPERSAND = re.compile(r"&(?!(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9A-Fa-f]+);)")


def parse_with_feedparser(
    text: str, document: Document, default_zone: tzinfo, *, why: str
) -> ParsedFeed:
    """`why` says what the fast path refused; it leads the problems. Raises EntryError when
    feedparser finds no feed either."""
    # A bare & is the commonest fault; escaped, it no longer derails feedparser into
    # mangling the URLs around it (`?a=1&b=2` would come out as `?a=1&b;=2`).
    text = _BARE_AMPERSAND.sub("&amp;", text)
    result = feedparser.parse(
        io.BytesIO(text.encode("utf-8")),
        response_headers={"content-type": "application/xml; charset=utf-8"},
        resolve_relative_uris=True,
        sanitize_html=False,
    )
    feed: Mapping[str, Any] = result.get("feed", {})
    items: list[Mapping[str, Any]] = list(result.get("entries", []))
    if not items and not result.get("version") and not feed.get("title"):
        raise EntryError(document.origin, f"not a feed: {why}")
    feed_url = document.base_url or document.origin
    head = _raw(feed, feed_url)
    feed_author = head.author if str(result.get("version", "")).startswith("atom") else None
    return assemble_feed(
        document,
        head,
        items,
        lambda item: _raw(item, feed_url),
        feed_author=feed_author,
        default_zone=default_zone,
        parser="feedparser",
        problems=[f"recovered with feedparser: {why}"],
    )


def _raw(item: Mapping[str, Any], feed_url: str) -> RawEntry:
    links = _details(item.get("links"))
    alternate = next(
        (
            absolute_url(link["href"], feed_url)
            for link in links
            if link.get("href")
            and link.get("rel", "alternate") == "alternate"
            and link.get("type", "text/html") in _HTML_TYPES
        ),
        None,
    )
    # A link feedparser took from a permalink guid is the guid as written: never resolved.
    permalink = item.get("link") if item.get("guidislink") else None
    return RawEntry(
        guid=item.get("id"),
        title=item.get("title"),
        title_is_html=_title_is_html(item),
        link=alternate or permalink,
        published=item.get("published"),
        # FeedParserDict.get("updated") answers with `published` when there is no update.
        updated=dict.get(item, "updated") if isinstance(item, dict) else item.get("updated"),
        author=_author(item),
        tags=[tag.get("term") or tag.get("label") or "" for tag in _tags(item)],
        contents=[_body(detail, feed_url) for detail in _bodies(item)],
        image=_image(item, links, feed_url),
    )


def _title_is_html(item: Mapping[str, Any]) -> bool:
    # feedparser has already decided (from Atom's type, or by looking at an RSS title).
    detail = item.get("title_detail")
    detail = detail if isinstance(detail, Mapping) else {}
    return str(detail.get("type", "text/html")) in _HTML_TYPES


def _author(item: Mapping[str, Any]) -> str | None:
    detail = item.get("author_detail")
    detail = detail if isinstance(detail, Mapping) else {}
    value = detail.get("name") or detail.get("email") or item.get("author")
    return str(value) if value else None


def _tags(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    # feedparser turns iTunes categories and keywords into tags too; the lxml path does not.
    tags = _details(item.get("tags"))
    return [tag for tag in tags if tag.get("scheme") != "http://www.itunes.com/"]


def _bodies(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    # `content` is a list of details on an entry, but a plain string on a feed head that
    # carries itunes:summary: only the details are bodies.
    bodies = _details(item.get("content"))
    summary = item.get("summary_detail")
    if isinstance(summary, Mapping):
        bodies.append(summary)
    return bodies


def _details(value: object) -> list[Mapping[str, Any]]:
    """The mappings of a feedparser list value; anything else in its place is ignored."""
    if not isinstance(value, list):
        return []
    return [detail for detail in value if isinstance(detail, Mapping)]


def _body(detail: Mapping[str, Any], feed_url: str) -> str:
    value = str(detail.get("value") or "")
    if detail.get("type") == "text/plain":
        return text_to_html(value)
    if detail.get("type") not in _HTML_TYPES:
        return ""
    return absolutize_html(value, absolute_url(detail.get("base") or "", feed_url) or feed_url)


def _image(item: Mapping[str, Any], links: list[Mapping[str, Any]], feed_url: str) -> str | None:
    thumbnails = _details(item.get("media_thumbnail"))
    media = _details(item.get("media_content"))
    found = [thumbnail.get("url") for thumbnail in thumbnails]
    found += [
        content.get("url")
        for content in media
        if content.get("medium") == "image" or str(content.get("type", "")).startswith("image/")
    ]
    found += [
        link.get("href")
        for link in links
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/")
    ]
    url = next((url for url in found if url), None)
    return absolute_url(str(url), feed_url) if url else None
