"""Clustering: each new article joins the cluster of a stored or earlier copy of its story."""

from __future__ import annotations

from aggregator.config import Config
from aggregator.dedupe import NearSettings, assign_clusters
from aggregator.models import Article
from aggregator.store import StoreTransaction
from aggregator.urls import canonical_url


def cluster(
    config: Config, transaction: StoreTransaction, articles: list[Article]
) -> list[Article]:
    """Put each article in the cluster of a stored or earlier copy of the same story: the same
    canonical URL or text hash (exact), or a near-duplicate text (MinHash, LSH in the store).

    Runs in the transaction that saves the articles, so no other save can come between the
    lookup and the save and let two copies of a story miss each other."""
    settings = NearSettings(
        jaccard=config.dedupe.jaccard,
        containment=config.dedupe.containment,
        min_shingles=config.dedupe.min_shingles,
        window=config.dedupe.window,
    )
    known = transaction.find_clusters(
        [canonical_url(article.link) for article in articles if article.link],
        [article.content_hash for article in articles if article.content_hash],
    )
    near = transaction.near_candidates(articles, settings.window)
    return assign_clusters(articles, known, near, settings)
