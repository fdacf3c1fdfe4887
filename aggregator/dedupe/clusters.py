"""Clusters of one story: the pure-Python half of the dedupe stage (no numpy), which the main
process runs in the transaction that saves the articles; see aggregator.dedupe."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from aggregator.dedupe.lsh import band_keys
from aggregator.models import Article, FeedItem, KnownCopy, NearCandidate, Provenance
from aggregator.urls import canonical_url


@dataclass(frozen=True, slots=True)
class NearFingerprint:
    minhash: tuple[int, ...]  # minhash.PERMUTATIONS values, each < 2**32
    shingles: int  # distinct 5-grams of the normalised text
    lead: tuple[int, ...] = ()  # minhash.LEAD_PERMUTATIONS values over the first LEAD_CHARS


def estimate_jaccard(first: Sequence[int], second: Sequence[int]) -> float:
    """Share of equal MinHash values: an unbiased estimate of |A∩B| / |A∪B|."""
    if len(first) != len(second) or not first:
        raise ValueError("signatures of different lengths cannot be compared")
    return sum(1 for one, other in zip(first, second, strict=True) if one == other) / len(first)


def estimate_containment(jaccard: float, size: int, other_size: int) -> float:
    """|A∩B| / min(|A|, |B|) from the Jaccard similarity and the two set sizes."""
    smaller = min(size, other_size)
    if smaller <= 0:
        return 0.0
    return min(1.0, jaccard * (size + other_size) / ((1 + jaccard) * smaller))


@dataclass(frozen=True, slots=True)
class NearSettings:
    """When a candidate counts as the same story (the config's `dedupe` section)."""

    jaccard: float = 0.5
    containment: float = 0.8
    min_shingles: int = 100  # containment only counts when the shorter text has this many
    window: timedelta = timedelta(days=7)  # candidates published at most this far apart


DEFAULT_NEAR_SETTINGS = NearSettings()


def fingerprints(article: Article) -> tuple[str, ...]:
    """The exact-match keys of an article: its canonical URL and its text hash."""
    link = canonical_url(article.link) if article.link else None
    return tuple(key for key in (link, article.content_hash) if key)


def can_join(article: Article, copy: KnownCopy, *, same_link: bool) -> bool:
    """Whether an article may be the same story as a copy it shares a URL or a text with
    (`same_link`: the URL).

    Another source's copy, yes: that is what clustering is for. A copy from the article's own
    source is another entry of the same feed (the ids differ), and two entries of one feed are
    two posts, whatever they share (a page every episode links to, a `#fragment` apart, a
    sponsor paragraph, a listing's text), unless both the link and the title are the same:
    then it is the same post again under a new guid, and it stays one story."""
    if copy.source != article.source:
        return True
    return same_link and copy.title == article.title


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
    known: Mapping[str, Sequence[KnownCopy]],
    near: Mapping[str, Sequence[NearCandidate]] | None = None,
    settings: NearSettings = DEFAULT_NEAR_SETTINGS,
) -> list[Article]:
    """Put each article in the cluster of the first stored or earlier article it matches.

    `known` maps fingerprints of stored articles to their copies, oldest story first (see
    `fingerprints`); `near` maps article ids to the stored articles the LSH index proposed for
    them. An exact match wins; then the oldest stored cluster of a near duplicate; then the
    first earlier article of this batch that is a near duplicate. Only copies `can_join`
    allows count, and near duplicates only from other sources.
    """
    seen: dict[str, list[KnownCopy]] = {key: list(copies) for key, copies in known.items()}
    near = near or {}
    buckets: dict[int, list[int]] = defaultdict(list)  # band -> indexes in `result`
    result: list[Article] = []
    for article in articles:
        keys = fingerprints(article)
        matches = [
            (copy, key == keys[0] and article.link is not None)
            for key in keys
            for copy in seen.get(key, ())
        ]
        # A story that holds another post of this article's own source is that post's story.
        others = {
            copy.cluster_id
            for copy, same_link in matches
            if not can_join(article, copy, same_link=same_link)
        }
        cluster = _exact_cluster(article, matches, others)
        if cluster is None and article.minhash:
            candidates = near.get(article.id, ())
            others |= {c.cluster_id for c in candidates if c.source == article.source}
            cluster = _stored_near_cluster(article, candidates, settings, others)
            if cluster is None:
                cluster = _batch_near_cluster(article, buckets, result, settings)
        cluster = cluster or article.id
        for key in keys:
            seen.setdefault(key, []).append(KnownCopy(cluster, article.source, article.title))
        for band in _bands(article):
            buckets[band].append(len(result))
        result.append(article if cluster == article.cluster_id else _in_cluster(article, cluster))
    return result


def _exact_cluster(
    article: Article, matches: Sequence[tuple[KnownCopy, bool]], others: Collection[str]
) -> str | None:
    """The story of the first copy the article may join: one under the same title first,
    then any other, except by a link that one source gave to several stories (a show's home
    page, which every episode links to, says nothing about which episode this is)."""
    allowed = [
        (copy, same_link)
        for copy, same_link in matches
        if copy.cluster_id not in others and can_join(article, copy, same_link=same_link)
    ]
    titled = next((copy for copy, _ in allowed if copy.title == article.title), None)
    if titled is not None:
        return titled.cluster_id
    stories: dict[str, set[str]] = defaultdict(set)  # a source's stories under this link
    for copy, same_link in matches:
        if same_link:
            stories[copy.source].add(copy.cluster_id)
    return next(
        (
            copy.cluster_id
            for copy, same_link in allowed
            if not same_link or len(stories[copy.source]) == 1
        ),
        None,
    )


def _fingerprint(article: Article | NearCandidate) -> NearFingerprint:
    return NearFingerprint(article.minhash, article.shingles)


def _bands(article: Article) -> tuple[int, ...]:
    """The whole text's bands, then the lead's (aggregator.dedupe.lsh). A rare collision only
    proposes a pair the rule then checks."""
    return article.bands or band_keys(article.minhash, article.lead_minhash)


def _stored_near_cluster(
    article: Article,
    candidates: Sequence[NearCandidate],
    settings: NearSettings,
    others: Collection[str] = (),
) -> str | None:
    mine = _fingerprint(article)
    matches = [
        candidate
        for candidate in candidates
        if candidate.article_id != article.id
        and candidate.source != article.source
        and candidate.cluster_id not in others
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
            and other.source != article.source
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
