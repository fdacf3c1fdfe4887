"""Names people chose: a source's display `title` and home page (`site_url`), filled from the feed
on `sources add` and from the outline on OPML import, kept by OPML export, and shown to readers
wherever a source is named (provenance, authors), while the CLI keeps short slugs."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from aggregator.config import load_config
from aggregator.models import FeedItem, Provenance, SiteSettings
from aggregator.render.common import FeedPaths
from aggregator.render.feeds import FeedSpec, atom_bytes, json_bytes, rss_bytes
from tests.helpers import run_aggregator, serving

FIXTURES = Path(__file__).parent / "fixtures"
AWKWARD = FIXTURES / "opml" / "awkward.opml"
SEEDS = Path(__file__).resolve().parent.parent / "seeds"
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

# (title, site_url) of each feed of awkward.opml, in order, as the config must keep them.
AWKWARD_TITLES: list[tuple[str | None, str | None]] = [
    ("nataliepo (posts on 'nataliepo' (rss 2.0))", "https://nataliepo.example/"),
    ("Daring Fireball", "https://daringfireball.example/"),
    ("Daring Fireball", "https://daringfireball.example/"),
    ('"The Morning" — Notes & Asides', "https://morning.example/"),
    ("Café Babel: l’Europe en français", "https://cafebabel.example/fr/"),
    (
        "The Extraordinarily Long-Winded Weblog of Someone Who Never Stops Writing",
        "https://longwinded.example/",
    ),
    ("Line Break Blog", None),  # its htmlUrl is javascript:, no home page
    ("联合早报 中国", "https://www.zaobao.example/realtime/china"),
    ("联合早报 国际", "https://www.zaobao.example/realtime/world"),
    ("阮一峰的网络日志", "https://www.ruanyifeng.example/blog/"),
    ("科技", "https://news.example.cn/"),
    ("科学", "https://news.example.cn/"),
    ("🦀 This Week in Rust", "https://this-week-in-rust.example/"),
    ("🦀🦀", None),
    (None, None),  # an outline with neither title nor text
]


def _empty_config(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "aggregator.yaml"
    path.write_text("# mine\nsources: []\n", encoding="utf-8")
    return path


# ---- sources add --------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
<title>娜塔莉的 "Notes" &amp; (more)</title>
<link>{home}</link>
<description>d</description>
<item><title>One</title><link>{home}one</link><guid>one</guid>
<pubDate>Tue, 09 Jan 2024 10:00:00 +0000</pubDate><description>x</description></item>
</channel></rss>
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """On 127.0.0.1: an RSS feed naming its title and home page, and a blog page announcing an
    Atom feed that names no home page."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copyfile(FIXTURES / "feeds" / "dates_iso.xml", root / "feed.atom")
    (root / "blog.html").write_text(
        '<!DOCTYPE html><html><head><link rel="alternate" type="application/atom+xml"'
        ' href="/feed.atom"></head><body></body></html>'
    )
    with serving(partial(_QuietHandler, directory=str(root))) as base_url:
        (root / "rss.xml").write_text(RSS.format(home=f"{base_url}/"), encoding="utf-8")
        yield base_url


def test_sources_add_takes_the_feeds_own_title_and_home_page(tmp_path: Path, site: str) -> None:
    config = _empty_config(tmp_path / "config")
    result = run_aggregator(config, "sources", "add", "natalie", f"{site}/rss.xml")
    assert result.returncode == 0, result.stderr
    source = load_config(config).source("natalie")
    assert source is not None
    assert (source.name, source.title, source.site_url) == (
        "natalie",
        '娜塔莉的 "Notes" & (more)',
        f"{site}/",
    )


def test_a_feed_found_on_a_page_has_that_page_as_its_home(tmp_path: Path, site: str) -> None:
    config = _empty_config(tmp_path / "config")
    result = run_aggregator(config, "sources", "add", "iso", f"{site}/blog.html")
    assert result.returncode == 0, result.stderr
    source = load_config(config).source("iso")
    assert source is not None
    assert (source.url, source.title, source.site_url) == (
        f"{site}/feed.atom",
        "ISO dates",
        f"{site}/blog.html",
    )


