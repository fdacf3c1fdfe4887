"""`aggregator sources ...` and `aggregator opml ...`: the config's source list, edited in place.

Thin like the rest of the CLI: the YAML editing is aggregator.config.edit, the check fetch is
aggregator.pipeline.discover, OPML is aggregator.opml.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from aggregator.cli.common import EXIT_FAILED, config_or_exit
from aggregator.config import Config, format_duration
from aggregator.config.edit import (
    ConfigEditError,
    add_sources,
    edit_config,
    remove_source,
    set_enabled,
)
from aggregator.config.opml import OpmlError, Subscription, read_opml, source_name, write_opml
from aggregator.redact import mask_text, mask_url
from aggregator.urls import canonical_url

RELOAD_NOTE = "a running daemon picks the change up on SIGHUP (systemctl reload aggregator)"


_config = config_or_exit


def _edit(ctx: click.Context, change: Any) -> Config:
    try:
        return edit_config(ctx.obj, change)
    except ConfigEditError as error:
        click.echo(f"error: {ctx.obj}: {mask_text(str(error))}", err=True)
        ctx.exit(EXIT_FAILED)
        raise  # unreachable: ctx.exit raises


def _same_url(left: str, right: str) -> bool:
    return left == right or canonical_url(left) == canonical_url(right)


def _duplicate(config: Config, name: str | None, url: str | None) -> str | None:
    for index, source in enumerate(config.sources):
        if name is not None and source.name == name:
            return f"a source named {name!r} exists already (sources[{index}])"
        if url and source.url and _same_url(source.url, url):
            return f"{mask_url(url)} is already in the config as {source.name!r} (sources[{index}])"
    return None


@click.group()
def sources() -> None:
    """List, add, remove, enable or disable sources: edits the config's YAML in place,
    keeping its comments and formatting."""


@sources.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.pass_context
def sources_list(ctx: click.Context, as_json: bool) -> None:
    """List the sources of the config: name, kind, enabled, URL or folder, tags, interval."""
    config = _config(ctx)
    rows = [
        {
            "name": source.name,
            "kind": source.kind,
            "enabled": source.enabled,
            # Shown and pasted: the URL without its credentials (`sources list` is no backup).
            "location": mask_url(source.url) if source.url else str(source.path),
            "tags": list(source.tags),
            "interval": format_duration(config.interval(source)),
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
    if kind == "posts":
        folder = Path(url).expanduser().resolve()
        if not no_check and not folder.is_dir():
            click.echo(f"error: {url} is not a folder; nothing changed", err=True)
            ctx.exit(EXIT_FAILED)
        # Typed relative to the shell's folder; the config reads it relative to its own.
        if not Path(url).expanduser().is_absolute():
            url = os.path.relpath(folder, Path(ctx.obj).resolve().parent)
    if kind == "page" and not selector:
        click.echo("error: a page source needs --selector (CSS for its article links)", err=True)
        ctx.exit(EXIT_FAILED)
    if kind != "posts" and not no_check:
        # Imported here: httpx and the parsers are not needed for --help or --no-check.
        from aggregator.pipeline.discover import check_source

        timeout = config.defaults.timeout.total_seconds()
        checked = check_source(url, kind, selector, timeout)
        if not checked.ok:
            click.echo(f"error: {mask_url(checked.url)}: {mask_text(checked.message)}", err=True)
            click.echo("nothing changed; --no-check adds it without checking", err=True)
            ctx.exit(EXIT_FAILED)
        if checked.page_url:
            click.echo(
                f"{mask_url(checked.page_url)} is a page; "
                f"it announces the feed {mask_url(checked.url)}"
            )
            url = checked.url
            problem = _duplicate(config, None, url)
            if problem:
                click.echo(f"error: {problem}; nothing changed", err=True)
                ctx.exit(EXIT_FAILED)
        click.echo(f"checked: {mask_text(checked.message)}")
    entry: dict[str, Any] = {"name": name, "kind": kind, location: url}
    if tags:
        entry["tags"] = list(tags)
    if interval:
        entry["interval"] = interval
    if selector:
        entry["selector"] = selector
    _edit(ctx, lambda text: add_sources(text, [entry]))
    shown = url if kind == "posts" else mask_url(url)
    click.echo(f"added {name!r} ({kind} {shown}) to {ctx.obj}; {RELOAD_NOTE}")


@sources.command("remove")
@click.argument("name")
@click.pass_context
def sources_remove(ctx: click.Context, name: str) -> None:
    """Remove the source NAME from the config (its stored articles stay in the store)."""
    _config(ctx)
    _edit(ctx, lambda text: remove_source(text, name))
    click.echo(f"removed {name!r} from {ctx.obj}; {RELOAD_NOTE}")


def _set_enabled(ctx: click.Context, name: str, enabled: bool) -> None:
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


@click.group()
def opml() -> None:
    """Import sources from the OPML file another feed reader exported, or export them."""


@opml.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tag", "extra_tags", multiple=True, help="Also give every imported feed this tag.")
@click.pass_context
def opml_import(ctx: click.Context, file: Path, extra_tags: tuple[str, ...]) -> None:
    """Add every feed of an OPML 1.0/2.0 FILE as a feed source; folders and `category`
    attributes become tags. Feeds whose URL is in the config already are skipped and counted."""
    config = _config(ctx)
    try:
        found = read_opml(file.read_bytes(), str(file))
    except (OpmlError, OSError) as error:
        click.echo(f"error: {mask_text(str(error))}", err=True)
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
    the folder, every tag in `category`). Folders of posts have no URL and are left out.
    Credentials in a URL (user:password@, api_key=...) are written as *** (see `sources list`):
    such a feed works again only once they are filled in by hand."""
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
