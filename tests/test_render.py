"""Render stage: every format parses, carries each item rule, and output is byte-stable."""

from __future__ import annotations

import calendar
import json
import os
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import feedparser
import pytest
from lxml import etree
from lxml import html as lxml_html

from aggregator.errors import RenderError
from aggregator.models import (
    FeedData,
    FeedItem,
    Provenance,
    SiteSettings,
    SourceHealth,
    SourceState,
    TagSummary,
)
from aggregator.render import RenderReport, render_site
from aggregator.tags import slugify

BASE = "http://127.0.0.1:8080/"
CST = timezone(timedelta(hours=8))
CJK_TITLE = "王毅会见韩外长：乐见朝美适时重启对话"
SINA_LINK = "https://news.sina.com.cn/c/2024-05-01/doc-1.shtml?from=a&id=7"
ATOM_NS = {"a": "http://www.w3.org/2005/Atom"}


def make_item(**overrides: Any) -> FeedItem:
    fields: dict[str, Any] = {
        "id": "0b6f2a40-6c3e-4d0a-9a4e-000000000001",
        "source": "zaobao-china",
        "title": CJK_TITLE,
        "link": "https://www.zaobao.com.sg/realtime/china/story20240501-1",
        "published": datetime(2024, 5, 1, 10, 30, tzinfo=CST),
        "updated": datetime(2024, 5, 1, 11, 0, tzinfo=CST),
        "author": "联合早报记者",
        "tags": ("联合早报", "外交"),
        "content_html": "<p>韩国外长访华。</p><p>双方讨论了半岛局势 &amp; 合作。</p>",
        "summary": "韩国外长访华。双方讨论了半岛局势 & 合作。",
    }
    fields.update(overrides)
    return FeedItem(**fields)


def sample_items() -> tuple[FeedItem, FeedItem, FeedItem]:
    reported = make_item(
        also_reported=(
            Provenance("sina", "王毅会见韩国外长", SINA_LINK),
            Provenance("rfi-cn", "王毅与赵兑烈会谈", None),
        )
    )
    local = make_item(
        id="0b6f2a40-6c3e-4d0a-9a4e-000000000002",
        source="samples",
        title="A post without a public URL",
        link=None,
        published=datetime(2024, 4, 30, 8, 0, tzinfo=UTC),
        updated=datetime(2024, 4, 30, 8, 0, tzinfo=UTC),
        author=None,
        tags=("samples",),
        content_html='<p>Local only <img src="https://example.org/a.png"></p>',
        summary="Local only",
    )
    tricky = make_item(
        id="0b6f2a40-6c3e-4d0a-9a4e-000000000003",
        source="samples",
        title='Tom & Jerry <b>not bold</b> "quoted"',
        link="https://example.org/posts/tom-jerry",
        published=datetime(2024, 4, 29, 23, 15, tzinfo=timezone(timedelta(hours=-5))),
        updated=datetime(2024, 4, 30, 1, 0, tzinfo=timezone(timedelta(hours=-5))),
        author="Ann <ann@example.org>",
        tags=("samples", "Cartoons & Co"),
        content_html="<p>Cat &lt;chases&gt; mouse.</p>",
        summary="Cat <chases> mouse.",
    )
    return reported, local, tricky


def site_for(tmp_path: Path, **overrides: Any) -> SiteSettings:
    return SiteSettings(dir=tmp_path / "public", base_url=BASE, title="Aggregator", **overrides)


def feeds_for(items: tuple[FeedItem, ...]) -> list[FeedData]:
    feeds = [FeedData(slug=None, title="Aggregator", items=items)]
    names: list[str] = []
    for item in items:
        names.extend(tag for tag in item.tags if tag not in names)
    for name in names:
        tagged = tuple(item for item in items if name in item.tags)
        feeds.append(FeedData(slug=slugify(name), title=name, items=tagged))
    return feeds


