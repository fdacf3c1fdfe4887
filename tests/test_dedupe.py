"""Exact-layer dedupe: stable ids, clusters by canonical URL or text, merged items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aggregator.dedupe import (
    article_id,
    assign_clusters,
    identify,
    merge_cluster,
    text_fingerprint,
)
from aggregator.models import CleanedHtml, Entry, KnownCopy

TEXT = (
    "中国国务委员兼外交部长王毅昨天在意大利罗马会见韩国外交部长官郑义溶时说，"
    "中方支持南北改善和发展关系，乐见朝美适时重启对话。"
)
WHEN = datetime(2021, 10, 30, 7, 34, tzinfo=UTC)


def _entry(source: str, key: str, link: str | None, tags: tuple[str, ...] = ()) -> Entry:
    return Entry(
        source=source,
        origin=f"{source}/{key}",
        key=key,
        title=f"title {key}",
        link=link,
        published=WHEN,
        updated=WHEN,
        author=None,
        tags=tags,
        content_html=f"<p>{TEXT}</p>",
    )


def _cleaned(text: str = TEXT) -> CleanedHtml:
    return CleanedHtml(html=f"<p>{text}</p>", text=text, summary=text[:20], images=(), rules=())


def test_ids_depend_only_on_source_and_key() -> None:
    assert article_id("a", "k") == article_id("a", "k")
    assert article_id("a", "k") != article_id("b", "k")
    assert len(article_id("a", "k")) == 36


def test_text_fingerprint_folds_width_case_and_punctuation() -> None:
    assert text_fingerprint(TEXT) == text_fingerprint(TEXT.replace("，", ", ") + "  ")
    latin = "The Quick Brown Fox jumps over the lazy dog, again and again and again!"
    assert text_fingerprint(latin) == text_fingerprint(latin.upper().replace(",", ""))
    assert text_fingerprint("too short") is None


def test_identify_removes_only_tracking_from_the_link() -> None:
    article = identify(
        _entry("a", "k", "https://WWW.Example.org:443/x?utm_source=rss&b=2&a=1#top"),
        _cleaned(),
        ("t",),
    )
    # As published, less the tracking: the reader's link is the publisher's.
    assert article.link == "https://WWW.Example.org:443/x?b=2&a=1#top"
    assert article.cluster_id == article.id


def test_copies_share_a_cluster_by_url_or_by_text() -> None:
    first = identify(_entry("a", "1", "https://x.org/story"), _cleaned(), ("a",))
    same_url = identify(
        _entry("b", "2", "https://x.org/story?utm_medium=x"), _cleaned("x" * 60), ()
    )
    same_text = identify(_entry("c", "3", "https://mirror.org/s"), _cleaned(), ("c",))
    other = identify(_entry("d", "4", "https://y.org/other"), _cleaned("y" * 60), ())
    clustered = assign_clusters([first, same_url, same_text, other], {})
    assert [article.cluster_id for article in clustered] == [first.id, first.id, first.id, other.id]


def test_known_clusters_from_the_store_win() -> None:
    article = identify(_entry("b", "2", "https://x.org/story"), _cleaned(), ())
    stored = KnownCopy("stored-cluster", "a", "another title")
    (clustered,) = assign_clusters([article], {"https://x.org/story": (stored,)})
    assert clustered.cluster_id == "stored-cluster"


def test_merge_names_every_other_source_and_unions_tags() -> None:
    first = identify(
        _entry("a", "1", "https://x.org/story", ("联合早报",)), _cleaned(), ("联合早报",)
    )
    copy = identify(_entry("b", "2", "https://y.org/copy"), _cleaned(), ("china", "联合早报"))
    later = identify(_entry("c", "3", None), _cleaned(), ("外交",))
    later = later.__class__(
        **{**{f: getattr(later, f) for f in later.__slots__}, "updated": WHEN + timedelta(hours=1)}
    )
    clustered = assign_clusters([first, copy, later], {})
    item = merge_cluster(clustered)
    assert item.id == first.id
    assert item.title == first.title
    assert item.tags == ("联合早报", "china", "外交")
    assert [(p.source, p.link) for p in item.also_reported] == [
        ("b", "https://y.org/copy"),
        ("c", None),
    ]
    assert item.updated == WHEN + timedelta(hours=1)
