"""The `aggregator` group and its core commands: run, check, fetch, serve."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from aggregator import __version__
from aggregator.cli.common import (
    EXIT_BAD_CONFIG,
    EXIT_FAILED,
    complete_source,
    config_or_exit,
    fail,
    say,
    source_or_exit,
)
from aggregator.config import config_path
from aggregator.daemon.logs import LOG_FORMATS, LogFormat
from aggregator.daemon.logs import configure as configure_logs
from aggregator.errors import AggregatorError
from aggregator.pipeline.worker import quick_exit
from aggregator.redact import mask_text


class _Commands(click.Group):
    """The command group, taking its own options (`--config`/`-c`, `--verbose`/`-v`) wherever
    they are written: `aggregator sources add X URL -c FILE` is `aggregator -c FILE sources add
    X URL`, as the README promises for every command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _group_options_first(args))


_GROUP_VALUED = ("-c", "--config", "--log-format")


def _group_options_first(args: list[str]) -> list[str]:
    """`args` with the group's options moved in front of the subcommand (never past `--`)."""
    first: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest += args[index:]
            break
        if arg in _GROUP_VALUED and index + 1 < len(args):
            first += args[index : index + 2]
            index += 2
            continue
        if arg.startswith(("--config=", "--log-format=")) or arg in ("-v", "--verbose"):
            first.append(arg)
        else:
            rest.append(arg)
        index += 1
    return first + rest


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file. Default: $AGGREGATOR_CONFIG, else config/aggregator.yaml.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every step, not just the outcome.")
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    envvar="AGGREGATOR_LOG_FORMAT",
    help="text: one line per event (time, level, source: message); json: one JSON object per "
    "line (time, level, logger, source, message). Also $AGGREGATOR_LOG_FORMAT.",
)
@click.version_option(__version__, prog_name="aggregator")
@click.pass_context
def main(
    ctx: click.Context, config_file: Path | None, verbose: bool, log_format: LogFormat
) -> None:
    """Pull articles from many sources, clean and dedupe them, and republish merged
    RSS, Atom and JSON feeds per tag.

    Every command takes -c/--config, -v and --log-format before or after its name; the config
    is --config, else $AGGREGATOR_CONFIG, else config/aggregator.yaml. Logs go to stderr.

    \b
    Examples:
      aggregator check  # is the config right? (exit 2 if not)
      aggregator -c /etc/aggregator/aggregator.yaml run
      aggregator run --once  # one pass over every source, then exit
      aggregator fetch hn  # poll one source now
      aggregator status --json
      aggregator sources add --help  # what a command does, with examples
    """
    _start_light()
    configure_logs(verbose=verbose, log_format=log_format)
    ctx.obj = config_path(config_file)


