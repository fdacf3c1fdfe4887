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

from typing import TYPE_CHECKING, Any

from aggregator.dedupe.clusters import (
    DEFAULT_NEAR_SETTINGS,
    NearFingerprint,
    NearSettings,
    assign_clusters,
    fingerprints,
    is_near_duplicate,
    merge_cluster,
)

if TYPE_CHECKING:
    from aggregator.dedupe.identity import (
        MIN_HASHED_CHARS,
        article_id,
        identify,
        text_fingerprint,
    )
    from aggregator.dedupe.minhash import near_fingerprint

__all__ = [
    "DEFAULT_NEAR_SETTINGS",
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

# The worker half loads the MinHash kernel, or numpy (16 MB) where the kernel was not built;
# the main process, which only clusters and merges, gets these names from here without either.
_LAZY = {
    "MIN_HASHED_CHARS": "identity",
    "article_id": "identity",
    "identify": "identity",
    "text_fingerprint": "identity",
    "near_fingerprint": "minhash",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aggregator.dedupe' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    return getattr(importlib.import_module(f"aggregator.dedupe.{module}"), name)
