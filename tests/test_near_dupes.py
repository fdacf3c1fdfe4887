"""Near-duplicate layer: MinHash over character 5-grams, LSH bands in the store, clusters.

The labeled set in fixtures/dedupe/ holds pairs of cleaned article texts, each labeled "dup"
(copies of one story: edited lead, trimmed, other junk, other headline, excerpt, ...) or
"distinct" (hard negatives: the five samples pairwise, follow-ups, one template around two
stories, two write-ups of one event).
"""

from __future__ import annotations

import json
import random
import sqlite3
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import psycopg
import pytest
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.config import Config, DedupeConfig, load_config
from aggregator.dedupe import (
    NearSettings,
    assign_clusters,
    identify,
    is_near_duplicate,
    near_fingerprint,
)
from aggregator.dedupe.clusters import estimate_jaccard
from aggregator.dedupe.minhash import (
    LEAD_PERMUTATIONS,
    PERMUTATIONS,
    normalise,
    shingle_hashes,
)
from aggregator.errors import ConfigError
from aggregator.models import Article, CleanedHtml, Entry, SourceState
from aggregator.pipeline.cluster import cluster
from aggregator.store import Store
from tests.helpers import near_candidates, run_aggregator, save_articles

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
LABELED = Path(__file__).parent / "fixtures" / "dedupe"
WHEN = datetime(2021, 10, 30, 7, 34, tzinfo=UTC)
BANDS_PER_ARTICLE = (PERMUTATIONS + LEAD_PERMUTATIONS) // 4


def _text(pair: str, side: str) -> str:
    return (LABELED / pair / f"{side}.txt").read_text(encoding="utf-8")


def _article(source: str, key: str, text: str, when: datetime = WHEN) -> Article:
    html = "".join(f"<p>{line}</p>" for line in text.splitlines())
    entry = Entry(
        source=source,
        origin=f"{source}/{key}",
        key=key,
        title=f"{source} {key}",
        link=f"https://{source}.example.org/{key}",
        published=when,
        updated=when,
        author=None,
        tags=(source,),
        content_html=html,
    )
    cleaned = CleanedHtml(html=html, text=text, summary=text[:80], images=(), rules=())
    return identify(entry, cleaned, (source,))


def _save(store: Store, *articles: Article) -> None:
    for source in dict.fromkeys(article.source for article in articles):
        mine = [article for article in articles if article.source == source]
        save_articles(store, source, mine, SourceState(name=source, last_result="ok"))


def _ingest(store: Store, *articles: Article, config: Config | None = None) -> list[Article]:
    """What the pipeline does per source: cluster against the store, then save."""
    with store.transaction() as transaction:
        clustered = cluster(config or Config(), transaction, list(articles))
    _save(store, *clustered)
    return clustered


# --- the labeled set ---


def _pairs() -> list[tuple[str, bool, str]]:
    pairs = []
    for folder in sorted(LABELED.iterdir()):
        label, note = (folder / "label").read_text(encoding="utf-8").splitlines()[:2]
        assert label in ("dup", "distinct"), folder
        pairs.append((folder.name, label == "dup", note))
    return pairs


def test_the_labeled_set_is_large_and_has_hard_negatives() -> None:
    pairs = _pairs()
    assert len(pairs) >= 40
    assert sum(not dup for _, dup, _ in pairs) >= 15
    seed_pairs = [name for name, dup, _ in pairs if name.startswith("seed_") and not dup]
    assert len(seed_pairs) == 10  # the five samples, pairwise


def test_every_labeled_pair_is_decided_right() -> None:
    """Through the real path: LSH bands propose, the rule decides (assign_clusters)."""
    wrong = []
    for name, dup, note in _pairs():
        first = _article("a", name, _text(name, "a"))
        second = _article("b", name, _text(name, "b"), WHEN + timedelta(hours=3))
        clustered = assign_clusters([first, second], {})
        if (clustered[1].cluster_id == first.id) != dup:
            wrong.append(f"{name} ({'dup' if dup else 'distinct'}: {note})")
    assert wrong == []


# --- fingerprints ---


