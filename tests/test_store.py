"""The store, on a real SQLite file and on the real PostgreSQL server (see conftest.py)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event

from aggregator.errors import StoreError
from aggregator.models import Article, SourceState, TagSummary
from aggregator.store import SaveResult, Store, feeds
from aggregator.store.api import MIGRATIONS, newest_revision
from aggregator.store.engine import write_transaction
from aggregator.store.tables import METADATA
from tests.conftest import STORE_PG_URL
from tests.helpers import find_clusters, save_articles, save_state

ROOT = Path(__file__).resolve().parent.parent
UTC8 = timezone(timedelta(hours=8))
MINUS5 = timezone(timedelta(hours=-5))
TABLES = {"article", "tag", "article_tag", "source_state", "alembic_version"}


# --- helpers: raw DB-API access, so tests check the database itself, not the store's view ---


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


@contextmanager
def raw(url: str) -> Iterator[Any]:
    if is_postgres(url):
        conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(conninfo, autocommit=True) as postgres:
            yield postgres
        return
    sqlite = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=10, isolation_level=None)
    try:
        yield sqlite
    finally:
        sqlite.close()


def fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    with raw(url) as connection:
        return [tuple(row) for row in connection.execute(sql).fetchall()]


def table_names(url: str) -> set[str]:
    if is_postgres(url):
        sql = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {name for (name,) in fetch(url, sql)}


def log_writes(url: str) -> None:
    """Record every UPDATE of an article and every DELETE of a tag link in `write_log`."""
    with raw(url) as connection:
        connection.execute("CREATE TABLE write_log (what TEXT, id TEXT)")
        if is_postgres(url):
            connection.execute(
                "CREATE FUNCTION log_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " IF TG_OP = 'UPDATE' THEN INSERT INTO write_log VALUES ('update', NEW.id);"
                " ELSE INSERT INTO write_log VALUES ('untag', OLD.article_id); END IF;"
                " RETURN NULL; END $$"
            )
            connection.execute(
                "CREATE TRIGGER log_update AFTER UPDATE ON article"
                " FOR EACH ROW EXECUTE FUNCTION log_write()"
            )
            connection.execute(
                "CREATE TRIGGER log_untag AFTER DELETE ON article_tag"
                " FOR EACH ROW EXECUTE FUNCTION log_write()"
            )
        else:
            connection.execute(
                "CREATE TRIGGER log_update AFTER UPDATE ON article"
                " BEGIN INSERT INTO write_log VALUES ('update', NEW.id); END"
            )
            connection.execute(
                "CREATE TRIGGER log_untag AFTER DELETE ON article_tag"
                " BEGIN INSERT INTO write_log VALUES ('untag', OLD.article_id); END"
            )


def writes_logged(url: str) -> list[tuple[Any, ...]]:
    return fetch(url, "SELECT what, id FROM write_log ORDER BY what, id")


def first_seen(url: str, article_id: str) -> Any:
    return fetch(url, f"SELECT first_seen FROM article WHERE id = '{article_id}'")[0][0]


def make(
    source: str,
    key: str,
    *,
    when: datetime = datetime(2024, 3, 1, 12, 0, tzinfo=UTC8),
    tags: Sequence[str] = (),
    cluster: Article | None = None,
    content: str | None = None,
    link: str | None = None,
    content_hash: str | None = None,
    identity: str | None = None,
) -> Article:
    identity = identity or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}/{key}"))
    body = content if content is not None else f"<p>{source} {key}</p>"
    return Article(
        id=identity,
        source=source,
        key=key,
        title=f"{source} {key}",
        link=link if link is not None else f"https://example.org/{source}/{key}",
        published=when,
        updated=when,
        author="Li Wei",
        tags=tuple(tags),
        content_html=body,
        summary=f"{source} {key}",
        raw_html=f"<html>{body}</html>",
        content_hash=content_hash,
        image=None,
        cluster_id=cluster.id if cluster is not None else identity,
    )


def state(name: str, **changes: Any) -> SourceState:
    return replace(SourceState(name=name, last_result="ok"), **changes)


def save(store: Store, source: str, *articles: Article) -> SaveResult:
    return save_articles(store, source, articles, state(source))


def ids(clusters: Sequence[tuple[Article, ...]]) -> list[list[str]]:
    return [[article.id for article in cluster] for cluster in clusters]


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return ScriptDirectory.from_config(config).get_current_head()


# --- migrations ---


def test_migrate_creates_the_schema_and_twice_is_a_no_op(store: Store, store_url: str) -> None:
    assert table_names(store_url) >= TABLES
    assert fetch(store_url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    save(store, "s", make("s", "k"))

    store.migrate()
    other = Store(store_url)
    try:
        other.migrate()
        assert other.article_count() == 1
    finally:
        other.close()
    assert fetch(store_url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert store.article_count() == 1


def test_sqlite_store_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "aggregator.db"
    store = Store(f"sqlite:///{path}")
    try:
        store.migrate()
    finally:
        store.close()
    assert path.is_file()


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_postgres_tables_live_in_the_search_path_schema(store: Store, store_url: str) -> None:
    schema = store_url.rsplit("%3D", 1)[1]
    rows = fetch(
        store_url,
        "SELECT table_schema, table_name FROM information_schema.tables"
        f" WHERE table_schema = '{schema}'",
    )
    assert {name for _, name in rows} >= TABLES


def test_the_migration_matches_the_tables(store: Store) -> None:
    with store._engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), METADATA)
    assert differences == []


def test_a_database_from_a_newer_version_is_a_store_error(store: Store, store_url: str) -> None:
    with raw(store_url) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(StoreError, match="9999_future"):
        store.migrate()


def test_two_processes_migrating_at_once_both_succeed(store_url: str) -> None:
    # Both processes sleep until the same moment, so their migrations really overlap.
    start = time.time() + 3
    script = (
        "import sys, time\n"
        "from aggregator.store import Store\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "store = Store(sys.argv[1])\n"
        "store.migrate()\n"
        "store.close()\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, store_url, str(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [process.communicate(timeout=60) for process in processes]
    for process, (_, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr
    assert fetch(store_url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert table_names(store_url) >= TABLES


def test_an_unreachable_database_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Store("not a url")
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(StoreError):
        Store(f"sqlite:///{blocked}/aggregator.db")
    store = Store("postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2")
    try:
        with pytest.raises(StoreError, match=r"127\.0\.0\.1"):
            store.migrate()
    finally:
        store.close()


# --- saving articles ---


def test_new_then_unchanged_then_changed(store: Store, store_url: str) -> None:
    first, second, third = make("s", "1"), make("s", "2", tags=["x"]), make("s", "3")
    result = save(store, "s", first, second, third)
    assert result == SaveResult(
        new=(first.id, second.id, third.id), changed=(), touched_tags=frozenset({"x"})
    )
    assert store.article_count() == 3
    seen = first_seen(store_url, second.id)
    log_writes(store_url)

    assert save(store, "s", first, second, third) == SaveResult((), (), frozenset())
    assert writes_logged(store_url) == []
    assert first_seen(store_url, second.id) == seen

    other_cluster = make("other", "x")
    edited = replace(second, content_html="<p>edited</p>", cluster_id=other_cluster.id)
    result = save(store, "s", first, edited, third)
    assert result == SaveResult(new=(), changed=(second.id,), touched_tags=frozenset({"x"}))
    assert writes_logged(store_url) == [("untag", second.id), ("update", second.id)]
    assert first_seen(store_url, second.id) == seen
    assert store.article(second.id) == replace(edited, cluster_id=second.id)
    assert store.article_count() == 3


@pytest.mark.parametrize(
    "change",
    [
        {"title": "new title"},
        {"link": "https://example.org/moved"},
        {"tags": ("x", "y")},
        {"published": datetime(2024, 3, 1, 12, 0, tzinfo=UTC)},
        # The same instant in another zone is still a change: feeds show the zone.
        {"updated": datetime(2024, 3, 1, 4, 0, tzinfo=UTC)},
        {"author": None},
        {"summary": "other"},
        {"raw_html": "<html>other</html>"},
        {"image": "https://example.org/a.png"},
        {"content_hash": "f" * 64},
    ],
    ids=lambda change: next(iter(change)),
)
def test_every_saved_field_counts_as_a_change(store: Store, change: dict[str, Any]) -> None:
    article = make("s", "1", tags=["x"])
    save(store, "s", article)
    changed = replace(article, **change)
    assert save(store, "s", changed).changed == (article.id,)
    assert store.article(article.id) == changed
    assert save(store, "s", changed).changed == ()


def test_the_saved_state_counts_the_new_articles(store: Store) -> None:
    save(store, "s", make("s", "1"), make("s", "2"))
    saved = store.source_state("s")
    assert saved is not None
    assert saved.new_items == 2
    assert saved.last_result == "ok"
    save(store, "s", make("s", "1"), make("s", "3"))
    assert store.source_state("s") == state("s", new_items=1)


def test_a_batch_is_saved_whole_or_not_at_all(store: Store, store_url: str) -> None:
    kept = make("s", "kept", tags=["old"])
    save_articles(store, "s", [kept], state("s", etag="v1"))
    before = store.source_state("s")
    tags_before = fetch(store_url, "SELECT slug FROM tag ORDER BY slug")

    good = make("s", "good", tags=["brand new"])
    edited = replace(kept, title="edited")
    # Another id for the (source, key) of `good`: the unique constraint refuses it.
    clash = replace(make("s", "clash"), key="good")
    later = make("s", "later", tags=["later"])
    with pytest.raises(StoreError, match="saving s"):
        save_articles(store, "s", [good, edited, clash, later], state("s", etag="v2"))

    assert store.article_count() == 1
    assert store.article(good.id) is None
    assert store.article(kept.id) == kept
    assert store.source_state("s") == before
    assert fetch(store_url, "SELECT slug FROM tag ORDER BY slug") == tags_before
    # The store is still usable after the failed transaction.
    assert save(store, "s", good).new == (good.id,)


def test_articles_of_another_source_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="other"):
        save(store, "s", make("other", "1"))
    with pytest.raises(ValueError, match="other"):
        save_articles(store, "s", [make("s", "1")], state("other"))
    assert store.article_count() == 0


def test_large_batches(store: Store) -> None:
    articles = [make("s", str(number), tags=[f"t{number % 7}"]) for number in range(1234)]
    assert len(save(store, "s", *articles).new) == 1234
    assert save(store, "s", *articles) == SaveResult((), (), frozenset())
    assert store.article_count() == 1234
    assert len(store.clusters(None, 5000)) == 1234
    found = find_clusters(store, [article.link or "" for article in articles], [])
    assert len(found) == 1234


# --- tags ---


def test_tags_are_many_to_many_and_counted_by_cluster(store: Store, store_url: str) -> None:
    first = make("a", "1", tags=["China", "外交"], when=datetime(2024, 3, 1, tzinfo=UTC8))
    same_story = make("b", "1", tags=["china", "Economy"], cluster=first)
    other = make("b", "2", tags=["Economy"], when=datetime(2024, 3, 5, tzinfo=MINUS5))
    assert save(store, "a", first).touched_tags == {"china", "外交"}
    # Joining the story of `first` touches its tags too: its feed item now names source b.
    assert save(store, "b", same_story, other).touched_tags == {"china", "economy", "外交"}

    assert store.tag_summaries() == [
        TagSummary("China", "china", 1, same_story.updated),
        TagSummary("Economy", "economy", 2, other.updated),
        TagSummary("外交", "外交", 1, first.updated),
    ]
    assert fetch(store_url, "SELECT count(*) FROM tag") == [(3,)]
    assert fetch(store_url, "SELECT count(*) FROM article_tag") == [(5,)]
    # One tag row per slug: the first spelling names it everywhere.
    assert store.article(same_story.id) == replace(same_story, tags=("China", "Economy"))

    retagged = replace(first, tags=("外交", "New Tag", "外交"))
    result = save(store, "a", retagged)
    assert result == SaveResult((), (first.id,), frozenset({"china", "外交", "new-tag"}))
    assert store.article(first.id) == replace(first, tags=("外交", "New Tag"))
    summaries = {summary.slug: summary.count for summary in store.tag_summaries()}
    assert summaries == {"china": 1, "economy": 2, "外交": 1, "new-tag": 1}


def test_tags_without_articles_are_not_listed(store: Store) -> None:
    article = make("s", "1", tags=["gone"])
    save(store, "s", article)
    save(store, "s", replace(article, tags=("kept",)))
    assert [summary.slug for summary in store.tag_summaries()] == ["kept"]


# --- reading clusters ---


# Both ways of finding a tag's stories (store/feeds.py, _has_tagged_member): story by story for
# a tag on many articles, member by member for a small one.
@pytest.mark.parametrize("walk_from", [1, 10**9], ids=["tag-walked", "tag-listed"])
def test_clusters_order_members_limit_and_tag_filter(
    store: Store, walk_from: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feeds, "TAG_WALK_FROM", walk_from)
    # a3 (2024-03-02 01:00 UTC) is newer than a1 (2024-03-01 17:00 UTC) although its
    # wall-clock time reads earlier: ordering is by instant, not by the text of the date.
    a1 = make("a", "1", when=datetime(2024, 3, 2, 1, 0, tzinfo=UTC8), tags=["one"], identity="a1")
    a2 = make("a", "2", when=datetime(2024, 3, 3, 12, 0, tzinfo=UTC), identity="a2")
    a3 = make(
        "a", "3", when=datetime(2024, 3, 1, 20, 0, tzinfo=MINUS5), tags=["two"], identity="a3"
    )
    save(store, "a", a1, a2, a3)
    # c1 joins a1's story before b1 does, though b1 is published earlier and sorts first by id.
    c1 = make("c", "1", when=datetime(2024, 3, 9, tzinfo=UTC), cluster=a1, identity="c1")
    save(store, "c", c1)
    b1 = make(
        "b", "1", when=datetime(2024, 3, 8, tzinfo=UTC), cluster=a1, tags=["two"], identity="b1"
    )
    b2 = make("b", "2", cluster=a2, identity="b2")
    save(store, "b", b1, b2)

    story = [a1.id, c1.id, b1.id]
    assert ids(store.clusters(None, 10)) == [[a2.id, b2.id], [a3.id], story]
    assert ids(store.clusters(None, 2)) == [[a2.id, b2.id], [a3.id]]
    assert store.clusters(None, 0) == []
    assert ids(store.clusters("two", 10)) == [[a3.id], story]
    assert ids(store.clusters("two", 1)) == [[a3.id]]
    assert ids(store.clusters("one", 10)) == [story]
    assert store.clusters("nothing", 10) == []


def test_the_feeds_newest_stories_and_daily_chart_are_read_from_an_index(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite, the queries that pick the newest stories (of all, and of a large tag) and
    count the chart's days never read an article row (each about a page of HTML): the
    timeline index holds every column they ask for (migration 0004). Checked on the
    statements the store really sends. (A small tag's few members are looked up by id.)"""
    if is_postgres(store_url):
        pytest.skip("SQLite's query plans; PostgreSQL plans with its own statistics")
    monkeypatch.setattr(feeds, "TAG_WALK_FROM", 1)  # "one" counts as a large tag
    story = make("a", "1", tags=["one"])
    save(store, "a", story, make("a", "2"))
    save(store, "b", make("b", "1", cluster=story))
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    engine = store._engine  # the statements the store sends, as sent
    event.listen(engine, "before_cursor_execute", record)
    try:
        store.clusters(None, 10)
        store.clusters("one", 10)
        store.daily_counts(datetime(2024, 3, 2, tzinfo=UTC).date())
    finally:
        event.remove(engine, "before_cursor_execute", record)
    timeline = [
        (statement, parameters)
        for statement, parameters in sent
        if "ORDER BY article.published DESC" in statement or "strftime" in statement
    ]
    assert len(timeline) == 3  # the two story lists and the chart
    with raw(store_url) as connection:
        for statement, parameters in timeline:
            plan = [
                row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            ]
            on_article = [step for step in plan if step.split()[1:2] == ["article"]]
            assert on_article, plan
            assert all("COVERING INDEX ix_article_timeline" in step for step in on_article), plan


