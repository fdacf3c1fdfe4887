"""What every command module of the CLI shares: exit codes and loading the config or exiting."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from aggregator.config import Config, load_config
from aggregator.errors import AggregatorError, ConfigError

if TYPE_CHECKING:
    from aggregator.store import Store

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2


def config_or_exit(ctx: click.Context) -> Config:
    """The config named on the command line; its problems printed and exit 2 if it is bad."""
    try:
        return load_config(ctx.obj)
    except ConfigError as error:
        click.echo(str(error), err=True)
        ctx.exit(EXIT_BAD_CONFIG)
        raise  # unreachable: ctx.exit raises


def with_store(ctx: click.Context, config: Config, work: Callable[[Store], T]) -> T:
    """`work` on the config's store (migrated, closed after); a store error printed, exit 1."""
    # Imported here: the store's imports (SQLAlchemy, Alembic) would slow every --help.
    from aggregator.pipeline.run import open_store

    try:
        store = open_store(config)
        try:
            return work(store)
        finally:
            store.close()
    except AggregatorError as error:
        click.echo(f"error: {error}", err=True)
        ctx.exit(EXIT_FAILED)
        raise  # unreachable: ctx.exit raises
