"""The pages people read: the river on index.html, each tag's pages, the health banner and
sources.html, as rendered files (tests/test_index_browser.py looks at them in Chromium)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin

import pytest
from lxml import html as lxml_html

from aggregator.models import (
    DailyCounts,
    FeedData,
    FeedItem,
    Provenance,
    SiteSettings,
    SourceHealth,
    SourceState,
    TagSummary,
)
from aggregator.pipeline.publish import publish
from aggregator.render import RenderReport, render_site
from tests.test_render import make_item
from tests.test_touched_feeds import _after_a_first_pass

BASE = "http://127.0.0.1:8080/"
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TITLES = {"zaobao-china": "联合早报 中国", "sina": "新浪新闻"}


def _story(number: int, **overrides: Any) -> FeedItem:
    fields: dict[str, Any] = {
        "id": f"0b6f2a40-6c3e-4d0a-9a4e-{number:012d}",
        "title": f"Story {number}",
        "link": f"https://example.org/story/{number}",
        "published": WHEN - timedelta(hours=number),
        "updated": WHEN - timedelta(hours=number),
        "tags": ("world news",),
        "summary": f"What happened in story {number}.",
        "also_reported": (),
    }
    fields.update(overrides)
    return make_item(**fields)


STORIES = tuple(_story(number) for number in range(45))  # newest first, as the store gives them


def _site(folder: Path) -> SiteSettings:
    return SiteSettings(dir=folder, base_url=BASE, title="Morning paper", source_titles=TITLES)


def _render(
    site: SiteSettings,
    stories: tuple[FeedItem, ...] = STORIES,
    sources: tuple[SourceHealth, ...] = (),
    **kwargs: Any,
) -> RenderReport:
    feeds = [
        FeedData(None, site.title, stories),
        FeedData("world-news", "world news", stories),
        FeedData("联合早报", "联合早报", tuple(s for s in stories if "联合早报" in s.tags)),
    ]
    tags = [
        TagSummary("world news", "world-news", len(stories), WHEN),
        TagSummary("联合早报", "联合早报", 3, WHEN),
    ]
    return render_site(site, feeds, tags, sources, **kwargs)


def _page(site: SiteSettings, relative: str) -> Any:
    return lxml_html.fromstring((site.dir / relative).read_bytes())


def _titles(tree: Any) -> list[str]:
    headings = tree.xpath("//ol[@class='stories']/li/*[@class='title']")
    return [str(node.text_content()) for node in headings]


def _follow(relative: str, link: str) -> str:
    """Where a link on the page at `relative` leads, as a path of the output folder."""
    return unquote(urljoin(BASE + relative, link).removeprefix(BASE))


def _pager(site: SiteSettings, relative: str) -> dict[str, str]:
    """The page's links to its newer ("prev") and older ("next") pages, as output paths."""
    tree = _page(site, relative)
    links = tree.xpath("//nav[@class='pages']/a")
    return {str(a.get("rel")): _follow(relative, str(a.get("href"))) for a in links}


def test_the_index_opens_on_the_newest_stories_and_pages_through_the_rest(
    tmp_path: Path,
) -> None:
    site = _site(tmp_path)
    _render(site)
    index = _page(site, "index.html")
    first = index.xpath("//section[@aria-labelledby='latest']")[0]
    assert _titles(first) == [f"Story {number}" for number in range(20)]
    assert _pager(site, "index.html") == {"next": "all.2.html"}
    assert "Page 1 of 3" in index.xpath("string(//nav[@class='pages'])")

    second = _page(site, "all.2.html")
    assert _titles(second) == [f"Story {number}" for number in range(20, 40)]
    assert _pager(site, "all.2.html") == {"prev": "index.html", "next": "all.3.html"}
    third = _page(site, "all.3.html")
    assert _titles(third) == [f"Story {number}" for number in range(40, 45)]
    assert _pager(site, "all.3.html") == {"prev": "all.2.html"}
    assert not (site.dir / "all.4.html").exists() and not (site.dir / "all.html").exists()