def test_clusters_with_the_same_date_are_ordered_by_cluster_id(store: Store) -> None:
    articles = [make("s", str(number)) for number in range(5)]
    save(store, "s", *articles)
    assert ids(store.clusters(None, 10)) == [[id_] for id_ in sorted(a.id for a in articles)]


def test_articles_come_back_whole_with_their_time_zones(store: Store) -> None:
    east = make("s", "east", when=datetime(2024, 3, 1, 23, 30, 15, 123456, tzinfo=UTC8))
    west = make("s", "west", when=datetime(2024, 2, 1, 20, 0, tzinfo=MINUS5), tags=["b", "a"])
    india = replace(
        make("s", "india", when=datetime(2024, 1, 1, 9, 0, tzinfo=UTC)),
        updated=datetime(2024, 1, 2, 9, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        author=None,
        link=None,
        image="https://example.org/i.png",
        content_hash="c" * 64,
    )
    save(store, "s", east, west, india)
    got = [cluster[0] for cluster in store.clusters(None, 10)]
    assert got == [east, west, india]
    for saved, loaded in zip((east, west, india), got, strict=True):
        assert loaded.published.utcoffset() == saved.published.utcoffset()
        assert loaded.updated.utcoffset() == saved.updated.utcoffset()
        assert loaded.published.isoformat() == saved.published.isoformat()
    assert store.article(west.id) == west
    assert store.article("no such id") is None


# --- find_clusters ---


def test_find_clusters_by_url_and_by_hash(store: Store) -> None:
    # The older story has the id that sorts last, so "oldest" cannot be "smallest id".
    old = make(
        "z", "old", link="https://example.org/story", content_hash="h" * 64, identity="z-old"
    )
    save(store, "z", old)
    time.sleep(0.01)
    new = make(
        "a", "new", link="https://example.org/other", content_hash="h" * 64, identity="a-new"
    )
    member = make("a", "member", link="https://example.org/third", cluster=new)
    save(store, "a", new, member)

    found = find_clusters(
        store,
        ["https://example.org/story", "https://example.org/third", "https://example.org/none"],
        ["h" * 64, "0" * 64],
    )
    oldest = {asked: copies[0].cluster_id for asked, copies in found.items()}
    assert oldest == {
        "https://example.org/story": old.id,
        "https://example.org/third": new.id,
        "h" * 64: old.id,
    }
    assert [copy.source for copy in found["h" * 64]] == ["z", "a"], "every copy, oldest first"
    assert find_clusters(store, [], []) == {}


# --- source states ---


def test_source_states_round_trip_and_upsert(store: Store) -> None:
    full = SourceState(
        name="zaobao",
        etag='W/"abc"',
        last_modified="Fri, 01 Mar 2024 12:00:00 GMT",
        last_fetch_at=datetime(2024, 3, 1, 20, 0, 1, 500, tzinfo=UTC8),
        last_success_at=datetime(2024, 3, 1, 11, 0, tzinfo=UTC),
        last_result="error",
        last_error="HTTP 503",
        new_items=0,
        error_streak=3,
        next_fetch_at=datetime(2024, 3, 1, 13, 0, tzinfo=UTC),
        permanent_url="https://example.org/moved.xml",
    )
    save_state(store, full)
    save_state(store, SourceState(name="alpha"))
    assert store.source_state("zaobao") == full
    assert store.source_state("missing") is None

    recovered = replace(full, last_result="ok", last_error=None, error_streak=0, etag=None)
    save_state(store, recovered)
    assert store.source_state("zaobao") == recovered
    assert store.source_states() == [SourceState(name="alpha"), recovered]
    loaded = store.source_state("zaobao")
    assert loaded is not None and loaded.next_fetch_at is not None
    assert loaded.next_fetch_at.utcoffset() == timedelta(0)


def test_source_item_counts(store: Store) -> None:
    save(store, "a", make("a", "1"), make("a", "2"))
    save(store, "b", make("b", "1"))
    assert store.source_item_counts() == {"a": 2, "b": 1}
    assert store.article_count() == 3


# --- concurrency and SQLite settings ---


def test_concurrent_writers_on_one_database(store_url: str) -> None:
    stores = [Store(store_url) for _ in range(3)]
    stores[0].migrate()
    barrier = threading.Barrier(len(stores), timeout=60)
    failures: list[BaseException] = []

    def write(store: Store, source: str) -> None:
        try:
            barrier.wait()
            for batch in range(15):
                articles = [make(source, f"{batch}-{n}", tags=["shared"]) for n in range(10)]
                save(store, source, *articles)
                # Re-saving with edits reads, then writes, in one transaction.
                save(store, source, *(replace(a, title="edited") for a in articles))
        except BaseException as error:  # the main thread reports it
            failures.append(error)
            barrier.abort()  # so the other writers stop waiting for this one

    threads = [
        threading.Thread(target=write, args=(store, f"source{number}"), daemon=True)
        for number, store in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert failures == []
        assert stores[0].source_item_counts() == {f"source{n}": 150 for n in range(3)}
        assert stores[0].tag_summaries()[0].count == 450
    finally:
        for store in stores:
            store.close()


def test_two_machines_saving_the_same_source_at_once(store_url: str) -> None:
    # Several daemons sharing one database may ingest the same source in the same moment.
    stores = [Store(store_url) for _ in range(3)]
    stores[0].migrate()
    barrier = threading.Barrier(len(stores), timeout=60)
    results: list[SaveResult] = []
    failures: list[BaseException] = []

    def write(store: Store) -> None:
        try:
            for batch in range(10):
                articles = [make("s", f"{batch}-{n}", tags=["x", f"b{batch}"]) for n in range(10)]
                barrier.wait()
                results.append(save(store, "s", *articles))
        except BaseException as error:  # the main thread reports it
            failures.append(error)
            barrier.abort()  # so the other writers stop waiting for this one

    threads = [threading.Thread(target=write, args=(store,), daemon=True) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert failures == []
        # Each article is new for exactly one of the writers.
        assert sorted(id_ for result in results for id_ in result.new) == sorted(
            make("s", f"{batch}-{n}").id for batch in range(10) for n in range(10)
        )
        assert all(result.changed == () for result in results)
        assert stores[0].article_count() == 100
    finally:
        for store in stores:
            store.close()


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[tuple[Store, str]]:
    """A migrated store on a real SQLite file, and its URL."""
    url = f"sqlite:///{tmp_path / 'aggregator.db'}"
    store = Store(url)
    try:
        store.migrate()
        yield store, url
    finally:
        store.close()


def test_sqlite_connection_settings(sqlite_file: tuple[Store, str]) -> None:
    store, url = sqlite_file
    with store._engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA busy_timeout").scalar() == 5000
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert pragma("PRAGMA cache_size").scalar() == -8192  # KiB: 8 MB a connection
    # WAL is a property of the file: every later connection, ours or not, uses it.
    assert fetch(url, "PRAGMA journal_mode") == [("wal",)]
    # So is the page size, set before the file's first write: an article row (raw and clean
    # HTML, about 18 KB) fits one or two pages instead of a chain of five.
    assert fetch(url, "PRAGMA page_size") == [(16384,)]


def test_sqlite_write_transactions_lock_from_begin(
    sqlite_file: tuple[Store, str], tmp_path: Path
) -> None:
    store, _ = sqlite_file
    other = sqlite3.connect(tmp_path / "aggregator.db", timeout=0, isolation_level=None)
    try:
        with write_transaction(store._engine):
            # Nothing written yet, but the write lock is already ours.
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            # Readers are not blocked (WAL).
            assert other.execute("SELECT count(*) FROM article").fetchone() == (0,)
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_sqlite_foreign_keys_are_enforced(sqlite_file: tuple[Store, str]) -> None:
    store, _ = sqlite_file
    with (
        pytest.raises(Exception, match="FOREIGN KEY"),
        store._engine.begin() as connection,
    ):
        connection.exec_driver_sql(
            "INSERT INTO article_tag (article_id, tag_id, position) VALUES ('x', 1, 0)"
        )


def test_threads_migrating_at_once_both_succeed(store_url: str) -> None:
    stores = [Store(store_url) for _ in range(3)]
    failures: list[BaseException] = []

    def migrate(store: Store) -> None:
        try:
            store.migrate()
        except BaseException as error:  # the main thread reports it
            failures.append(error)

    threads = [threading.Thread(target=migrate, args=(store,), daemon=True) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert failures == []
        assert fetch(store_url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    finally:
        for store in stores:
            store.close()


def test_the_newest_revision_read_off_the_file_names_is_alembics_head() -> None:
    # Store.migrate skips alembic when the schema is at newest_revision(): if the two ever
    # disagreed, a store would stay on an old schema.
    config = AlembicConfig()
    config.set_main_option("script_location", MIGRATIONS)
    assert ScriptDirectory.from_config(config).get_current_head() == newest_revision()


@pytest.mark.postgres
def test_postgresql_sessions_bound_lock_waits_and_idle_transactions() -> None:
    store = Store(STORE_PG_URL)
    try:
        with store._engine.connect() as connection:
            shown = {
                name: connection.exec_driver_sql(f"SHOW {name}").scalar()
                for name in ("lock_timeout", "idle_in_transaction_session_timeout")
            }
    finally:
        store.close()
    assert shown == {"lock_timeout": "10s", "idle_in_transaction_session_timeout": "1min"}


# --- what each output folder has rendered ---


def test_each_output_folder_renders_the_changes_since_its_own_mark(store: Store) -> None:
    assert store.changes_to_render("node-a:/public") == (0, None), "never rendered: everything"
    save(store, "s", make("s", "1", tags=["alpha"]))
    newest, changed = store.changes_to_render("node-a:/public")
    assert changed is None
    store.rendered("node-a:/public", newest)
    assert store.changes_to_render("node-a:/public") == (newest, frozenset())

    save(store, "s", make("s", "2", tags=["beta"]))
    later, changed = store.changes_to_render("node-a:/public")
    assert later > newest
    assert changed == frozenset({"", "beta"})  # "": the feed of every story
    # Another folder that rendered up to the first save owes the same.
    store.rendered("node-b:/public", newest)
    assert store.changes_to_render("node-b:/public")[1] == frozenset({"", "beta"})

    store.rendered("node-a:/public", later)
    store.rendered("node-b:/public", later)
    # Forgotten once every folder has them, yet a new change still sorts after every mark.
    save(store, "s", make("s", "3", tags=["gamma"]))
    last, changed = store.changes_to_render("node-a:/public")
    assert last > later
    assert changed == frozenset({"", "gamma"})
