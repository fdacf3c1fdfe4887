"""The pages in a real browser: Debian's headless Chromium (installed by `make test`) driven by
Playwright, with JavaScript off, at a phone's and a desktop's width, in light and dark mode.

The screenshots (index.html, a tag page, sources.html, and the health banner as a desktop
screen first shows it) are kept under each test's tmp folder and printed with -s, for a person
to look at. The assertions check what a reader would notice: the failing sources are named
before any scrolling, nothing scrolls sideways, no table header is wider than its column or
broken inside a word, every tag, subscribe link and chart is on screen, the charts' bars are
drawn, and dark mode is dark.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, FloatRect, Page, sync_playwright

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
from aggregator.render import render_site
from tests.test_render import make_item

CHROMIUM = Path(os.environ.get("AGGREGATOR_TEST_CHROMIUM", "/usr/bin/chromium"))
WIDTHS = {"phone": 390, "desktop": 1280}
SCREEN_HEIGHT = 800  # a laptop's: the banner must be seen without scrolling
BAR_COLOURS = {"light": (0xD9, 0x48, 0x0F), "dark": (0xFF, 0x92, 0x2B)}
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TAG_PAGE = "tags/联合早报.html"
PAGES = ["index.html", TAG_PAGE, "sources.html"]

TAGS = [
    TagSummary("联合早报", "联合早报", 41, WHEN),
    TagSummary("新浪财经-国內", "新浪财经-国內", 7, WHEN),
    TagSummary("world news", "world-news", 3, WHEN),
]
TITLES = {"zaobao-china": "联合早报 · 中国", "sina": "新浪新闻"}
# Long enough to squeeze every other column of the sources table, as a real error does.
LONG_ERROR = (
    "HTTP 503 Service Unavailable from https://feeds.example.org/sina/news/china/"
    "realtime/a-very-long-path-without-any-space-in-it/rss.xml?channel=finance&format=rss2"
)


def _series(*pairs: tuple[int, int]) -> tuple[int, ...]:
    counts = [0] * 30
    for day, count in pairs:
        counts[day] = count
    return tuple(counts)


DAILY = DailyCounts(
    last=date(2024, 5, 1),
    days=30,
    sources={
        "zaobao-china": _series((3, 4), (10, 9), (29, 2)),
        "sina": _series((0, 1), (28, 3)),
        "archive": _series((15, 1)),
    },
    tags={
        "联合早报": _series((3, 4), (10, 9), (29, 2)),
        "新浪财经-国內": _series((0, 1), (28, 3)),
        "world-news": _series((20, 1), (21, 1), (22, 1)),
    },
    source_ends={"archive": date(2021, 10, 30)},
)


def _sources() -> list[SourceHealth]:
    healthy = [
        SourceHealth(
            f"blog-{number}",
            "feed",
            True,
            number,
            SourceState(
                f"blog-{number}",
                last_fetch_at=WHEN,
                last_success_at=WHEN,
                next_fetch_at=WHEN + timedelta(minutes=15),
                last_result="ok",
            ),
        )
        for number in range(13)
    ]
    return [
        SourceHealth(
            "zaobao-china",
            "feed",
            True,
            41,
            SourceState("zaobao-china", last_fetch_at=WHEN, last_success_at=WHEN),
        ),
        *healthy[:6],
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
                last_error=LONG_ERROR,
                error_streak=2,
            ),
        ),
        *healthy[6:],
        SourceHealth(
            "old-blog",
            "feed",
            True,
            0,
            SourceState(
                "old-blog", last_fetch_at=WHEN, last_error="HTTP 404 Not Found", error_streak=9
            ),
        ),
        SourceHealth("archive", "posts", False, 1, SourceState("archive", last_result="ok")),
    ]


SOURCES = _sources()
HEALTH = {source.name: "ok" for source in SOURCES} | {
    "sina": "backing off",
    "old-blog": "dead",
    "archive": "disabled",
}
BANNER = "2 of 16 sources failing: 新浪新闻, old-blog. Source health"


def _stories() -> tuple[FeedItem, ...]:
    stories = []
    for number in range(45):
        title = (
            f"王毅会见韩外长：乐见朝美适时重启对话 {number}"
            if number % 2
            else f"A long headline about what happened in the world today, part {number}"
        )
        stories.append(
            make_item(
                id=f"0b6f2a40-6c3e-4d0a-9a4e-{number:012d}",
                source="zaobao-china" if number % 3 else "sina",
                title=title,
                link=None if number == 2 else f"https://example.org/story/{number}",
                published=WHEN - timedelta(hours=2 * number),
                updated=WHEN - timedelta(hours=2 * number),
                tags=("联合早报", "world news") if number % 2 else ("world news",),
                summary="韩国外长访华。双方讨论了半岛局势 & 合作。" * (1 + number % 3),
                also_reported=(
                    (Provenance("sina", "王毅会见韩国外长", "https://news.sina.com.cn/c/1.shtml"),)
                    if number % 4 == 1
                    else ()
                ),
            )
        )
    return tuple(stories)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    settings = SiteSettings(
        dir=folder, base_url="http://127.0.0.1:8080/", title="Morning paper", source_titles=TITLES
    )
    stories = _stories()
    feeds = [
        FeedData(None, settings.title, stories),
        FeedData("联合早报", "联合早报", tuple(s for s in stories if "联合早报" in s.tags)),
        FeedData("world-news", "world news", stories),
        FeedData("新浪财经-国內", "新浪财经-国內", stories[:7]),
    ]
    render_site(settings, feeds, TAGS, SOURCES, daily=DAILY, health=HEALTH)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _open(browser: Browser, path: Path, width: int, scheme: str) -> Page:
    page = browser.new_page(
        viewport={"width": width, "height": SCREEN_HEIGHT},
        color_scheme=scheme,  # type: ignore[arg-type]
        java_script_enabled=False,  # the page must not need it
    )
    page.goto(path.as_uri())
    return page


def _on_screen(page: Page, selector: str, width: int) -> FloatRect:
    element = page.locator(selector)
    assert element.count() == 1, selector
    assert element.is_visible(), f"{selector} is hidden"
    box = element.bounding_box()
    assert box is not None, selector
    assert box["width"] > 0 and box["height"] > 0, selector
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, f"{selector} off screen"
    return box


def _bar_pixels(png: bytes, colour: tuple[int, int, int]) -> int:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    near = np.abs(pixels - np.array(colour, dtype=np.int16)).max(axis=2) <= 40
    return int(near.sum())


# Measured by the browser itself (Playwright evaluates it even with the page's JavaScript off):
# for each visible column header, how wide its content is against its column, and on how many
# lines its text is laid out.
_MEASURE_HEADERS = """
headers => headers.filter(th => th.offsetParent !== null).map(th => {
  const range = document.createRange();
  range.selectNodeContents(th);
  const lines = new Set([...range.getClientRects()].map(rect => Math.round(rect.top)));
  return {text: th.textContent.trim(), content: th.scrollWidth, column: th.clientWidth,
          lines: lines.size, words: th.textContent.trim().split(/\\s+/).length};
})
"""


def _headers(page: Page) -> list[dict[str, Any]]:
    measured = page.locator("thead th").evaluate_all(_MEASURE_HEADERS)
    assert isinstance(measured, list)
    return measured


def _page_width(page: Page) -> int:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert isinstance(width, int)
    return width


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", sorted(WIDTHS))
@pytest.mark.parametrize("name", PAGES)
def test_every_page_holds_its_layout(
    browser: Browser, site: Path, tmp_path: Path, name: str, device: str, scheme: str
) -> None:
    width = WIDTHS[device]
    page = _open(browser, site / name, width, scheme)
    try:
        shot = tmp_path / f"{name.replace('/', '_')}-{device}-{scheme}.png"
        png = page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")

        # Nothing is wider than the screen: a phone never scrolls sideways.
        assert _page_width(page) <= width
        assert Image.open(io.BytesIO(png)).width == width
        headers = _headers(page)
        if device == "desktop" and name != TAG_PAGE:
            assert len(headers) == (5 if name == "index.html" else 9), headers
        for header in headers:
            assert header["content"] <= header["column"], f"header wider than its column: {header}"
            assert header["lines"] <= header["words"], f"header broken inside a word: {header}"
        background = Image.open(io.BytesIO(png)).convert("RGB").getpixel((2, 2))
        assert isinstance(background, tuple)
        assert (sum(background) < 150) == (scheme == "dark"), background
    finally:
        page.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", sorted(WIDTHS))
@pytest.mark.parametrize("name", ["index.html", "sources.html"])
def test_the_failing_sources_are_named_before_any_scrolling(
    browser: Browser, site: Path, tmp_path: Path, name: str, device: str, scheme: str
) -> None:
    width = WIDTHS[device]
    page = _open(browser, site / name, width, scheme)
    try:
        shot = tmp_path / f"banner-{name.removesuffix('.html')}-{device}-{scheme}.png"
        page.screenshot(path=str(shot))  # the first screen only, as it opens
        print(f"screenshot: {shot}")
        box = _on_screen(page, "#health", width)
        assert box["y"] >= 0 and box["y"] + box["height"] <= SCREEN_HEIGHT, box
        text = " ".join(page.locator("#health").inner_text().split())
        expected = BANNER if name == "index.html" else BANNER.removesuffix(" Source health")
        assert text == expected
        # On the sources page, the failing sources are the first rows.
        if name == "sources.html":
            rows = page.locator("tbody tr th")
            assert rows.nth(0).inner_text().startswith("新浪新闻")
            assert rows.nth(1).inner_text().startswith("old-blog")
            assert LONG_ERROR in page.locator("tbody tr").nth(0).inner_text()
    finally:
        page.close()


@pytest.mark.parametrize("device", sorted(WIDTHS))
def test_the_index_opens_on_the_newest_story(browser: Browser, site: Path, device: str) -> None:
    width = WIDTHS[device]
    page = _open(browser, site / "index.html", width, "light")
    try:
        first = _on_screen(page, "ol.stories > li:first-child .title a", width)
        assert first["y"] + first["height"] <= SCREEN_HEIGHT, "the newest story is below the fold"
        assert page.locator("ol.stories > li").count() == 20
        assert page.locator("ol.stories > li:first-child .title").inner_text() == (
            "A long headline about what happened in the world today, part 0"
        )
        meta = page.locator("ol.stories > li:nth-child(2) .meta").inner_text()
        assert "联合早报 · 中国" in meta and "also reported by 1: 新浪新闻" in meta
        older = page.locator("nav.pages a[rel='next']")
        assert older.get_attribute("href") == "all.2.html"
    finally:
        page.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", sorted(WIDTHS))
def test_tags_links_and_charts_are_visible(
    browser: Browser, site: Path, device: str, scheme: str
) -> None:
    width = WIDTHS[device]
    page = _open(browser, site / "index.html", width, scheme)
    try:
        _on_screen(page, "header a[href='feeds.opml']", width)
        for fmt in ("rss", "atom", "json"):
            _on_screen(page, f"header a[href='all.{fmt}']", width)

        tag_rows = page.locator("section[aria-labelledby='tags'] tbody tr")
        assert tag_rows.count() == len(TAGS)
        for number, tag in enumerate(TAGS, start=1):
            row = f"section[aria-labelledby='tags'] tbody tr:nth-child({number})"
            assert page.locator(f"{row} th").inner_text() == tag.name
            _on_screen(page, f"{row} th a[href='tags/{quote(tag.slug)}.html']", width)
            assert str(tag.count) in page.locator(row).inner_text()
            for fmt in ("rss", "atom", "json"):
                _on_screen(page, f"{row} a[href='tags/{quote(tag.slug)}.{fmt}']", width)
            chart = _on_screen(page, f"{row} svg.chart", width)
            assert chart["width"] >= 100 and chart["height"] >= 15
            bars = page.locator(f"{row} svg.chart").screenshot()
            assert _bar_pixels(bars, BAR_COLOURS[scheme]) > 20, f"{tag.name}: no bars drawn"
    finally:
        page.close()


def test_a_tag_page_pages_through_its_stories(browser: Browser, site: Path) -> None:
    width = WIDTHS["phone"]
    page = _open(browser, site / "tags/world-news.html", width, "light")
    try:
        assert page.locator("h1").inner_text() == "world news"
        for fmt in ("rss", "atom", "json"):
            _on_screen(page, f"header a[href='../tags/world-news.{fmt}']", width)
        assert page.locator("ol.stories > li").count() == 20
        page.locator("nav.pages a[rel='next']").click()
        assert page.url.endswith("/tags/world-news.2.html")
        assert page.locator("ol.stories > li:first-child .title").inner_text().endswith(" 20")
        assert "Page 2 of 3" in page.locator("nav.pages").inner_text()
    finally:
        page.close()


def test_the_sources_page_shows_times_errors_and_charts(browser: Browser, site: Path) -> None:
    width = WIDTHS["desktop"]
    page = _open(browser, site / "sources.html", width, "light")
    try:
        sina = page.locator("tbody tr").nth(0).inner_text()
        assert "backing off" in sina
        for shown in ("2024-05-01 12:00", "2024-05-01 13:00", "2024-04-30 08:00", LONG_ERROR):
            assert shown in sina
        zaobao = page.locator("tr:has(#source-zaobao-china) svg.chart")
        assert "at most 9 on 2024-04-12" in (zaobao.get_attribute("aria-label") or "")
        # The disabled source, last, charted on its own older days, and saying so.
        archive = page.locator("tbody tr").last
        assert "disabled" in archive.inner_text()
        assert "until 2021-10-30" in archive.inner_text()
        _on_screen(page, "tr:has(#source-archive) svg.chart", width)
        # A source with nothing to chart shows no empty chart.
        assert page.locator("tr:has(#source-old-blog) svg").count() == 0
    finally:
        page.close()
