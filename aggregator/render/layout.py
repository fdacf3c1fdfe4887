"""What every HTML page shares: the stylesheet, the <head>, times, subscribe links, paths of
the story pages, and the per-day chart of a row.

No JavaScript and no "generated at" stamp: a page changes only when what it shows changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from html import escape
from urllib.parse import quote

from aggregator.models import DailyCounts
from aggregator.render.charts import day_chart
from aggregator.render.common import FORMATS, FeedPaths, format_when

FORMAT_LABELS = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}
MEDIA_TYPES = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}

STYLESHEET = "style.css"
SOURCES_PAGE = "sources.html"
# Stories on one page of the river or of a tag. The pages show what the feeds carry
# (output.items_per_feed), so a page and its feed always agree.
PAGE_SIZE = 20

_CSS = """
:root { color-scheme: light dark; --bg: #fdfdfc; --fg: #1d1d1f; --muted: #5f6368;
  --line: #d9d9de; --link: #0b57d0; --bad: #b3261e; --ok: #1e7a34; --warn: #8a5a00;
  --bar: #d9480f; --alert-bg: #fcebea; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #16171a; --fg: #e8e8ea; --muted: #a0a4ab; --line: #34363c;
    --link: #8ab4f8; --bad: #f2b8b5; --ok: #8fd19e; --warn: #f5c26b; --bar: #ff922b;
    --alert-bg: #3b2120; }
}
* { box-sizing: border-box; }
/* break-word, not anywhere: a table column is never squeezed below its longest word. */
body { margin: 0 auto; max-width: 72rem; padding: 1rem; background: var(--bg); color: var(--fg);
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", "PingFang SC", "Noto Sans CJK SC",
  "Microsoft YaHei", sans-serif; overflow-wrap: break-word; }
a { color: var(--link); }
h1 { font-size: 1.6rem; margin: .5rem 0; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; }
.muted, .meta { color: var(--muted); }
.crumbs { margin: 0; font-size: .95rem; }
nav.site a { margin-right: .6rem; white-space: nowrap; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .95rem; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
thead th { overflow-wrap: normal; word-break: normal; hyphens: manual; }
th[scope="row"] { overflow-wrap: anywhere; min-width: 8rem; }
td.error { overflow-wrap: anywhere; min-width: 12rem; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.when { min-width: 6.5rem; }
.subscribe a { margin-right: .6rem; white-space: nowrap; }
.subscribe a:last-child { margin-right: 0; }
.bad { color: var(--bad); }
.ok { color: var(--ok); }
.warn { color: var(--warn); }
.alert { border: 2px solid var(--bad); background: var(--alert-bg); border-radius: .5rem;
  padding: .6rem .9rem; margin: .8rem 0; }
.alert p { margin: 0; }
.alert strong { color: var(--bad); }
.all-well { margin: .6rem 0; }
article { max-width: 46rem; margin: 0 auto; }
article img { max-width: 100%; height: auto; }
ol.stories { list-style: none; padding: 0; margin: 0; max-width: 50rem; }
ol.stories > li { padding: .75rem 0; border-bottom: 1px solid var(--line); }
.story .title { font-size: 1.1rem; line-height: 1.35; margin: 0 0 .2rem;
  overflow-wrap: anywhere; }
.story .title a { text-decoration: none; }
.story .title a:hover, .story .title a:focus { text-decoration: underline; }
.story .meta { font-size: .9rem; margin: 0; }
.story .summary { margin: .3rem 0 0; }
.story ul.tags { margin: .35rem 0 0; font-size: .85rem; }
nav.pages { display: flex; flex-wrap: wrap; justify-content: space-between; gap: .5rem 1rem;
  margin: 1rem 0; max-width: 50rem; }
svg.chart { display: block; width: 9.3rem; height: 1.6rem; }
svg.chart rect { fill: var(--bar); }
svg.chart rect.base { fill: var(--line); }
.window { font-size: .9rem; }
.until { display: block; font-size: .8rem; }
.source-name { display: block; font-size: .85rem; font-weight: normal; }
/* A phone: each row becomes a card, each cell a labelled line, nothing scrolls sideways. */
@media (max-width: 40rem) {
  table.cards thead { display: none; }
  table.cards tr { display: block; padding: .6rem 0; border-bottom: 1px solid var(--line); }
  table.cards th, table.cards td { display: block; border: 0; padding: .1rem 0;
    text-align: left; min-width: 0; }
  table.cards th[scope="row"] { font-size: 1.05rem; }
  table.cards td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); }
  table.cards td.chart-cell::before { display: block; }
  table.cards td:empty { display: none; }
}
ul.tags { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4rem; }
ul.tags li { border: 1px solid var(--line); border-radius: 1rem; padding: 0 .6rem; }
""".strip()


def stylesheet() -> bytes:
    """The pages' CSS, a file of its own so that no page carries a <style> element."""
    return (_CSS + "\n").encode("utf-8")


