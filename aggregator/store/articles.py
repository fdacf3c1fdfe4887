"""Articles: saved with their tags (new ones inserted, known ones updated in place, each
source under its own lock), and found again by id, key, link or text for clustering.

Plain driver SQL (store/plain.py) on the save path: it runs once per source of every pass, on
the one store thread, and SQLAlchemy Core's per-statement cost used to be most of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from aggregator.models import Article, KnownCopy, SourceState
from aggregator.store import near
from aggregator.store.bands import PendingBands
from aggregator.store.plain import Plain, chunks, marks, time_columns, upsert
from aggregator.store.rows import (
    article_from_row,
    article_values,
    signature,
    url_hash,
)
from aggregator.store.sources import save_state
from aggregator.store.tables import ARTICLE, ARTICLE_TAG, TAG
from aggregator.tags import slugify

# An article's cluster and its age (first seen, then published, of the cluster's first
# article), by link hash or by text hash. Plain SQL (store/plain.py): it runs for every source
# of a pass. The times come back as the driver gives them, naive UTC text on SQLite: they are
# only compared with each other, and that text sorts as the times do.
_CLUSTER_OF = (
    "SELECT {kind}, article.{column}, article.cluster_id, article.source, article.title,"
    " coalesce(story.first_seen, article.first_seen), coalesce(story.published, article.published)"
    " FROM article LEFT JOIN article AS story ON story.id = article.cluster_id"
    " WHERE article.{column} IN "
)

_BY_LINK = _CLUSTER_OF.format(kind=0, column="link_hash")

_BY_CONTENT = _CLUSTER_OF.format(kind=1, column="content_hash")


def find_clusters(
    connection: Connection, canonical_urls: Collection[str], content_hashes: Collection[str]
) -> dict[str, tuple[KnownCopy, ...]]:
    """Per canonical URL or text hash asked for, the stored articles that have it, the oldest
    story first."""
    # Keyed by what was asked for: (age of the cluster, cluster id) and the copy.
    found: dict[str, list[tuple[tuple[Any, Any, str], KnownCopy]]] = defaultdict(list)
    wanted = ({url_hash(url): url for url in canonical_urls}, {h: h for h in content_hashes})
    plain = Plain(connection)
    lock_clusters(plain)
    links, texts = (list(chunks(list(asked))) for asked in wanted)
    for index in range(max(len(links), len(texts))):
        # Both lookups in one statement: one round trip per source, not two.
        parts: list[str] = []
        values: list[str] = []
        for query, pieces in ((_BY_LINK, links), (_BY_CONTENT, texts)):
            if index < len(pieces):
                parts.append(query + marks(len(pieces[index])))
                values.extend(pieces[index])
        for kind, match, cluster_id, source, title, first_seen, published in plain.rows(
            " UNION ALL ".join(parts), values
        ):
            age = (first_seen, published, cluster_id)
            found[wanted[kind][match]].append((age, KnownCopy(cluster_id, source, title)))
    return {asked: tuple(copy for _, copy in sorted(copies)) for asked, copies in found.items()}


def article(connection: Connection, article_id: str) -> Article | None:
    row = connection.execute(select(ARTICLE).where(ARTICLE.c.id == article_id)).mappings().first()
    if row is None:
        return None
    tags = tags_of(connection, ARTICLE.c.id == article_id)
    return article_from_row(row, tags.get(article_id, ()))


def tags_of(connection: Connection, where: Any) -> Mapping[str, Sequence[str]]:
    """Tag display names of the articles matching `where`, per article id, in saved order."""
    query = (
        select(ARTICLE_TAG.c.article_id, TAG.c.name)
        .join(TAG, TAG.c.id == ARTICLE_TAG.c.tag_id)
        .join(ARTICLE, ARTICLE.c.id == ARTICLE_TAG.c.article_id)
        .where(where)
        .order_by(ARTICLE_TAG.c.article_id, ARTICLE_TAG.c.position)
    )
    tags: dict[str, list[str]] = defaultdict(list)
    for article_id, name in connection.execute(query):
        tags[article_id].append(name)
    return tags


def known_keys(connection: Connection, source: str, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):  # stay under every driver's bound-parameter limit
        chunk = list(keys[start : start + 500])
        query = select(ARTICLE.c.key).where(ARTICLE.c.source == source, ARTICLE.c.key.in_(chunk))
        found.update(connection.execute(query).scalars())
    return found


def article_count(connection: Connection) -> int:
    return connection.execute(select(func.count()).select_from(ARTICLE)).scalar_one()


# A known article keeps where and when it was first seen, and the story it belongs to.
_KEPT_ON_UPDATE = frozenset({"id", "source", "key", "cluster_id", "first_seen"})

# The pg_advisory_xact_lock that serialises clustering across nodes (see lock_clusters).
CLUSTER_LOCK = 0x61676773

_ARTICLE_COLUMNS = tuple(column.name for column in ARTICLE.columns)

_ARTICLE_TIMES = time_columns(ARTICLE)

# A concurrent writer may have saved the same version meanwhile: then the update does nothing.
_UPSERT_ARTICLE = upsert(
    ARTICLE, "id", _KEPT_ON_UPDATE | {"id"}, "article.signature <> excluded.signature"
)

# An article without a date of its own keeps the dates it was first seen with.
_FIRST_SEEN_DATES = frozenset(
    {"published", "published_offset_minutes", "updated", "updated_offset_minutes"}
)

_UPSERT_UNDATED = upsert(
    ARTICLE,
    "id",
    _KEPT_ON_UPDATE | _FIRST_SEEN_DATES | {"id"},
    "article.signature <> excluded.signature",
)

_SIGNATURES = "SELECT id, signature FROM article WHERE id IN "

_LOCK = "SELECT pg_advisory_xact_lock(?)"

_FEED_CHANGED = "INSERT INTO feed_change (slug) VALUES (?)"

_TAG_IDS = "SELECT slug, id FROM tag WHERE slug IN "

_ADD_TAG = "INSERT INTO tag (slug, name) VALUES (?, ?) ON CONFLICT (slug) DO NOTHING"

_LINK_TAG = "INSERT INTO article_tag (article_id, tag_id, position) VALUES (?, ?, ?)"

_TAGS_OF = (
    "SELECT tag.slug FROM tag JOIN article_tag ON article_tag.tag_id = tag.id"
    " WHERE article_tag.article_id IN "
)

_UNLINK_TAGS = "DELETE FROM article_tag WHERE article_id IN "

_STORY_TAGS = (
    "SELECT DISTINCT tag.slug FROM tag JOIN article_tag ON article_tag.tag_id = tag.id"
    " JOIN article ON article.id = article_tag.article_id WHERE article.cluster_id IN "
)


@dataclass(frozen=True, slots=True)
class SaveResult:
    new: tuple[str, ...]  # ids of articles inserted
    changed: tuple[str, ...]  # ids of known articles updated in place
    # slugs of the tags of new/changed articles (lost ones included) and of the stories they joined
    touched_tags: frozenset[str]


def save_articles(
    connection: Connection,
    articles: Sequence[Article],
    state: SourceState,
    now: datetime,
    pending: PendingBands | None = None,
) -> SaveResult:
    """`pending`: where the transaction holds its band rows until it ends (store/bands.py)."""
    plain = Plain(connection)
    lock_clusters(plain)
    # One INSERT may not touch a row twice (PostgreSQL refuses): the first copy of an id wins.
    unique: dict[str, Article] = {}
    for article in articles:
        unique.setdefault(article.id, article)
    known = _signatures(plain, list(unique))
    new: list[str] = []
    changed: list[str] = []
    rows: dict[str, list[tuple[Any, ...]]] = {_UPSERT_ARTICLE: [], _UPSERT_UNDATED: []}
    for article in unique.values():
        digest = signature(article)
        previous = known.get(article.id)
        if previous is None:
            new.append(article.id)
        elif previous != digest:
            changed.append(article.id)
        else:
            continue
        statement = _UPSERT_ARTICLE if article.dated else _UPSERT_UNDATED
        rows[statement].append(_article_row(plain, article, now, digest))
    touched: set[str] = set()
    if new or changed:
        for statement, values in rows.items():
            if values:
                plain.many(statement, values)
        saved = [unique[id_] for id_ in new + changed]
        touched = _replace_tags(plain, saved, changed)
        touched |= _story_tags(plain, saved)
        # The near-duplicate index (store/near.py) follows the articles in the same transaction.
        near.save(connection, saved, known=set(changed), pending=pending)
        plain.many(_FEED_CHANGED, [("",), *((slug,) for slug in sorted(touched))])
    # Only this transaction knows how many were new; the caller's state cannot.
    save_state(connection, replace(state, new_items=len(new)))
    return SaveResult(new=tuple(new), changed=tuple(changed), touched_tags=frozenset(touched))


def _article_row(plain: Plain, article: Article, now: datetime, digest: str) -> tuple[Any, ...]:
    values = article_values(article, first_seen=now, digest=digest)
    for name in _ARTICLE_TIMES:
        values[name] = plain.time(values[name])
    return tuple(values[name] for name in _ARTICLE_COLUMNS)


def _story_tags(plain: Plain, articles: Sequence[Article]) -> set[str]:
    """Slugs of every article in the stories these articles joined: a story's feed item carries
    the tags and sources of all its members, so the feeds of the earlier members' tags show it
    too and change with it."""
    joined = sorted({a.cluster_id for a in articles if a.cluster_id and a.cluster_id != a.id})
    slugs: set[str] = set()
    for chunk in chunks(joined):
        slugs.update(slug for (slug,) in plain.rows(_STORY_TAGS + marks(len(chunk)), chunk))
    return slugs


def lock_clusters(plain: Plain) -> None:
    """Serialise clustering and saving across nodes until the transaction ends: the lookup of a
    story's stored copies and the save that joins them must see every other node's saves, or
    one story saved by two nodes at once becomes two clusters. It also orders every article
    write of all nodes, so their transactions never wait on each other's rows in a circle.

    SQLite needs nothing: BEGIN IMMEDIATE already serialises every writer. Taking it again in
    the same transaction returns at once.
    """
    if not plain.sqlite:
        plain.rows(_LOCK, (CLUSTER_LOCK,))


def _signatures(plain: Plain, ids: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in chunks(ids):
        found.update(plain.rows(_SIGNATURES + marks(len(chunk)), chunk))
    return found


def _replace_tags(plain: Plain, articles: Sequence[Article], changed: Sequence[str]) -> set[str]:
    """Link each article to its tags in order; return every slug gained or lost."""
    touched: set[str] = set()
    for chunk in chunks(changed):
        touched.update(slug for (slug,) in plain.rows(_TAGS_OF + marks(len(chunk)), chunk))
        plain.run(_UNLINK_TAGS + marks(len(chunk)), chunk)
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
    tag_ids = _tag_ids(plain, list(names))
    missing = [slug for slug in names if slug not in tag_ids]
    if missing:
        plain.many(_ADD_TAG, [(slug, names[slug]) for slug in missing])
        tag_ids.update(_tag_ids(plain, missing))
    plain.many(_LINK_TAG, [(id_, tag_ids[slug], position) for id_, slug, position in links])
    return touched


def _tag_ids(plain: Plain, slugs: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in chunks(slugs):
        found.update(plain.rows(_TAG_IDS + marks(len(chunk)), chunk))
    return found
