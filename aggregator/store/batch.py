"""A write transaction several jobs share: the lookups a save depends on and the save itself.

The pass groups the saves of many sources into one transaction (one commit instead of one per
source), and each source's cluster lookup must see what the sources before it saved; so the
lookups run on the same connection as the writes, inside the same BEGIN IMMEDIATE.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Connection

from aggregator.models import Article, KnownCopy, NearCandidate, SourceState
from aggregator.store import articles as article_rows
from aggregator.store import near, sources
from aggregator.store.articles import SaveResult
from aggregator.store.bands import PendingBands
from aggregator.store.engine import store_errors
from aggregator.store.plain import Plain

_SAVEPOINT = "SAVEPOINT job"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT job"
_RELEASE = "RELEASE SAVEPOINT job"


class StoreTransaction:
    """The store's write methods bound to one open transaction (see Store.transaction)."""

    def __init__(self, connection: Connection, store_name: str = "store") -> None:
        self._connection = connection
        self._store_name = store_name
        # The LSH band rows of every save here, inserted at the end (store/bands.py).
        self._bands = PendingBands()
        self.broken = False  # a failed part could not be undone alone: only a rollback is left

    @contextmanager
    def savepoint(self, what: str = "saving") -> Iterator[None]:
        """A part of the transaction that fails alone: on an exception its writes (and the
        band rows it held) are undone and the rest of the transaction stands. If even the
        undoing fails (SQLite rolls the whole transaction back on some I/O errors), `broken`
        is set: nothing of the transaction can be committed any more."""
        held = self._bands.mark()
        with store_errors(f"{self._store_name}: {what}"):
            # Plain statements rather than SQLAlchemy's begin_nested: a re-pass takes one
            # savepoint per unchanged source, and SQLAlchemy's bookkeeping of each cost several
            # times the save inside it (benchmarks/README.md). Jobs never nest, so one name does.
            plain = Plain(self._connection)
            plain.run(_SAVEPOINT)
            try:
                yield
            except BaseException as error:
                try:
                    plain.run(_ROLLBACK_TO)
                    plain.run(_RELEASE)
                except Exception:
                    self.broken = True
                    raise error from None  # the cause, not the failed undoing, names the job
                self._bands.rollback_to(held)
                raise
            plain.run(_RELEASE)

    def find_clusters(
        self, canonical_urls: Collection[str], content_hashes: Collection[str]
    ) -> dict[str, tuple[KnownCopy, ...]]:
        """Cluster ids of stored articles with these canonical URLs or text hashes."""
        return article_rows.find_clusters(self._connection, canonical_urls, content_hashes)

    def near_candidates(
        self, articles: Sequence[Article], window: timedelta
    ) -> dict[str, list[NearCandidate]]:
        """Per article id: the stored articles its MinHash shares an LSH band with, published
        within `window` of it (itself excepted). Articles without a signature get none."""
        signed = [article for article in articles if article.minhash]
        return near.candidates(self._connection, signed, window, self._bands) if signed else {}

    def save_articles(
        self, source: str, articles: Sequence[Article], state: SourceState
    ) -> SaveResult:
        """Insert new articles, update changed ones in place, and save the source's state."""
        strangers = sorted({article.source for article in articles} - {source})
        if strangers or state.name != source:
            raise ValueError(
                f"save_articles({source!r}) got articles of {strangers} and state {state.name!r}"
            )
        now = datetime.now(UTC)
        return article_rows.save_articles(self._connection, articles, state, now, self._bands)

    def save_state(self, state: SourceState) -> None:
        sources.save_state(self._connection, state)

    def renew(self, node: str, tokens: Mapping[str, int], until: datetime) -> set[str]:
        """Extend `node`'s leases (source name: fencing token) to `until`: the names of those
        it still held."""
        return sources.renew(self._connection, node, tokens, until)

    def finish(self) -> None:
        """Write what the saves held back; Store.transaction calls it just before the commit."""
        self._bands.flush(self._connection)
