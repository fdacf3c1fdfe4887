"""RSS 2.0, Atom 1.0 and JSON Feed 1.1 documents for one feed.

feedgen traps worked around here (feedgen 1.0):
- feed and entry `updated` default to datetime.now(): always set from the items (or EPOCH);
- `add_entry()` prepends by default, which reverses the items: use order="append";
- the RSS channel <link> is whichever link() call came last: add rel=self first, the site last;
- RSS <author> is only written for authors with an email: use dc:creator instead;
- the generator element carries feedgen's version: pin it so an upgrade alone rewrites nothing;
- an empty RSS description moves the content into <description> and drops content:encoded:
  fall back to the title so every item keeps both;
- lxml raises on XML-invalid control characters: strip them from every text;
- RSS dates are strftime's, whose %Y has no leading zeros below year 1000 (`1 Jan 1`, where
  RFC 822 wants `1 Jan 0001`): pad them in the output when a feed has such a date;
- Atom entry links lose rel/type (feedgen shadows its loop variable): harmless, rel defaults
  to alternate in Atom.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from feedgen.feed import FeedGenerator

from aggregator.models import FeedItem, SiteSettings
from aggregator.render.common import (
    FeedPaths,
    feed_updated,
    item_author,
    item_content,
    item_link,
    item_title,
    item_urn,
    url_for,
    whole_seconds,
    xml_text,
)

GENERATOR = "aggregator"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"

# An RSS date as feedgen writes it (`Mon, 01 Jan 1 00:00:00 +0000`) with a year of 1 to 3 digits.
_SHORT_YEAR = re.compile(rb"(<(?:pubDate|lastBuildDate)>\w{3}, \d\d \w{3} )(\d{1,3}) ")


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """Everything one feed's three documents are made of."""

    site: SiteSettings
    paths: FeedPaths
    title: str
    description: str
    items: Sequence[FeedItem]

    def url(self, fmt: str) -> str:
        return url_for(self.site, self.paths.file(fmt))


def _generator(spec: FeedSpec, fmt: str, media_type: str) -> FeedGenerator:
    fg = FeedGenerator()
    fg.id(spec.url(fmt))
    fg.title(xml_text(spec.title))
    fg.subtitle(xml_text(spec.description))  # also the RSS <description>
    fg.author({"name": xml_text(spec.site.title)})
    fg.generator(GENERATOR)
    # Order matters: RSS takes its channel <link> from the last call, atom:link self from the first.
    fg.link(href=spec.url(fmt), rel="self", type=media_type)
    fg.link(href=url_for(spec.site, ""), rel="alternate", type="text/html")
    fg.updated(feed_updated(spec.items))
    return fg


def _add_entries(fg: FeedGenerator, spec: FeedSpec, *, rss: bool) -> None:
    for item in spec.items:
        entry = fg.add_entry(order="append")
        title = xml_text(item_title(item))
        entry.id(item_urn(item))
        entry.title(title)
        entry.link(href=item_link(spec.site, item), rel="alternate", type="text/html")
        entry.published(whole_seconds(item.published))
        entry.updated(whole_seconds(item.updated))
        author = xml_text(item_author(item, spec.site))
        if rss:
            entry.dc.dc_creator(author)
        else:
            entry.author({"name": author})
        for tag in item.tags:
            entry.category(term=xml_text(tag))
        entry.content(xml_text(item_content(item, spec.site)), type="html")
        summary = xml_text(item.summary) or title
        # RSS <description> is read as HTML: escape the plain text so "<" survives as text.
        entry.summary(html.escape(summary, quote=False) if rss else summary)


def rss_bytes(spec: FeedSpec) -> bytes:
    fg = _generator(spec, "rss", "application/rss+xml")
    # Before add_entry: feedgen hands loaded extensions only to entries created afterwards.
    fg.load_extension("dc", atom=False, rss=True)
    _add_entries(fg, spec, rss=True)
    data: bytes = fg.rss_str(pretty=True)
    dates = [feed_updated(spec.items), *(whole_seconds(item.published) for item in spec.items)]
    if min(date.year for date in dates) < 1000:
        data = _SHORT_YEAR.sub(lambda match: match[1] + match[2].rjust(4, b"0") + b" ", data)
    return data


def atom_bytes(spec: FeedSpec) -> bytes:
    fg = _generator(spec, "atom", "application/atom+xml")
    _add_entries(fg, spec, rss=False)
    data: bytes = fg.atom_str(pretty=True)
    return data


def _json_item(spec: FeedSpec, item: FeedItem) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": item_urn(item),
        "url": item_link(spec.site, item),
        "title": item_title(item),
        "content_html": item_content(item, spec.site),
        "summary": item.summary,
        "date_published": whole_seconds(item.published).isoformat(),
        "date_modified": whole_seconds(item.updated).isoformat(),
        "authors": [{"name": item_author(item, spec.site)}],
        "tags": list(item.tags),
    }
    if item.image:
        entry["image"] = item.image
    return entry


def json_bytes(spec: FeedSpec) -> bytes:
    document: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": spec.title,
        "description": spec.description,
        "home_page_url": url_for(spec.site, ""),
        "feed_url": spec.url("json"),
        "authors": [{"name": spec.site.title}],
        "items": [_json_item(spec, item) for item in spec.items],
    }
    text = json.dumps(document, ensure_ascii=False, sort_keys=True, indent=2)
    return (text + "\n").encode("utf-8")
