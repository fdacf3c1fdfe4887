"""The write side: article upserts with their tags, and source states."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Table, delete, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from aggregator.errors import StoreError
from aggregator.models import Article, SourceState
from aggregator.store import near
from aggregator.store.rows import STATE_FIELDS, article_values, state_values
from aggregator.store.tables import ARTICLE, ARTICLE_TAG, SOURCE_STATE, TAG
from aggregator.tagging import slugify

# Bound parameters per IN list: far below SQLite's 32766 and PostgreSQL's 65535.
CHUNK = 500
# A known article keeps where and when it was first seen, and the story it belongs to.
_KEPT_ON_UPDATE = frozenset({"id", "source", "key", "cluster_id", "first_seen"})

# First key of the two-key pg_advisory_xact_lock taken per source (see _lock_source).
SOURCE_LOCK_SPACE = 0x61676772  # "aggr"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SaveResult:
    new: tuple[str, ...]  # ids of articles inserted
    changed: tuple[str, ...]  # ids of known articles updated in place
    # slugs of the tags of new/changed articles (lost ones included) and of the stories they joined
    touched_tags: frozenset[str]


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_for(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT with ON CONFLICT support; the construct is dialect-specific in SQLAlchemy."""
    name = connection.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"unsupported database {name!r}: use SQLite or PostgreSQL")


def save_articles(
    connection: Connection, articles: Sequence[Article], state: SourceState, now: datetime
) -> SaveResult:
    _lock_source(connection, state.name)
    # One INSERT may not touch a row twice (PostgreSQL refuses): the first copy of an id wins.
    unique: dict[str, Article] = {}
    for article in articles:
        unique.setdefault(article.id, article)
    known = _signatures(connection, list(unique))
    new: list[str] = []
    changed: list[str] = []
    rows: list[dict[str, Any]] = []
    for article in unique.values():
        values = article_values(article, first_seen=now)
        previous = known.get(article.id)
        if previous is None:
            new.append(article.id)
        elif previous != values["signature"]:
            changed.append(article.id)
        else:
            continue
        rows.append(values)
    touched: set[str] = set()
    if rows:
        _upsert_articles(connection, rows)
        saved = [unique[id_] for id_ in new + changed]
        touched = _replace_tags(connection, saved, changed)
        touched |= _story_tags(connection, saved)
        # The near-duplicate index (store/near.py) follows the articles in the same transaction.
        near.save(connection, [unique[id_] for id_ in new + changed], known=set(changed))
    # Only this transaction knows how many were new; the caller's state cannot.
    save_state(connection, replace(state, new_items=len(new)))
    return SaveResult(new=tuple(new), changed=tuple(changed), touched_tags=frozenset(touched))


def _story_tags(connection: Connection, articles: Sequence[Article]) -> set[str]:
    """Slugs of every article in the stories these articles joined: a story's feed item carries
    the tags and sources of all its members, so the feeds of the earlier members' tags show it
    too and change with it."""
    joined = sorted({a.cluster_id for a in articles if a.cluster_id and a.cluster_id != a.id})
    slugs: set[str] = set()
    for chunk in chunks(joined):
        query = (
            select(TAG.c.slug)
            .join(ARTICLE_TAG, ARTICLE_TAG.c.tag_id == TAG.c.id)
            .join(ARTICLE, ARTICLE.c.id == ARTICLE_TAG.c.article_id)
            .where(ARTICLE.c.cluster_id.in_(chunk))
            .distinct()
        )
        slugs.update(connection.execute(query).scalars())
    return slugs


def _lock_source(connection: Connection, source: str) -> None:
    """Serialise saves of one source, so the known-or-new check below stays true until commit.

    SQLite needs nothing: BEGIN IMMEDIATE already serialises every writer. On PostgreSQL,
    several machines may ingest the same source at once.
    """
    if connection.dialect.name == "postgresql":
        lock = text("SELECT pg_advisory_xact_lock(:space, hashtext(:source))")
        connection.execute(lock, {"space": SOURCE_LOCK_SPACE, "source": source})


def save_state(connection: Connection, state: SourceState) -> None:
    statement = insert_for(connection, SOURCE_STATE)
    statement = statement.on_conflict_do_update(
        index_elements=[SOURCE_STATE.c.name],
        set_={name: statement.excluded[name] for name in STATE_FIELDS if name != "name"},
    )
    connection.execute(statement, state_values(state))


def _signatures(connection: Connection, ids: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in chunks(ids):
        query = select(ARTICLE.c.id, ARTICLE.c.signature).where(ARTICLE.c.id.in_(chunk))
        found.update((row.id, row.signature) for row in connection.execute(query))
    return found


def _upsert_articles(connection: Connection, rows: list[dict[str, Any]]) -> None:
    statement = insert_for(connection, ARTICLE)
    statement = statement.on_conflict_do_update(
        index_elements=[ARTICLE.c.id],
        set_={
            column.name: statement.excluded[column.name]
            for column in ARTICLE.columns
            if column.name not in _KEPT_ON_UPDATE
        },
        # A concurrent writer may have saved the same version meanwhile: then do nothing.
        where=ARTICLE.c.signature != statement.excluded.signature,
    )
    connection.execute(statement, rows)


def _replace_tags(
    connection: Connection, articles: Sequence[Article], changed: Sequence[str]
) -> set[str]:
    """Link each article to its tags in order; return every slug gained or lost."""
    touched: set[str] = set()
    for chunk in chunks(changed):
        lost = (
            select(TAG.c.slug)
            .join(ARTICLE_TAG, ARTICLE_TAG.c.tag_id == TAG.c.id)
            .where(ARTICLE_TAG.c.article_id.in_(chunk))
        )
        touched.update(connection.execute(lost).scalars())
        connection.execute(delete(ARTICLE_TAG).where(ARTICLE_TAG.c.article_id.in_(chunk)))
    names: dict[str, str] = {}  # slug -> first spelling, the tag's display name
    links: list[tuple[str, str, int]] = []
    for article in articles:
        slugs: list[str] = []
        for tag in article.tags:
            name = " ".join(tag.split())
            slug = slugify(name) if name else ""
            if slug and slug not in slugs:
                names.setdefault(slug, name)
                links.append((article.id, slug, len(slugs)))
                slugs.append(slug)
    touched.update(names)
    if not names:
        return touched
    add_tags = insert_for(connection, TAG).on_conflict_do_nothing(index_elements=[TAG.c.slug])
    connection.execute(add_tags, [{"slug": slug, "name": name} for slug, name in names.items()])
    tag_ids: dict[str, int] = {}
    for chunk in chunks(list(names)):
        query = select(TAG.c.slug, TAG.c.id).where(TAG.c.slug.in_(chunk))
        tag_ids.update((row.slug, row.id) for row in connection.execute(query))
    connection.execute(
        insert(ARTICLE_TAG),
        [
            {"article_id": article_id, "tag_id": tag_ids[slug], "position": position}
            for article_id, slug, position in links
        ],
    )
    return touched
