"""The `aggregator` command: thin wrappers over config, pipeline, daemon and serve."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from aggregator import __version__
from aggregator.config import Config, config_path, load_config
from aggregator.errors import AggregatorError, ConfigError

EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file. Default: $AGGREGATOR_CONFIG, else config/aggregator.yaml.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every step, not just the outcome.")
@click.version_option(__version__, prog_name="aggregator")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, verbose: bool) -> None:
    """Pull articles from many sources, clean and dedupe them, and republish merged
    RSS, Atom and JSON feeds per tag."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    ctx.obj = config_path(config_file)


def _config(ctx: click.Context) -> Config:
    try:
        return load_config(ctx.obj)
    except ConfigError as error:
        click.echo(str(error), err=True)
        ctx.exit(EXIT_BAD_CONFIG)
        raise  # unreachable: ctx.exit raises


@main.command()
@click.option("--once", is_flag=True, help="One pass over every enabled source, then exit.")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="With --once: also fetch sources backing off after failures.",
)
@click.option("--strict", is_flag=True, help="With --once: exit 1 when any source failed.")
@click.pass_context
def run(ctx: click.Context, once: bool, retry_failed: bool, strict: bool) -> None:
    """Run the daemon: poll every source on its interval, rebuild feeds, serve them over HTTP.

    With --once: one pass, feeds rebuilt, exit 0 (1 with --strict if a source failed)."""
    config = _config(ctx)
    try:
        if once:
            from aggregator.pipeline import open_store, run_pass

            store = open_store(config)
            try:
                report = run_pass(config, store, retry_failed=retry_failed)
            finally:
                store.close()
            skipped = sum(len(source.skipped) for source in report.sources)
            click.echo(
                f"pass: {report.new} new, {skipped} skipped, {len(report.failed)} failed, "
                f"{len(report.written)} files written",
                err=True,
            )
            for failed in report.failed:
                click.echo(f"failed: {failed.name}: {failed.error}", err=True)
            if strict and report.failed:
                ctx.exit(EXIT_FAILED)
            return
        from aggregator.daemon import run_daemon

        run_daemon(config)
    except AggregatorError as error:
        click.echo(f"error: {error}", err=True)
        ctx.exit(EXIT_FAILED)


@main.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the config; every problem is printed as file:line:col: key: message (exit 2)."""
    config = _config(ctx)
    enabled = sum(source.enabled for source in config.sources)
    click.echo(f"{ctx.obj}: ok ({len(config.sources)} sources, {enabled} enabled)")


@main.command()
@click.option("--host", default=None, help="Address to listen on. Default: server.host.")
@click.option("--port", type=int, default=None, help="Port to listen on. Default: server.port.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the output folder over HTTP (no fetching)."""
    from aggregator.serve import serve as serve_folder

    config = _config(ctx)
    serve_folder(config.output.dir, host or config.server.host, port or config.server.port)