def summaries_for(feeds: list[FeedData]) -> list[TagSummary]:
    return [
        TagSummary(
            name=feed.title,
            slug=feed.slug,
            count=len(feed.items),
            last_updated=max(item.updated for item in feed.items),
        )
        for feed in feeds
        if feed.slug is not None
    ]


SOURCES = [
    SourceHealth("samples", "posts", True, 2, SourceState("samples", last_result="ok")),
    SourceHealth(
        "zaobao-china",
        "feed",
        True,
        1,
        SourceState(
            "zaobao-china",
            last_fetch_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
            last_result="HTTP 503",
            last_error="HTTP 503 <Service Unavailable>",
            error_streak=3,
            next_fetch_at=datetime(2024, 5, 1, 12, 40, tzinfo=UTC),
        ),
    ),
    SourceHealth("<script>alert(1)</script>", "page", False, 0, None),
]


def render(site: SiteSettings, items: tuple[FeedItem, ...]) -> RenderReport:
    feeds = feeds_for(items)
    return render_site(site, feeds, summaries_for(feeds), SOURCES)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def rendered(tmp_path: Path) -> tuple[SiteSettings, tuple[FeedItem, ...], RenderReport]:
    site = site_for(tmp_path)
    items = sample_items()
    return site, items, render(site, items)


def feed_files(root: Path, suffix: str) -> list[Path]:
    return sorted(root.rglob(f"*.{suffix}"))


def html_elements(tree: lxml_html.HtmlElement, path: str) -> list[lxml_html.HtmlElement]:
    found = tree.xpath(path)
    assert isinstance(found, list)
    return [node for node in found if isinstance(node, lxml_html.HtmlElement)]


def text_of(fragment: str) -> str:
    return str(lxml_html.fragment_fromstring(fragment, create_parent="div").text_content())


def expected_link(item: FeedItem) -> str:
    return item.link or f"{BASE}items/{item.id}.html"


def test_writes_every_expected_file(rendered: tuple[SiteSettings, Any, RenderReport]) -> None:
    site, items, report = rendered
    names = {str(path.relative_to(site.dir)) for path in site.dir.rglob("*") if path.is_file()}
    stems = ["all", "tags/联合早报", "tags/外交", "tags/samples", "tags/cartoons-co"]
    expected = {f"{stem}.{fmt}" for stem in stems for fmt in ("rss", "atom", "json", "html")}
    expected -= {"all.html"}  # the river's first page is the index
    expected |= {"index.html", "sources.html", "feeds.opml", "style.css"}
    expected |= {f"items/{items[1].id}.html"}
    assert {str(path.relative_to(site.dir)) for path in report.written} == expected
    # And the marker `check` knows an output folder of ours by (written once, not reported).
    assert names == expected | {".aggregator-output"}
    assert report.unchanged == 0
    assert "联合早报.atom" in os.listdir(site.dir / "tags")  # a real UTF-8 file name
    assert not [path for path in site.dir.rglob("*") if path.name.endswith(".tmp")]


@pytest.mark.parametrize("suffix", ["rss", "atom"])
def test_xml_feeds_parse_and_carry_every_item_rule(
    rendered: tuple[SiteSettings, tuple[FeedItem, ...], RenderReport], suffix: str
) -> None:
    site, items, _ = rendered
    by_urn = {f"urn:uuid:{item.id}": item for item in items}
    for path in feed_files(site.dir, suffix):
        parsed = feedparser.parse(path.read_bytes())
        assert parsed.bozo == 0, (path, parsed.get("bozo_exception"))
        ids = [entry.id for entry in parsed.entries]
        assert len(ids) == len(set(ids))
        assert parsed.entries, path
        for entry in parsed.entries:
            item = by_urn[entry.id]
            assert entry.title == item.title
            assert entry.link == expected_link(item)
            assert entry.link.startswith(("http://", "https://"))
            assert entry.author == (item.author or item.source)
            assert [tag.term for tag in entry.tags] == list(item.tags)
            # RSS description is HTML by convention, so readers see the text once rendered.
            shown = text_of(entry.summary) if suffix == "rss" else entry.summary
            assert shown == item.summary
            # feedparser re-serialises the HTML (<img> becomes <img />): compare the text.
            assert text_of(entry.content[0].value).startswith(text_of(item.content_html))
            published = datetime.fromtimestamp(calendar.timegm(entry.published_parsed), UTC)
            assert published == item.published
            offset = item.published.strftime("%z")
            if suffix == "atom":
                assert entry.published == item.published.isoformat()
                assert entry.updated == item.updated.isoformat()
                assert entry.content[0].type == "text/html"
            else:
                assert entry.published.endswith(offset)
                assert entry.guidislink is False