def _start_light() -> None:
    """Two savings on every command, measured in benchmarks/README.md ("Start-up and exit"):
    httpx imports its own command line (click, rich, pygments) whenever they are installed, and
    rich is ours: a None entry makes that import fail, and httpx defines a stub `main` instead
    (its documented fallback). And the collector's last walk at exit is skipped (quick_exit)."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    quick_exit()


_config = config_or_exit


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None] | None]:
    """A bar on stderr when it is a terminal, a step per source finished; nothing when piped
    (a log file or a test reads stderr line by line)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    columns = (TextColumn("sources"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(
        *columns, console=Console(stderr=True), transient=True, redirect_stderr=True
    ) as progress:
        task = progress.add_task("sources", total=None)

        def advance(done: int, total: int) -> None:
            # Drawn now, not at the bar's next tick: the log lines printed above it show the
            # bar as last drawn, and the sources of one commit finish within a millisecond, so
            # between two ticks a dozen lines went by with the same stale count.
            progress.update(task, completed=done, total=total, refresh=True)

        # Log lines go through rich's stderr proxy, printed above the bar instead of through it.
        previous = [handler.setStream(sys.stderr) for handler in handlers]
        try:
            yield advance
        finally:
            for handler, stream in zip(handlers, previous, strict=True):
                if stream is not None:
                    handler.setStream(stream)


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

    The daemon serves the output folder on server.host:server.port with /healthz and /metrics;
    SIGHUP reloads the config, SIGTERM (or Ctrl-C) lets the sources in flight finish and exits.

    With --once: one pass over every enabled source (those backing off after failures are
    left out unless --retry-failed), the feeds rebuilt, then exit: 0 when the pass completed,
    even if sources failed (each named on stderr), 1 with --strict if one did, 2 on a bad
    config. A progress bar shows on a terminal.

    \b
    Examples:
      aggregator run  # the daemon, until SIGTERM
      aggregator run --once  # one pass, then exit
      aggregator run --once --strict  # ... exit 1 if any source failed (cron)
      aggregator --log-format json run  # logs as JSON lines, for a log shipper
    """
    config = _config(ctx)
    try:
        if once:
            from aggregator.pipeline.run import open_store, run_pass

            store = open_store(config)
            try:
                with _progress_bar() as progress:
                    report = run_pass(config, store, retry_failed=retry_failed, progress=progress)
            finally:
                store.close()
            unchanged = sum(source.not_modified for source in report.sources)
            say(
                ctx,
                f"pass: {report.new} new, {report.skipped} skipped, {unchanged} not modified, "
                f"{len(report.failed)} failed, {len(report.written)} files written",
            )
            for failed in report.failed:
                say(ctx, f"failed: {failed.name}: {mask_text(failed.error or '')}", logging.ERROR)
            for held in report.sources:
                if held.held_by:
                    say(ctx, f"left to {held.held_by}: {held.name} (it is fetching it)")
            if strict and report.failed:
                ctx.exit(EXIT_FAILED)
            return
        from aggregator.daemon.loop import run_daemon

        status = run_daemon(config)
        if status:
            ctx.exit(status)
    except AggregatorError as error:
        fail(ctx, str(error))


@main.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Check the config, and what a run of it would hit on this machine, as this user.

    Every problem at once, each as file:line:col: key: message with a hint (did you mean
    `url`?, use 10m or 1h, ...): unknown keys, wrong types, bad durations, sizes, URLs and
    selectors, duplicate names; then no sources at all, a missing posts folder, a store or
    output folder this user cannot write, a path inside a system folder. Exit 2 when there is
    one, else 0. Warnings (a relative path that resolves outside the config's folder, every
    source disabled) are printed too and leave the exit status 0. `systemctl reload` and the
    unit's start run it first, as the service's user.

    \b
    Examples:
      aggregator check
      aggregator -c /etc/aggregator/aggregator.yaml check
    """
    from aggregator.config.preflight import preflight

    config = _config(ctx)
    found = preflight(config)
    for problem in sorted([*found.errors, *found.warnings], key=lambda p: (p.line, p.column)):
        warning = problem.message.startswith("warning: ")
        say(ctx, str(problem), logging.WARNING if warning else logging.ERROR)
    if found.errors:
        ctx.exit(EXIT_BAD_CONFIG)
    enabled = sum(source.enabled for source in config.sources)
    warned = len(found.warnings)
    also = f"; {warned} warning{'s' if warned != 1 else ''}" if warned else ""
    click.echo(f"{ctx.obj}: ok ({len(config.sources)} sources, {enabled} enabled{also})")


@main.command()
@click.argument("name", shell_complete=complete_source)
@click.pass_context
def fetch(ctx: click.Context, name: str) -> None:
    """Poll the source NAME now, whatever its schedule or backoff, and say what it got.

    It goes through the same pipeline as a pass of the daemon: fetched (conditionally, with
    its ETag and Last-Modified), parsed, cleaned, deduped and stored, then the feeds of what
    changed rendered. A source another node (or a running daemon) is fetching right now is
    left to it: its lease is respected. Exit 0 when it was read, 1 when it failed, was left to
    another node, or is not in the config (with the nearest names).

    \b
    Examples:
      aggregator fetch zaobao-china
      aggregator -c /etc/aggregator/aggregator.yaml fetch hn
    """
    config = _config(ctx)
    source = source_or_exit(ctx, config, name)
    if not source.enabled:
        fail(
            ctx,
            f"it is disabled in {ctx.obj}; `aggregator sources enable {name}` first",
            about=name,
        )
    from aggregator.pipeline.run import open_store, run_pass

    try:
        store = open_store(config)
        try:
            # retry_failed: a source backing off (or given up on) is fetched all the same.
            report = run_pass(config, store, retry_failed=True, only={name})
        finally:
            store.close()
    except AggregatorError as error:
        fail(ctx, str(error))
    got = next((each for each in report.sources if each.name == name), None)
    if got is None or got.held_by:
        holder = got.held_by if got and got.held_by else "another node"
        fail(
            ctx,
            f"not fetched: {holder} is fetching it now (its lease); try again later",
            about=name,
        )
    if got.error:
        fail(ctx, f"failed: {got.error}", about=name)
    if got.not_modified:
        click.echo(f"{name}: not modified since the last fetch: 0 new, 0 updated (unchanged)")
    else:
        click.echo(
            f"{name}: {got.new} new, {got.changed} updated, {len(got.skipped)} skipped"
            f"; {len(report.written)} files written"
        )


@main.command()
@click.option("--host", default=None, help="Address to listen on. Default: server.host.")
@click.option("--port", type=int, default=None, help="Port to listen on. Default: server.port.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the output folder over HTTP, without fetching anything.

    The feeds, index and pages a pass rendered, with ETag, Last-Modified and gzip, and
    /healthz; for a look at the output while no daemon runs (the daemon serves it itself).

    \b
    Examples:
      aggregator serve  # on server.host:server.port
      aggregator serve --host 0.0.0.0 --port 9000
    """
    from aggregator.serve import serve as serve_folder

    config = _config(ctx)
    serve_folder(config.output.dir, host or config.server.host, port or config.server.port)
