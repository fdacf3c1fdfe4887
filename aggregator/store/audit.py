"""Queries for `explain` and `reclean`: articles by link, their clean audit, and in-place
updates of re-cleaned bodies."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from aggregator.models import Article, RuleHit
from aggregator.store import near
from aggregator.store.articles import tags_of
from aggregator.store.rows import (
    article_from_row,
    audit_from_json,
    audit_json,
    signature,
    url_hash,
)
from aggregator.store.tables import ARTICLE
from aggregator.urls import canonical_url

# What re-cleaning can change; identity, dates, tags and the story an article belongs to stay.
CLEANED_COLUMNS = ("content_html", "summary", "content_hash", "image", "clean_audit")


def article_by_link(connection: Connection, link: str) -> Article | None:
    """The first-seen article published at this (canonical) URL."""
    query = (
        select(ARTICLE)
        .where(ARTICLE.c.link_hash == url_hash(canonical_url(link)))
        .order_by(ARTICLE.c.first_seen, ARTICLE.c.id)
        .limit(1)
    )
    row = connection.execute(query).mappings().first()
    if row is None:
        return None
    tags = tags_of(connection, ARTICLE.c.id == row["id"])
    return article_from_row(row, tags.get(row["id"], ()))


def clean_audit(connection: Connection, article_id: str) -> tuple[RuleHit, ...] | None:
    """The audit kept with an article; None when it was cleaned before audits were kept."""
    query = select(ARTICLE.c.clean_audit).where(ARTICLE.c.id == article_id)
    value = connection.execute(query).scalar_one_or_none()
    return audit_from_json(value) if value else None


def articles_page(
    connection: Connection, source: str | None, after: str, limit: int
) -> list[Article]:
    """Up to `limit` articles with ids after `after`, in id order, raw HTML included."""
    query = select(ARTICLE).where(ARTICLE.c.id > after)
    if source is not None:
        query = query.where(ARTICLE.c.source == source)
    rows = connection.execute(query.order_by(ARTICLE.c.id).limit(limit)).mappings().all()
    if not rows:
        return []
    tags = tags_of(connection, ARTICLE.c.id.in_([row["id"] for row in rows]))
    return [article_from_row(row, tags.get(row["id"], ())) for row in rows]


def update_cleaned(connection: Connection, articles: Sequence[Article]) -> list[str]:
    """Write the re-cleaned columns of articles whose cleaning changed; return their ids.
    The near-duplicate index follows their new text in the same transaction."""
    stored: dict[str, dict[str, object]] = {}
    ids = [article.id for article in articles]
    for start in range(0, len(ids), 500):
        query = select(ARTICLE.c.id, *(ARTICLE.c[name] for name in CLEANED_COLUMNS)).where(
            ARTICLE.c.id.in_(ids[start : start + 500])
        )
        stored.update((row["id"], dict(row)) for row in connection.execute(query).mappings())
    changed: list[Article] = []
    rows: list[dict[str, object]] = []
    for article in articles:
        values = _cleaned_values(article)
        old = stored.get(article.id)
        if old is not None and any(old[name] != values[name] for name in CLEANED_COLUMNS):
            rows.append({**values, "signature": signature(article), "article_id": article.id})
            changed.append(article)
    if rows:
        statement = (
            update(ARTICLE)
            .where(ARTICLE.c.id == bindparam("article_id"))
            .values({name: bindparam(name) for name in (*CLEANED_COLUMNS, "signature")})
        )
        connection.execute(statement, rows)  # executemany: one round trip per batch
        near.save(connection, changed)
    return [article.id for article in changed]


def _cleaned_values(article: Article) -> dict[str, object]:
    return {
        "content_html": article.content_html,
        "summary": article.summary,
        "content_hash": article.content_hash,
        "image": article.image,
        "clean_audit": audit_json(article.clean_audit),
    }
