"""Sources: each one's state (schedule, validators, last result, counts), one row per source,
and the lease a node holds on it while it fetches it (several nodes on one store)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from aggregator.errors import LeaseLostError
from aggregator.models import SourceState
from aggregator.nodes import local_process_gone
from aggregator.store.plain import Plain, chunks, marks, time_columns
from aggregator.store.rows import STATE_FIELDS, state_from_row
from aggregator.store.tables import ARTICLE, SOURCE_STATE


def source_state(connection: Connection, name: str) -> SourceState | None:
    query = select(SOURCE_STATE).where(SOURCE_STATE.c.name == name)
    row = connection.execute(query).mappings().first()
    return None if row is None else state_from_row(row)


def source_states(connection: Connection, names: Sequence[str] | None = None) -> list[SourceState]:
    """Every source's state, or those of `names`."""
    if names is None:
        rows = list(connection.execute(select(SOURCE_STATE)).mappings())
    else:
        rows = []
        for chunk in chunks(names):
            query = select(SOURCE_STATE).where(SOURCE_STATE.c.name.in_(chunk))
            rows += connection.execute(query).mappings()
    return sorted((state_from_row(row) for row in rows), key=lambda state: state.name)


def troubled_states(connection: Connection) -> list[SourceState]:
    """The states of sources with an error streak or disabled by the store: the only ones a
    health summary can find failing."""
    query = select(SOURCE_STATE).where(
        (SOURCE_STATE.c.error_streak > 0) | SOURCE_STATE.c.disabled_reason.is_not(None)
    )
    return [state_from_row(row) for row in connection.execute(query).mappings()]


def node_counts(connection: Connection, now: datetime) -> tuple[dict[str, int], dict[str, int]]:
    """Sources per node: by the node that fetched each last, and by the node holding a live
    lease on it now."""
    fetched = select(SOURCE_STATE.c.fetched_by, func.count()).group_by(SOURCE_STATE.c.fetched_by)
    held = (
        select(SOURCE_STATE.c.claimed_by, func.count())
        .where(SOURCE_STATE.c.claimed_until > now)
        .group_by(SOURCE_STATE.c.claimed_by)
    )
    return (
        {node: count for node, count in connection.execute(fetched) if node},
        {node: count for node, count in connection.execute(held) if node},
    )


def source_item_counts(connection: Connection) -> dict[str, int]:
    query = select(ARTICLE.c.source, func.count()).group_by(ARTICLE.c.source)
    return {source: count for source, count in connection.execute(query)}


_STATE_TIMES = time_columns(SOURCE_STATE)
# A save writes what a pass learnt of a source; the lease columns belong to claim and release.
# The statements are built from tables.py's column names; every value is bound.
_LEASE = ("claimed_by", "claimed_until", "claim_token")
_SAVED = tuple(name for name in STATE_FIELDS if name not in _LEASE)
_UPSERT_STATE = (
    f"INSERT INTO source_state ({', '.join(_SAVED)}) VALUES {marks(len(_SAVED))}"  # noqa: S608
    f" ON CONFLICT (name) DO UPDATE SET"
    f" {', '.join(f'{name} = excluded.{name}' for name in _SAVED if name != 'name')}"
)
# A leased source: saved only while the claim that fetched it still holds, which it releases.
_FENCED_SAVE = (
    f"UPDATE source_state SET {', '.join(f'{name} = ?' for name in _SAVED if name != 'name')},"  # noqa: S608
    " claimed_by = NULL, claimed_until = NULL WHERE name = ? AND claim_token = ?"
)
_HOLDER = "SELECT claimed_by FROM source_state WHERE name = ?"
_ADD_UNSEEN = (
    f"INSERT INTO source_state ({', '.join(_SAVED)}) VALUES {marks(len(_SAVED))}"  # noqa: S608
    " ON CONFLICT (name) DO NOTHING"
)
_COLUMNS = ", ".join(STATE_FIELDS)
# The lease's condition: free, run out, or the asking node's own.
_FREE = "(claimed_until IS NULL OR claimed_until <= ? OR claimed_by = ?)"
_DUE = "(next_fetch_at IS NULL OR next_fetch_at <= ?)"
# Due, not held (not even by the asking node: those are its pass's own), not disabled, most
# overdue first: what a tick takes, without naming sources.
_UNHELD = "(claimed_until IS NULL OR claimed_until <= ?)"
_CLAIMABLE_DUE = (
    f"SELECT name FROM source_state WHERE {_DUE} AND {_UNHELD} AND disabled_reason IS NULL"  # noqa: S608
    " ORDER BY next_fetch_at NULLS FIRST, name LIMIT ?"
)
_CLAIM = (
    "UPDATE source_state SET claimed_by = ?, claimed_until = ?, claim_token = claim_token + 1"  # noqa: S608
    " WHERE name IN ({chosen}) RETURNING " + _COLUMNS
)
_CLAIMABLE = "SELECT name FROM source_state WHERE name {names} AND " + _FREE  # noqa: S608
_LOCAL_HOLDERS = (
    "SELECT DISTINCT claimed_by FROM source_state WHERE claimed_by LIKE ? AND claimed_until > ?"
)
_FREE_HOLDERS = (
    "UPDATE source_state SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ?"
)
_RENEW = (
    "UPDATE source_state SET claimed_until = ?"
    # Only while the lease is still the node's own, under the same claim.
    " WHERE name = ? AND claimed_by = ? AND claim_token = ?"
)
_RELEASE = (
    "UPDATE source_state SET claimed_by = NULL, claimed_until = NULL"
    " WHERE name = ? AND claimed_by = ? AND claim_token = ?"
)
_POSTPONE = (
    "UPDATE source_state SET claimed_by = NULL, claimed_until = NULL, next_fetch_at = ?"
    " WHERE name = ? AND claimed_by = ? AND claim_token = ?"
)


