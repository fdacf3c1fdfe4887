"""What every output format agrees on: paths and URLs, titles, authors, dates and item content."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
# What as_uri lets through that a URI may not hold as it is (RFC 3986): the ASCII characters
# outside its reserved and unreserved sets (`"<>\^`{|}`), and a `%` that starts no escape.
_NOT_IN_URI = re.compile(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]|%(?![0-9A-Fa-f]{2})")
_AUTHORITY_END = re.compile(r"[/?#]")
_MINUTE = timedelta(minutes=1)

FORMATS = ("rss", "atom", "json")


def xml_text(text: str) -> str:
    return _XML_INVALID.sub("", text)


def _percent(match: re.Match[str]) -> str:
    return f"%{ord(match[0]):02X}"


def link_uri(url: str) -> str:
    """A web URL as a URI feeds can carry (RFC 3986, what the W3C validator checks): as_uri's
    IDNA host and escapes, then every character a URI may not hold as it is percent-encoded:
    `"<>\\^`{|}`, a `%` that starts no escape, `[` and `]` outside the host (only an IPv6
    host holds them) and a second `#`. A URI comes back as it was."""
    uri = _NOT_IN_URI.sub(_percent, as_uri(url))
    if "[" not in uri and "]" not in uri and uri.count("#") < 2:
        return uri
    scheme, slashes, rest = uri.partition("//")
    authority = _AUTHORITY_END.split(rest, maxsplit=1)[0]
    tail = rest[len(authority) :]
    head, hash_, fragment = tail.partition("#")
    tail = head + hash_ + fragment.replace("#", "%23")
    tail = tail.replace("[", "%5B").replace("]", "%5D")
    return scheme + slashes + authority + tail


def url_for(site: SiteSettings, relative: str) -> str:
    """Absolute URL of an output file; non-ASCII path segments are percent-encoded UTF-8."""
    return link_uri(site.base_url) + quote(relative, safe="/")


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
    return link_uri(item.link) if item.link else url_for(site, item_page_path(item))


def whole_seconds(when: datetime) -> datetime:
    """A feed date as RFC 822 and RFC 3339 can write it: in whole seconds (RFC 822 has no
    fractions, and readers compare dates), and with a zone offset in whole minutes. A date whose
    offset has seconds (a zone's local mean time, before standard time) is the same instant in
    UTC; at the very first or last day Python holds, where UTC is out of range, the time as
    written, in UTC."""
    when = when.replace(microsecond=0)
    offset = when.utcoffset()
    if offset is None or not offset % _MINUTE:
        return when
    try:
        return when.astimezone(UTC)
    except OverflowError:
        return when.replace(tzinfo=UTC)


def item_title(item: FeedItem) -> str:
    """The title, or UNTITLED when it has no character a feed can carry (blank, or nothing but
    characters XML forbids: feedgen refuses an Atom entry without a title)."""
    return item.title if xml_text(item.title).strip() else UNTITLED


def item_author(item: FeedItem, site: SiteSettings) -> str:
    """The author, or how `site` shows the source (its title, else its name) when the author
    has no character a feed can carry."""
    if item.author and xml_text(item.author).strip():
        return item.author
    return site.source_label(item.source)


def item_urn(item: FeedItem) -> str:
    return f"urn:uuid:{item.id}"


def also_reported_html(item: FeedItem, site: SiteSettings) -> str:
    """The other sources that carried the story, each as `site` shows it (its title, else its
    name), with its link and its own title of the story."""
    if not item.also_reported:
        return ""
    rows: list[str] = []
    for other in item.also_reported:
        name = html.escape(site.source_label(other.source))
        shown = f'<a href="{html.escape(other.link)}">{name}</a>' if other.link else name
        if other.title:
            shown += f" ({html.escape(other.title)})"
        rows.append(f"<li>{shown}</li>")
    return "<hr><p>Also reported by:</p><ul>" + "".join(rows) + "</ul>"


def item_content(item: FeedItem, site: SiteSettings) -> str:
    """The cleaned HTML followed by the list of the other sources that carried the story."""
    return item.content_html + also_reported_html(item, site)


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
