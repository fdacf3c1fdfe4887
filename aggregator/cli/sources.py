"""`aggregator sources ...`: the config's source list, edited in place.

Thin like the rest of the CLI: the YAML editing is aggregator.config.edit, the check fetch is
aggregator.pipeline.discover.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from aggregator.cli.common import (
    EXIT_FAILED,
    RELOAD_NOTE,
    already_in,
    complete_source,
    config_or_exit,
    edit_or_exit,
    fail,
    source_or_exit,
)
from aggregator.config import Config, SourceConfig, format_duration
from aggregator.config.edit import (
    add_sources,
    remove_source,
    set_enabled,
)
from aggregator.config.hints import value_problems
from aggregator.config.opml import (
    display_title,
)
from aggregator.redact import mask_text, mask_url
from aggregator.urls import is_web_url

_config = config_or_exit


# What each key of a source is called on the `sources add` command line.
_OPTION_OF = {
    "name": "NAME",
    "url": "URL",
    "path": "URL",
    "kind": "--kind",
    "tags": "--tag",
    "interval": "--interval",
    "selector": "--selector",
    "title": "--title",
}


def _check_options(ctx: click.Context, entry: dict[str, Any]) -> None:
    """Refuse (exit 1) options that would make a bad source, each named as typed, with the
    hint `check` gives for the same value in the YAML."""
    given = {key: value for key, value in entry.items() if value not in (None, ())}
    problems = value_problems(SourceConfig, given)
    for key, message in problems:
        option = _OPTION_OF.get(key)
        click.echo(f"error: {option}: {message}" if option else f"error: {message}", err=True)
    if problems:
        click.echo("nothing changed", err=True)
        ctx.exit(EXIT_FAILED)


def _note_new_tags(config: Config, tags: tuple[str, ...]) -> None:
    """A --tag no source or rule has yet may be a typo of one that exists: say so (a new tag
    is fine too, so this is a note, not a refusal)."""
    known = {tag for source in config.sources for tag in source.tags}
    known |= {rule.tag for rule in config.rules}
    folded = {tag.casefold() for tag in known}
    for tag in tags:
        if tag.casefold() not in folded and known:
            close = difflib.get_close_matches(tag, sorted(known), n=3, cutoff=0.75)
            if close:
                shown = " or ".join(repr(each) for each in close)
                click.echo(
                    f"note: no source has the tag {tag!r} yet; did you mean {shown}?", err=True
                )


@click.group()
def sources() -> None:
    """List, add, remove, enable or disable sources: edits the config's YAML in place,
    keeping its comments and formatting.

    Every line outside the source a command touches stays byte for byte; an edit that would
    make the config invalid is refused with the config's own file:line:col error. A running
    daemon picks the change up on SIGHUP (systemctl reload aggregator).

    \b
    Examples:
      aggregator sources list
      aggregator sources add hn https://news.ycombinator.com/rss --tag tech
      aggregator sources disable hn
    """


@sources.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.pass_context
def sources_list(ctx: click.Context, as_json: bool) -> None:
    """List the sources of the config: name, kind, enabled, URL or folder, tags, interval.

    URLs are shown without their credentials (user:password@, api_key=... as ***).

    \b
    Examples:
      aggregator sources list
      aggregator sources list --json
    """
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
@click.option(
    "--title",
    default=None,
    help="The name readers see (provenance, pages, OPML); default: the feed's own title.",
)
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
    title: str | None,
    no_check: bool,
) -> None:
    """Add a source at the end of the config's `sources:` list.

    A feed URL is fetched once to check it (--no-check skips that); when it is an HTML page,
    the feed it announces (<link rel="alternate">) is added instead. The feed's own title and
    home page become the source's `title` and `site_url` (--title sets another). A name or URL
    already in the config is refused (exit 1). Every option is checked before the URL is
    fetched; a --tag that no source has yet but is close to one gets a note.

    \b
    Examples:
      aggregator sources add zaobao https://www.zaobao.com/realtime/china/rss.xml --tag china
      aggregator sources add blog https://blog.example.org/  # its announced feed is added
      aggregator sources add city https://example.org/city/ --kind page --selector "ul.news a"
      aggregator sources add notes ~/notes/_posts --kind posts --interval 1h
      aggregator sources add intranet https://feeds.corp.example/all.xml --no-check
    """
    config = _config(ctx)
    site_url: str | None = None
    location = "path" if kind == "posts" else "url"
    problem = already_in(config, name, url if kind != "posts" else None)
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
    # Every option is checked before the fetch, which may take a while and would be for nothing.
    wanted = {"name": name, "title": title, "kind": kind, location: url, "tags": tags}
    _check_options(ctx, {**wanted, "interval": interval, "selector": selector})
    _note_new_tags(config, tags)
    if kind != "posts" and not no_check:
        # Imported here: httpx and the parsers are not needed for --help or --no-check.
        from aggregator.pipeline.discover import check_source

        timeout = config.defaults.timeout.total_seconds()
        checked = check_source(url, kind, selector, timeout)
        if not checked.ok:
            fail(
                ctx,
                f"{checked.message}; nothing changed (--no-check adds it without checking)",
                about=mask_url(checked.url),
            )
        if checked.page_url:
            click.echo(
                f"{mask_url(checked.page_url)} is a page; "
                f"it announces the feed {mask_url(checked.url)}"
            )
            url = checked.url
            problem = already_in(config, None, url)
            if problem:
                click.echo(f"error: {problem}; nothing changed", err=True)
                ctx.exit(EXIT_FAILED)
        click.echo(f"checked: {mask_text(checked.message)}")
        if title is None:  # --title as typed; the config's check refuses what it cannot hold
            title = display_title(checked.title)
        # A feed's <link> may be relative or junk; the page that announced it is home too.
        home = checked.home if checked.home and is_web_url(checked.home) else checked.page_url
        site_url = home if home and home != url else None
    entry: dict[str, Any] = {"name": name}
    if title is not None:
        entry["title"] = title
    entry |= {"kind": kind, location: url}
    if site_url:
        entry["site_url"] = site_url
    if tags:
        entry["tags"] = list(tags)
    if interval:
        entry["interval"] = interval
    if selector:
        entry["selector"] = selector
    edit_or_exit(ctx, lambda text: add_sources(text, [entry]))
    shown = url if kind == "posts" else mask_url(url)
    click.echo(f"added {name!r} ({kind} {shown}) to {ctx.obj}; {RELOAD_NOTE}")


@sources.command("remove")
@click.argument("name", shell_complete=complete_source)
@click.pass_context
def sources_remove(ctx: click.Context, name: str) -> None:
    """Remove the source NAME from the config (its stored articles stay in the store).

    Only the source's own lines go; every other line of the file stays byte for byte. A name
    the config does not have is refused with the nearest ones (exit 1).

    \b
    Examples:
      aggregator sources remove zaobao-china
      aggregator -c /etc/aggregator/aggregator.yaml sources remove hn
    """
    source_or_exit(ctx, _config(ctx), name)
    edit_or_exit(ctx, lambda text: remove_source(text, name))
    click.echo(f"removed {name!r} from {ctx.obj}; {RELOAD_NOTE}")


def _set_enabled(ctx: click.Context, name: str, enabled: bool) -> None:
    source = source_or_exit(ctx, _config(ctx), name)
    word = "enabled" if enabled else "disabled"
    if source.enabled == enabled:
        click.echo(f"{name!r} is {word} already; nothing changed")
        return
    edit_or_exit(ctx, lambda text: set_enabled(text, name, enabled))
    click.echo(f"{word} {name!r} in {ctx.obj}; {RELOAD_NOTE}")


@sources.command("enable")
@click.argument("name", shell_complete=complete_source)
@click.pass_context
def sources_enable(ctx: click.Context, name: str) -> None:
    """Enable the source NAME: it is polled again (removes its `enabled: false`).

    \b
    Examples:
      aggregator sources enable sina-finance
      systemctl reload aggregator  # then tell a running daemon
    """
    _set_enabled(ctx, name, True)


@sources.command("disable")
@click.argument("name", shell_complete=complete_source)
@click.pass_context
def sources_disable(ctx: click.Context, name: str) -> None:
    """Disable the source NAME: it stays in the config but is not polled (`enabled: false`).

    Its stored articles stay in the feeds until they age out.

    \b
    Examples:
      aggregator sources disable sina-finance
    """
    _set_enabled(ctx, name, False)