def head(title: str, extra: str = "", root: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{escape(title)}</title>\n{extra}"
        f'<link rel="stylesheet" href="{root}{STYLESHEET}">\n</head>\n'
    )


def time_html(when: datetime | None) -> str:
    if when is None:
        return "—"
    return f'<time datetime="{escape(when.isoformat())}">{escape(format_when(when))}</time>'


def utc_time_html(when: datetime | None) -> str:
    """A time of the aggregator's own (a fetch, a schedule), in UTC as the page says."""
    if when is None:
        return "—"
    utc = when.astimezone(UTC)
    shown = utc.strftime("%Y-%m-%d %H:%M")
    return f'<time datetime="{escape(utc.isoformat())}">{escape(shown)}</time>'


def href(relative: str) -> str:
    """An output path as an attribute value: UTF-8 percent-encoded, then escaped."""
    return escape(quote(relative, safe="/#"))


def subscribe(paths: FeedPaths, label: str, root: str = "") -> str:
    links = " ".join(
        f'<a href="{href(root + paths.file(fmt))}" type="{MEDIA_TYPES[fmt]}"'
        f' aria-label="{escape(label)} ({FORMAT_LABELS[fmt]})">{FORMAT_LABELS[fmt]}</a>'
        for fmt in FORMATS
    )
    return f'<span class="subscribe">{links}</span>'


def alternates(paths: FeedPaths, title: str, root: str = "") -> str:
    """The <link>s by which a browser or a reader given the page finds its feeds."""
    return "".join(
        f'<link rel="alternate" type="{MEDIA_TYPES[fmt]}"'
        f' title="{escape(title)} ({FORMAT_LABELS[fmt]})"'
        f' href="{href(root + paths.file(fmt))}">\n'
        for fmt in FORMATS
    )


def story_page_path(slug: str | None, number: int) -> str:
    """Page `number` (from 1) of the river (slug None) or of a tag. The river's first page is
    index.html; later pages add `.N` before `.html` (a slug holds no dot, so no tag's name can
    collide with another's page)."""
    if slug is None and number == 1:
        return "index.html"
    stem = FeedPaths.of(slug).stem
    return f"{stem}.html" if number == 1 else f"{stem}.{number}.html"


def page_count(stories: int) -> int:
    return max(1, -(-stories // PAGE_SIZE))


def chart_window(daily: DailyCounts | None, counted: tuple[str, str], row: str) -> str:
    """The sentence saying what a page's charts cover ("" without charts): what they count per
    day (`counted`: plural, singular), the days up to the pass's day; a `row` (source, tag)
    quiet in them shows its own newest days."""
    if daily is None or daily.last is None:
        return ""
    many, one = counted
    return (
        f"Charts: {many} per day, the {daily.days} days to {daily.last.isoformat()} (UTC);"
        f" a {row} with none in them shows the {daily.days} days up to its newest {one},"
        " and says until when."
    )


def chart_cell(
    daily: DailyCounts | None,
    counts: Mapping[str, tuple[int, ...]],
    ends: Mapping[str, date],
    key: str,
    what: str,
) -> str:
    """A row's chart, or nothing when it has no item at all. It ends today, or on the day of
    the row's newest item when that is older than the window, and then says so."""
    if daily is None or daily.last is None:
        return ""
    series = counts.get(key)
    if not series or not any(series):
        return ""
    end = ends.get(key, daily.last)
    chart = day_chart(series, end, what)
    if end == daily.last:
        return chart
    return f'{chart}<span class="until muted">until {escape(end.isoformat())}</span>'
