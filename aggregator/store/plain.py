"""Plain SQL through the driver, for the hot path of a pass: each source's lookups and save.

SQLAlchemy Core builds, compiles and binds every statement through its type system; for the
dozen small statements a source's save runs, that cost more than the database's own work.
The statements here are written once as text with `?` placeholders and handed to the driver's
own cursor, inside the SQLAlchemy connection's transaction. Values are bound as the Core types
of tables.py would bind them, so a row written here reads back through Core exactly as one
written there: times as UTCDateTime stores them (naive UTC text on SQLite, aware UTC on
PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from aggregator.errors import StoreError
from aggregator.store.tables import UTCDateTime

# Bound parameters per IN list: far below SQLite's 32766 and PostgreSQL's 65535.
CHUNK = 500

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@lru_cache(maxsize=64)
def marks(count: int) -> str:
    """The placeholders of an IN list or a VALUES row: "(?,?,?)" for 3."""
    return "(" + ",".join("?" * count) + ")"


def time_columns(table: Table) -> frozenset[str]:
    """The columns of `table` that hold times (bound by Plain.time)."""
    return frozenset(c.name for c in table.columns if isinstance(c.type, UTCDateTime))


def upsert(table: Table, key: str, kept: frozenset[str] = frozenset(), where: str = "") -> str:
    """INSERT of every column of `table` in its order; on a conflict on `key`, the columns not
    `kept` take the new values (when `where` holds). SQLite and PostgreSQL share the syntax."""
    names = [column.name for column in table.columns]
    updates = ", ".join(f"{name} = excluded.{name}" for name in names if name not in kept)
    # Names from tables.py, every value bound: nothing here comes from outside.
    columns = f"{table.name} ({', '.join(names)}) VALUES {marks(len(names))}"
    statement = f"INSERT INTO {columns} ON CONFLICT ({key}) DO UPDATE SET {updates}"
    return f"{statement} WHERE {where}" if where else statement


@lru_cache(maxsize=512)
def _format(statement: str) -> str:
    return statement.replace("?", "%s")


class Plain:
    """Runs `?`-placeholder statements on one connection in its driver's own paramstyle.

    Straight on the DB-API cursor: even exec_driver_sql spends more per statement than SQLite
    does on most of these. The transaction stays the SQLAlchemy connection's, and driver
    errors are raised as SQLAlchemy's own would be (so StoreError still names them).
    """

    __slots__ = ("_cursor", "_errors", "_qmark", "connection", "sqlite")

    def __init__(self, connection: Connection) -> None:
        dialect = connection.dialect
        if dialect.name not in ("sqlite", "postgresql"):
            raise StoreError(f"unsupported database {dialect.name!r}: use SQLite or PostgreSQL")
        self.connection = connection
        self.sqlite = dialect.name == "sqlite"
        self._qmark = dialect.paramstyle == "qmark"
        self._cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        self._errors: type[Exception] = dialect.loaded_dbapi.Error

    def sql(self, statement: str) -> str:
        return statement if self._qmark else _format(statement)

    def rows(self, statement: str, parameters: Sequence[Any] = ()) -> Sequence[Any]:
        """Every row a query returns, as tuples."""
        sql = self.sql(statement)
        try:
            self._cursor.execute(sql, tuple(parameters))
            return self._cursor.fetchall()
        except self._errors as error:
            raise self._wrapped(sql, parameters, error) from error

    def run(self, statement: str, parameters: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        sql = self.sql(statement)
        try:
            self._cursor.execute(sql, tuple(parameters))
        except self._errors as error:
            raise self._wrapped(sql, parameters, error) from error
        changed: int = self._cursor.rowcount
        return changed

    def many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement per row, looped by the driver itself (executemany)."""
        if not rows:
            return
        sql = self.sql(statement)
        try:
            self._cursor.executemany(sql, rows)
        except self._errors as error:
            raise self._wrapped(sql, rows, error) from error

    def _wrapped(self, sql: str, parameters: Any, error: Exception) -> BaseException:
        return DBAPIError.instance(
            sql,
            parameters,
            error,
            self._errors,
            hide_parameters=True,
            dialect=self.connection.dialect,
        )

    def time(self, moment: datetime | None) -> Any:
        """A time bound as UTCDateTime binds it: UTC, and on SQLite the naive ISO text
        SQLAlchemy's DateTime writes (always with microseconds, so text order is time order)."""
        if moment is None:
            return None
        if moment.utcoffset() is None:
            raise ValueError(f"naive datetime {moment.isoformat()}: the store needs aware ones")
        utc = moment.astimezone(UTC)
        return utc.replace(tzinfo=None).isoformat(" ", "microseconds") if self.sqlite else utc

    def read_time(self, value: Any) -> datetime:
        """A time read back as UTCDateTime reads it: aware, in UTC. SQLite hands back its naive
        UTC text; PostgreSQL an aware datetime."""
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
