"""The front page (index.html: health banner, the newest stories, the tags), the item pages
of stories without a public URL (items/<id>.html) and feeds.opml.

No JavaScript and no "generated at" stamp: a page changes only when what it shows changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from lxml import etree

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
    feed_updated,
    item_author,
    item_content,
    item_title,
    tag_title,
    url_for,
    xml_text,
)
from aggregator.render.health import banner_html
from aggregator.render.layout import (
    SOURCES_PAGE,
    STYLESHEET,
    alternates,
    chart_cell,
    chart_window,
    head,
    href,
    page_count,
    story_page_path,
    stylesheet,
    subscribe,
    time_html,
)
from aggregator.render.stories import RIVER_HEADING, page_items, pager, story_list

__all__ = ["STYLESHEET", "index_html", "item_html", "opml_bytes", "stylesheet"]


def _tag_rows(tags: Sequence[TagSummary], daily: DailyCounts | None) -> str:
    if not tags:
        return '<tr><td colspan="5" class="muted">No tags yet.</td></tr>\n'
    per_tag = daily.tags if daily else {}
    ends = daily.tag_ends if daily else {}
    return "".join(
        f'<tr><th scope="row"><a href="{href(story_page_path(tag.slug, 1))}">'
        f"{escape(tag.name)}</a></th>"
        f'<td class="num" data-label="Stories">{tag.count}</td>'
        f'<td data-label="Last update">{time_html(tag.last_updated)}</td>'
        f'<td class="chart-cell" data-label="Stories per day">'
        f"{chart_cell(daily, per_tag, ends, tag.slug, f'Stories tagged {tag.name} per day')}</td>"
        f'<td data-label="Subscribe">{subscribe(FeedPaths.of(tag.slug), tag.name)}</td></tr>\n'
        for tag in tags
    )


def index_html(
    site: SiteSettings,
    all_feed: FeedData | None,
    tags: Sequence[TagSummary],
    sources: Sequence[SourceHealth],
    *,
    daily: DailyCounts | None = None,
    health: Mapping[str, str] | None = None,
) -> bytes:
    """The front page: which sources fail, then the newest stories of every tag (the river's
    first page), then every tag. `health` names each source's state (see sources_html)."""
    all_paths = FeedPaths.of(None)
    items = all_feed.items if all_feed is not None else ()
    summary = ""
    if all_feed is not None:
        summary = (
            f"{len(items)} {'story' if len(items) == 1 else 'stories'} in the main feed,"
            f" last update {time_html(feed_updated(items) if items else None)}."
        )
    known = {tag.slug for tag in tags}
    window = chart_window(daily, ("stories", "story"), "tag")
    window = f'<p class="window muted">{window}</p>\n' if window else ""
    page = (
        head(site.title, alternates(all_paths, site.title))
        + "<body>\n<header>\n"
        + f"<h1>{escape(site.title)}</h1>\n"
        + (f"<p>{summary}</p>\n" if summary else "")
        + f'<p class="site">Every story: {subscribe(all_paths, site.title)}'
        + ' · All feeds as <a href="feeds.opml" type="text/x-opml">OPML</a>'
        + f' · <a href="#tags">Tags</a> · <a href="{SOURCES_PAGE}">Sources</a></p>\n'
        + "</header>\n"
        + banner_html(site, sources, health)
        + "<main>\n"
        + f'<section aria-labelledby="latest">\n<h2 id="latest">{RIVER_HEADING}</h2>\n'
        + story_list(site, page_items(items, 1), root="", level=3, known=known)
        + pager(None, 1, page_count(len(items)), "")
        + "</section>\n"
        + '<section aria-labelledby="tags">\n<h2 id="tags">Tags</h2>\n'
        + window
        + '<div class="scroll">\n<table class="cards">\n<thead><tr><th scope="col">Tag</th>'
        + '<th scope="col" class="num">Stories</th><th scope="col">Last update</th>'
        + '<th scope="col">Per day</th><th scope="col">Subscribe</th></tr></thead>\n'
        + f"<tbody>\n{_tag_rows(tags, daily)}</tbody>\n</table>\n</div>\n</section>\n"
        + "</main>\n</body>\n</html>\n"
    )
    return page.encode("utf-8")


def item_html(site: SiteSettings, item: FeedItem) -> bytes:
    """A readable page for a story that has no public URL of its own."""
    title = item_title(item)
    updated = ""
    if item.updated != item.published:
        updated = f" · updated {time_html(item.updated)}"
    tags = "".join(f"<li>{escape(tag)}</li>" for tag in item.tags)
    source = site.source_label(item.source)
    byline = escape(source)
    author = item_author(item, site)
    if author != source:
        byline = f"{escape(author)} · {byline}"
    page = (
        head(f"{title} · {site.title}", root="../")
        + "<body>\n<article>\n<header>\n"
        + f"<h1>{escape(title)}</h1>\n"
        + f'<p class="meta">{time_html(item.published)}{updated} · {byline}</p>\n</header>\n'
        # Cleaned upstream (sanitized HTML); the footer escapes its own parts.
        + f'<div class="content">\n{item_content(item, site)}\n</div>\n'
        + (f'<footer>\n<ul class="tags" aria-label="Tags">{tags}</ul>\n</footer>\n' if tags else "")
        + "</article>\n"
        + f'<nav><p><a href="../index.html">← {escape(site.title)}</a></p></nav>\n'
        + "</body>\n</html>\n"
    )
    return page.encode("utf-8")


def _outline(
    parent: etree._Element, site: SiteSettings, title: str, paths: FeedPaths, page: str
) -> None:
    etree.SubElement(
        parent,
        "outline",
        # Explicit attribute order: lxml keeps insertion order, which keeps the bytes stable.
        {
            "type": "rss",
            "text": xml_text(title),
            "title": xml_text(title),
            "xmlUrl": url_for(site, paths.file("rss")),
            "htmlUrl": url_for(site, page),
        },
    )


def opml_bytes(site: SiteSettings, tags: Sequence[TagSummary]) -> bytes:
    """Built from the tag list, not from the feeds of this pass: a pass may rebuild only some."""
    root = etree.Element("opml", {"version": "2.0"})
    opml_head = etree.SubElement(root, "head")
    etree.SubElement(opml_head, "title").text = xml_text(f"{site.title}: feeds")
    body = etree.SubElement(root, "body")
    # Each feed's web page: the site for every story, a tag's own page for a tag.
    _outline(body, site, site.title, FeedPaths.of(None), "")
    for tag in tags:
        paths = FeedPaths.of(tag.slug)
        _outline(body, site, tag_title(site, tag.name), paths, story_page_path(tag.slug, 1))
    data: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)
    return data