def test_feed_items_keep_the_given_order(
    rendered: tuple[SiteSettings, tuple[FeedItem, ...], RenderReport],
) -> None:
    site, items, _ = rendered
    expected = [f"urn:uuid:{item.id}" for item in items]
    for name in ("all.rss", "all.atom"):
        parsed = feedparser.parse((site.dir / name).read_bytes())
        assert [entry.id for entry in parsed.entries] == expected
    document = json.loads((site.dir / "all.json").read_text("utf-8"))
    assert [entry["id"] for entry in document["items"]] == expected


def test_titles_are_byte_exact_in_the_files(
    rendered: tuple[SiteSettings, tuple[FeedItem, ...], RenderReport],
) -> None:
    site, _, _ = rendered
    for name in ("all.rss", "all.atom", "all.json", "tags/联合早报.atom"):
        assert CJK_TITLE.encode("utf-8") in (site.dir / name).read_bytes()


def test_rss_channel_links_to_the_site_and_itself(
    rendered: tuple[SiteSettings, Any, RenderReport],
) -> None:
    site, _, _ = rendered
    for path in feed_files(site.dir, "rss"):
        channel = etree.fromstring(path.read_bytes()).find("channel")
        assert channel is not None
        assert channel.findtext("link") == BASE
        self_link = channel.find("a:link[@rel='self']", ATOM_NS)
        assert self_link is not None
        links = feedparser.parse(path.read_bytes()).feed.links
        own_url = next(link.href for link in links if link.rel == "self")
        assert self_link.get("href") == own_url
        assert own_url.endswith(".rss")
        for item in channel.iter("item"):
            assert item.find("guid").get("isPermaLink") == "false"  # type: ignore[union-attr]


def test_atom_feed_level_fields(rendered: tuple[SiteSettings, Any, RenderReport]) -> None:
    site, items, _ = rendered
    root = etree.fromstring((site.dir / "tags" / "联合早报.atom").read_bytes())
    own = BASE + "tags/%E8%81%94%E5%90%88%E6%97%A9%E6%8A%A5.atom"
    assert root.findtext("a:id", namespaces=ATOM_NS) == own
    assert root.findtext("a:title", namespaces=ATOM_NS) == "Aggregator: 联合早报"
    links = {link.get("rel"): link.get("href") for link in root.findall("a:link", ATOM_NS)}
    assert links == {"self": own, "alternate": BASE}
    assert root.findtext("a:updated", namespaces=ATOM_NS) == items[0].updated.isoformat()
    for content in root.iterfind("a:entry/a:content", ATOM_NS):
        assert content.get("type") == "html"
        assert (content.text or "").startswith(items[0].content_html)  # exact, unescaped once
    all_root = etree.fromstring((site.dir / "all.atom").read_bytes())
    newest = max(item.updated for item in items)
    assert all_root.findtext("a:updated", namespaces=ATOM_NS) == newest.isoformat()


