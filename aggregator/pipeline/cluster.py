"""Clustering: each new article joins the cluster of a stored or earlier copy of its story."""

from __future__ import annotations

from aggregator.config import Config
from aggregator.dedupe import NearSettings, assign_clusters
from aggregator.models import Article
from aggregator.store import Store


def cluster(config: Config, store: Store, articles: list[Article]) -> list[Article]:
    """Put each article in the cluster of a stored or earlier copy of the same story: the same
    canonical URL or text hash (exact), or a near-duplicate text (MinHash, LSH in the store)."""
    settings = NearSettings(
        jaccard=config.dedupe.jaccard,
        containment=config.dedupe.containment,
        min_shingles=config.dedupe.min_shingles,
        window=config.dedupe.window,
    )
    known = store.find_clusters(
        [article.link for article in articles if article.link],
        [article.content_hash for article in articles if article.content_hash],
    )
    near = store.near_candidates(articles, settings.window)
    return assign_clusters(articles, known, near, settings)
