"""Sources: each one's state (schedule, validators, last result, counts), one row per source."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from aggregator.models import SourceState
from aggregator.store.plain import Plain, time_columns, upsert
from aggregator.store.rows import STATE_FIELDS, state_from_row
from aggregator.store.tables import ARTICLE, SOURCE_STATE


def source_state(connection: Connection, name: str) -> SourceState | None:
    query = select(SOURCE_STATE).where(SOURCE_STATE.c.name == name)
    row = connection.execute(query).mappings().first()
    return None if row is None else state_from_row(row)


def source_states(connection: Connection) -> list[SourceState]:
    rows = connection.execute(select(SOURCE_STATE)).mappings()
    return sorted((state_from_row(row) for row in rows), key=lambda state: state.name)


def source_item_counts(connection: Connection) -> dict[str, int]:
    query = select(ARTICLE.c.source, func.count()).group_by(ARTICLE.c.source)
    return {source: count for source, count in connection.execute(query)}


_STATE_TIMES = time_columns(SOURCE_STATE)

_STATE_COLUMNS = tuple(column.name for column in SOURCE_STATE.columns)

_UPSERT_STATE = upsert(SOURCE_STATE, "name", frozenset({"name"}))


def save_state(connection: Connection, state: SourceState) -> None:
    _save_state(Plain(connection), state)


def _save_state(plain: Plain, state: SourceState) -> None:
    values = {name: getattr(state, name) for name in STATE_FIELDS}
    for name in _STATE_TIMES:
        values[name] = plain.time(values[name])
    plain.run(_UPSERT_STATE, tuple(values[name] for name in _STATE_COLUMNS))
