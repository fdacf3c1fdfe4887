"""The pages: index.html (tags, subscribe links, source health), items/<id>.html and
feeds.opml.

No JavaScript and no "generated at" stamp: a page changes only when what it shows changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from urllib.parse import quote

from lxml import etree

from aggregator.models import (
    DailyCounts,
    FeedData,
    FeedItem,
    SiteSettings,
    SourceHealth,
    TagSummary,
)
from aggregator.redact import mask_text
from aggregator.render.charts import chart_window, day_chart
from aggregator.render.common import (
    FORMATS,
    FeedPaths,
    feed_updated,
    format_when,
    item_author,
    item_content,
    item_title,
    tag_title,
    url_for,
    xml_text,
)

_FORMAT_LABELS = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}
_MEDIA_TYPES = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}

_CSS = """
:root { color-scheme: light dark; --bg: #fdfdfc; --fg: #1d1d1f; --muted: #5f6368;
  --line: #d9d9de; --link: #0b57d0; --bad: #b3261e; --ok: #1e7a34; --warn: #8a5a00;
  --bar: #d9480f; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #16171a; --fg: #e8e8ea; --muted: #a0a4ab; --line: #34363c;
    --link: #8ab4f8; --bad: #f2b8b5; --ok: #8fd19e; --warn: #f5c26b; --bar: #ff922b; }
}
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 72rem; padding: 1rem; background: var(--bg); color: var(--fg);
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", "PingFang SC", "Noto Sans CJK SC",
  "Microsoft YaHei", sans-serif; overflow-wrap: anywhere; }
a { color: var(--link); }
h1 { font-size: 1.6rem; margin: .5rem 0; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; }
.muted, .meta { color: var(--muted); }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .95rem; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.subscribe a { margin-right: .6rem; white-space: nowrap; }
.bad { color: var(--bad); }
.ok { color: var(--ok); }
article { max-width: 46rem; margin: 0 auto; }
article img { max-width: 100%; height: auto; }
.warn { color: var(--warn); }
svg.chart { display: block; width: 9.3rem; height: 1.6rem; }
svg.chart rect { fill: var(--bar); }
svg.chart rect.base { fill: var(--line); }
.window { font-size: .9rem; }
/* A phone: each row becomes a card, each cell a labelled line, nothing scrolls sideways. */
@media (max-width: 40rem) {
  table.cards thead { display: none; }
  table.cards tr { display: block; padding: .6rem 0; border-bottom: 1px solid var(--line); }
  table.cards th, table.cards td { display: block; border: 0; padding: .1rem 0;
    text-align: left; }
  table.cards th[scope="row"] { font-size: 1.05rem; }
  table.cards td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); }
  table.cards td.chart-cell::before { display: block; }
}
ul.tags { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4rem; }
ul.tags li { border: 1px solid var(--line); border-radius: 1rem; padding: 0 .6rem; }
""".strip()


STYLESHEET = "style.css"


def stylesheet() -> bytes:
    """The pages' CSS, a file of its own so that no page carries a <style> element."""
    return (_CSS + "\n").encode("utf-8")


def _head(title: str, extra: str = "", root: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{escape(title)}</title>\n{extra}"
        f'<link rel="stylesheet" href="{root}{STYLESHEET}">\n</head>\n'
    )


def _time(when: datetime | None) -> str:
    if when is None:
        return "—"
    return f'<time datetime="{escape(when.isoformat())}">{escape(format_when(when))}</time>'


def _subscribe(paths: FeedPaths, label: str) -> str:
    links = " ".join(
        f'<a href="{escape(quote(paths.file(fmt)))}" type="{_MEDIA_TYPES[fmt]}"'
        f' aria-label="{escape(label)} ({_FORMAT_LABELS[fmt]})">{_FORMAT_LABELS[fmt]}</a>'
        for fmt in FORMATS
    )
    return f'<span class="subscribe">{links}</span>'