def test_signatures_never_change_for_the_same_text() -> None:
    # Stored signatures are compared with new ones for ever: a change here needs a re-index.
    fingerprint = near_fingerprint(_text("seed_0_1", "a"))
    assert fingerprint is not None
    assert len(fingerprint.minhash) == PERMUTATIONS
    assert len(fingerprint.lead) == LEAD_PERMUTATIONS
    assert fingerprint.shingles == 425
    assert fingerprint.minhash[:4] == (15618510, 11029815, 18196685, 4960881)
    assert fingerprint.lead[:2] == (19209639, 11396989)


def test_short_texts_get_no_signature() -> None:
    assert near_fingerprint("太短了。Too short to tell stories apart.") is None
    article = _article("s", "k", "短讯：今天天气晴。")
    assert (article.minhash, article.shingles, article.lead_minhash) == ((), 0, ())


def test_normalise_folds_width_case_punctuation_and_accents() -> None:
    text = "Ｐｏｗｅｌｌ　said，“We’re prepared…” — Café ①"
    nfkc_first = "".join(
        char
        for char in unicodedata.normalize("NFKC", text).casefold()
        if char.isalnum() and char != "_"
    )
    assert normalise(text) == nfkc_first == "powellsaidwerepreparedcafé1"
    decomposed = unicodedata.normalize("NFD", "Café au lait, crème brûlée")
    assert normalise(decomposed) == normalise("Café au lait, crème brûlée")
    # Symbols whose NFKC form holds letters keep them; underscores and lone surrogates go.
    assert normalise("㈠ 25℃ ™ ½ x_y \ud800 ｶﾞ\u00a0\u3000end") == "一25ctm12xyガend"
    for pair, _, _ in _pairs()[:12]:
        text = _text(pair, "a")
        plain = "".join(
            char
            for char in unicodedata.normalize("NFKC", text).casefold()
            if char.isalnum() and char != "_"
        )
        assert normalise(text) == plain


def test_cjk_and_latin_are_shingled_alike() -> None:
    assert len(shingle_hashes(normalise("中国国务委员兼外交部长"))) == 7  # 11 chars, 7 5-grams
    assert len(shingle_hashes(normalise("Foreign minister"))) == 11  # 15 chars, 11 5-grams


def test_jaccard_estimates_are_unbiased() -> None:
    rng = random.Random(7)
    words = [f"w{index}" for index in range(20000)]
    errors = []
    for _ in range(40):
        common = rng.sample(words, 300)
        first = " ".join(common + rng.sample(words, 200))
        second = " ".join(common + rng.sample(words, 200))
        true = _true_jaccard(first, second)
        estimate = estimate_jaccard(_minhash(first), _minhash(second))
        errors.append(estimate - true)
    assert abs(sum(errors) / len(errors)) < 0.02
    assert max(abs(error) for error in errors) < 0.15  # ~3.5 sigma at 128 permutations


def _minhash(text: str) -> tuple[int, ...]:
    fingerprint = near_fingerprint(text)
    assert fingerprint is not None
    return fingerprint.minhash


def _true_jaccard(first: str, second: str) -> float:
    one = set(shingle_hashes(normalise(first)).tolist())
    other = set(shingle_hashes(normalise(second)).tolist())
    return len(one & other) / len(one | other)


# --- the rule ---


def test_thresholds_are_configurable() -> None:
    first = near_fingerprint(_text("zh_typhoon_edited_lead", "a"))
    second = near_fingerprint(_text("zh_typhoon_edited_lead", "b"))
    excerpt = near_fingerprint(_text("zh_census_excerpt", "b"))
    full = near_fingerprint(_text("zh_census_excerpt", "a"))
    assert first and second and excerpt and full
    assert is_near_duplicate(first, second)
    assert not is_near_duplicate(first, second, NearSettings(jaccard=0.95, containment=0.99))
    # The excerpt is a duplicate by containment only, and only with enough shingles.
    assert is_near_duplicate(excerpt, full)
    assert not is_near_duplicate(excerpt, full, NearSettings(containment=1.01))
    assert not is_near_duplicate(excerpt, full, NearSettings(min_shingles=excerpt.shingles + 1))


