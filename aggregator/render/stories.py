"""Stories to read in a browser: the river (every tag, newest first: index.html, then
all.2.html, ...) and each tag's pages (tags/<slug>.html, tags/<slug>.2.html, ...).

A page lists what its feed carries, in the feed's order, PAGE_SIZE at a time, so a tag page
and the tag's feeds always show the same stories; render writes them together.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from html import escape

from aggregator.models import FeedItem, Provenance, SiteSettings, TagSummary
from aggregator.render.common import FeedPaths, item_page_path, item_title, link_uri
from aggregator.render.layout import (
    PAGE_SIZE,
    alternates,
    head,
    href,
    page_count,
    story_page_path,
    subscribe,
    time_html,
)
from aggregator.tags import slugify
from aggregator.urls import is_web_url

RIVER_HEADING = "Latest stories"
# A story lists this many of its tags and of the other sources that carried it; the rest are
# counted. Its own page and its feed entry carry them all.
_SHOWN_TAGS = 6
_SHOWN_OTHERS = 3


def _web_href(url: str | None) -> str | None:
    """An article URL as a link, only if it is one: never a javascript: or data: URL."""
    if not url or not is_web_url(url):
        return None
    return escape(link_uri(url))


def _story_href(item: FeedItem, root: str) -> str | None:
    if item.link is None:
        return href(root + item_page_path(item))
    return _web_href(item.link)


def _other(site: SiteSettings, other: Provenance) -> str:
    name = escape(site.source_label(other.source))
    link = _web_href(other.link)
    return f'<a href="{link}">{name}</a>' if link else name


def _also_reported(site: SiteSettings, item: FeedItem) -> str:
    others = item.also_reported
    if not others:
        return ""
    shown = ", ".join(_other(site, other) for other in others[:_SHOWN_OTHERS])
    rest = len(others) - _SHOWN_OTHERS
    more = f" and {rest} more" if rest > 0 else ""
    return f' · <span class="also">also reported by {len(others)}: {shown}{more}</span>'


def _tag_chips(item: FeedItem, root: str, known: Collection[str]) -> str:
    if not item.tags:
        return ""
    chips = []
    for name in item.tags[:_SHOWN_TAGS]:
        slug = slugify(name)
        shown = escape(name)
        if slug in known:
            shown = f'<a href="{href(root + story_page_path(slug, 1))}">{shown}</a>'
        chips.append(f"<li>{shown}</li>")
    rest = len(item.tags) - _SHOWN_TAGS
    if rest > 0:
        chips.append(f'<li class="muted">{rest} more</li>')
    return f'<ul class="tags" aria-label="Tags">{"".join(chips)}</ul>'


def story_html(
    site: SiteSettings, item: FeedItem, *, root: str, level: int, known: Collection[str]
) -> str:
    """One story of a list: its title (to the article, or to its own page when it has no
    public URL), when, who carried it, its summary and its tags."""
    title = escape(item_title(item))
    link = _story_href(item, root)
    shown = f'<a href="{link}">{title}</a>' if link else title
    source = escape(site.source_label(item.source))
    summary = f'<p class="summary">{escape(item.summary)}</p>' if item.summary.strip() else ""
    return (
        f'<li class="story"><h{level} class="title">{shown}</h{level}>'
        f'<p class="meta">{time_html(item.published)} · <span class="source">{source}</span>'
        f"{_also_reported(site, item)}</p>"
        f"{summary}{_tag_chips(item, root, known)}</li>\n"
    )


def story_list(
    site: SiteSettings,
    items: Sequence[FeedItem],
    *,
    root: str,
    level: int,
    known: Collection[str],
) -> str:
    if not items:
        return '<p class="muted">No stories yet.</p>\n'
    stories = "".join(story_html(site, item, root=root, level=level, known=known) for item in items)
    return f'<ol class="stories">\n{stories}</ol>\n'


def pager(slug: str | None, number: int, count: int, root: str) -> str:
    """Links to the newer and the older page, and where this one stands; nothing when the
    stories fit on one page."""
    if count <= 1:
        return ""
    newer = older = "<span></span>"
    if number > 1:
        newer = f'<a rel="prev" href="{href(root + story_page_path(slug, number - 1))}">← Newer</a>'
    if number < count:
        older = f'<a rel="next" href="{href(root + story_page_path(slug, number + 1))}">Older →</a>'
    return (
        f'<nav class="pages" aria-label="Pages">{newer}'
        f'<span class="muted">Page {number} of {count}</span>{older}</nav>\n'
    )


def page_items(items: Sequence[FeedItem], number: int) -> Sequence[FeedItem]:
    return items[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]


def story_page_html(
    site: SiteSettings,
    slug: str | None,
    items: Sequence[FeedItem],
    number: int,
    *,
    tag: TagSummary | None,
    heading: str,
    feed_title: str,
    known: Collection[str],
) -> bytes:
    """Page `number` of a tag (or, for slug None, a later page of the river)."""
    root = "" if slug is None else "../"
    count = page_count(len(items))
    paths = FeedPaths.of(slug)
    title = heading if number == 1 else f"{heading}, page {number} of {count}"
    total = tag.count if tag is not None else len(items)
    about = f"{total} {'story' if total == 1 else 'stories'}"
    if total > len(items):
        about += f"; the newest {len(items)} are on these pages and in the feeds"
    if count > 1:
        about += f". Page {number} of {count}"
    page = (
        head(f"{title} · {site.title}", alternates(paths, feed_title, root), root)
        + "<body>\n<header>\n"
        + f'<p class="crumbs"><a href="{root}index.html">{escape(site.title)}</a></p>\n'
        + f"<h1>{escape(heading)}</h1>\n"
        + f"<p>{about}. Subscribe: {subscribe(paths, feed_title, root)}</p>\n"
        + "</header>\n<main>\n"
        + story_list(site, page_items(items, number), root=root, level=2, known=known)
        + pager(slug, number, count, root)
        + "</main>\n</body>\n</html>\n"
    )
    return page.encode("utf-8")
