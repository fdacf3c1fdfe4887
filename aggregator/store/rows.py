"""Conversions between the records of models.py and plain row dictionaries."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from json import dumps, loads
from typing import Any

from aggregator.models import Article, RuleHit, SourceState
from aggregator.urls import canonical_url

# Article fields that identify a row rather than describe it, or derive from others (the LSH
# bands from the MinHash): never part of "changed".
_IDENTITY = ("id", "source", "key", "cluster_id", "bands", "dated")
_DESCRIPTIVE = tuple(field.name for field in fields(Article) if field.name not in _IDENTITY)
# An undated article's dates are when this pass saw it: never a change (the store keeps the
# first ones).
_DESCRIPTIVE_UNDATED = tuple(name for name in _DESCRIPTIVE if name not in ("published", "updated"))
STATE_FIELDS = tuple(field.name for field in fields(SourceState))


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def offset_minutes(moment: datetime) -> int:
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: the store needs aware ones")
    return int(offset.total_seconds() // 60)


def in_zone(moment: datetime, minutes: int) -> datetime:
    return moment.astimezone(timezone(timedelta(minutes=minutes)))


def signature(article: Article) -> str:
    """A digest of everything save_articles writes for a known article.

    Each value goes in length-prefixed, so no two different articles hash the same text; the
    bodies are hashed as they are, not serialised first (the save path runs it per article).
    """
    digest = hashlib.sha256()
    for name in _DESCRIPTIVE if article.dated else _DESCRIPTIVE_UNDATED:
        value = getattr(article, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        encoded = (
            value.encode("utf-8", "surrogatepass")
            if isinstance(value, str)
            else repr(value).encode()
        )
        digest.update(b"%d:" % len(encoded))
        digest.update(encoded)
    return digest.hexdigest()


def article_values(
    article: Article, first_seen: datetime, digest: str | None = None
) -> dict[str, Any]:
    """The article's row; `digest`: its signature() when the caller has it already."""
    return {
        "id": article.id,
        "source": article.source,
        "key": article.key,
        "title": article.title,
        "link": article.link,
        # The canonical URL's: copies of a story are found by it however each was spelt.
        "link_hash": url_hash(canonical_url(article.link)) if article.link else None,
        "content_hash": article.content_hash,
        # dedupe always sets it; an article without one is a cluster of its own.
        "cluster_id": article.cluster_id or article.id,
        "published": article.published,
        "published_offset_minutes": offset_minutes(article.published),
        "updated": article.updated,
        "updated_offset_minutes": offset_minutes(article.updated),
        "author": article.author,
        "content_html": article.content_html,
        "raw_html": article.raw_html,
        "summary": article.summary,
        "image": article.image,
        "first_seen": first_seen,
        "signature": digest or signature(article),
        "clean_audit": audit_json(article.clean_audit),
    }


def article_from_row(row: Mapping[Any, Any], tags: Sequence[str]) -> Article:
    return Article(
        id=row["id"],
        source=row["source"],
        key=row["key"],
        title=row["title"],
        link=row["link"],
        published=in_zone(row["published"], row["published_offset_minutes"]),
        updated=in_zone(row["updated"], row["updated_offset_minutes"]),
        author=row["author"],
        tags=tuple(tags),
        content_html=row["content_html"],
        summary=row["summary"],
        raw_html=row["raw_html"],
        content_hash=row["content_hash"],
        image=row["image"],
        cluster_id=row["cluster_id"],
        clean_audit=audit_from_json(row.get("clean_audit") or ""),
    )


def state_values(state: SourceState) -> dict[str, Any]:
    return {name: getattr(state, name) for name in STATE_FIELDS}


def state_from_row(row: Mapping[Any, Any]) -> SourceState:
    return SourceState(**{name: row[name] for name in STATE_FIELDS})


def audit_json(hits: Sequence[RuleHit]) -> str:
    return dumps(hits, ensure_ascii=False, separators=(",", ":"))


def audit_from_json(value: str) -> tuple[RuleHit, ...]:
    """The stored audit; () for "" (cleaned before audits were kept) or anything unreadable."""
    try:
        hits = loads(value) if value else []
        return tuple(
            RuleHit(str(rule), int(times), tuple(samples)) for rule, times, samples in hits
        )
    except (ValueError, TypeError):
        return ()