def test_copies_published_too_far_apart_stay_apart() -> None:
    text = _text("en_quake_trimmed", "a")
    copy = _text("en_quake_trimmed", "b")
    first = _article("a", "1", text)
    near = _article("b", "2", copy, WHEN + timedelta(days=7))
    far = _article("c", "3", copy + "\n(AP)", WHEN - timedelta(days=7, seconds=1))
    clustered = assign_clusters([first, near, far], {})
    assert [article.cluster_id for article in clustered] == [first.id, first.id, far.id]
    narrow = NearSettings(window=timedelta(days=1))
    assert assign_clusters([first, near], {}, None, narrow)[1].cluster_id == near.id


def test_near_duplicates_in_the_same_source_are_two_posts() -> None:
    first = _article("s", "1", _text("zh_typhoon_correction", "a"))
    repost = _article("s", "2", _text("zh_typhoon_correction", "b"), WHEN + timedelta(hours=5))
    # Another post of the same feed, however alike, even under the same title: its own story.
    assert assign_clusters([first, repost], {})[1].cluster_id == repost.id
    same_title = replace(repost, title=first.title)
    assert assign_clusters([first, same_title], {})[1].cluster_id == same_title.id
    # The same post under a new guid (its link and title): the same story.
    churned = replace(repost, title=first.title, link=first.link)
    assert assign_clusters([first, churned], {})[1].cluster_id == first.id


def test_the_five_samples_stay_five_clusters() -> None:
    texts = [_text(f"seed_0_{other}", "b") for other in range(1, 5)]
    articles = [
        _article("samples", str(index), text)
        for index, text in enumerate([_text("seed_0_1", "a"), *texts])
    ]
    clustered = assign_clusters(articles, {})
    assert len({article.cluster_id for article in clustered}) == 5


# --- the store's LSH index, on SQLite and PostgreSQL ---


def test_candidates_come_from_the_store(store: Store) -> None:
    original = _article("a", "1", _text("en_fed_edited_lead", "a"))
    other = _article("a", "2", _text("en_fed_same_event", "b"))
    short = _article("a", "3", "A short brief.")
    _save(store, original, other, short)
    copy = _article("b", "1", _text("en_fed_edited_lead", "b"), WHEN + timedelta(hours=2))

    found = near_candidates(store, [copy, original, short], timedelta(days=7))
    assert set(found) == {copy.id}  # never itself, nothing for a text without a signature
    (candidate,) = found[copy.id]
    assert candidate.article_id == original.id
    assert candidate.source == "a"
    assert candidate.cluster_id == original.id
    assert candidate.published == original.published
    assert candidate.minhash == original.minhash
    assert candidate.shingles == original.shingles
    assert candidate.cluster_published == original.published
    assert candidate.cluster_first_seen.tzinfo is not None


def test_candidates_respect_the_window(store: Store) -> None:
    original = _article("a", "1", _text("zh_rrr_trimmed", "a"))
    _save(store, original)
    text = _text("zh_rrr_trimmed", "b")
    inside = _article("b", "1", text, WHEN + timedelta(days=7))
    before = _article("b", "2", text, WHEN - timedelta(days=6))
    outside = _article("b", "3", text, WHEN + timedelta(days=7, minutes=1))
    found = near_candidates(store, [inside, before, outside], timedelta(days=7))
    assert set(found) == {inside.id, before.id}


def test_an_excerpt_meets_its_full_text_through_the_lead(store: Store) -> None:
    full = _article("a", "1", _text("seed_2_excerpt", "a"))
    _save(store, full)
    excerpt = _article("b", "1", _text("seed_2_excerpt", "b"))
    assert estimate_jaccard(full.minhash, excerpt.minhash) < 0.35  # too low for its own bands
    found = near_candidates(store, [excerpt], timedelta(days=7))
    assert [candidate.article_id for candidate in found[excerpt.id]] == [full.id]


