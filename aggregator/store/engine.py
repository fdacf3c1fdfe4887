"""Engines and transactions: SQLite pragmas, BEGIN IMMEDIATE for writes, errors as StoreError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from aggregator.errors import StoreError

BUSY_TIMEOUT_MS = 5000
# Execution option marking a connection whose transaction will write.
_WRITE_OPTION = "aggregator_write"
_SQLITE_PRAGMAS = (
    # busy_timeout first: switching to WAL needs a lock another process may hold.
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    # Before WAL, whose switch writes the file's header: a new file only (an existing one keeps
    # its size). An article row, raw and clean HTML, is about 18 KB: one or two 16 KB pages
    # rather than a chain of five 4 KB ones, and fewer, larger writes per commit
    # (benchmarks/README.md, store_save.py).
    "PRAGMA page_size = 16384",
    "PRAGMA journal_mode = WAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA synchronous = NORMAL",
    # 8 MB of page cache: the LSH band index takes random inserts all over its B-tree, and
    # with less a large pass spends much of its store time re-reading pages; more is no
    # faster with 16 KB pages (benchmarks/README.md, store_save.py).
    "PRAGMA cache_size = -8192",
)


_POSTGRESQL_SETTINGS = (
    # A save waits this long for a lock another node holds (SQLite's busy_timeout, in
    # spirit), then fails its source rather than queue behind a stuck writer.
    "SET lock_timeout = '10s'",
    # A transaction left open (a pass killed mid-save, a hung thread) is ended by the server,
    # and its locks with it; a group transaction is never idle for more than about a second.
    "SET idle_in_transaction_session_timeout = '60s'",
)


def describe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as error:
        raise StoreError(f"invalid store URL {url!r}: {error}") from error


def make_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        _create_parent_folder(url)
    try:
        engine = create_engine(url, pool_pre_ping=url.get_backend_name() != "sqlite")
    except (ArgumentError, ImportError) as error:
        raise StoreError(f"cannot open store {describe(url)}: {error}") from error
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _postgresql_connect)
    return engine


def _create_parent_folder(url: URL) -> None:
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("uri") == "true":
        return
    try:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"cannot create the folder of {database}: {error}") from error


def _sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # pysqlite's own transaction handling never issues BEGIN IMMEDIATE and skips BEGIN
    # before SELECT and DDL; _sqlite_begin takes over.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _postgresql_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Whatever goes wrong in a node, the server itself ends what it leaves holding locks.
    with dbapi_connection.cursor() as cursor:
        for setting in _POSTGRESQL_SETTINGS:
            cursor.execute(setting)
    dbapi_connection.commit()  # a SET in a transaction rolled back would be undone


def _sqlite_begin(connection: Connection) -> None:
    # A deferred transaction that reads and then writes cannot wait for the lock: SQLite
    # fails it at once with "database is locked". IMMEDIATE takes the write lock up front,
    # where busy_timeout applies.
    immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Database failures leave the store as StoreError naming what was being done."""
    try:
        yield
    except SQLAlchemyError as error:
        detail = getattr(error, "orig", None) or error
        raise StoreError(f"{what}: {detail}") from error


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One all-or-nothing write transaction; on SQLite it holds the write lock from BEGIN."""
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE_OPTION: True})
        with connection.begin():
            yield connection


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction that sees one snapshot across all its queries."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection
