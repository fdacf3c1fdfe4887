"""The SQLModel store: the only package that talks to the database.

Everything else exchanges the frozen records of aggregator.models with it.
"""

from aggregator.store.api import Store
from aggregator.store.batch import StoreTransaction
from aggregator.store.writes import SaveResult

__all__ = ["SaveResult", "Store", "StoreTransaction"]
