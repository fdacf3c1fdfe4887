"""The clean audit in the store (migration 0002) and the body digest (0003), on a real SQLite
file and real PostgreSQL: existing 0001 and 0002 databases upgrade in place, audits
round-trip, re-cleaned bodies update."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import Column, MetaData, Table, insert, inspect, text
from sqlalchemy.engine import Connection

from aggregator.models import RuleHit
from aggregator.store import Store
from aggregator.store.api import MIGRATIONS, newest_revision
from aggregator.store.engine import make_engine, parse_url, write_transaction
from aggregator.store.rows import article_values
from aggregator.store.tables import ARTICLE
from tests.helpers import save_state
from tests.test_store import fetch, make, save

AUDIT = (
    RuleHit("drop-text", 1, ("来源：某某日报",)),
    RuleHit("share-bar", 2, ("微博", "Twitter")),
)


@contextmanager
def _migrated_to(store_url: str, revision: str) -> Iterator[Connection]:
    """A write transaction on a store that alembic brought to `revision` and no further."""
    engine = make_engine(parse_url(store_url))
    try:
        with write_transaction(engine) as connection:
            config = Config()
            config.set_main_option("script_location", MIGRATIONS)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            yield connection
    finally:
        engine.dispose()


def test_a_0001_database_upgrades_and_keeps_its_articles(store_url: str) -> None:
    old = make("s", "k")
    with _migrated_to(store_url, "0001") as connection:
        # The article table as 0001 left it: no clean_audit column yet.
        columns = [Column(c.name, c.type) for c in ARTICLE.columns if c.name != "clean_audit"]
        table = Table("article", MetaData(), *columns)
        values = article_values(old, datetime.now(UTC))
        del values["clean_audit"]
        connection.execute(insert(table), [values])
    assert fetch(store_url, "SELECT version_num FROM alembic_version") == [("0001",)]

    store = Store(store_url)
    try:
        store.migrate()
        assert fetch(store_url, "SELECT version_num FROM alembic_version") == [(newest_revision(),)]
        kept = store.article(old.id)
        assert kept is not None
        assert kept.content_html == old.content_html
        assert kept.clean_audit == ()
        assert store.clean_audit(old.id) is None, "an article from before 0002 has no audit"

        fresh = replace(make("s", "k2"), clean_audit=AUDIT)
        save(store, "s", fresh)
        assert store.clean_audit(fresh.id) == AUDIT
        assert store.clean_audit(old.id) is None
    finally:
        store.close()


def test_a_0002_database_upgrades_and_keeps_its_source_states(store_url: str) -> None:
    """0003 adds the body digest: a source saved before it keeps its state, with no digest
    (its next body is read whatever it holds), and takes one from then on."""
    with _migrated_to(store_url, "0002") as connection:
        connection.execute(
            text(
                "INSERT INTO source_state (name, etag, new_items, error_streak)"
                " VALUES ('old', '\"v1\"', 3, 0)"
            )
        )

    store = Store(store_url)
    try:
        store.migrate()
        kept = store.source_state("old")
        assert kept is not None
        assert (kept.etag, kept.new_items, kept.body_digest) == ('"v1"', 3, None)
        save_state(store, replace(kept, body_digest="d1"))
        again = store.source_state("old")
        assert again is not None and again.body_digest == "d1"
    finally:
        store.close()


def test_audits_round_trip_and_reclean_updates_only_changed_bodies(store: Store) -> None:
    first = replace(make("s", "a", link="https://example.org/a"), clean_audit=())
    second = replace(make("s", "b"), clean_audit=AUDIT)
    save(store, "s", first, second)
    assert store.clean_audit(first.id) == ()
    found = store.article_by_link("https://example.org/a")
    assert found is not None and found.id == first.id
    assert store.article_by_link("https://example.org/none") is None

    page = store.articles_page("s", "", 10)
    assert sorted(article.id for article in page) == sorted([first.id, second.id])
    assert [article.id for article in store.articles_page("s", page[0].id, 10)] == [page[1].id]
    assert store.articles_page("other", "", 10) == []
    by_id = {article.id: article for article in page}
    assert by_id[second.id].clean_audit == AUDIT
    assert by_id[first.id].raw_html == first.raw_html

    recleaned = replace(
        by_id[first.id], content_html="<p>shorter</p>", clean_audit=(RuleHit("drop-text", 1),)
    )
    assert store.update_cleaned([recleaned, by_id[second.id]]) == [first.id]
    after = store.article(first.id)
    assert after is not None
    assert after.content_html == "<p>shorter</p>"
    assert after.cluster_id == first.cluster_id
    assert store.clean_audit(first.id) == (RuleHit("drop-text", 1, ()),)
    assert store.update_cleaned([recleaned]) == [], "a second run changes nothing"


def test_a_0003_database_upgrades_to_the_timeline_index(store_url: str) -> None:
    """0004 replaces the index on `published` alone with the timeline index; the stories
    saved before it are listed as before."""
    older, newer = make("s", "1"), make("s", "2", when=datetime(2024, 3, 5, tzinfo=UTC))
    with _migrated_to(store_url, "0003") as connection:
        connection.execute(
            insert(ARTICLE), [article_values(a, datetime.now(UTC)) for a in (older, newer)]
        )

    store = Store(store_url)
    try:
        store.migrate()
        engine = make_engine(parse_url(store_url))
        try:
            indexes = {index["name"] for index in inspect(engine).get_indexes("article")}
        finally:
            engine.dispose()
        assert "ix_article_timeline" in indexes
        assert "ix_article_published" not in indexes
        assert [[a.id for a in story] for story in store.clusters(None, 10)] == [
            [newer.id],
            [older.id],
        ]
    finally:
        store.close()