def test_a_story_shows_its_link_time_sources_by_title_and_who_else_reported_it(
    tmp_path: Path,
) -> None:
    site = _site(tmp_path)
    reported = _story(
        0,
        source="zaobao-china",
        tags=("world news", "联合早报"),
        also_reported=(
            Provenance("sina", "王毅会见韩国外长", "https://news.sina.com.cn/c/1.shtml"),
            Provenance("rfi-cn", "王毅与赵兑烈会谈", None),
        ),
    )
    local = _story(1, link=None, source="sina", tags=("world news", "联合早报"))
    _render(site, (reported, local, *STORIES[2:]))

    for relative in ("index.html", "tags/联合早报.html"):
        page = _page(site, relative)
        first, second = page.xpath("//ol[@class='stories']/li")[:2]
        title = first.xpath(".//h2/a | .//h3/a")[0]
        assert title.get("href") == "https://example.org/story/0"
        meta = first.xpath("string(.//p[@class='meta'])")
        assert meta == (
            "2024-05-01 12:00 +0000 · 联合早报 中国 · also reported by 2: 新浪新闻, rfi-cn"
        )
        assert first.xpath(".//time/@datetime") == ["2024-05-01T12:00:00+00:00"]
        assert first.xpath(".//span[@class='also']/a/@href") == [
            "https://news.sina.com.cn/c/1.shtml"
        ]
        assert first.xpath("string(.//p[@class='summary'])") == "What happened in story 0."
        chips = {str(a.text_content()): _follow(relative, a.get("href")) for a in first.iter("a")}
        assert chips["联合早报"] == "tags/联合早报.html"
        # A story without a public URL links its own page, wherever the list is.
        local_link = second.xpath(".//a[1]/@href")[0]
        assert _follow(relative, local_link) == f"items/{local.id}.html"
        assert (site.dir / f"items/{local.id}.html").is_file()
        assert "新浪新闻" in second.xpath("string(.//p[@class='meta'])")


def test_every_tag_has_paginated_pages_that_link_its_feeds(tmp_path: Path) -> None:
    site = _site(tmp_path)
    _render(site)
    page = _page(site, "tags/world-news.html")
    assert page.xpath("string(//h1)") == "world news"
    assert _titles(page) == [f"Story {number}" for number in range(20)]
    subscribe = {
        str(a.text_content()): _follow("tags/world-news.html", a.get("href"))
        for a in page.xpath("//header//span[@class='subscribe']/a")
    }
    assert subscribe == {
        "RSS": "tags/world-news.rss",
        "Atom": "tags/world-news.atom",
        "JSON Feed": "tags/world-news.json",
    }
    assert {
        _follow("tags/world-news.html", href)
        for href in page.xpath("//link[@rel='alternate']/@href")
    } == set(subscribe.values())
    assert all((site.dir / path).is_file() for path in subscribe.values())
    assert _follow("tags/world-news.html", page.xpath("//p[@class='crumbs']/a/@href")[0]) == (
        "index.html"
    )
    assert _pager(site, "tags/world-news.html") == {"next": "tags/world-news.2.html"}
    last = _page(site, "tags/world-news.3.html")
    assert _titles(last) == [f"Story {number}" for number in range(40, 45)]
    assert _pager(site, "tags/world-news.3.html") == {"prev": "tags/world-news.2.html"}
    assert "Page 3 of 3" in last.xpath("string(//header)")
    # A CJK tag: a real UTF-8 file name, one page for its few stories, and no pager.
    cjk = _page(site, "tags/联合早报.html")
    assert cjk.xpath("string(//h1)") == "联合早报"
    assert _pager(site, "tags/联合早报.html") == {}
    # Every tag of the index links its page.
    index = _page(site, "index.html")
    linked = index.xpath("//section[@aria-labelledby='tags']//tbody/tr/th/a/@href")
    assert [unquote(href) for href in linked] == ["tags/world-news.html", "tags/联合早报.html"]


def test_a_tag_page_says_when_its_feed_holds_only_the_newest_stories(tmp_path: Path) -> None:
    site = replace(_site(tmp_path), items_per_feed=30)
    _render(site)
    page = _page(site, "tags/world-news.html")
    assert page.xpath("string(//header/p[not(@class)])").startswith(
        "45 stories; the newest 30 are on these pages and in the feeds. Page 1 of 2."
    )
    assert not (site.dir / "tags/world-news.3.html").exists()