def _chart(
    daily: DailyCounts | None, counts: Mapping[str, tuple[int, ...]], key: str, what: str
) -> str:
    if daily is None or daily.last is None:
        return '<span class="muted">—</span>'
    series = counts.get(key) or (0,) * daily.days
    return day_chart(series, daily.last, what)


def _tag_rows(tags: Sequence[TagSummary], daily: DailyCounts | None) -> str:
    if not tags:
        return '<tr><td colspan="5" class="muted">No tags yet.</td></tr>\n'
    per_tag = daily.tags if daily else {}
    return "".join(
        f'<tr><th scope="row">{escape(tag.name)}</th>'
        f'<td class="num" data-label="Stories">{tag.count}</td>'
        f'<td data-label="Last update">{_time(tag.last_updated)}</td>'
        f'<td class="chart-cell" data-label="Stories per day">'
        f"{_chart(daily, per_tag, tag.slug, f'Stories tagged {tag.name} per day')}</td>"
        f'<td data-label="Subscribe">{_subscribe(FeedPaths.of(tag.slug), tag.name)}</td></tr>\n'
        for tag in tags
    )


_HEALTH_CLASS = {"ok": "ok", "failing": "bad", "dead": "bad", "backing off": "warn"}


def _source_row(source: SourceHealth, daily: DailyCounts | None, health: str | None) -> str:
    # Only facts that change when the source's health changes: per-pass times (last fetch,
    # next due, the last success of a healthy source) would rewrite index.html on every pass,
    # and readers poll this page too.
    state = source.state
    enabled = "yes" if source.enabled else '<span class="muted">no</span>'
    last_success = "—"
    if state is None:
        status, streak, error = '<span class="muted">never fetched</span>', "0", "—"
    else:
        failing = state.error_streak > 0
        label = health or ("failing" if failing else (state.last_result or "ok"))
        css = _HEALTH_CLASS.get(label, "muted") if health else ("bad" if failing else "ok")
        status = f'<span class="{css}">{escape(label)}</span>'
        streak = str(state.error_streak)
        # The page is public and an error often quotes the source's URL, credentials and all.
        error = escape(mask_text(state.last_error)) if failing and state.last_error else "—"
        if failing:
            last_success = _time(state.last_success_at) if state.last_success_at else "never"
        elif state.last_success_at:
            last_success = '<span class="muted">at the last fetch</span>'
    per_source = daily.sources if daily else {}
    chart = _chart(daily, per_source, source.name, f"Items from {source.name} per day")
    return (
        f'<tr><th scope="row">{escape(source.name)}</th><td data-label="Kind">'
        f'{escape(source.kind)}</td><td data-label="Enabled">{enabled}</td>'
        f'<td class="num" data-label="Items">{source.items}</td>'
        f'<td data-label="Health">{status}</td>'
        f'<td class="num" data-label="Error streak">{streak}</td>'
        f'<td data-label="Last error">{error}</td>'
        f'<td data-label="Last success">{last_success}</td>'
        f'<td class="chart-cell" data-label="Items per day">{chart}</td></tr>\n'
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
    """The front page. `health` names each source's state (ok, failing, backing off, dead,
    disabled, never fetched); without it a source with errors shows as failing."""
    all_paths = FeedPaths.of(None)
    alternates = "".join(
        f'<link rel="alternate" type="{_MEDIA_TYPES[fmt]}"'
        f' title="{escape(site.title)} ({_FORMAT_LABELS[fmt]})"'
        f' href="{escape(quote(all_paths.file(fmt)))}">\n'
        for fmt in FORMATS
    )
    summary = ""
    if all_feed is not None:
        summary = (
            f"{len(all_feed.items)} {'story' if len(all_feed.items) == 1 else 'stories'}"
            " in the main feed, last update "
            f"{_time(feed_updated(all_feed.items) if all_feed.items else None)}. "
        )
    labels = health or {}
    source_rows = "".join(
        _source_row(source, daily, labels.get(source.name)) for source in sources
    ) or ('<tr><td colspan="9" class="muted">No sources configured.</td></tr>\n')
    window = ""
    if daily is not None and daily.last is not None:
        window = (
            f'<p class="window muted">Charts: items per day, {daily.days} days from '
            f"{chart_window(daily.last, daily.days)} (UTC), ending on the newest item.</p>\n"
        )
    page = (
        _head(site.title, alternates)
        + "<body>\n<header>\n"
        + f"<h1>{escape(site.title)}</h1>\n"
        + f"<p>{summary}Every story: {_subscribe(all_paths, site.title)}"
        + ' · All feeds as <a href="feeds.opml" type="text/x-opml">OPML</a></p>\n'
        + "</header>\n<main>\n"
        + '<section aria-labelledby="tags">\n<h2 id="tags">Tags</h2>\n'
        + window
        + '<div class="scroll">\n<table class="cards">\n<thead><tr><th scope="col">Tag</th>'
        + '<th scope="col" class="num">Stories</th><th scope="col">Last update</th>'
        + '<th scope="col">Per day</th><th scope="col">Subscribe</th></tr></thead>\n'
        + f"<tbody>\n{_tag_rows(tags, daily)}</tbody>\n</table>\n</div>\n</section>\n"
        + '<section aria-labelledby="sources">\n<h2 id="sources">Sources</h2>\n'
        + '<div class="scroll">\n<table class="cards">\n<thead><tr><th scope="col">Source</th>'
        + '<th scope="col">Kind</th><th scope="col">Enabled</th>'
        + '<th scope="col" class="num">Items</th><th scope="col">Health</th>'
        + '<th scope="col" class="num">Error streak</th><th scope="col">Last error</th>'
        + '<th scope="col">Last success</th><th scope="col">Per day</th>'
        + "</tr></thead>\n"
        + f"<tbody>\n{source_rows}</tbody>\n</table>\n</div>\n</section>\n"
        + "</main>\n</body>\n</html>\n"
    )
    return page.encode("utf-8")


def item_html(site: SiteSettings, item: FeedItem) -> bytes:
    """A readable page for a story that has no public URL of its own."""
    title = item_title(item)
    updated = ""
    if item.updated != item.published:
        updated = f" · updated {_time(item.updated)}"
    tags = "".join(f"<li>{escape(tag)}</li>" for tag in item.tags)
    byline = escape(item.source)
    if item_author(item) != item.source:
        byline = f"{escape(item_author(item))} · {byline}"
    page = (
        _head(f"{title} · {site.title}", root="../")
        + "<body>\n<article>\n<header>\n"
        + f"<h1>{escape(title)}</h1>\n"
        + f'<p class="meta">{_time(item.published)}{updated} · {byline}</p>\n</header>\n'
        # Cleaned upstream (sanitized HTML); the footer escapes its own parts.
        + f'<div class="content">\n{item_content(item)}\n</div>\n'
        + (f'<footer>\n<ul class="tags" aria-label="Tags">{tags}</ul>\n</footer>\n' if tags else "")
        + "</article>\n"
        + f'<nav><p><a href="../index.html">← {escape(site.title)}</a></p></nav>\n'
        + "</body>\n</html>\n"
    )
    return page.encode("utf-8")


def _outline(parent: etree._Element, site: SiteSettings, title: str, paths: FeedPaths) -> None:
    etree.SubElement(
        parent,
        "outline",
        # Explicit attribute order: lxml keeps insertion order, which keeps the bytes stable.
        {
            "type": "rss",
            "text": xml_text(title),
            "title": xml_text(title),
            "xmlUrl": url_for(site, paths.file("rss")),
            "htmlUrl": site.base_url,
        },
    )


def opml_bytes(site: SiteSettings, tags: Sequence[TagSummary]) -> bytes:
    """Built from the tag list, not from the feeds of this pass: a pass may rebuild only some."""
    root = etree.Element("opml", {"version": "2.0"})
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = xml_text(f"{site.title}: feeds")
    body = etree.SubElement(root, "body")
    _outline(body, site, site.title, FeedPaths.of(None))
    for tag in tags:
        _outline(body, site, tag_title(site, tag.name), FeedPaths.of(tag.slug))
    data: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)
    return data
