"""Identity and fingerprints of one article: the worker half of the dedupe stage (the MinHash
kernel, or numpy); see aggregator.dedupe."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

from aggregator.dedupe.minhash import MIN_CHARS, near_values, normalise
from aggregator.models import Article, CleanedHtml, Entry
from aggregator.urls import remove_tracking_parameters

# A fixed namespace so ids are the same on every machine and every run.
_ARTICLE_NAMESPACE = uuid.UUID("5b0c3b4e-6a53-4d0b-9a4e-6a1f0c1d2e3f")
MIN_HASHED_CHARS = MIN_CHARS
# LSH banding: the 128 MinHash values in 32 bands of 4. Two texts become candidates when one
# band is equal in both: probability 1 − (1 − J⁴)³², 0.87 at J = 0.5, 0.99 at J = 0.6. The 32
# values of the lead add 8 bands, numbered after those (aggregator.dedupe.lsh); the store
# indexes the keys each article carries.


def article_id(source: str, key: str) -> str:
    """A name-based UUID of (source, key): the same on every machine and every run."""
    return str(uuid.uuid5(_ARTICLE_NAMESPACE, f"{source}\x00{key}"))


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
    near = near_values(normalised)
    return Article(
        id=identity,
        source=entry.source,
        key=entry.key,
        title=entry.title,
        link=remove_tracking_parameters(entry.link) if entry.link else None,
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
        minhash=near.minhash if near else (),
        shingles=near.shingles if near else 0,
        lead_minhash=near.lead if near else (),
        bands=near.bands if near else (),
        clean_audit=cleaned.removed,
        dated=entry.dated,
    )
