"""The dedupe stage: identify articles and group copies of one story into clusters.

Identity: an article's id is derived from (source, key) alone, so it never changes for the same
story. Clusters (exact layer): two articles are one story when their canonical URLs are equal or
the hashes of their normalised text are equal. Nothing is deleted: every copy is kept and the
feeds show one item per cluster, naming the other sources that carried it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace

from aggregator.models import Article, CleanedHtml, Entry, FeedItem, Provenance
from aggregator.urls import canonical_url

# A fixed namespace so ids are the same on every machine and every run.
_ARTICLE_NAMESPACE = uuid.UUID("5b0c3b4e-6a53-4d0b-9a4e-6a1f0c1d2e3f")
_NON_WORD = re.compile(r"[\W_]+")
MIN_HASHED_CHARS = 50


def article_id(source: str, key: str) -> str:
    return str(uuid.uuid5(_ARTICLE_NAMESPACE, f"{source}\x00{key}"))


def text_fingerprint(text: str) -> str | None:
    """Hash of the text with case, width, punctuation and spacing folded away; None when the
    text is too short to tell stories apart."""
    normalised = _NON_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())
    if len(normalised) < MIN_HASHED_CHARS:
        return None
    return hashlib.sha256(normalised.encode()).hexdigest()


def identify(entry: Entry, cleaned: CleanedHtml, tags: Sequence[str]) -> Article:
    """The Article for a cleaned entry, in a cluster of its own until `assign_clusters`."""
    identity = article_id(entry.source, entry.key)
    # A lead image the cleaner removed from the body (a QR code, a paywall banner) is junk too.
    image = entry.image
    if image and image in entry.content_html and image not in cleaned.images:
        image = None
    return Article(
        id=identity,
        source=entry.source,
        key=entry.key,
        title=entry.title,
        link=canonical_url(entry.link) if entry.link else None,
        published=entry.published,
        updated=entry.updated,
        author=entry.author,
        tags=tuple(tags),
        content_html=cleaned.html,
        summary=cleaned.summary,
        raw_html=entry.content_html,
        content_hash=text_fingerprint(cleaned.text),
        image=image,
        cluster_id=identity,
    )


def fingerprints(article: Article) -> tuple[str, ...]:
    """The exact-match keys of an article: its canonical URL and its text hash."""
    return tuple(key for key in (article.link, article.content_hash) if key)


def assign_clusters(articles: Sequence[Article], known: Mapping[str, str]) -> list[Article]:
    """Put each article in the cluster of the first stored or earlier article it matches.

    `known` maps fingerprints of stored articles to their cluster ids (see `fingerprints`).
    """
    seen = dict(known)
    result: list[Article] = []
    for article in articles:
        keys = fingerprints(article)
        cluster = next((seen[key] for key in keys if key in seen), article.id)
        for key in keys:
            seen.setdefault(key, cluster)
        result.append(article if cluster == article.cluster_id else _in_cluster(article, cluster))
    return result


def _in_cluster(article: Article, cluster_id: str) -> Article:
    return replace(article, cluster_id=cluster_id)


def merge_cluster(members: Sequence[Article]) -> FeedItem:
    """One feed item for a story: the first article speaks for it, tags are the union, and
    every other source that carried it is named with its link."""
    first = members[0]
    tags: list[str] = []
    for member in members:
        tags.extend(tag for tag in member.tags if tag not in tags)
    others: list[Provenance] = []
    for member in members[1:]:
        if (member.source, member.link) == (first.source, first.link):
            continue
        provenance = Provenance(source=member.source, title=member.title, link=member.link)
        if provenance not in others:
            others.append(provenance)
    return FeedItem(
        id=first.cluster_id or first.id,
        source=first.source,
        title=first.title,
        link=first.link,
        published=first.published,
        updated=max(member.updated for member in members),
        author=first.author,
        tags=tuple(tags),
        content_html=first.content_html,
        summary=first.summary,
        image=first.image,
        also_reported=tuple(others),
    )
