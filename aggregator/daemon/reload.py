"""What a SIGHUP may change in a running daemon, and how a changed interval reaches the store
(the schedule of record)."""

from __future__ import annotations

import dataclasses
import logging

from aggregator.config import Config, format_duration, load_config
from aggregator.daemon.logs import name_sources
from aggregator.errors import ConfigError
from aggregator.store import Store

log = logging.getLogger("aggregator")


def reloaded(running: Config) -> Config | None:
    """The running config's file read again, or None when it has errors (each one logged as
    file:line:col, since the running config stays and nothing else would say why).

    Never raises: the daemon runs this in a task that a signal started and nothing awaits, so
    an exception would only surface as "Task exception was never retrieved", after the
    reload had neither applied nor been counted as refused."""
    try:
        loaded = load_config(running.path)
    except ConfigError as error:
        for problem in error.problems:
            log.error("reload: keeping the running config: %s", problem)
        return None
    except Exception:
        # A config the checks let through and the loader then choked on is a bug of ours;
        # the daemon keeps serving with the running config, the traceback tells what to fix.
        log.exception("reload: keeping the running config: cannot load %s", running.path)
        return None
    old = {source.name for source in running.sources}
    new = {source.name for source in loaded.sources}
    name_sources(old | new)  # a JSON log line about an added source names it too
    log.info(
        "reload: %s: %d sources (%d added, %d removed)",
        loaded.path,
        len(loaded.sources),
        len(new - old),
        len(old - new),
    )
    return keep_fixed(running, loaded)


def keep_fixed(running: Config, loaded: Config) -> Config:
    """The reloaded config, minus what only a restart can change: the listening socket, the
    store and the output folder (open connections and the served folder stay as they are)."""
    for what, old, new in (
        ("server", running.server, loaded.server),
        ("store", running.store, loaded.store),
        ("output.dir", running.output.dir, loaded.output.dir),
    ):
        if old != new:
            log.warning("reload: %s changed; it takes effect at the next restart", what)
    output = loaded.output.model_copy(update={"dir": running.output.dir})
    return loaded.model_copy(
        update={"server": running.server, "store": running.store, "output": output}
    )


def apply_intervals(running: Config, loaded: Config, store: Store) -> None:
    """A changed interval moves a healthy source's next fetch to last fetch + new interval."""
    for source in loaded.sources:
        before = running.source(source.name)
        if before is None or running.interval(before) == loaded.interval(source):
            continue
        state = store.source_state(source.name)
        if state is None or state.last_fetch_at is None or state.error_streak:
            continue  # never fetched: due now anyway; failing: its backoff stands
        due = state.last_fetch_at + loaded.interval(source)
        with store.transaction(f"saving the state of {source.name}") as transaction:
            # Saved as a setting, not as the pass holding its lease (if one does) would.
            transaction.save_state(dataclasses.replace(state, next_fetch_at=due, claimed_by=None))
        log.info(
            "%s: interval now %s; next fetch %s",
            source.name,
            format_duration(loaded.interval(source)),
            due.isoformat(timespec="seconds"),
        )