def test_the_index_follows_changed_articles(store: Store, store_url: str) -> None:
    article = _article("a", "1", _text("zh_metro_junk", "a"))
    unrelated = _article("a", "2", _text("zh_template_other_story", "b"))
    _save(store, article, unrelated)
    assert _index_rows(store_url) == (2, 2 * BANDS_PER_ARTICLE)
    copy = _article("b", "1", _text("zh_metro_junk", "b"))
    assert near_candidates(store, [copy], timedelta(days=7))

    rewritten = _article("a", "1", _text("en_quake_trimmed", "a"))
    assert rewritten.id == article.id
    _save(store, rewritten, unrelated)
    assert near_candidates(store, [copy], timedelta(days=7)) == {}
    assert _index_rows(store_url) == (2, 2 * BANDS_PER_ARTICLE)
    quake = _article("b", "2", _text("en_quake_trimmed", "b"))
    assert [c.article_id for c in near_candidates(store, [quake], timedelta(days=7))[quake.id]] == [
        article.id
    ]

    emptied = replace(rewritten, content_html="<p>brief</p>", minhash=(), shingles=0)
    _save(store, replace(emptied, lead_minhash=()), unrelated)  # too short to compare now
    assert _index_rows(store_url) == (1, BANDS_PER_ARTICLE)


def _index_rows(url: str) -> tuple[int, int]:
    return (
        _scalar(url, "SELECT count(*) FROM article_near"),
        _scalar(url, "SELECT count(*) FROM article_band"),
    )


def _scalar(url: str, sql: str) -> int:
    if url.startswith("postgresql"):
        conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(conninfo) as connection:
            row = connection.execute(sql).fetchone()
    else:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            row = connection.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_the_band_table_is_without_rowid_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "aggregator.db"
    store = Store(f"sqlite:///{path}")
    try:
        store.migrate()
    finally:
        store.close()
    with sqlite3.connect(path) as connection:
        (sql,) = connection.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'article_band'"
        ).fetchone()
    assert "WITHOUT ROWID" in sql.upper()


def test_later_copies_join_the_oldest_stored_cluster(store: Store) -> None:
    text = _text("zh_typhoon_edited_lead", "a")
    edited = _text("zh_typhoon_edited_lead", "b")
    (first,) = _ingest(store, _article("a", "1", text))
    (second,) = _ingest(store, _article("b", "1", edited, WHEN + timedelta(hours=1)))
    assert second.cluster_id == first.id
    # A third copy matches both; it joins their one cluster, whose id never changed.
    third, repost = _ingest(
        store,
        _article("c", "1", text + "\n编辑：王芳", WHEN + timedelta(hours=2)),
        _article("c", "2", edited + "\n（完）", WHEN + timedelta(hours=3)),
    )
    assert third.cluster_id == repost.cluster_id == first.id
    # Saving the first article again keeps everything where it was.
    (again,) = _ingest(store, _article("a", "1", text))
    assert again.cluster_id == first.id
    (members,) = store.shared_clusters(10)
    assert [member.id for member in members] == [first.id, second.id, third.id, repost.id]


def test_the_config_thresholds_reach_the_pipeline(store: Store) -> None:
    _ingest(store, _article("a", "1", _text("en_google_junk", "a")))
    strict = Config(dedupe=DedupeConfig(jaccard=0.99, containment=0.99))
    (copy,) = _ingest(store, _article("b", "1", _text("en_google_junk", "b")), config=strict)
    assert copy.cluster_id == copy.id
    (other,) = _ingest(store, _article("c", "1", _text("en_google_junk", "b")))
    assert other.cluster_id != other.id


def test_shared_clusters_lists_only_stories_with_several_articles(store: Store) -> None:
    assert store.shared_clusters(10) == []
    lone = _article("a", "0", _text("en_market_template", "a"))
    old = _article("a", "1", _text("zh_rrr_trimmed", "a"), WHEN - timedelta(days=1))
    new = _article("a", "2", _text("en_quake_trimmed", "a"))
    _ingest(store, lone, old, new)
    _ingest(
        store,
        _article("b", "1", _text("zh_rrr_trimmed", "b"), WHEN - timedelta(hours=20)),
        _article("b", "2", _text("en_quake_trimmed", "b"), WHEN + timedelta(hours=1)),
    )
    shared = store.shared_clusters(10)
    assert [[member.source for member in members] for members in shared] == [
        ["a", "b"],
        ["a", "b"],
    ]
    assert [members[0].id for members in shared] == [new.id, old.id]
    assert [members[0].id for members in store.shared_clusters(1)] == [new.id]
    assert shared[0][0].tags == ("a",)


# --- config ---


