"""What every output format agrees on: paths and URLs, titles, authors, dates and item content."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from aggregator.errors import RenderError
from aggregator.models import FeedData, FeedItem, SiteSettings, TagSummary
from aggregator.urls import as_uri

# Feed-level "updated" of an empty feed: any fixed instant keeps the output byte-stable.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

UNTITLED = "(untitled)"

# Characters XML 1.0 forbids; lxml refuses them outright, so one stray byte would fail a feed.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

FORMATS = ("rss", "atom", "json")


def xml_text(text: str) -> str:
    return _XML_INVALID.sub("", text)


def url_for(site: SiteSettings, relative: str) -> str:
    """Absolute URL of an output file; non-ASCII path segments are percent-encoded UTF-8."""
    return site.base_url + quote(relative, safe="/")


def _check_slug(slug: str) -> str:
    if not slug or slug.startswith(".") or any(char in slug for char in "/\\\x00"):
        raise RenderError(f"tags/{slug}: tag slug is not usable as a file name")
    return slug


@dataclass(frozen=True, slots=True)
class FeedPaths:
    """Where one feed's three files live, relative to the output folder."""

    stem: str  # "all" or "tags/<slug>"

    @classmethod
    def of(cls, slug: str | None) -> FeedPaths:
        return cls("all" if slug is None else f"tags/{_check_slug(slug)}")

    def file(self, fmt: str) -> str:
        return f"{self.stem}.{fmt}"


def item_page_path(item: FeedItem) -> str:
    if not _SAFE_ID.fullmatch(item.id):
        raise RenderError(f"items/{item.id}.html: item id is not usable as a file name")
    return f"items/{item.id}.html"


def item_link(site: SiteSettings, item: FeedItem) -> str:
    """The article URL (as a URI: an IRI's non-ASCII percent-encoded), or the local page render
    writes for a story without one."""
    return as_uri(item.link) if item.link else url_for(site, item_page_path(item))


def whole_seconds(when: datetime) -> datetime:
    """Feed dates in whole seconds: RFC 822 has no fractions, and readers compare dates."""
    return when.replace(microsecond=0)


def item_title(item: FeedItem) -> str:
    return item.title if item.title.strip() else UNTITLED


def item_author(item: FeedItem) -> str:
    return item.author if item.author and item.author.strip() else item.source


def item_urn(item: FeedItem) -> str:
    return f"urn:uuid:{item.id}"


def also_reported_html(item: FeedItem) -> str:
    if not item.also_reported:
        return ""
    rows: list[str] = []
    for other in item.also_reported:
        name = html.escape(other.source)
        shown = f'<a href="{html.escape(other.link)}">{name}</a>' if other.link else name
        if other.title:
            shown += f" ({html.escape(other.title)})"
        rows.append(f"<li>{shown}</li>")
    return "<hr><p>Also reported by:</p><ul>" + "".join(rows) + "</ul>"


def item_content(item: FeedItem) -> str:
    """The cleaned HTML followed by the list of the other sources that carried the story."""
    return item.content_html + also_reported_html(item)


def feed_updated(items: Sequence[FeedItem]) -> datetime:
    # Never "now": the newest change among the items, so the same input gives the same bytes.
    return whole_seconds(max((item.updated for item in items), default=EPOCH))


def feed_items(site: SiteSettings, feed: FeedData) -> tuple[FeedItem, ...]:
    if site.items_per_feed > 0:
        return feed.items[: site.items_per_feed]
    return feed.items


def tag_title(site: SiteSettings, name: str) -> str:
    return f"{site.title}: {name}"


def feed_title(site: SiteSettings, feed: FeedData, tags: dict[str, TagSummary]) -> str:
    if feed.slug is None:
        return site.title
    summary = tags.get(feed.slug)
    if summary is not None:
        return tag_title(site, summary.name)
    if feed.title.startswith(f"{site.title}: "):
        return feed.title
    return tag_title(site, feed.title or feed.slug)


def feed_description(site: SiteSettings, feed: FeedData, title: str) -> str:
    if feed.slug is None:
        return f"Every story collected by {site.title}"
    return f"Stories tagged {title.removeprefix(site.title + ': ')}"


def format_when(when: datetime | None) -> str:
    """A date for people: minutes, with the offset it was recorded in."""
    if when is None:
        return "—"
    return when.strftime("%Y-%m-%d %H:%M %z") if when.tzinfo else when.strftime("%Y-%m-%d %H:%M")