def save_state(connection: Connection, state: SourceState) -> None:
    """Save what a pass learnt of a source. A state that came with a claim is saved only while
    that claim's token still holds (LeaseLostError otherwise), and the save releases the lease."""
    plain = Plain(connection)
    values = [getattr(state, name) for name in _SAVED]
    for index, name in enumerate(_SAVED):
        if name in _STATE_TIMES:
            values[index] = plain.time(values[index])
    if state.claimed_by is None:
        plain.run(_UPSERT_STATE, values)
        return
    changed = plain.run(_FENCED_SAVE, [*values[1:], state.name, state.claim_token])
    if changed == 0:
        holder = plain.rows(_HOLDER, (state.name,))
        raise LeaseLostError(state.name, holder[0][0] if holder else None)


def claim(
    connection: Connection,
    node: str,
    names: Sequence[str],
    now: datetime,
    until: datetime,
    *,
    due_only: bool,
) -> list[SourceState]:
    """Lease to `node`, until `until`, those of `names` that no other node holds (and that are
    due, with `due_only`), each with a new fencing token; their current states. Sources never
    seen get a row first. On PostgreSQL the rows are taken FOR UPDATE SKIP LOCKED, so nodes
    claiming at once take disjoint sets without waiting on each other; SQLite's writer lock
    serialises claims on its own."""
    add_sources(connection, names)
    plain = Plain(connection)
    _free_dead_local_holders(plain, node, now)
    condition = " AND " + _DUE if due_only else ""
    claimed: list[SourceState] = []
    for chunk in chunks(names):
        if plain.sqlite:
            chosen = _CLAIMABLE.format(names="IN " + marks(len(chunk))) + condition
            parameters: list[Any] = [*chunk, plain.time(now), node]
        else:
            chosen = _CLAIMABLE.format(names="= ANY(?)") + condition + " FOR UPDATE SKIP LOCKED"
            parameters = [list(chunk), plain.time(now), node]
        if due_only:
            parameters.append(plain.time(now))
        statement = _CLAIM.format(chosen=chosen)
        rows = plain.rows(statement, [node, plain.time(until), *parameters])
        claimed += [_state(plain, row) for row in rows]
    order = {name: position for position, name in enumerate(names)}
    return sorted(claimed, key=lambda state: order[state.name])


def add_sources(connection: Connection, names: Sequence[str]) -> None:
    """A row for each of `names` that has none: a source never fetched is due at once."""
    unseen = [SourceState(name=name) for name in names]
    Plain(connection).many(
        _ADD_UNSEEN, [[getattr(state, name) for name in _SAVED] for state in unseen]
    )


def claim_due(
    connection: Connection, node: str, now: datetime, until: datetime, limit: int
) -> list[SourceState]:
    """Lease to `node`, until `until`, at most `limit` due sources no other node holds, most
    overdue first; their states, each with a new fencing token. On PostgreSQL FOR UPDATE SKIP
    LOCKED lets nodes claiming at once take disjoint batches without waiting on each other."""
    plain = Plain(connection)
    _free_dead_local_holders(plain, node, now)
    chosen = _CLAIMABLE_DUE + ("" if plain.sqlite else " FOR UPDATE SKIP LOCKED")
    moment = plain.time(now)
    rows = plain.rows(
        _CLAIM.format(chosen=chosen), [node, plain.time(until), moment, moment, limit]
    )
    claimed = [_state(plain, row) for row in rows]
    # RETURNING keeps no order: the claim's own, never fetched first.
    return sorted(
        claimed,
        key=lambda state: (state.next_fetch_at is not None, state.next_fetch_at or now, state.name),
    )


def release(
    connection: Connection,
    node: str,
    states: Sequence[SourceState],
    next_fetch_at: datetime | None = None,
) -> None:
    """Give back leases `node` took and did not use (a pass stopped before it got to them);
    with `next_fetch_at`, not due again before then."""
    plain = Plain(connection)
    if next_fetch_at is None:
        plain.many(_RELEASE, [(state.name, node, state.claim_token) for state in states])
    else:
        moment = plain.time(next_fetch_at)
        plain.many(_POSTPONE, [(moment, state.name, node, state.claim_token) for state in states])


def renew(
    connection: Connection, node: str, tokens: Mapping[str, int], until: datetime
) -> set[str]:
    """Extend the leases `node` still holds, each under the token of its claim; the names of
    those it still held."""
    plain = Plain(connection)
    moment = plain.time(until)
    return {
        name for name, token in tokens.items() if plain.run(_RENEW, (moment, name, node, token))
    }


def _free_dead_local_holders(plain: Plain, node: str, now: datetime) -> None:
    """Leases held by processes of this machine that are gone (a daemon killed and restarted):
    free at once, not when they run out."""
    host, _, _ = node.rpartition(":")
    for (holder,) in plain.rows(_LOCAL_HOLDERS, (f"{host}:%", plain.time(now))):
        if holder != node and local_process_gone(holder):
            plain.run(_FREE_HOLDERS, (holder,))


def _state(plain: Plain, row: Sequence[Any]) -> SourceState:
    values = dict(zip(STATE_FIELDS, row, strict=True))
    for name in _STATE_TIMES:
        if values[name] is not None:
            values[name] = plain.read_time(values[name])
    return SourceState(**values)
