"""What every command module of the CLI shares: exit codes and loading the config or exiting."""

from __future__ import annotations

import click

from aggregator.config import Config, load_config
from aggregator.errors import ConfigError

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
