"""The write path in plain driver SQL (store/plain.py) and the band rows a transaction holds back
until it ends (store/bands.py), on a real SQLite file and real PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from aggregator.config import Config
from aggregator.models import Article
from aggregator.pipeline.cluster import cluster
from aggregator.store import Store
from aggregator.store.bands import PendingBands
from aggregator.store.engine import write_transaction
from aggregator.store.near import pack, pack_keys
from aggregator.store.rows import article_values, state_values
from aggregator.store.tables import ARTICLE, ARTICLE_NEAR, SOURCE_STATE
from tests.helpers import near_candidates, save_articles
from tests.test_near_dupes import BANDS_PER_ARTICLE, WHEN, _article, _index_rows, _text
from tests.test_store import MINUS5, UTC8, fetch, make, state


def _columns(url: str, table: str, where: str) -> dict[str, Any]:
    rows = fetch(url, f"SELECT * FROM {table} WHERE {where}")
    assert len(rows) == 1, rows
    names = [
        column.name
        for column in {"article": ARTICLE, "source_state": SOURCE_STATE}.get(
            table, ARTICLE_NEAR
        ).columns
    ]
    return dict(zip(names, rows[0], strict=True))


def test_plain_rows_are_the_rows_core_writes(store: Store, store_url: str) -> None:
    """Every column, times above all, as SQLAlchemy Core would have written it, so reads
    through Core (and the text order of SQLite's times) stay right."""
    when = datetime(2024, 3, 1, 12, 0, 0, 5, tzinfo=UTC8)
    plain = replace(
        _article("plain", "1", _text("zh_metro_junk", "a"), when),
        updated=when.astimezone(MINUS5) + timedelta(hours=1),
        tags=(),
    )
    core = replace(plain, id="core-1", source="core", key="1", cluster_id="core-1")
    moment = datetime(2024, 3, 2, 8, 30, tzinfo=MINUS5)
    save_articles(store, "plain", [plain], state("plain", last_fetch_at=moment, error_streak=2))
    first_seen = _columns(store_url, "article", f"id = '{plain.id}'")["first_seen"]
    with write_transaction(store._engine) as connection:
        values = article_values(core, datetime.now(UTC))
        connection.execute(insert(ARTICLE), [values])
        saved = state("core", last_fetch_at=moment, error_streak=2, new_items=1)
        connection.execute(insert(SOURCE_STATE), [state_values(saved)])
        near = {
            "article_id": core.id,
            "published": core.published,
            "shingles": core.shingles,
            "minhash": pack(core.minhash),
            "lead_minhash": pack(core.lead_minhash),
            "bands": pack_keys(core.bands),
        }
        connection.execute(insert(ARTICLE_NEAR), [near])
        # first_seen is the save's own clock: compared in the same form below.
        connection.exec_driver_sql(
            "UPDATE article SET first_seen = "
            + ("%(t)s" if connection.dialect.paramstyle != "qmark" else ":t")
            + " WHERE id = 'core-1'",
            {"t": first_seen},
        )

    written = _columns(store_url, "article", f"id = '{plain.id}'")
    expected = _columns(store_url, "article", "id = 'core-1'")
    for name in ("id", "source", "cluster_id"):
        del written[name], expected[name]
    assert written == expected
    assert written["published"] == expected["published"]
    written_state = _columns(store_url, "source_state", "name = 'plain'")
    expected_state = _columns(store_url, "source_state", "name = 'core'")
    assert {**written_state, "name": "core"} == expected_state
    written_near = _columns(store_url, "article_near", f"article_id = '{plain.id}'")
    expected_near = _columns(store_url, "article_near", "article_id = 'core-1'")
    for name in ("seq", "article_id"):
        del written_near[name], expected_near[name]
    assert written_near == expected_near
    assert store.article(plain.id) == replace(
        plain, minhash=(), shingles=0, lead_minhash=(), bands=(), clean_audit=()
    )


def _ingest(transaction: Any, *articles: Article) -> list[Article]:
    clustered = cluster(Config(), transaction, list(articles))
    source = articles[0].source
    transaction.save_articles(source, clustered, state(source))
    return clustered


def test_held_band_rows_are_seen_within_the_transaction(store: Store, store_url: str) -> None:
    first = _article("a", "1", _text("en_fed_edited_lead", "a"))
    copy = _article("b", "1", _text("en_fed_edited_lead", "b"), WHEN + timedelta(hours=1))
    with store.transaction() as transaction:
        _ingest(transaction, first)
        (joined,) = _ingest(transaction, copy)
        assert joined.cluster_id == first.id  # found through the rows not inserted yet
    assert _index_rows(store_url) == (2, 2 * BANDS_PER_ARTICLE)
    found = near_candidates(store, [replace(copy, id="other")], timedelta(days=7))
    assert {c.article_id for c in found["other"]} == {first.id, copy.id}
    for candidate in found["other"]:  # times as UTCDateTime reads them: aware, in UTC
        for moment in (candidate.published, candidate.cluster_published):
            assert moment.tzinfo == UTC
        assert candidate.cluster_first_seen.tzinfo == UTC
        assert candidate.cluster_published == first.published


def test_an_article_changed_twice_in_one_transaction_keeps_only_its_last_bands(
    store: Store, store_url: str
) -> None:
    article = _article("a", "1", _text("zh_metro_junk", "a"))
    rewritten = _article("a", "1", _text("en_quake_trimmed", "a"))
    with store.transaction() as transaction:
        _ingest(transaction, article)
        _ingest(transaction, rewritten)
    assert _index_rows(store_url) == (1, BANDS_PER_ARTICLE)
    old_copy = _article("b", "1", _text("zh_metro_junk", "b"))
    assert near_candidates(store, [old_copy], timedelta(days=7)) == {}
    new_copy = _article("b", "2", _text("en_quake_trimmed", "b"))
    assert [
        c.article_id for c in near_candidates(store, [new_copy], timedelta(days=7))[new_copy.id]
    ] == [article.id]


def test_a_failed_transaction_leaves_no_band_rows(store: Store, store_url: str) -> None:
    with pytest.raises(RuntimeError), store.transaction() as transaction:
        _ingest(transaction, _article("a", "1", _text("zh_metro_junk", "a")))
        raise RuntimeError("a later job of the group failed")
    assert _index_rows(store_url) == (0, 0)
    assert store.article_count() == 0


def test_find_clusters_keeps_the_oldest_story_for_links_and_texts(store: Store) -> None:
    old = make("a", "1", content_hash="h", link="https://example.org/x")
    save_articles(store, "a", [old], state("a"))
    newer = make("b", "1", content_hash="h", link="https://example.org/x")
    save_articles(store, "b", [replace(newer, cluster_id=newer.id)], state("b"))
    with store.transaction() as transaction:
        found = transaction.find_clusters(["https://example.org/x", "https://no.example"], ["h"])
    oldest = {asked: copies[0].cluster_id for asked, copies in found.items()}
    assert oldest == {"https://example.org/x": old.id, "h": old.id}
    assert [copy.source for copy in found["h"]] == ["a", "b"]


def test_pending_bands_keep_every_row_of_a_shared_key() -> None:
    pending = PendingBands()
    pending.add([(1, 10), (2, 10), (3, 10)])
    pending.add([(2, 11), (4, 11), (2, 12)])  # key 2 shared by three articles
    pending.add([(5, 13), (5, 14)])  # and within one batch
    assert sorted(pending.matches([2, 5, 9])) == [(10, 2), (11, 2), (12, 2), (13, 5), (14, 5)]
    pending.discard([(2, 10), (3, 10), (7, 99)])
    assert sorted(pending.matches([1, 2, 3])) == [(10, 1), (11, 2), (12, 2)]
    pending.add([(3, 10)])  # the seq comes back (SQLite may reuse the largest one)
    assert pending.matches([3]) == [(10, 3)]