def test_pages_past_the_last_are_removed_when_a_feed_shrinks(tmp_path: Path) -> None:
    site = _site(tmp_path)
    _render(site)
    assert (site.dir / "tags/world-news.3.html").is_file()
    report = _render(site, STORIES[:15])
    gone = {str(path.relative_to(site.dir)) for path in report.removed}
    assert gone == {
        "all.2.html",
        "all.3.html",
        "tags/world-news.2.html",
        "tags/world-news.3.html",
    }
    assert not any(site.dir.glob("**/*.2.html"))
    assert _pager(site, "tags/world-news.html") == {}


def test_a_tag_page_is_rewritten_with_its_feed_and_only_then(tmp_path: Path) -> None:
    site = _site(tmp_path)
    _render(site)
    before = {path: path.stat().st_mtime_ns for path in site.dir.rglob("*.html")}
    retitled = (replace(STORIES[0], title="Story 0, corrected"), *STORIES[1:])
    # As a pass that touched only world-news renders it: the river and that tag's feed.
    report = render_site(
        site,
        [FeedData(None, site.title, retitled), FeedData("world-news", "world news", retitled)],
        [
            TagSummary("world news", "world-news", 45, WHEN),
            TagSummary("联合早报", "联合早报", 3, WHEN),
        ],
        [],
    )
    written = {str(path.relative_to(site.dir)) for path in report.written}
    assert {"index.html", "tags/world-news.html", "tags/world-news.atom"} <= written
    assert "Story 0, corrected" in _titles(_page(site, "tags/world-news.html"))
    # Later pages show other stories: same bytes, left alone, as is the tag not rendered.
    assert not written & {"tags/world-news.2.html", "all.2.html", "tags/联合早报.html"}
    assert (site.dir / "tags/联合早报.html").stat().st_mtime_ns == before[
        site.dir / "tags/联合早报.html"
    ]


def _failing_sources() -> tuple[SourceHealth, ...]:
    ok = SourceState(
        "zaobao-china",
        last_fetch_at=WHEN,
        last_success_at=WHEN,
        next_fetch_at=WHEN + timedelta(minutes=15),
        last_result="ok",
    )
    return (
        SourceHealth("zaobao-china", "feed", True, 41, ok),
        SourceHealth("archive", "posts", False, 3, replace(ok, name="archive")),
        SourceHealth(
            "sina",
            "feed",
            True,
            7,
            SourceState(
                "sina",
                last_fetch_at=WHEN,
                last_success_at=datetime(2024, 4, 30, 8, 0, tzinfo=UTC),
                next_fetch_at=WHEN + timedelta(hours=1),
                last_error="HTTP 503 Service Unavailable",
                error_streak=2,
            ),
        ),
        SourceHealth("new", "feed", True, 0, None),
        SourceHealth(
            "old-blog",
            "feed",
            True,
            0,
            SourceState(
                "old-blog",
                last_fetch_at=WHEN - timedelta(hours=2),
                next_fetch_at=WHEN + timedelta(hours=4),
                last_error="HTTP 404 Not Found",
                error_streak=9,
            ),
        ),
    )


HEALTH = {
    "zaobao-china": "ok",
    "archive": "disabled",
    "sina": "backing off",
    "new": "never fetched",
    "old-blog": "dead",
}


def test_the_banner_names_the_failing_sources_on_top_of_the_index(tmp_path: Path) -> None:
    site = _site(tmp_path)
    _render(site, sources=_failing_sources(), health=HEALTH)
    index = _page(site, "index.html")
    banner = index.get_element_by_id("health")
    # Before the stories: the first thing after the page's header.
    assert banner.getprevious().tag == "header"
    assert " ".join(banner.text_content().split()) == (
        "2 of 4 sources failing: 新浪新闻, old-blog. Source health"
    )
    links = {str(a.text_content()): str(a.get("href")) for a in banner.iter("a")}
    assert links == {
        "新浪新闻": "sources.html#source-sina",
        "old-blog": "sources.html#source-old-blog",
        "Source health": "sources.html",
    }
    sources = _page(site, "sources.html")
    for target in ("source-sina", "source-old-blog"):
        assert sources.get_element_by_id(target).tag == "th"


