"""Render stage: feeds, pages and OPML written into the output folder.

Output is a pure function of the input (no clock, no random), and a file is rewritten only when
its bytes change, so a pass that changed nothing leaves every mtime, ETag and reader cache alone.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aggregator.config import OUTPUT_MARKER
from aggregator.errors import describe
from aggregator.models import (
    DailyCounts,
    FeedData,
    FeedItem,
    SiteSettings,
    SourceHealth,
    TagSummary,
)
from aggregator.render.common import (
    FeedPaths,
    feed_description,
    feed_items,
    feed_title,
    item_page_path,
)
from aggregator.render.feeds import FeedSpec, atom_bytes, json_bytes, rss_bytes
from aggregator.render.files import OutputWriter, remove_leftovers, write_atomic
from aggregator.render.pages import STYLESHEET, index_html, item_html, opml_bytes, stylesheet

__all__ = ["RenderReport", "remove_leftovers", "render_site"]

log = logging.getLogger("aggregator")


@dataclass(frozen=True, slots=True)
class RenderReport:
    written: tuple[Path, ...]  # files whose bytes changed (or were created)
    unchanged: int  # files rendered but identical on disk, not touched


def render_site(
    site: SiteSettings,
    feeds: Sequence[FeedData],
    tags: Sequence[TagSummary],
    sources: Sequence[SourceHealth],
    *,
    daily: DailyCounts | None = None,
    health: Mapping[str, str] | None = None,
) -> RenderReport:
    """Write every given feed in three formats, the local pages of stories without a link,
    index.html and feeds.opml. Raises RenderError naming the file that could not be written."""
    writer = OutputWriter(site.dir)
    _mark_as_ours(site.dir)
    tags_by_slug = {tag.slug: tag for tag in tags}
    specs: list[FeedSpec] = []
    pages: dict[str, FeedItem] = {}
    all_feed: FeedData | None = None

    for feed in feeds:
        items = feed_items(site, feed)
        if feed.slug is None:
            all_feed = FeedData(slug=None, title=feed.title, items=items)
        title = feed_title(site, feed, tags_by_slug)
        specs.append(
            FeedSpec(
                site=site,
                paths=FeedPaths.of(feed.slug),
                title=title,
                description=feed_description(site, feed, title),
                items=items,
            )
        )
        for item in items:
            if not item.link:
                # The same story sits in several feeds; its page is written once.
                pages.setdefault(item_page_path(item), item)

    # Pages before the feeds that link to them, so a reader never follows a link to a 404.
    for relative, item in sorted(pages.items()):
        _write(writer, relative, functools.partial(item_html, site, item))
    for spec in specs:
        for fmt, render in (("rss", rss_bytes), ("atom", atom_bytes), ("json", json_bytes)):
            _write(writer, spec.paths.file(fmt), functools.partial(render, spec))
    writer.write(STYLESHEET, stylesheet())
    writer.write("feeds.opml", opml_bytes(site, tags))
    writer.write(
        "index.html", index_html(site, all_feed, tags, sources, daily=daily, health=health)
    )
    return RenderReport(written=tuple(writer.written), unchanged=writer.unchanged)


def _mark_as_ours(folder: Path) -> None:
    """The marker `aggregator check` knows an output folder of ours by, so that a start never
    clears temp files in a folder of someone else's."""
    marker = folder / OUTPUT_MARKER
    if not marker.exists():
        write_atomic(marker, b"This folder is aggregator's output (output.dir in its config).\n")


def _write(writer: OutputWriter, relative: str, render: Callable[[], bytes]) -> None:
    """One file: a story or feed that cannot be rendered is that file's failure alone (named in
    the log, its last good version left in place); every other file is still written."""
    try:
        data = render()
    except Exception as error:
        log.error("%s: cannot render: %s", relative, describe(error))
        return
    writer.write(relative, data)
