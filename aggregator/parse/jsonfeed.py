"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1), through the shared entry rules."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

from aggregator.errors import EntryError
from aggregator.models import Document
from aggregator.urls import absolute_url

from .common import (
    ParsedFeed,
    RawEntry,
    absolutize_html,
    assemble_feed,
    string_or_none,
    text_to_html,
)

_JSON_FEED_VERSION = re.compile(r"^https?://jsonfeed\.org/version/\d", re.IGNORECASE)
_ITEM_KEYS = frozenset({"id", "url", "external_url", "content_html", "content_text"})


def looks_like_json(text: str, content_type: str | None) -> bool:
    """A body that starts like JSON, or one served as JSON that does not start like XML."""
    start = text.lstrip()[:1]
    return start == "{" or ("json" in (content_type or "").lower() and start != "<")


def parse_json_feed(text: str, document: Document, default_zone: tzinfo) -> ParsedFeed:
    """Raises EntryError when the body is not JSON or not a JSON Feed; skips bad items.

    A JSON Feed names its version (`https://jsonfeed.org/version/1.1`; 1.0 feeds in the wild
    also write `http://`); a document without one is still read when it is otherwise shaped
    like one: a list of `items` that are objects with an `id`, a `url` or a content."""
    origin = document.origin
    try:
        feed = json.loads(text)
    except ValueError as error:
        raise EntryError(origin, f"not a JSON feed: {error}") from None
    if not isinstance(feed, dict):
        raise EntryError(origin, "not a JSON feed: the document is not an object")
    items = feed.get("items")
    version = feed.get("version")
    if version is not None and not _JSON_FEED_VERSION.match(str(version)):
        raise EntryError(origin, f"not a JSON feed: version {str(version)[:80]!r}")
    if not isinstance(items, list):
        raise EntryError(origin, "not a JSON feed: `items` is not a list")
    if version is None and not _items_look_like_json_feed(items):
        raise EntryError(origin, "not a JSON feed: no jsonfeed.org `version`")
    feed_url = document.base_url or origin
    home = string_or_none(feed.get("home_page_url"))
    head = RawEntry(title=string_or_none(feed.get("title")), title_is_html=False)
    head.link = absolute_url(home, feed_url) if home else None
    return assemble_feed(
        document,
        head,
        items,
        lambda item: _raw(item, feed_url),
        feed_author=_author(feed),
        default_zone=default_zone,
        parser="json",
    )


def _items_look_like_json_feed(items: list[Any]) -> bool:
    return any(isinstance(item, dict) and _ITEM_KEYS & item.keys() for item in items)


def _raw(item: object, feed_url: str) -> RawEntry:
    if not isinstance(item, dict):
        raise EntryError(feed_url, "not a JSON object")
    identifier = item.get("id")
    url = string_or_none(item.get("url")) or string_or_none(item.get("external_url"))
    link = absolute_url(url, feed_url) if url else None
    contents = []
    if string_or_none(item.get("content_html")):
        contents.append(absolutize_html(str(item["content_html"]), link or feed_url))
    for key in ("content_text", "summary"):
        if string_or_none(item.get(key)):
            contents.append(text_to_html(str(item[key])))
    tags = item.get("tags")
    image = string_or_none(item.get("image")) or string_or_none(item.get("banner_image"))
    return RawEntry(
        # 1.0 feeds in the wild give numbers; the spec says string
        guid=str(identifier) if isinstance(identifier, str | int) else None,
        title=string_or_none(item.get("title")),
        title_is_html=False,  # JSON Feed titles are plain text
        link=link,
        published=string_or_none(item.get("date_published")),
        updated=string_or_none(item.get("date_modified")),
        author=_author(item),
        tags=[str(tag) for tag in tags] if isinstance(tags, list) else [],
        contents=contents,
        image=absolute_url(image, feed_url) if image else None,
    )


def _author(node: Mapping[str, Any]) -> str | None:
    """1.1 `authors` (the first with a name), else 1.0 `author`."""
    authors = node.get("authors")
    candidates = authors if isinstance(authors, list) else []
    candidates = [*candidates, node.get("author")]
    for author in candidates:
        if isinstance(author, dict) and string_or_none(author.get("name")):
            return str(author["name"])
    return None
