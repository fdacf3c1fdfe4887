"""The `aggregator` command: thin wrappers over config, pipeline, daemon and serve."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


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
            from aggregator.pipeline.run import open_store, run_pass

            store = open_store(config)
            try:
                report = run_pass(config, store, retry_failed=retry_failed)
            finally:
                store.close()
            unchanged = sum(source.not_modified for source in report.sources)
            click.echo(
                f"pass: {report.new} new, {report.skipped} skipped, {unchanged} not modified, "
                f"{len(report.failed)} failed, {len(report.written)} files written",
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


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Per source: health, last fetch, result, new items, error streak, next due, last error."""
    import json

    from aggregator.pipeline.run import open_store
    from aggregator.schedule import health

    config = _config(ctx)
    try:
        store = open_store(config)
        try:
            states = {state.name: state for state in store.source_states()}
            counts = store.source_item_counts()
        finally:
            store.close()
    except AggregatorError as error:
        click.echo(f"error: {error}", err=True)
        ctx.exit(EXIT_FAILED)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for source in config.sources:
        state = states.get(source.name)
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
                "error_streak": state.error_streak if state else 0,
                "next_due": _iso(state.next_fetch_at) if state else None,
                "last_error": (state.disabled_reason or state.last_error) if state else None,
                "moved_to": state.permanent_url if state else None,
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
        "streak",
        "next due",
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
                    "error_streak",
                    "next_due",
                )
            ),
            problem,
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


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

    from aggregator.pipeline.run import open_store

    config = _config(ctx)
    try:
        store = open_store(config)
        try:
            shared = store.shared_clusters(limit)
        finally:
            store.close()
    except AggregatorError as error:
        click.echo(f"error: {error}", err=True)
        ctx.exit(EXIT_FAILED)
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


# ---- sources and opml: editing the config's source list -------------------------------------

RELOAD_NOTE = "a running daemon picks the change up on SIGHUP (systemctl reload aggregator)"


def _edit(ctx: click.Context, change: Any) -> Config:
    from aggregator.configedit import ConfigEditError, edit_config

    try:
        return edit_config(ctx.obj, change)
    except ConfigEditError as error:
        click.echo(f"error: {ctx.obj}: {error}", err=True)
        ctx.exit(EXIT_FAILED)
        raise  # unreachable: ctx.exit raises


def _same_url(left: str, right: str) -> bool:
    from aggregator.urls import canonical_url

    return left == right or canonical_url(left) == canonical_url(right)


def _duplicate(config: Config, name: str | None, url: str | None) -> str | None:
    for index, source in enumerate(config.sources):
        if name is not None and source.name == name:
            return f"a source named {name!r} exists already (sources[{index}])"
        if url and source.url and _same_url(source.url, url):
            return f"{url} is already in the config as {source.name!r} (sources[{index}])"
    return None


@main.group()
def sources() -> None:
    """List, add, remove, enable or disable sources: edits the config's YAML in place,
    keeping its comments and formatting."""


@sources.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.pass_context
def sources_list(ctx: click.Context, as_json: bool) -> None:
    """List the sources of the config: name, kind, enabled, URL or folder, tags, interval."""
    import json

    config = _config(ctx)
    rows = [
        {
            "name": source.name,
            "kind": source.kind,
            "enabled": source.enabled,
            "location": source.url or str(source.path),
            "tags": list(source.tags),
            "interval": str(config.interval(source)),
        }
        for source in config.sources
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "kind", "enabled", "url or path", "tags", "interval")
    table.title = f"{len(rows)} sources in {ctx.obj}"
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["kind"]),
            "yes" if row["enabled"] else "no",
            str(row["location"]),
            ", ".join(row["tags"]),  # type: ignore[arg-type]
            str(row["interval"]),
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


@sources.command("add")
@click.argument("name")
@click.argument("url")
@click.option(
    "--kind",
    type=click.Choice(["feed", "page", "posts"]),
    default="feed",
    show_default=True,
    help="feed: RSS/Atom/JSON (an HTML page's announced feed is found); page: a listing page "
    "read with --selector; posts: URL is a folder of posts.",
)
@click.option("--tag", "tags", multiple=True, help="A tag for its articles; repeat for more.")
@click.option("--interval", default=None, help="How often to poll it, e.g. 10m or 1h.")
@click.option("--selector", default=None, help="page sources: CSS selector of article links.")
@click.option("--no-check", is_flag=True, help="Add it without fetching it first.")
@click.pass_context
def sources_add(  # noqa: PLR0917 (one parameter per click option)
    ctx: click.Context,
    name: str,
    url: str,
    kind: str,
    tags: tuple[str, ...],
    interval: str | None,
    selector: str | None,
    no_check: bool,
) -> None:
    """Add a source at the end of the config's `sources:` list.

    A feed URL is fetched once to check it (--no-check skips that); when it is an HTML page,
    the feed it announces (<link rel="alternate">) is added instead. A name or URL already in
    the config is refused (exit 1)."""
    config = _config(ctx)
    location = "path" if kind == "posts" else "url"
    problem = _duplicate(config, name, url if kind != "posts" else None)
    if problem:
        click.echo(f"error: {problem}; nothing changed", err=True)
        ctx.exit(EXIT_FAILED)
    if kind == "page" and not selector:
        click.echo("error: a page source needs --selector (CSS for its article links)", err=True)
        ctx.exit(EXIT_FAILED)
    if kind != "posts" and not no_check:
        from aggregator.pipeline.discover import check_source

        timeout = config.defaults.timeout.total_seconds()
        checked = check_source(url, kind, selector, timeout)
        if not checked.ok:
            click.echo(f"error: {checked.url}: {checked.message}", err=True)
            click.echo("nothing changed; --no-check adds it without checking", err=True)
            ctx.exit(EXIT_FAILED)
        if checked.page_url:
            click.echo(f"{checked.page_url} is a page; it announces the feed {checked.url}")
            url = checked.url
            problem = _duplicate(config, None, url)
            if problem:
                click.echo(f"error: {problem}; nothing changed", err=True)
                ctx.exit(EXIT_FAILED)
        click.echo(f"checked: {checked.message}")
    entry: dict[str, Any] = {"name": name, "kind": kind, location: url}
    if tags:
        entry["tags"] = list(tags)
    if interval:
        entry["interval"] = interval
    if selector:
        entry["selector"] = selector
    from aggregator.configedit import add_sources

    _edit(ctx, lambda text: add_sources(text, [entry]))
    click.echo(f"added {name!r} ({kind} {url}) to {ctx.obj}; {RELOAD_NOTE}")