def test_the_dedupe_section_of_the_config(tmp_path: Path) -> None:
    path = tmp_path / "aggregator.yaml"
    path.write_text(
        "dedupe: {jaccard: 0.6, containment: 0.9, min_shingles: 80, window: 3d}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.dedupe == DedupeConfig(
        jaccard=0.6, containment=0.9, min_shingles=80, window=timedelta(days=3)
    )
    assert Config().dedupe == DedupeConfig(
        jaccard=0.5, containment=0.8, min_shingles=100, window=timedelta(days=7)
    )
    path.write_text("dedupe: {jaccard: 1.5, windows: 3d}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "dedupe.jaccard" in str(error.value)
    assert "dedupe.windows" in str(error.value)


# --- end to end: two sources carrying one story ---

MIRROR_POST = """---
layout: post
title: "王毅在罗马会见韩国外长郑义溶"
date: 2021-10-30T18:05:00+08:00
author: 镜像新闻
from: https://mirror.example.org/world/2021/10/30/wang-yi-chung-eui-yong?utm_source=rss
tags: [mirror, 外交]
---
{body}
"""


def _two_sources(tmp_path: Path) -> Path:
    (tmp_path / "seeds").mkdir()
    for seed in SEEDS.iterdir():
        (tmp_path / "seeds" / seed.name).write_bytes(seed.read_bytes())
    (tmp_path / "mirror").mkdir()
    body = "\n".join(f"<p>{line}</p>" for line in _text("seed_0_syndicated", "b").splitlines())
    (tmp_path / "mirror" / "wang-yi.md").write_text(MIRROR_POST.format(body=body), encoding="utf-8")
    config = tmp_path / "config" / "aggregator.yaml"
    config.parent.mkdir()
    config.write_text(
        "store: {url: 'sqlite:///../var/aggregator.db'}\n"
        "output: {dir: ../public, base_url: 'http://127.0.0.1:8080/'}\n"
        "sources:\n"
        "  - {name: samples, kind: posts, path: ../seeds, tags: [samples]}\n"
        "  - {name: mirror, kind: posts, path: ../mirror, tags: [mirror-site]}\n",
        encoding="utf-8",
    )
    return config


def test_two_sources_carrying_one_story_give_one_item(tmp_path: Path) -> None:
    config = _two_sources(tmp_path)
    result = run_aggregator(config, "run", "--once")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "public"
    feed = feedparser.parse((out / "all.atom").read_bytes())
    assert len(feed.entries) == 5  # the five samples stay five; the copy joined one of them
    (story,) = [entry for entry in feed.entries if "mirror" in entry.content[0].value]
    assert story.title == "王毅会见韩外长：乐见朝美适时重启对话"  # the first article speaks
    content = story.content[0].value
    assert "Also reported by" in content
    assert content.rindex("mirror") > content.index("Also reported by")
    assert "https://mirror.example.org/world/2021/10/30/wang-yi-chung-eui-yong" in content
    assert {"samples", "mirror-site", "mirror", "外交"} <= {tag.term for tag in story.tags}
    # Each tag feed shows the story once, under the same id.
    for tag in ("samples", "mirror-site", "外交"):
        tagged = feedparser.parse((out / "tags" / f"{tag}.atom").read_bytes())
        assert [entry.id for entry in tagged.entries].count(story.id) == 1, tag
    assert len(feedparser.parse((out / "tags" / "mirror-site.atom").read_bytes()).entries) == 1

    # A second pass changes nothing: the story keeps its id.
    assert run_aggregator(config, "run", "--once").returncode == 0
    again = feedparser.parse((out / "all.atom").read_bytes())
    assert sorted(entry.id for entry in again.entries) == sorted(e.id for e in feed.entries)

    listed = CliRunner().invoke(main, ["--config", str(config), "clusters", "--json"])
    assert listed.exit_code == 0, listed.output
    (shared,) = json.loads(listed.output)
    assert [member["source"] for member in shared["members"]] == ["samples", "mirror"]
    assert shared["title"] == story.title
    assert shared["members"][1]["link"] == (
        "https://mirror.example.org/world/2021/10/30/wang-yi-chung-eui-yong"
    )
    text = CliRunner().invoke(main, ["--config", str(config), "clusters", "--limit", "5"])
    assert text.exit_code == 0, text.output
    assert "2 articles" in text.output
    assert "mirror  2021-10-30  https://mirror.example.org/" in text.output
