"""OPML import and export: the shapes Miniflux, FreshRSS, Feedly and newsboat write."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.config.opml import OpmlError, Subscription, read_opml, source_name, write_opml
from tests.helpers import run_aggregator

OPML = Path(__file__).parent / "fixtures" / "opml"

# (name, url, tags) of every source each fixture must give, in order.
EXPECTED: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "miniflux": [
        ("hacker-news-front-page", "https://hnrss.org/frontpage", ("All",)),
        ("zaobao-realtime-china", "https://www.zaobao.com/realtime/china/rss.xml", ("新闻",)),
        ("bbc-news-world", "https://feeds.bbci.co.uk/news/world/rss.xml", ("新闻",)),
    ],
    "freshrss": [
        (
            "freshrss-releases",
            "https://github.com/FreshRSS/FreshRSS/releases.atom",
            ("Uncategorized",),
        ),
        ("lwn-net", "https://lwn.net/headlines/rss", ("Tech & Science",)),
        ("ars-technica", "https://feeds.arstechnica.com/arstechnica/index", ("Tech & Science",)),
    ],
    "feedly": [
        ("the-verge", "https://www.theverge.com/rss/index.xml", ("Tech",)),
        ("hacker-news", "https://news.ycombinator.com/rss", ("Tech", "Finance")),
        ("sina-finance-china", "https://rss.sina.com.cn/finance/china.xml", ("Finance",)),
    ],
    "newsboat": [
        ("lwn-net", "https://lwn.net/headlines/rss", ("linux", "news")),
        ("rust-blog", "https://blog.rust-lang.org/feed.xml", ("dev", "rust", "programming")),
        ("xkcd-com", "https://xkcd.com/atom.xml", ()),
    ],
}


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "aggregator.yaml"
    path.write_text(
        "# my sources\nsources:\n  - name: local\n    kind: posts\n    path: posts\n"
        "    tags: [mine]\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("reader", sorted(EXPECTED))
def test_each_readers_export_imports_with_folders_as_tags(tmp_path: Path, reader: str) -> None:
    config = _config(tmp_path)
    result = run_aggregator(config, "opml", "import", str(OPML / f"{reader}.opml"))
    assert result.returncode == 0, result.stderr
    assert f"imported {len(EXPECTED[reader])} feeds" in result.stdout
    assert "SIGHUP" in result.stdout
    loaded = load_config(config)
    assert [(s.name, s.url, s.tags) for s in loaded.sources[1:]] == EXPECTED[reader]
    assert all(source.kind == "feed" for source in loaded.sources[1:])
    assert config.read_text(encoding="utf-8").startswith(
        "# my sources\nsources:\n  - name: local\n    kind: posts\n    path: posts\n"
        "    tags: [mine]\n  - name: "
    )


def test_duplicates_are_skipped_and_counted(tmp_path: Path) -> None:
    config = _config(tmp_path)
    first = run_aggregator(config, "opml", "import", str(OPML / "feedly.opml"))
    assert "skipped 0 already in the config, 1 repeated in the file" in first.stdout
    before = config.read_bytes()
    again = run_aggregator(config, "opml", "import", str(OPML / "feedly.opml"))
    assert again.returncode == 0, again.stderr
    assert "imported 0 feeds" in again.stdout
    assert "skipped 3 already in the config" in again.stdout
    assert config.read_bytes() == before
    # Same feed, another name: LWN is in both of these.
    run_aggregator(config, "opml", "import", str(OPML / "freshrss.opml"))
    both = run_aggregator(config, "opml", "import", str(OPML / "newsboat.opml"))
    assert "imported 2 feeds" in both.stdout
    assert "skipped 1 already in the config" in both.stdout
    names = [source.name for source in load_config(config).sources]
    assert len(names) == len(set(names))


def test_outlines_that_are_not_feeds_are_named_and_skipped(tmp_path: Path) -> None:
    result = run_aggregator(_config(tmp_path), "opml", "import", str(OPML / "freshrss.opml"))
    assert "skipped: Example XPath scrape (https://example.org/news/)" in result.stderr
    assert "1 not feeds" in result.stdout


def test_export_then_import_round_trips(tmp_path: Path) -> None:
    source = _config(tmp_path)
    for reader in sorted(EXPECTED):
        run_aggregator(source, "opml", "import", str(OPML / f"{reader}.opml"))
    exported = tmp_path / "out.opml"
    result = run_aggregator(source, "opml", "export", "-o", str(exported))
    assert result.returncode == 0, result.stderr
    stdout = run_aggregator(source, "opml", "export").stdout
    assert stdout.encode("utf-8") == exported.read_bytes()
    target = tmp_path / "other" / "aggregator.yaml"
    target.parent.mkdir()
    target.write_text("sources: []\n", encoding="utf-8")
    run_aggregator(target, "opml", "import", str(exported))
    original = [(s.name, s.url, s.tags) for s in load_config(source).sources if s.url]
    copied = [(s.name, s.url, s.tags) for s in load_config(target).sources]
    assert copied == original
    assert len(copied) == 11


def test_external_entities_are_never_resolved() -> None:
    feeds = read_opml((OPML / "xxe.opml").read_bytes(), "xxe.opml").feeds
    assert feeds == (Subscription("https://example.org/feed.xml", "https://example.org/feed.xml"),)
    assert "root:" not in repr(feeds)


@pytest.mark.parametrize(
    "data", [b"not xml at all", b"<rss><channel/></rss>", b"<opml version='2.0'></opml>"]
)
def test_what_is_not_opml_is_an_error(data: bytes) -> None:
    with pytest.raises(OpmlError, match=r"^x\.opml: "):
        read_opml(data, "x.opml")


def test_names_are_unique_and_usable() -> None:
    taken = {"lwn-net"}
    assert source_name("LWN.net", taken) == "lwn-net-2"
    assert source_name("  a / b\\c  ", set()) == "a-b-c"
    assert source_name("   ", set()) == "feed"
    assert source_name("   ", set(), "https://feeds.example.org/") == "example"


def test_export_writes_folders_and_categories() -> None:
    data = write_opml("Mine", [Subscription("a", "https://a.example/f", tags=("x", "y/z"))])
    assert b'<outline text="x" title="x">' in data
    assert b'category="x,y-z"' in data
