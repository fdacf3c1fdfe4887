"""Which sources a pass works on: leases claimed in the store, by the daemon's batches of due
sources or by name (`run --once`, `fetch NAME`), and kept while the pass works on them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aggregator.config import Config, SourceConfig
from aggregator.models import SourceState
from aggregator.nodes import node_name
from aggregator.pipeline.ingest import Ingest
from aggregator.pipeline.report import SourceReport
from aggregator.sources.schedule import is_backing_off
from aggregator.store import Store

log = logging.getLogger("aggregator")

DEFAULT_LEASE = timedelta(seconds=40)  # without a source to take its time-out from


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a claim got: the sources leased to this node (in config order, with their states),
    a report for each one left alone (backing off, held by another node), the lease's length,
    and whether more may be due at once."""

    chosen: list[tuple[SourceConfig, SourceState]] = field(default_factory=list)
    held: list[SourceReport] = field(default_factory=list)
    lease: timedelta = DEFAULT_LEASE
    more: bool = False


def lease_for(config: Config, sources: Iterable[SourceConfig]) -> timedelta:
    """How long a claim holds: twice the longest time-out of the claimed sources. The pass
    renews the leases of the sources it has not finished (keep_leases), so a node that stops
    (killed, frozen) lets its sources go within one lease, however long its pass."""
    longest = max((config.timeout(source) for source in sources), default=None)
    return DEFAULT_LEASE if longest is None else 2 * longest


async def keep_leases(ingest: Ingest, pending: dict[str, int], lease: timedelta) -> None:
    """Every third of a lease, renew the leases of the sources the pass has not finished."""
    while True:
        await asyncio.sleep(lease.total_seconds() / 3)
        if pending:
            await ingest.renew_leases(node_name(), dict(pending), lease)


def claim_due(config: Config, store: Store, now: datetime) -> Claimed:
    """The daemon's tick: a lease on a batch of due sources, found by the store without reading
    every source's state (a tick costs the same for 50 sources as for 50,000); the batch is
    bounded so that several nodes share a backlog (`more`: it came back full, there may be more
    due now). A source the store has that this config does not enable (removed, disabled, or
    new in another node's config) is handed back, not due again for one interval."""
    enabled = {source.name: source for source in config.sources if source.enabled}
    if not enabled:
        return Claimed([], [], DEFAULT_LEASE)
    store.add_sources(list(enabled))
    lease = lease_for(config, enabled.values())
    node = node_name()
    batch = claim_batch(config)
    claimed = store.claim_due(node, now, lease, batch)
    strangers = [state for state in claimed if state.name not in enabled]
    if strangers:
        store.release(node, strangers, now + config.defaults.interval)
    by_name = {state.name: state for state in claimed}
    chosen = [(source, by_name[name]) for name, source in enabled.items() if name in by_name]
    return Claimed(chosen, [], lease, more=len(claimed) == batch)


def claim_named(
    config: Config,
    store: Store,
    now: datetime,
    *,
    retry_failed: bool,
    only: Collection[str] | None = None,
) -> Claimed:
    """`run --once`: every enabled source not backing off (with `retry_failed`, those too),
    due or not; a report for each one backing off or held by another node."""
    states = {state.name: state for state in store.source_states()}
    wanted: list[tuple[SourceConfig, SourceState]] = []
    reports: list[SourceReport] = []
    for source in config.sources:
        if not source.enabled or (only is not None and source.name not in only):
            continue
        state = states.get(source.name) or SourceState(name=source.name)
        if retry_failed:
            wanted.append((source, state))
        elif state.disabled_reason:
            log.warning("%s: disabled: %s", source.name, state.disabled_reason)
        elif is_backing_off(state, now):
            log.warning(
                "%s: backing off after %d failures; next try %s (--retry-failed tries now)",
                source.name,
                state.error_streak,
                state.next_fetch_at.isoformat(timespec="seconds") if state.next_fetch_at else "-",
            )
            reports.append(SourceReport(source.name, backing_off_until=state.next_fetch_at))
        else:
            wanted.append((source, state))
    lease = lease_for(config, [source for source, _ in wanted])
    if not wanted:
        return Claimed([], reports, lease)
    node = node_name()
    names = [source.name for source, _ in wanted]
    claimed = {state.name: state for state in store.claim(node, names, now, lease, due_only=False)}
    if len(claimed) < len(wanted):
        holders = {state.name: state.claimed_by for state in store.source_states(names)}
        for name in names:
            holder = holders.get(name)
            if name not in claimed and holder and holder != node:
                log.info("%s: %s is fetching it; left to it", name, holder)
                reports.append(SourceReport(name, held_by=holder))
    chosen = [(source, claimed[source.name]) for source, _ in wanted if source.name in claimed]
    return Claimed(chosen, reports, lease)


def claim_batch(config: Config) -> int:
    """How many due sources one tick claims: a few rounds of the node's concurrency, so one
    node does not take a whole backlog while others wait."""
    return 4 * config.defaults.concurrency
