"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1), through the shared entry rules."""

from __future__ import annotations

import json
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
    build_entry,
    string_or_none,
    text_to_html,
)


def looks_like_json(text: str, content_type: str | None) -> bool:
    """A body that starts like JSON, or one served as JSON that does not start like XML."""
    start = text.lstrip()[:1]
    return start == "{" or ("json" in (content_type or "").lower() and start != "<")


def parse_json_feed(text: str, document: Document, default_zone: tzinfo) -> ParsedFeed:
    """Raises EntryError when the body is not JSON or not a JSON Feed; skips bad items."""
    origin = document.origin
    try:
        feed = json.loads(text)
    except ValueError as error:
        raise EntryError(origin, f"not a JSON feed: {error}") from None
    if not isinstance(feed, dict) or not str(feed.get("version", "")).startswith(
        "https://jsonfeed.org/version/"
    ):
        raise EntryError(origin, "not a JSON feed: no jsonfeed.org `version`")
    items = feed.get("items")
    if not isinstance(items, list):
        raise EntryError(origin, "not a JSON feed: `items` is not a list")
    feed_url = document.base_url or origin
    feed_author = _author(feed)
    entries, problems = [], []
    for number, item in enumerate(items, start=1):
        item_origin = f"{origin} entry {number}"
        try:
            if not isinstance(item, dict):
                raise EntryError(item_origin, "not a JSON object")
            raw = _raw(item, feed_url)
            raw.author = raw.author or feed_author
            entry = build_entry(
                raw,
                source=document.source,
                origin=item_origin,
                feed_date=None,  # a JSON Feed has no date of its own
                default_zone=default_zone,
            )
        except EntryError as error:
            problems.append(str(error))
            continue
        entries.append(entry)
    home = string_or_none(feed.get("home_page_url"))
    return ParsedFeed(
        title=string_or_none(feed.get("title")),
        link=absolute_url(home, feed_url) if home else None,
        entries=tuple(entries),
        problems=tuple(problems),
        parser="json",
    )


def _raw(item: Mapping[str, Any], feed_url: str) -> RawEntry:
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
