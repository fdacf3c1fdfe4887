"""The dedupe stage: identify articles and group copies of one story into clusters.

Identity: an article's id is derived from (source, key) alone, so it never changes for the same
story. Clusters come from two layers:

- exact: two articles are one story when their canonical URLs are equal or the hashes of their
  normalised text are equal;
- near (dedupe.minhash): the store's LSH index proposes stored articles published within a
  window that share a band of MinHash values (of the whole text, or of its first 150
  characters, which is how an excerpt meets its full text); a candidate is the same story
  when the estimated Jaccard similarity of their 5-gram sets reaches `NearSettings.jaccard`,
  or, when the shorter text has at least `min_shingles` 5-grams, the estimated containment of
  the shorter in the longer reaches `NearSettings.containment` (an excerpt, a trimmed copy).

An article joins the cluster of the oldest stored story it matches, else of an earlier article
of the same batch, else starts its own: a cluster's id is its first article's id and never
changes. Nothing is deleted: every copy is kept and the feeds show one item per cluster,
naming the other sources that carried it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np

from aggregator.dedupe.minhash import (
    MIN_CHARS,
    NearFingerprint,
    estimate_containment,
    estimate_jaccard,
    near_fingerprint,
    normalise,
    signatures,
)
from aggregator.lsh import ROWS_PER_BAND, band_keys, band_keys_of
from aggregator.models import Article, CleanedHtml, Entry, FeedItem, NearCandidate, Provenance
from aggregator.urls import canonical_url

__all__ = [
    "LSH_ROWS",
    "MIN_HASHED_CHARS",
    "NearFingerprint",
    "NearSettings",
    "article_id",
    "assign_clusters",
    "fingerprints",
    "identify",
    "is_near_duplicate",
    "merge_cluster",
    "near_fingerprint",
    "text_fingerprint",
]

# A fixed namespace so ids are the same on every machine and every run.
_ARTICLE_NAMESPACE = uuid.UUID("5b0c3b4e-6a53-4d0b-9a4e-6a1f0c1d2e3f").bytes
# A name-based UUID's fixed bits: version 5 in bits 76-79, the RFC 4122 variant in bits 62-63.
_UUID5_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID5_SET = (5 << 76) | (0x8000 << 48)
MIN_HASHED_CHARS = MIN_CHARS
# LSH banding: the 128 MinHash values in 32 bands of 4. Two texts become candidates when one
# band is equal in both: probability 1 − (1 − J⁴)³², 0.87 at J = 0.5, 0.99 at J = 0.6. The 32
# values of the lead add 8 bands, numbered after those. The store indexes the same bands
# (aggregator.lsh computes them for both).
LSH_ROWS = ROWS_PER_BAND


@dataclass(frozen=True, slots=True)
class NearSettings:
    """When a candidate counts as the same story (the config's `dedupe` section)."""

    jaccard: float = 0.5
    containment: float = 0.8
    min_shingles: int = 100  # containment only counts when the shorter text has this many
    window: timedelta = timedelta(days=7)  # candidates published at most this far apart


DEFAULT_NEAR_SETTINGS = NearSettings()


def article_id(source: str, key: str) -> str:
    """str(uuid.uuid5(namespace, source NUL key)), without the UUID object: a third the time."""
    name = _ARTICLE_NAMESPACE + f"{source}\x00{key}".encode()
    digest = hashlib.sha1(name, usedforsecurity=False).digest()
    value = f"{int.from_bytes(digest[:16]) & _UUID5_CLEAR | _UUID5_SET:032x}"
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


def _hash_normalised(normalised: str) -> str | None:
    if len(normalised) < MIN_HASHED_CHARS:
        return None
    return hashlib.sha256(normalised.encode()).hexdigest()


def text_fingerprint(text: str) -> str | None:
    """Hash of the text with case, width, punctuation and spacing folded away; None when the
    text is too short to tell stories apart."""
    return _hash_normalised(normalise(text))


def identify(entry: Entry, cleaned: CleanedHtml, tags: Sequence[str]) -> Article:
    """The Article for a cleaned entry, in a cluster of its own until `assign_clusters`."""
    identity = article_id(entry.source, entry.key)
    # A lead image the cleaner removed from the body (a QR code, a paywall banner) is junk too.
    image = entry.image
    if image and image in entry.content_html and image not in cleaned.images:
        image = None
    normalised = normalise(cleaned.text)
    near = signatures(normalised)
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
        content_hash=_hash_normalised(normalised),
        image=image,
        cluster_id=identity,
        minhash=tuple(near.minhash.tolist()) if near else (),
        shingles=near.shingles if near else 0,
        lead_minhash=tuple(near.lead.tolist()) if near else (),
        bands=band_keys_of(np.concatenate((near.minhash, near.lead))) if near else (),
        clean_audit=cleaned.removed,
    )