def test_the_title_option_wins_over_the_feeds_title(tmp_path: Path, site: str) -> None:
    config = _empty_config(tmp_path / "config")
    result = run_aggregator(
        config, "sources", "add", "natalie", f"{site}/rss.xml", "--title", "Natalie: notes"
    )
    assert result.returncode == 0, result.stderr
    assert load_config(config).source("natalie").title == "Natalie: notes"  # type: ignore[union-attr]
    # Unchecked, a title is still what the user typed, and the only thing known of the feed.
    added = run_aggregator(
        config, "sources", "add", "x", "https://x.example/feed", "--no-check", "--title", "X 日报"
    )
    assert added.returncode == 0, added.stderr
    assert "  title: X 日报\n" in config.read_text(encoding="utf-8")


def test_a_title_the_config_cannot_hold_is_refused(tmp_path: Path) -> None:
    config = _empty_config(tmp_path / "config")
    before = config.read_bytes()
    result = run_aggregator(
        config, "sources", "add", "x", "https://x.example/feed", "--no-check", "--title", "  "
    )
    assert result.returncode == 1
    assert "title" in result.stderr
    assert "is blank" in result.stderr
    assert config.read_bytes() == before


def test_check_accepts_title_and_site_url_and_refuses_a_bad_home_page(tmp_path: Path) -> None:
    config = tmp_path / "aggregator.yaml"
    source = "sources:\n  - name: a\n    title: 'A: the \"first\"'\n    kind: feed\n"
    config.write_text(
        source + "    url: https://a.example/feed\n    site_url: https://a.example/\n",
        encoding="utf-8",
    )
    assert run_aggregator(config, "check").returncode == 0
    config.write_text(
        source + "    url: https://a.example/feed\n    site_url: a.example\n", encoding="utf-8"
    )
    refused = run_aggregator(config, "check")
    assert refused.returncode == 2
    assert "sources[0].site_url: 'a.example' is not an http(s) URL" in refused.stderr


# ---- OPML ---------------------------------------------------------------------------------


def test_opml_import_makes_short_unique_slugs_and_keeps_the_titles(tmp_path: Path) -> None:
    config = _empty_config(tmp_path / "config")
    result = run_aggregator(config, "opml", "import", str(AWKWARD))
    assert result.returncode == 0, result.stderr
    sources = load_config(config).sources
    names = [source.name for source in sources]
    assert all(SLUG.match(name) and len(name) <= 40 for name in names), names
    assert len(set(names)) == len(names)
    assert [(source.title, source.site_url) for source in sources] == AWKWARD_TITLES
    assert names[:3] == ["nataliepo", "daring-fireball", "daring-fireball-2"]
    # Titles in letters ASCII has not are named from their URL, which tells them apart.
    assert names[7:10] == ["zaobao-realtime-china", "zaobao-realtime-world", "ruanyifeng-blog"]


def _outlines(data: bytes) -> list[dict[str, str]]:
    root = etree.fromstring(data)
    return [
        {str(key): str(value) for key, value in outline.attrib.items()}
        for outline in root.iter("outline")
        if outline.get("xmlUrl")
    ]


def test_export_then_import_keeps_every_title_and_home_page(tmp_path: Path) -> None:
    config = _empty_config(tmp_path / "first")
    assert run_aggregator(config, "opml", "import", str(AWKWARD)).returncode == 0
    exported = tmp_path / "out.opml"
    assert run_aggregator(config, "opml", "export", "-o", str(exported)).returncode == 0
    original = {row["xmlUrl"]: row for row in _outlines(AWKWARD.read_bytes())}
    for row in _outlines(exported.read_bytes()):
        was = original[row["xmlUrl"]]
        named = was.get("title") or was.get("text")
        if named:
            # The line break of "Line\nBreak   Blog" was no part of anybody's name for it.
            assert row["title"] == row["text"] == " ".join(named.split())
        home = was.get("htmlUrl", "")
        assert row.get("htmlUrl") == (home if home.startswith("https://") else None)
    again = _empty_config(tmp_path / "second")
    assert run_aggregator(again, "opml", "import", str(exported)).returncode == 0
    first = [(s.name, s.title, s.site_url, s.url) for s in load_config(config).sources]
    second = [(s.name, s.title, s.site_url, s.url) for s in load_config(again).sources]
    # The untitled outline is exported under its name, which comes back as its title.
    assert second[:-1] == first[:-1]
    assert second[-1] == (first[-1][0], first[-1][0], None, first[-1][3])


