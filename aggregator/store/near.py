"""The near-duplicate index: MinHash signatures and their LSH bands, in two tables.

    article_near  (seq, article_id, published, shingles, minhash, lead_minhash, bands)
                                                                                  one per article
    article_band  (band_key, article_seq)                                        40 per article

The signatures are cut into bands (aggregator.dedupe.lsh): 32 bands of the whole text's 128 values,
then 8 of the lead's 32. Each band, with its number, is hashed to one signed 64-bit key. Two
articles are candidates when they share a key. The band table holds nothing but its primary
key (band_key, article_seq), WITHOUT ROWID on SQLite, and points at a small integer instead of
the 36-character article id: that keeps the index near 17 bytes a band. A lookup is a range of
the primary key per key, then a join by integer.

Band rows carry no foreign key (that would need a second index as large as the first): they
are replaced together with their article_near row, which keeps its keys (`bands`, little-endian
int64) for that. A row saved before it kept them (migration 0007) leaves its bands behind when
its article changes: such a band proposes a row that no longer exists, or, on SQLite, which
may give a deleted highest seq again, another article, whose own signature then decides like
any candidate's.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection

from aggregator.models import Article, NearCandidate
from aggregator.store.bands import PendingBands, insert_bands
from aggregator.store.plain import Plain, chunks, marks
from aggregator.store.rows import article_from_row
from aggregator.store.tables import ARTICLE, ARTICLE_NEAR, ARTICLE_TAG, TAG

_INSERT_NEAR = (
    "INSERT INTO article_near (article_id, published, shingles, minhash, lead_minhash, bands)"
    " VALUES "
)
_ROWS_PER_INSERT = 100  # 600 bound parameters
_DELETE_BAND = "DELETE FROM article_band WHERE band_key = ? AND article_seq = ?"
_BAND_LOOKUP = "SELECT article_seq, band_key FROM article_band WHERE band_key IN "
_BAND_LOOKUP_ANY = (
    "SELECT article_seq, band_key FROM article_band WHERE band_key = ANY(?::bigint[])"
)


def pack(minhash: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(minhash)}I", *minhash)


def pack_keys(keys: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(keys)}q", *keys)


def unpack_keys(blob: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(blob) // 8}q", blob)


def unpack(blob: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(blob) // 4}I", blob)


def article_keys(article: Article) -> set[int]:
    """The band keys of an article, as the dedupe stage computed them."""
    return set(article.bands)


def save(
    connection: Connection,
    articles: Sequence[Article],
    known: Collection[str] | None = None,
    pending: PendingBands | None = None,
) -> None:
    """Index new and changed articles (inside save_articles' transaction).

    An article whose signature and date did not change keeps its rows; one whose text changed
    gets new ones; one whose text became too short to compare leaves the index. `known`: the
    ids that may be indexed already (None: any); a new article needs no lookup. `pending`: the
    transaction's held band rows (store/bands.py); None inserts them at once.
    """
    previous: dict[str, Any] = {}
    asked = [article.id for article in articles if known is None or article.id in known]
    for chunk in chunks(asked):
        query = select(ARTICLE_NEAR).where(ARTICLE_NEAR.c.article_id.in_(chunk))
        previous.update((row.article_id, row) for row in connection.execute(query))
    stale: list[Any] = []
    fresh: list[Article] = []
    for article in articles:
        old = previous.get(article.id)
        if old is not None:
            unchanged = (
                old.minhash == pack(article.minhash)
                and old.lead_minhash == pack(article.lead_minhash)
                and old.shingles == article.shingles
                and old.published == article.published.astimezone(UTC)
            )
            if unchanged:
                continue
            stale.append(old)
        if article.minhash:
            fresh.append(article)
    if stale:
        _remove(connection, stale, pending)
    if fresh:
        _add(connection, fresh, pending)


def _remove(connection: Connection, rows: Sequence[Any], pending: PendingBands | None) -> None:
    bands = [(key, row.seq) for row in rows if row.bands for key in set(unpack_keys(row.bands))]
    Plain(connection).many(_DELETE_BAND, bands)
    if pending is not None:
        pending.discard(bands)
    for chunk in chunks([row.seq for row in rows]):
        connection.execute(delete(ARTICLE_NEAR).where(ARTICLE_NEAR.c.seq.in_(chunk)))


def _add(connection: Connection, articles: Sequence[Article], pending: PendingBands | None) -> None:
    plain = Plain(connection)
    seqs: dict[str, int] = {}
    # Several rows per INSERT, RETURNING the seqs they were given: no second query for them.
    for chunk in chunks(articles, _ROWS_PER_INSERT):
        values = [
            (
                article.id,
                plain.time(article.published),
                article.shingles,
                pack(article.minhash),
                pack(article.lead_minhash),
                pack_keys(article.bands),
            )
            for article in chunk
        ]
        statement = _INSERT_NEAR + ",".join([marks(6)] * len(values)) + " RETURNING article_id, seq"
        seqs.update(plain.rows(statement, [value for row in values for value in row]))
    bands = [(key, seqs[article.id]) for article in articles for key in article_keys(article)]
    if pending is None:
        insert_bands(connection, bands)
    else:
        pending.add(bands)


# The stored articles behind matched band rows, with the age of their stories (first seen,
# then published, of each cluster's first article).
_CANDIDATES = (
    "SELECT article_near.seq, article_near.article_id, article_near.published,"
    " article_near.shingles, article_near.minhash, article.source, article.title,"
    " article.cluster_id,"
    " coalesce(story.first_seen, article.first_seen), coalesce(story.published, article.published)"
    " FROM article_near JOIN article ON article.id = article_near.article_id"
    " LEFT JOIN article AS story ON story.id = article.cluster_id"
    " WHERE article_near.published BETWEEN ? AND ? AND article_near.seq IN "
)


def candidates(
    connection: Connection,
    articles: Sequence[Article],
    window: timedelta,
    pending: PendingBands | None = None,
) -> dict[str, list[NearCandidate]]:
    """Stored articles sharing a band with each article and published within `window` of it,
    the article itself excepted; keyed by article id, articles without candidates left out.

    Two steps: the band keys alone first (a primary-key range each, written as plain SQL: a
    new story, the common case, finds nothing and costs no more than that), then the few
    articles they name, with the keys each matched, so no signature is banded again here.
    `pending`: band rows this transaction saved but holds back (store/bands.py).
    """
    keys_of = [(article, article_keys(article)) for article in articles]
    wanted = list(set().union(*(keys for _, keys in keys_of)))
    matched: dict[int, set[int]] = defaultdict(set)  # article_seq -> band keys it shares
    plain = Plain(connection)
    if plain.sqlite:
        for chunk in chunks(wanted):
            for seq, key in plain.rows(_BAND_LOOKUP + marks(len(chunk)), chunk):
                matched[seq].add(key)
    elif wanted:  # one array: PostgreSQL plans an IN list of 800 values slowly
        for seq, key in plain.rows(_BAND_LOOKUP_ANY, (wanted,)):
            matched[seq].add(key)
    for seq, key in pending.matches(wanted) if pending is not None else ():
        matched[seq].add(key)
    if not matched:
        return {}
    # Which articles asked for each matched key: built only now, for the few keys that hit.
    hits = set().union(*matched.values())
    asking: dict[int, list[Article]] = defaultdict(list)
    for article, keys in keys_of:
        for key in keys & hits:
            asking[key].append(article)
    dates = [article.published for article in articles]
    window_of_all = [plain.time(min(dates) - window), plain.time(max(dates) + window)]
    found: dict[str, dict[int, NearCandidate]] = defaultdict(dict)
    for chunk in chunks(sorted(matched)):
        for row in plain.rows(_CANDIDATES + marks(len(chunk)), [*window_of_all, *chunk]):
            seq, candidate = _candidate(plain, row)
            proposed = {id(a): a for key in matched[seq] for a in asking[key]}
            for article in proposed.values():
                close = abs(candidate.published - article.published) <= window
                if close and candidate.article_id != article.id:
                    found[article.id][seq] = candidate
    return {
        article_id: [by_seq[seq] for seq in sorted(by_seq)] for article_id, by_seq in found.items()
    }


def _candidate(plain: Plain, row: Sequence[Any]) -> tuple[int, NearCandidate]:
    seq, article_id, published, shingles, minhash, source, title, cluster_id, since, first = row
    return seq, NearCandidate(
        article_id=article_id,
        source=source,
        title=title,
        published=plain.read_time(published),
        minhash=unpack(minhash),
        shingles=shingles,
        cluster_id=cluster_id,
        cluster_first_seen=plain.read_time(since),
        cluster_published=plain.read_time(first),
    )


def shared_clusters(connection: Connection, limit: int) -> list[tuple[Article, ...]]:
    """Clusters of more than one article, newest story first; the cluster's first article
    first in each, then the others in the order they were seen."""
    if limit <= 0:
        return []
    shared = select(ARTICLE.c.cluster_id).group_by(ARTICLE.c.cluster_id).having(func.count() > 1)
    query = (
        select(ARTICLE.c.id)
        .where(ARTICLE.c.id == ARTICLE.c.cluster_id, ARTICLE.c.id.in_(shared))
        .order_by(ARTICLE.c.published.desc(), ARTICLE.c.id)
        .limit(limit)
    )
    cluster_ids: list[str] = list(connection.execute(query).scalars())
    members: dict[str, list[tuple[Any, Article]]] = defaultdict(list)
    for chunk in chunks(cluster_ids):
        tags: dict[str, list[str]] = defaultdict(list)
        tag_query = (
            select(ARTICLE_TAG.c.article_id, TAG.c.name)
            .join(TAG, TAG.c.id == ARTICLE_TAG.c.tag_id)
            .join(ARTICLE, ARTICLE.c.id == ARTICLE_TAG.c.article_id)
            .where(ARTICLE.c.cluster_id.in_(chunk))
            .order_by(ARTICLE_TAG.c.article_id, ARTICLE_TAG.c.position)
        )
        for article_id, name in connection.execute(tag_query):
            tags[article_id].append(name)
        rows = connection.execute(select(ARTICLE).where(ARTICLE.c.cluster_id.in_(chunk)))
        for row in rows.mappings():
            article = article_from_row(row, tags.get(row["id"], ()))
            order = (row["id"] != row["cluster_id"], row["first_seen"], row["published"], row["id"])
            members[row["cluster_id"]].append((order, article))
    return [
        tuple(article for _, article in sorted(members[cluster_id], key=lambda pair: pair[0]))
        for cluster_id in cluster_ids
    ]