def fingerprints(article: Article) -> tuple[str, ...]:
    """The exact-match keys of an article: its canonical URL and its text hash."""
    return tuple(key for key in (article.link, article.content_hash) if key)


def is_near_duplicate(
    first: NearFingerprint,
    second: NearFingerprint,
    settings: NearSettings = DEFAULT_NEAR_SETTINGS,
) -> bool:
    """The near layer's rule: estimated Jaccard, or containment of the shorter text."""
    jaccard = estimate_jaccard(first.minhash, second.minhash)
    if jaccard >= settings.jaccard:
        return True
    if min(first.shingles, second.shingles) < settings.min_shingles:
        return False
    return estimate_containment(jaccard, first.shingles, second.shingles) >= settings.containment


def assign_clusters(
    articles: Sequence[Article],
    known: Mapping[str, str],
    near: Mapping[str, Sequence[NearCandidate]] | None = None,
    settings: NearSettings = DEFAULT_NEAR_SETTINGS,
) -> list[Article]:
    """Put each article in the cluster of the first stored or earlier article it matches.

    `known` maps fingerprints of stored articles to their cluster ids (see `fingerprints`);
    `near` maps article ids to the stored articles the LSH index proposed for them. An exact
    match wins; then the oldest stored cluster of a near duplicate; then the first earlier
    article of this batch that is a near duplicate.
    """
    seen = dict(known)
    near = near or {}
    buckets: dict[int, list[int]] = defaultdict(list)  # band -> indexes in `result`
    result: list[Article] = []
    for article in articles:
        keys = fingerprints(article)
        cluster = next((seen[key] for key in keys if key in seen), None)
        if cluster is None and article.minhash:
            cluster = _stored_near_cluster(article, near.get(article.id, ()), settings)
            if cluster is None:
                cluster = _batch_near_cluster(article, buckets, result, settings)
        cluster = cluster or article.id
        for key in keys:
            seen.setdefault(key, cluster)
        for band in _bands(article):
            buckets[band].append(len(result))
        result.append(article if cluster == article.cluster_id else _in_cluster(article, cluster))
    return result


def _fingerprint(article: Article | NearCandidate) -> NearFingerprint:
    return NearFingerprint(article.minhash, article.shingles)


def _bands(article: Article) -> tuple[int, ...]:
    """The whole text's bands, then the lead's (aggregator.lsh). A rare collision only
    proposes a pair the rule then checks."""
    return article.bands or band_keys(article.minhash, article.lead_minhash)


def _stored_near_cluster(
    article: Article, candidates: Sequence[NearCandidate], settings: NearSettings
) -> str | None:
    mine = _fingerprint(article)
    matches = [
        candidate
        for candidate in candidates
        if candidate.article_id != article.id
        and abs(candidate.published - article.published) <= settings.window
        and is_near_duplicate(mine, _fingerprint(candidate), settings)
    ]
    if not matches:
        return None
    oldest = min(
        matches,
        key=lambda match: (match.cluster_first_seen, match.cluster_published, match.cluster_id),
    )
    return oldest.cluster_id


def _batch_near_cluster(
    article: Article,
    buckets: Mapping[int, Sequence[int]],
    earlier: Sequence[Article],
    settings: NearSettings,
) -> str | None:
    mine = _fingerprint(article)
    proposed = {index for band in _bands(article) for index in buckets.get(band, ())}
    for index in sorted(proposed):
        other = earlier[index]
        if (
            other.id != article.id
            and abs(other.published - article.published) <= settings.window
            and is_near_duplicate(mine, _fingerprint(other), settings)
        ):
            return other.cluster_id
    return None


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
