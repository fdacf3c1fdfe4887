"""Render stage: feeds, pages and OPML written into the output folder.

Output is a pure function of the input (no clock, no random), and a file is rewritten only when
its bytes change, so a pass that changed nothing leaves every mtime, ETag and reader cache alone.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
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
from aggregator.render.health import sources_html
from aggregator.render.layout import SOURCES_PAGE, page_count, story_page_path
from aggregator.render.pages import STYLESHEET, index_html, item_html, opml_bytes, stylesheet
from aggregator.render.stories import RIVER_HEADING, story_page_html

__all__ = ["RenderReport", "remove_leftovers", "render_site", "tags_without_pages"]

log = logging.getLogger("aggregator")


@dataclass(frozen=True, slots=True)
class RenderReport:
    written: tuple[Path, ...]  # files whose bytes changed (or were created)
    unchanged: int  # files rendered but identical on disk, not touched
    removed: tuple[Path, ...] = ()  # pages past a list's last page, deleted


@dataclass(frozen=True, slots=True)
class _StoryPages:
    """The HTML pages of one feed: the same stories, PAGE_SIZE at a time."""

    slug: str | None
    heading: str
    feed_title: str
    items: tuple[FeedItem, ...]


def tags_without_pages(folder: Path, slugs: Collection[str]) -> set[str]:
    """The tags whose first HTML page is missing from the output folder (an output written
    before tags had pages, or a file deleted by hand): their feeds are due for a render."""
    return {slug for slug in slugs if not (folder / story_page_path(slug, 1)).is_file()}


def render_site(
    site: SiteSettings,
    feeds: Sequence[FeedData],
    tags: Sequence[TagSummary],
    sources: Sequence[SourceHealth],
    *,
    daily: DailyCounts | None = None,
    health: Mapping[str, str] | None = None,
) -> RenderReport:
    """Write every given feed in three formats with its HTML pages, the local pages of stories
    without a link, index.html, sources.html and feeds.opml. Raises RenderError naming the file
    that could not be written."""
    writer = OutputWriter(site.dir)
    _mark_as_ours(site.dir)
    tags_by_slug = {tag.slug: tag for tag in tags}
    known = frozenset(tags_by_slug)
    specs: list[FeedSpec] = []
    lists: list[_StoryPages] = []
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
        tag = tags_by_slug.get(feed.slug) if feed.slug is not None else None
        heading = RIVER_HEADING if feed.slug is None else (tag.name if tag else feed.title)
        lists.append(_StoryPages(feed.slug, heading, title, items))
        for item in items:
            if not item.link:
                # The same story sits in several feeds; its page is written once.
                pages.setdefault(item_page_path(item), item)

    # Pages before the feeds and lists that link to them, so a reader never follows a link to
    # a 404; the index, which links to everything, last.
    for relative, item in sorted(pages.items()):
        _write(writer, relative, functools.partial(item_html, site, item))
    for spec in specs:
        for fmt, render in (("rss", rss_bytes), ("atom", atom_bytes), ("json", json_bytes)):
            _write(writer, spec.paths.file(fmt), functools.partial(render, spec))
    writer.write(STYLESHEET, stylesheet())
    for story_pages in lists:
        _write_story_pages(writer, site, story_pages, tags_by_slug, known)
    writer.write("feeds.opml", opml_bytes(site, tags))
    writer.write(SOURCES_PAGE, sources_html(site, sources, daily=daily, health=health))
    writer.write(
        "index.html", index_html(site, all_feed, tags, sources, daily=daily, health=health)
    )
    return RenderReport(
        written=tuple(writer.written), unchanged=writer.unchanged, removed=tuple(writer.removed)
    )


def _write_story_pages(
    writer: OutputWriter,
    site: SiteSettings,
    story_pages: _StoryPages,
    tags: Mapping[str, TagSummary],
    known: Collection[str],
) -> None:
    """A feed's pages (the river's first is index.html, written with the index), and the
    removal of any page past the last, left when the feed had more stories."""
    slug = story_pages.slug
    count = page_count(len(story_pages.items))
    for number in range(2 if slug is None else 1, count + 1):
        render = functools.partial(
            story_page_html,
            site,
            slug,
            story_pages.items,
            number,
            tag=tags.get(slug) if slug is not None else None,
            heading=story_pages.heading,
            feed_title=story_pages.feed_title,
            known=known,
        )
        _write(writer, story_page_path(slug, number), render)
    number = count + 1
    while writer.remove(story_page_path(slug, number)):
        number += 1


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