def test_json_feeds_follow_json_feed_1_1(
    rendered: tuple[SiteSettings, tuple[FeedItem, ...], RenderReport],
) -> None:
    # feedparser 6 does not read JSON Feed, so check the structure the spec requires.
    site, items, _ = rendered
    by_urn = {f"urn:uuid:{item.id}": item for item in items}
    for path in feed_files(site.dir, "json"):
        document = json.loads(path.read_text("utf-8"))
        assert document["version"] == "https://jsonfeed.org/version/1.1"
        assert document["home_page_url"] == BASE
        assert document["feed_url"] == BASE + path.relative_to(site.dir).as_posix().replace(
            "联合早报", "%E8%81%94%E5%90%88%E6%97%A9%E6%8A%A5"
        ).replace("外交", "%E5%A4%96%E4%BA%A4")
        assert document["title"].startswith("Aggregator")
        ids = [entry["id"] for entry in document["items"]]
        assert len(ids) == len(set(ids))
        for entry in document["items"]:
            item = by_urn[entry["id"]]
            assert entry["title"] == item.title
            assert entry["url"] == expected_link(item)
            assert entry["content_html"].startswith(item.content_html)
            assert entry["summary"] == item.summary
            assert datetime.fromisoformat(entry["date_published"]) == item.published
            assert entry["date_published"] == item.published.isoformat()
            assert entry["date_modified"] == item.updated.isoformat()
            assert entry["authors"] == [{"name": item.author or item.source}]
            assert entry["tags"] == list(item.tags)
    raw = (site.dir / "all.json").read_bytes()
    assert CJK_TITLE.encode("utf-8") in raw  # ensure_ascii=False


def test_item_without_link_gets_a_local_page(
    rendered: tuple[SiteSettings, tuple[FeedItem, ...], RenderReport],
) -> None:
    site, items, _ = rendered
    local = items[1]
    url = f"{BASE}items/{local.id}.html"
    page = site.dir / "items" / f"{local.id}.html"
    assert page.is_file()
    tree = lxml_html.fromstring(page.read_bytes())
    assert tree.findtext(".//h1") == local.title
    assert tree.find(".//time") is not None
    assert "samples" in page.read_text("utf-8")
    assert tree.find(".//img") is not None
    for name in ("all.rss", "all.atom", "tags/samples.rss", "tags/samples.atom"):
        links = [entry.link for entry in feedparser.parse((site.dir / name).read_bytes()).entries]
        assert url in links
    document = json.loads((site.dir / "all.json").read_text("utf-8"))
    assert url in [entry["url"] for entry in document["items"]]
    # Only stories without a public URL get a page.
    assert [path.name for path in (site.dir / "items").iterdir()] == [f"{local.id}.html"]


def test_also_reported_footer_follows_the_content(
    rendered: tuple[SiteSettings, tuple[FeedItem, ...], RenderReport],
) -> None:
    site, items, _ = rendered
    entry = feedparser.parse((site.dir / "all.atom").read_bytes()).entries[0]
    content = entry.content[0].value
    assert content.startswith(items[0].content_html)
    footer = lxml_html.fragment_fromstring(content, create_parent="div")
    assert "Also reported by:" in footer.text_content()
    anchors = {anchor.text: anchor.get("href") for anchor in footer.iter("a")}
    assert anchors == {"sina": SINA_LINK}
    assert "rfi-cn (王毅与赵兑烈会谈)" in footer.text_content()
    rss_entry = feedparser.parse((site.dir / "all.rss").read_bytes()).entries[0]
    assert "Also reported by:" in rss_entry.content[0].value
    json_item = json.loads((site.dir / "all.json").read_text("utf-8"))["items"][0]
    assert f'<a href="{SINA_LINK.replace("&", "&amp;")}">sina</a>' in json_item["content_html"]
    # Items nobody else carried get no footer.
    samples = json.loads((site.dir / "tags/samples.json").read_text("utf-8"))
    assert "Also reported" not in samples["items"][0]["content_html"]