@sources.command("remove")
@click.argument("name")
@click.pass_context
def sources_remove(ctx: click.Context, name: str) -> None:
    """Remove the source NAME from the config (its stored articles stay in the store)."""
    from aggregator.configedit import remove_source

    _config(ctx)
    _edit(ctx, lambda text: remove_source(text, name))
    click.echo(f"removed {name!r} from {ctx.obj}; {RELOAD_NOTE}")


def _set_enabled(ctx: click.Context, name: str, enabled: bool) -> None:
    from aggregator.configedit import set_enabled

    config = _config(ctx)
    source = config.source(name)
    if source is None:
        click.echo(f"error: no source named {name!r} in {ctx.obj}", err=True)
        ctx.exit(EXIT_FAILED)
    word = "enabled" if enabled else "disabled"
    if source is not None and source.enabled == enabled:
        click.echo(f"{name!r} is {word} already; nothing changed")
        return
    _edit(ctx, lambda text: set_enabled(text, name, enabled))
    click.echo(f"{word} {name!r} in {ctx.obj}; {RELOAD_NOTE}")


@sources.command("enable")
@click.argument("name")
@click.pass_context
def sources_enable(ctx: click.Context, name: str) -> None:
    """Enable the source NAME: it is polled again (removes its `enabled: false`)."""
    _set_enabled(ctx, name, True)


@sources.command("disable")
@click.argument("name")
@click.pass_context
def sources_disable(ctx: click.Context, name: str) -> None:
    """Disable the source NAME: it stays in the config but is not polled (`enabled: false`)."""
    _set_enabled(ctx, name, False)


@main.group()
def opml() -> None:
    """Import sources from the OPML file another feed reader exported, or export them."""


@opml.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tag", "extra_tags", multiple=True, help="Also give every imported feed this tag.")
@click.pass_context
def opml_import(ctx: click.Context, file: Path, extra_tags: tuple[str, ...]) -> None:
    """Add every feed of an OPML 1.0/2.0 FILE as a feed source; folders and `category`
    attributes become tags. Feeds whose URL is in the config already are skipped and counted."""
    from aggregator.configedit import add_sources
    from aggregator.opml import OpmlError, read_opml, source_name

    config = _config(ctx)
    try:
        found = read_opml(file.read_bytes(), str(file))
    except (OpmlError, OSError) as error:
        click.echo(f"error: {error}", err=True)
        ctx.exit(EXIT_FAILED)
    taken = {source.name for source in config.sources}
    entries: list[dict[str, Any]] = []
    present = 0
    for feed in found.feeds:
        if _duplicate(config, None, feed.url):
            present += 1
            continue
        name = source_name(feed.title, taken)
        taken.add(name)
        entry: dict[str, Any] = {"name": name, "kind": "feed", "url": feed.url}
        tags = list(dict.fromkeys((*feed.tags, *extra_tags)))
        if tags:
            entry["tags"] = tags
        entries.append(entry)
    for message in found.skipped:
        click.echo(f"skipped: {message}", err=True)
    if entries:
        _edit(ctx, lambda text: add_sources(text, entries))
    click.echo(
        f"imported {len(entries)} feeds from {file}; skipped {present} already in the config, "
        f"{found.repeated} repeated in the file, {len(found.skipped)} not feeds"
        + (f"; {RELOAD_NOTE}" if entries else "")
    )


@opml.command("export")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of stdout.",
)
@click.pass_context
def opml_export(ctx: click.Context, output: Path | None) -> None:
    """Write the config's feed and page sources as OPML 2.0, with their tags (first tag as
    the folder, every tag in `category`). Folders of posts have no URL and are left out."""
    from aggregator.opml import Subscription, write_opml

    config = _config(ctx)
    feeds = [
        Subscription(title=source.name, url=source.url, tags=source.tags)
        for source in config.sources
        if source.url
    ]
    data = write_opml(f"{config.output.title}: sources", feeds)
    if output is None:
        click.echo(data.decode("utf-8"), nl=False)
    else:
        output.write_bytes(data)
        click.echo(f"wrote {len(feeds)} sources to {output}", err=True)
