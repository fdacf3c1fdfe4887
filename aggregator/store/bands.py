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

from collections.abc import Iterable, Sequence
from operator import itemgetter

from sqlalchemy.engine import Connection

from aggregator.store.plain import Plain

INSERT_BAND = "INSERT INTO article_band (band_key, article_seq) VALUES (?, ?)"
# PostgreSQL: every row in one statement, as two arrays (executemany is a round trip a row).
_INSERT_BANDS = (
    "INSERT INTO article_band (band_key, article_seq)"
    " SELECT * FROM unnest(?::bigint[], ?::integer[])"
)


def insert_bands(connection: Connection, rows: Iterable[tuple[int, int]]) -> None:
    """Insert (band_key, article_seq) rows, in key order: neighbours share index pages."""
    ordered = sorted(rows, key=itemgetter(0))  # by the key alone: twice as fast as by the pair
    if not ordered:
        return
    plain = Plain(connection)
    if plain.sqlite:
        plain.many(INSERT_BAND, ordered)
    else:
        keys, seqs = zip(*ordered, strict=True)
        plain.run(_INSERT_BANDS, (list(keys), list(seqs)))


class PendingBands:
    """Band rows saved in this transaction and not inserted yet.

    Tens of thousands of rows per transaction, so the common case stays in C: a key no held
    row has yet (nearly all of them) goes into one dict in bulk; only a key several articles
    share takes the slow path.
    """

    __slots__ = ("_before_discard", "_more", "_rows", "_seq")

    def __init__(self) -> None:
        self._rows: list[tuple[int, int]] = []  # (band_key, article_seq), as inserted
        self._seq: dict[int, int] = {}  # band key -> the seq of the first held row with it
        self._more: dict[int, list[int]] = {}  # band key -> the seqs of the other rows with it
        # The rows as they were at the last mark(), kept only once a discard changes them:
        # rows are otherwise only ever appended, so a length is mark enough.
        self._before_discard: list[tuple[int, int]] | None = None

    def mark(self) -> int:
        """A point to come back to with rollback_to (a savepoint's start)."""
        self._before_discard = None
        return len(self._rows)

    def rollback_to(self, mark: int) -> None:
        """Forget what was held or discarded since `mark` (its savepoint was rolled back)."""
        rows = self._rows if self._before_discard is None else self._before_discard
        self._before_discard = None
        if len(rows) != mark or rows is not self._rows:
            self._reset(rows[:mark])

    def add(self, rows: Sequence[tuple[int, int]]) -> None:
        self._rows.extend(rows)
        keys = [key for key, _ in rows]
        if self._seq.keys().isdisjoint(keys) and len(set(keys)) == len(keys):
            self._seq.update(rows)
            return
        for key, seq in rows:
            if key in self._seq:
                self._more.setdefault(key, []).append(seq)
            else:
                self._seq[key] = seq

    def discard(self, rows: Sequence[tuple[int, int]]) -> None:
        """Forget rows of an index entry removed before the commit (rare: a changed article)."""
        gone = set(rows)
        if not gone.intersection(self._rows):
            return
        if self._before_discard is None:
            self._before_discard = list(self._rows)
        self._reset([row for row in self._rows if row not in gone])

    def _reset(self, rows: list[tuple[int, int]]) -> None:
        self._rows = []
        self._seq.clear()
        self._more.clear()
        self.add(rows)

    def matches(self, keys: Iterable[int]) -> list[tuple[int, int]]:
        """(article_seq, band_key) of the held rows with these keys, as the lookup query gives
        them for inserted rows."""
        found = [(self._seq[key], key) for key in keys if key in self._seq]
        if self._more:
            found += [(seq, key) for _, key in found for seq in self._more.get(key, ())]
        return found

    def flush(self, connection: Connection) -> None:
        """Insert every held row (inside the transaction, before its commit)."""
        rows, self._rows = self._rows, []
        self._seq.clear()
        self._more.clear()
        insert_bands(connection, rows)
