"""Shared fixtures."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from aggregator.store import Store

# ---------------------------------------------------------------------------------------------
# Store fixtures: `store_url` and `store` run every test that uses them twice, on a real SQLite
# file and on the real PostgreSQL server (each test in a schema of its own). PostgreSQL being
# down is a failure, never a skip.
# ---------------------------------------------------------------------------------------------

STORE_PG_URL = os.environ.get(
    "AGGREGATOR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def libpq_url(url: str) -> str:
    """The conninfo psycopg itself takes for a SQLAlchemy `postgresql+psycopg://` URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        # A folder that does not exist yet: the store creates it.
        yield f"sqlite:///{tmp_path / 'var' / 'aggregator.db'}"
        return
    schema = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(libpq_url(STORE_PG_URL), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in STORE_PG_URL else "?"
    try:
        yield f"{STORE_PG_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(libpq_url(STORE_PG_URL), autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    opened.migrate()
    try:
        yield opened
    finally:
        opened.close()
