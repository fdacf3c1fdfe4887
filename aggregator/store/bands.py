"""The LSH band rows of one write transaction, held back and inserted together before it commits.

Band keys are random 64-bit numbers, so one source's 800 band rows land on as many different
leaves of the band index; once the index outgrows SQLite's page cache, nearly every row costs
a page read, and the dirty pages are spilled and written again as the transaction goes on.
Held until the end of the transaction and inserted in key order, the rows of all its sources
reach each leaf together, in one sweep. Lookups in the same transaction see the held rows
(`matches`), so no reader can tell them from inserted ones: other transactions see neither
before the commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy.engine import Connection

from aggregator.store.plain import Plain

INSERT_BAND = "INSERT INTO article_band (band_key, article_seq) VALUES (?, ?)"


def insert_bands(connection: Connection, rows: Iterable[tuple[int, int]]) -> None:
    """Insert (band_key, article_seq) rows, in key order: neighbours share index pages."""
    Plain(connection).many(INSERT_BAND, sorted(rows))


class PendingBands:
    """Band rows saved in this transaction and not inserted yet, by band key."""

    __slots__ = ("_seqs",)

    def __init__(self) -> None:
        self._seqs: defaultdict[int, set[int]] = defaultdict(set)  # band key -> article seqs

    def add(self, rows: Iterable[tuple[int, int]]) -> None:
        for key, seq in rows:
            self._seqs[key].add(seq)

    def discard(self, rows: Iterable[tuple[int, int]]) -> None:
        """Forget rows of an index entry removed before the commit."""
        for key, seq in rows:
            seqs = self._seqs.get(key)
            if seqs is not None:
                seqs.discard(seq)

    def matches(self, keys: Iterable[int]) -> list[tuple[int, int]]:
        """(article_seq, band_key) of the held rows with these keys, as the lookup query gives
        them for inserted rows."""
        seqs = self._seqs
        return [(seq, key) for key in keys if key in seqs for seq in seqs[key]]

    def flush(self, connection: Connection) -> None:
        """Insert every held row (inside the transaction, before its commit)."""
        rows = [(key, seq) for key, seqs in self._seqs.items() for seq in seqs]
        self._seqs.clear()
        insert_bands(connection, rows)