def test_a_source_without_a_title_is_exported_by_its_name(tmp_path: Path) -> None:
    config = tmp_path / "aggregator.yaml"
    config.write_text(
        "sources:\n  - {name: plain, kind: feed, url: 'https://p.example/f'}\n", encoding="utf-8"
    )
    exported = run_aggregator(config, "opml", "export")
    assert exported.returncode == 0, exported.stderr
    [row] = _outlines(exported.stdout.encode("utf-8"))
    assert (row["text"], row["title"], row.get("htmlUrl")) == ("plain", "plain", None)


# ---- shown to readers ---------------------------------------------------------------------


def _merged_item(author: str | None = "Ann") -> FeedItem:
    when = datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    return FeedItem(
        id="0b6f2a40-6c3e-4d0a-9a4e-000000000001",
        source="df-json",
        title="A story",
        link="https://story.example/1",
        published=when,
        updated=when,
        author=author,
        tags=("news",),
        content_html="<p>Text.</p>",
        summary="Text.",
        also_reported=(
            Provenance("nataliepo", "The same story", "https://nataliepo.example/1"),
            Provenance("untitled-feed", "Also this story", None),
        ),
    )


def _spec(tmp_path: Path, item: FeedItem) -> FeedSpec:
    site = SiteSettings(
        dir=tmp_path,
        base_url="http://127.0.0.1:8080/",
        title="Aggregator",
        source_titles={
            "nataliepo": "Natalie's <Notes>",
            "df-json": "Daring Fireball",
        },
    )
    return FeedSpec(site, FeedPaths.of(None), "Aggregator", "every story", (item,))


def _footers(spec: FeedSpec) -> list[str]:
    """The "Also reported by" part of the one item's content, in RSS, Atom and JSON Feed."""
    contents = [
        etree.fromstring(rss_bytes(spec)).findtext(
            ".//{http://purl.org/rss/1.0/modules/content/}encoded"
        ),
        etree.fromstring(atom_bytes(spec)).findtext(".//{http://www.w3.org/2005/Atom}content"),
        json.loads(json_bytes(spec))["items"][0]["content_html"],
    ]
    return [str(content).split("Also reported by:")[1] for content in contents]


def test_provenance_shows_titles_and_the_name_of_a_source_without_one(tmp_path: Path) -> None:
    for footer in _footers(_spec(tmp_path, _merged_item())):
        assert '<a href="https://nataliepo.example/1">Natalie&#x27;s &lt;Notes&gt;</a>' in footer
        assert "<li>untitled-feed (Also this story)</li>" in footer
        assert "nataliepo<" not in footer


def test_an_item_without_an_author_is_credited_to_its_sources_title(tmp_path: Path) -> None:
    spec = _spec(tmp_path, _merged_item(author=None))
    [entry] = json.loads(json_bytes(spec))["items"]
    assert entry["authors"] == [{"name": "Daring Fireball"}]
    assert b"<dc:creator>Daring Fireball</dc:creator>" in rss_bytes(spec)
    assert b"<name>Daring Fireball</name>" in atom_bytes(spec)
    untitled = _spec(tmp_path, replace(_merged_item(author=None), source="untitled-feed"))
    assert json.loads(json_bytes(untitled))["items"][0]["authors"] == [{"name": "untitled-feed"}]


def test_the_published_feeds_name_merged_sources_by_their_titles(tmp_path: Path) -> None:
    """The whole way, as a user sees it: two folders carry the same post; the config titles
    one source; the merged item's provenance names it by that title."""
    post = sorted(SEEDS.glob("*.txt"))[0]
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copyfile(post, tmp_path / folder / post.name)
    config = tmp_path / "aggregator.yaml"
    config.write_text(
        f'store: {{url: "sqlite:///{tmp_path / "store.db"}"}}\n'
        f"output: {{dir: {tmp_path / 'public'}}}\n"
        "sources:\n"
        "  - name: first-copy\n    title: 早报 · First Copy\n    kind: posts\n    path: a\n"
        "  - name: second-copy\n    title: The Second (copy)\n    kind: posts\n    path: b\n",
        encoding="utf-8",
    )
    result = run_aggregator(config, "run", "--once")
    assert result.returncode == 0, result.stderr
    [item] = json.loads((tmp_path / "public" / "all.json").read_text(encoding="utf-8"))["items"]
    footer = item["content_html"].split("Also reported by:")[1]
    assert ("早报 · First Copy" in footer) != ("The Second (copy)" in footer)
    assert "first-copy" not in footer
    assert "second-copy" not in footer
