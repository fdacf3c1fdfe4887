"""The `aggregator` group and its core commands: run, check, status, serve, clusters."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from aggregator import __version__
from aggregator.cli.common import EXIT_FAILED, config_or_exit, with_store
from aggregator.config import config_path
from aggregator.errors import AggregatorError
from aggregator.pipeline.worker import quick_exit
from aggregator.redact import MaskingFormatter, mask_text


class _Commands(click.Group):
    """The command group, taking its own options (`--config`/`-c`, `--verbose`/`-v`) wherever
    they are written: `aggregator sources add X URL -c FILE` is `aggregator -c FILE sources add
    X URL`, as the README promises for every command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _group_options_first(args))


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
        if arg in ("-c", "--config") and index + 1 < len(args):
            first += args[index : index + 2]
            index += 2
            continue
        if arg.startswith("--config=") or arg in ("-v", "--verbose"):
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
@click.version_option(__version__, prog_name="aggregator")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, verbose: bool) -> None:
    """Pull articles from many sources, clean and dedupe them, and republish merged
    RSS, Atom and JSON feeds per tag."""
    _start_light()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # Messages quote URLs, and a source's URL may carry a password or an API key.
    for handler in logging.getLogger().handlers:
        handler.setFormatter(MaskingFormatter("%(levelname)s %(message)s"))
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    ctx.obj = config_path(config_file)


def _start_light() -> None:
    """Two savings on every command, measured in benchmarks/README.md ("Start-up and exit"):
    httpx imports its own command line (click, rich, pygments) whenever they are installed, and
    rich is ours: a None entry makes that import fail, and httpx defines a stub `main` instead
    (its documented fallback). And the collector's last walk at exit is skipped (quick_exit)."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    quick_exit()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


_config = config_or_exit


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr when it is a terminal; nothing when piped (tests parse it)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    with Progress(console=Console(stderr=True), transient=True, redirect_stderr=True) as progress:
        task = progress.add_task("sources", total=None)
        # Log lines go through rich's stderr proxy, printed above the bar instead of through it.
        previous = [handler.setStream(sys.stderr) for handler in handlers]
        try:
            yield lambda done, total: progress.update(task, completed=done, total=total)
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

    With --once: one pass, feeds rebuilt, exit 0 (1 with --strict if a source failed)."""
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
            click.echo(
                f"pass: {report.new} new, {report.skipped} skipped, {unchanged} not modified, "
                f"{len(report.failed)} failed, {len(report.written)} files written",
                err=True,
            )
            for failed in report.failed:
                click.echo(f"failed: {failed.name}: {mask_text(failed.error or '')}", err=True)
            for held in report.sources:
                if held.held_by:
                    click.echo(f"left to {held.held_by}: {held.name} (it is fetching it)", err=True)
            if strict and report.failed:
                ctx.exit(EXIT_FAILED)
            return
        from aggregator.daemon.loop import run_daemon

        status = run_daemon(config)
        if status:
            ctx.exit(status)
    except AggregatorError as error:
        click.echo(f"error: {mask_text(str(error))}", err=True)
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


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Per source: health, last fetch, result, new items, entries skipped and undated, error
    streak, next due, last error."""
    import json

    from aggregator.redact import mask_text, mask_url
    from aggregator.sources.schedule import health

    config = _config(ctx)
    stored, counts = with_store(
        ctx, config, lambda store: (store.source_states(), store.source_item_counts())
    )
    states = {state.name: state for state in stored}
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for source in config.sources:
        state = states.get(source.name)
        problem = (state.disabled_reason or state.last_error) if state else None
        moved_to = state.permanent_url if state else None
        leased = state is not None and state.claimed_until is not None and state.claimed_until > now
        rows.append(
            {
                "name": source.name,
                "kind": source.kind,
                "health": health(state, now, enabled=source.enabled),
                "items": counts.get(source.name, 0),
                "last_fetch": _iso(state.last_fetch_at) if state else None,
                "last_success": _iso(state.last_success_at) if state else None,
                "result": state.last_result if state else None,
                "http_status": state.last_status if state else None,
                "new_items": state.new_items if state else 0,
                "skipped": state.skipped if state else 0,
                "undated": state.undated if state else 0,
                "limited": state.limited if state else 0,
                "error_streak": state.error_streak if state else 0,
                "next_due": _iso(state.next_fetch_at) if state else None,
                # Status output is pasted into tickets and chats: no credentials in it.
                "last_error": mask_text(problem) if problem else None,
                "moved_to": mask_url(moved_to) if moved_to else None,
                # Several nodes on one store: who read it last, and who holds it now.
                "fetched_by": state.fetched_by if state else None,
                "claimed_by": state.claimed_by if state and leased else None,
                "claimed_until": _iso(state.claimed_until) if state and leased else None,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "source",
        "kind",
        "health",
        "items",
        "last fetch",
        "result",
        "new",
        "skipped",
        "undated",
        "streak",
        "next due",
        "node",
        "last error",
        title=f"{len(rows)} sources",
    )
    for row in rows:
        problem = str(row["last_error"] or "")
        if row["moved_to"]:
            problem = f"{problem} (moved permanently to {row['moved_to']})".strip()
        table.add_row(
            *(
                str(row[key] if row[key] is not None else "—")
                for key in (
                    "name",
                    "kind",
                    "health",
                    "items",
                    "last_fetch",
                    "result",
                    "new_items",
                    "skipped",
                    "undated",
                    "error_streak",
                    "next_due",
                )
            ),
            _node(row),
            problem,
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


def _node(row: dict[str, Any]) -> str:
    """The node that fetched a source last, and the one fetching it now if another."""
    last, now = row["fetched_by"], row["claimed_by"]
    if now and now != last:
        return f"{last or '—'} (now {now})"
    return str(last or "—")


@main.command()
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Stories to list."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
@click.pass_context
def clusters(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List stories carried by more than one article, newest first, with every member's
    source and link (the first member is the one the feeds show)."""
    import json

    config = _config(ctx)
    shared = with_store(ctx, config, lambda store: store.shared_clusters(limit))
    if as_json:
        listing = [
            {
                "id": members[0].cluster_id,
                "title": members[0].title,
                "published": members[0].published.isoformat(),
                "members": [
                    {
                        "id": member.id,
                        "source": member.source,
                        "title": member.title,
                        "link": member.link,
                        "published": member.published.isoformat(),
                    }
                    for member in members
                ],
            }
            for members in shared
        ]
        click.echo(json.dumps(listing, ensure_ascii=False, indent=2))
        return
    if not shared:
        click.echo("no story is carried by more than one article")
    for members in shared:
        first = members[0]
        click.echo(f"{first.title}  ({len(members)} articles, id {first.cluster_id})")
        for member in members:
            when = member.published.date().isoformat()
            click.echo(f"  {member.source}  {when}  {member.link or '(no link)'}")
