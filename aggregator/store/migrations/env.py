"""Alembic environment: runs on the connection Store.migrate() passes in config.attributes.

Store.migrate() has already begun the transaction and taken the migration lock on it, so
alembic joins that transaction instead of opening its own.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from aggregator.store.tables import METADATA


def run_migrations() -> None:
    if context.is_offline_mode():
        raise RuntimeError("offline (--sql) migrations are not supported; use Store.migrate()")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("no connection given: run migrations through Store.migrate()")
    context.configure(
        connection=connection,
        target_metadata=METADATA,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