def test_second_render_touches_nothing(
    rendered: tuple[SiteSettings, tuple[FeedItem, ...], RenderReport],
) -> None:
    site, items, first = rendered
    before = snapshot(site.dir)
    time.sleep(0.01)
    second = render(site, items)
    assert second.written == ()
    assert second.unchanged == len(first.written)
    assert snapshot(site.dir) == before


def test_a_changed_item_rewrites_only_its_feeds(
    rendered: tuple[SiteSettings, tuple[FeedItem, ...], RenderReport],
) -> None:
    site, items, first = rendered
    before = snapshot(site.dir)
    changed = (items[0], items[1], replace(items[2], content_html="<p>Cat naps.</p>"))
    report = render(site, changed)
    written = {str(path.relative_to(site.dir)) for path in report.written}
    assert written == {
        f"{stem}.{fmt}"
        for stem in ("all", "tags/samples", "tags/cartoons-co")
        for fmt in ("rss", "atom", "json")
    }
    assert report.unchanged == len(first.written) - len(written)
    after = snapshot(site.dir)
    for name, (data, mtime) in before.items():
        if name not in written:
            assert after[name] == (data, mtime), name


def test_output_does_not_depend_on_the_clock(tmp_path: Path) -> None:
    items = sample_items()
    first_site = site_for(tmp_path / "one")
    render(first_site, items)
    time.sleep(1.1)  # crosses a second boundary, which any "now" stamp would show
    second_site = site_for(tmp_path / "two")
    render(second_site, items)
    first = {name: data for name, (data, _) in snapshot(first_site.dir).items()}
    second = {name: data for name, (data, _) in snapshot(second_site.dir).items()}
    assert first == second
    year = str(datetime.now(UTC).year).encode()
    for data in first.values():
        assert b"python-feedgen" not in data
        assert year not in data or year == b"2024"


def test_empty_feed_uses_a_fixed_date(tmp_path: Path) -> None:
    site = site_for(tmp_path)
    render_site(site, [FeedData(None, "Aggregator", ())], [], [])
    atom = feedparser.parse((site.dir / "all.atom").read_bytes())
    rss = feedparser.parse((site.dir / "all.rss").read_bytes())
    assert atom.bozo == 0 and rss.bozo == 0
    assert atom.feed.updated == "1970-01-01T00:00:00+00:00"
    assert rss.feed.updated == "Thu, 01 Jan 1970 00:00:00 +0000"
    assert json.loads((site.dir / "all.json").read_text("utf-8"))["items"] == []
    assert lxml_html.fromstring((site.dir / "index.html").read_bytes()) is not None


def test_opml_lists_every_feed(rendered: tuple[SiteSettings, Any, RenderReport]) -> None:
    site, _, _ = rendered
    root = etree.fromstring((site.dir / "feeds.opml").read_bytes())
    assert root.tag == "opml" and root.get("version") == "2.0"
    outlines = root.findall("body/outline")
    rss_files = {BASE + "all.rss"} | {
        BASE + "tags/" + quote(path.name) for path in (site.dir / "tags").glob("*.rss")
    }
    assert {outline.get("xmlUrl") for outline in outlines} == rss_files
    for outline in outlines:
        assert outline.get("type") == "rss"
        # A reader's "visit the website" opens the tag's own page.
        assert outline.get("htmlUrl") == outline.get("xmlUrl", "").replace(".rss", ".html") or (
            outline.get("htmlUrl") == BASE and outline.get("xmlUrl") == BASE + "all.rss"
        )
        assert outline.get("text") == outline.get("title")
    titles = {outline.get("title") for outline in outlines}
    assert "Aggregator" in titles and "Aggregator: 联合早报" in titles


def test_index_lists_tags_feeds_and_source_health(
    rendered: tuple[SiteSettings, tuple[FeedItem, ...], RenderReport],
) -> None:
    site, _, _ = rendered
    raw = (site.dir / "index.html").read_bytes()
    tree = lxml_html.fromstring(raw)
    assert not html_elements(tree, "//script")
    alternates = {
        link.get("type"): link.get("href")
        for link in html_elements(tree, "//link[@rel='alternate']")
    }
    assert alternates == {
        "application/rss+xml": "all.rss",
        "application/atom+xml": "all.atom",
        "application/feed+json": "all.json",
    }
    assert html_elements(tree, "//a[@href='feeds.opml']")
    assert html_elements(tree, "//a[@href='sources.html']")
    rows = {
        row.find("th").text_content(): row
        for row in html_elements(tree, "//section[@aria-labelledby='tags']//tbody/tr")
    }
    expected_counts = {"联合早报": "1", "外交": "1", "samples": "2", "Cartoons & Co": "1"}
    assert set(rows) == set(expected_counts)
    for name, count in expected_counts.items():
        cells = rows[name].findall("td")
        assert cells[0].text == count
        assert cells[1].find("time") is not None
        stem = "tags/" + quote(slugify(name))
        hrefs = {anchor.get("href") for anchor in rows[name].iter("a")}
        assert hrefs == {f"{stem}.html", f"{stem}.rss", f"{stem}.atom", f"{stem}.json"}
        assert (site.dir / unquote(f"{stem}.html")).is_file()
    # The failing source is named on top; its error is on the sources page.
    [banner] = html_elements(tree, "//*[@id='health']")
    assert banner.text_content().strip() == "1 of 2 sources failing: zaobao-china. Source health"
    sources = lxml_html.fromstring((site.dir / "sources.html").read_bytes())
    assert not html_elements(sources, "//script")
    health = html_elements(sources, "//tbody/tr")
    assert [row.get("id") for row in (row.find("th") for row in health) if row is not None] == [
        "source-zaobao-china",
        "source-samples",
        "source-<script>alert(1)</script>",
    ]
    zaobao = {cell.get("data-label"): cell.text_content() for cell in health[0].iterfind("td")}
    assert zaobao["Health"] == "failing"
    assert zaobao["Error streak"] == "3"
    assert zaobao["Last error"] == "HTTP 503 <Service Unavailable>"
    assert zaobao["Last fetch"] == "2024-05-01 12:00"
    assert zaobao["Next due"] == "2024-05-01 12:40"
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in (site.dir / "sources.html").read_bytes()
    assert tree.xpath("//link[@rel='stylesheet']/@href") == ["style.css"]
    assert not html_elements(tree, "//style")
    assert "prefers-color-scheme: dark" in (site.dir / "style.css").read_text()


def test_items_per_feed_caps_every_feed(tmp_path: Path) -> None:
    site = site_for(tmp_path, items_per_feed=2)
    render(site, sample_items())
    assert len(feedparser.parse((site.dir / "all.atom").read_bytes()).entries) == 2


def test_xml_invalid_characters_do_not_break_a_feed(tmp_path: Path) -> None:
    site = site_for(tmp_path)
    item = make_item(title="Bad\x0bbyte\x00 title", summary="ok\x1f")
    render_site(site, [FeedData(None, "Aggregator", (item,))], [], [])
    for name in ("all.rss", "all.atom"):
        parsed = feedparser.parse((site.dir / name).read_bytes())
        assert parsed.bozo == 0
        assert parsed.entries[0].title == "Badbyte title"


def test_unwritable_output_raises_render_error_naming_the_file(tmp_path: Path) -> None:
    site = site_for(tmp_path)
    site.dir.mkdir()
    (site.dir / "tags").write_text("not a folder")
    feeds = feeds_for(sample_items())
    with pytest.raises(RenderError, match=r"tags"):
        render_site(site, feeds, summaries_for(feeds), [])
    assert not [path for path in site.dir.rglob("*") if path.name.endswith(".tmp")]


def test_unsafe_item_id_is_refused(tmp_path: Path) -> None:
    item = make_item(id="../escape", link=None)
    with pytest.raises(RenderError, match=r"escape"):
        render_site(site_for(tmp_path), [FeedData(None, "Aggregator", (item,))], [], [])
