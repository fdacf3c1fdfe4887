"""index.html in a real browser: Debian's headless Chromium (installed by `make test`) driven by
Playwright, with JavaScript off, at a phone's and a desktop's width, in light and dark mode.

The screenshots are kept under the test's tmp folder (printed with -s) for a person to look at;
the assertions check what a reader would notice: every tag, subscribe link and chart is on
screen, inside the viewport (nothing scrolls sideways), and the charts' bars are drawn.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, FloatRect, Page, sync_playwright

from aggregator.models import (
    DailyCounts,
    FeedData,
    SiteSettings,
    SourceHealth,
    SourceState,
    TagSummary,
)
from aggregator.render import render_site
from tests.test_render import make_item

CHROMIUM = Path(os.environ.get("AGGREGATOR_TEST_CHROMIUM", "/usr/bin/chromium"))
WIDTHS = {"phone": 390, "desktop": 1280}
BAR_COLOURS = {"light": (0xD9, 0x48, 0x0F), "dark": (0xFF, 0x92, 0x2B)}
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

TAGS = [
    TagSummary("联合早报", "联合早报", 41, WHEN),
    TagSummary("新浪财经-国內", "新浪财经-国內", 7, WHEN),
    TagSummary("world news", "world-news", 3, WHEN),
]


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
)
SOURCES = [
    SourceHealth("zaobao-china", "feed", True, 41, SourceState("zaobao-china", last_result="ok")),
    SourceHealth(
        "sina",
        "feed",
        True,
        7,
        SourceState(
            "sina",
            last_fetch_at=WHEN,
            last_success_at=datetime(2024, 4, 30, 8, 0, tzinfo=UTC),
            last_error="HTTP 503 Service Unavailable",
            error_streak=2,
        ),
    ),
    SourceHealth(
        "old-blog",
        "feed",
        True,
        0,
        SourceState(
            "old-blog", last_fetch_at=WHEN, last_error="HTTP 404 Not Found", error_streak=9
        ),
    ),
    SourceHealth("archive", "posts", True, 1, SourceState("archive", last_result="ok")),
]
HEALTH = {"zaobao-china": "ok", "sina": "backing off", "old-blog": "dead", "archive": "ok"}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    site = SiteSettings(dir=folder, base_url="http://127.0.0.1:8080/", title="Morning paper")
    feeds = [FeedData(None, site.title, (make_item(),))]
    render_site(site, feeds, TAGS, SOURCES, daily=DAILY, health=HEALTH)
    return folder / "index.html"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _open(browser: Browser, index: Path, width: int, scheme: str) -> Page:
    page = browser.new_page(
        viewport={"width": width, "height": 900},
        color_scheme=scheme,  # type: ignore[arg-type]
        java_script_enabled=False,  # the page must not need it
    )
    page.goto(index.as_uri())
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


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", sorted(WIDTHS))
def test_tags_links_and_charts_are_visible(
    browser: Browser, index: Path, tmp_path: Path, device: str, scheme: str
) -> None:
    width = WIDTHS[device]
    page = _open(browser, index, width, scheme)
    try:
        shot = tmp_path / f"index-{device}-{scheme}.png"
        png = page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")

        # Nothing is wider than the screen: a phone never scrolls sideways.
        assert page.locator("main").bounding_box()["width"] <= width  # type: ignore[index]
        _on_screen(page, "a[href='feeds.opml']", width)
        for fmt in ("rss", "atom", "json"):
            _on_screen(page, f"header a[href='all.{fmt}']", width)

        tag_rows = page.locator("section[aria-labelledby='tags'] tbody tr")
        assert tag_rows.count() == len(TAGS)
        for number, tag in enumerate(TAGS, start=1):
            row = f"section[aria-labelledby='tags'] tbody tr:nth-child({number})"
            assert page.locator(f"{row} th").inner_text() == tag.name
            _on_screen(page, f"{row} th", width)
            assert str(tag.count) in page.locator(row).inner_text()
            for fmt in ("rss", "atom", "json"):
                _on_screen(page, f"{row} a[href='tags/{quote(tag.slug)}.{fmt}']", width)
            chart = _on_screen(page, f"{row} svg.chart", width)
            assert chart["width"] >= 100 and chart["height"] >= 15
            bars = page.locator(f"{row} svg.chart").screenshot()
            assert _bar_pixels(bars, BAR_COLOURS[scheme]) > 20, f"{tag.name}: no bars drawn"

        source_rows = page.locator("section[aria-labelledby='sources'] tbody tr")
        assert source_rows.count() == len(SOURCES)
        for number, source in enumerate(SOURCES, start=1):
            row = f"section[aria-labelledby='sources'] tbody tr:nth-child({number})"
            assert source.name in page.locator(row).inner_text()
            assert HEALTH[source.name] in page.locator(row).inner_text()
            _on_screen(page, f"{row} svg.chart", width)

        assert _bar_pixels(png, BAR_COLOURS[scheme]) > 200
        background = Image.open(io.BytesIO(png)).convert("RGB").getpixel((2, 2))
        assert isinstance(background, tuple)
        assert (sum(background) < 150) == (scheme == "dark"), background
    finally:
        page.close()


def test_a_failing_source_shows_its_error_and_last_success(browser: Browser, index: Path) -> None:
    page = _open(browser, index, WIDTHS["desktop"], "light")
    try:
        sina = page.locator("section[aria-labelledby='sources'] tbody tr:nth-child(2)")
        text = sina.inner_text()
        assert "backing off" in text
        assert "HTTP 503 Service Unavailable" in text
        assert "2024-04-30 08:00" in text
        chart = page.locator("tbody tr:nth-child(1) svg.chart").first
        assert "at most 9 on 2024-04-12" in (chart.get_attribute("aria-label") or "")
    finally:
        page.close()