def test_a_feed_the_aggregator_stopped_counts_as_failing(tmp_path: Path) -> None:
    # Enabled in the config, but no longer fetched since it answered 410 Gone.
    site = _site(tmp_path)
    gone = SourceState("sina", last_fetch_at=WHEN, disabled_reason="HTTP 410 Gone")
    sources = (*_failing_sources()[:2], SourceHealth("sina", "feed", True, 7, gone))
    _render(site, sources=sources, health={**HEALTH, "sina": "disabled"})
    banner = _page(site, "index.html").get_element_by_id("health")
    assert " ".join(banner.text_content().split()).startswith("1 of 2 sources failing: 新浪新闻.")
    first = _page(site, "sources.html").xpath("//tbody/tr")[0]
    cells = {td.get("data-label"): td.text_content() for td in first.iter("td")}
    assert first.find("th").get("id") == "source-sina"
    assert cells["Health"] == "disabled" and cells["Last error"] == "HTTP 410 Gone"


def test_no_failing_source_no_alarm(tmp_path: Path) -> None:
    site = _site(tmp_path)
    healthy = {**HEALTH, "sina": "ok", "old-blog": "ok"}
    _render(site, sources=_failing_sources(), health=healthy)
    index = _page(site, "index.html")
    assert not index.xpath("//*[contains(@class, 'alert')]")
    assert " ".join(index.get_element_by_id("health").text_content().split()) == (
        "4 of 5 sources enabled, none failing. Source health"
    )


def test_the_sources_page_lists_failing_sources_first_with_times_and_errors(
    tmp_path: Path,
) -> None:
    site = _site(tmp_path)
    daily = DailyCounts(
        date(2024, 5, 1),
        30,
        {"zaobao-china": (0,) * 29 + (3,), "sina": (0,) * 30, "archive": (1,) + (0,) * 29},
        {},
        source_ends={"archive": date(2021, 10, 30)},
    )
    _render(site, sources=_failing_sources(), health=HEALTH, daily=daily)
    page = _page(site, "sources.html")
    rows = page.xpath("//tbody/tr")
    assert [row.find("th").get("id") for row in rows] == [
        "source-sina",
        "source-old-blog",
        "source-zaobao-china",
        "source-new",
        "source-archive",
    ]
    cells = [{td.get("data-label"): td.text_content() for td in row.iter("td")} for row in rows]
    assert cells[0] == {
        "Health": "backing off",
        "Last fetch": "2024-05-01 12:00",
        "Next due": "2024-05-01 13:00",
        "Error streak": "2",
        "Last error": "HTTP 503 Service Unavailable",
        "Last success": "2024-04-30 08:00",
        "Items": "7",
        "Items per day": "",  # nothing in the window: no empty chart
    }
    assert cells[1]["Health"] == "dead" and cells[1]["Last success"] == "never"
    assert cells[2]["Last error"] == "" and cells[2]["Last success"] == "2024-05-01 12:00"
    assert cells[3]["Health"] == "never fetched" and cells[3]["Last fetch"] == "—"
    assert cells[4]["Health"] == "disabled" and cells[4]["Next due"] == "—"
    # The display title first, the config's name (what the CLI takes) under it.
    assert rows[0].find("th").text_content() == "新浪新闻sina · feed"
    # A chart on today's window, and one on a quiet source's own, which says so.
    assert len(rows[2].xpath(".//svg")) == 1 and "until" not in cells[2]["Items per day"]
    assert cells[4]["Items per day"].endswith("until 2021-10-30")
    label = rows[4].xpath(".//svg/@aria-label")[0]
    assert "2021-10-01 to 2021-10-30" in label
    assert "Fetch times as of the newest fetch shown, 2024-05-01 12:00" in page.xpath(
        "string(//main/p)"
    )


def test_publish_renders_a_tag_whose_page_is_missing(tmp_path: Path) -> None:
    # An output folder written before tags had pages: the index must not link to a 404.
    with _after_a_first_pass(tmp_path) as (config, store):
        page = config.output.dir / "tags" / "beta.html"
        page.unlink()
        written = publish(config, store, touched=frozenset())
        assert page in written
        assert config.output.dir / "tags" / "alpha.html" not in written
        assert "Story 2 about beta" in page.read_text("utf-8")


@pytest.mark.parametrize("count", [0, 1, 20, 21])
def test_page_counts_at_the_edges(tmp_path: Path, count: int) -> None:
    site = _site(tmp_path)
    _render(site, STORIES[:count])
    pages = sorted(path.name for path in (site.dir / "tags").glob("world-news*.html"))
    assert pages == (
        ["world-news.2.html", "world-news.html"] if count > 20 else ["world-news.html"]
    )
    if count == 0:
        assert "No stories yet." in (site.dir / "tags/world-news.html").read_text("utf-8")
