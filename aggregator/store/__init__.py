"""The SQLModel store: the only package that talks to the database. One door, `Store`: reads
as methods, writes in `Store.transaction()` (a StoreTransaction), so several saves can share
one commit. Everything else exchanges the frozen records of aggregator.models with it.

By what it stores:

    sources.py   each source's state: schedule, validators, last result, counts
    articles.py  articles and their tags: saved (upserts, per-source lock), found again
    near.py      the near-duplicate index: MinHash signatures and their LSH band rows
    bands.py     band rows a transaction holds back until its commit
    feeds.py     what the renderer reads, and the feed-change log per output folder
    audit.py     what the clean stage removed, and re-cleaned bodies

Around them: api.py (Store), batch.py (StoreTransaction), engine.py (engines, pragmas,
transactions, StoreError), tables.py (the schema as SQLModel classes), rows.py (records to rows
and back), plain.py (driver SQL for the hot paths), migrations/ (Alembic).
"""

from aggregator.store.api import Store
from aggregator.store.articles import SaveResult
from aggregator.store.batch import StoreTransaction

__all__ = ["SaveResult", "Store", "StoreTransaction"]
