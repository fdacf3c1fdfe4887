"""`aggregator opml ...`: sources from another feed reader's OPML export, and the config's
sources as OPML for it. Reading and writing OPML is aggregator.config.opml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from aggregator.cli.common import (
    EXIT_FAILED,
    RELOAD_NOTE,
    already_in,
    config_or_exit,
    edit_or_exit,
)
from aggregator.config.edit import add_sources
from aggregator.config.opml import OpmlError, Subscription, read_opml, source_name, write_opml
from aggregator.redact import mask_text


@click.group()
def opml() -> None:
    """Import sources from the OPML file another feed reader exported, or export them.

    \b
    Examples:
      aggregator opml import miniflux.opml --tag imported
      aggregator opml export -o feeds.opml
    """


@opml.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tag", "extra_tags", multiple=True, help="Also give every imported feed this tag.")
@click.pass_context
def opml_import(ctx: click.Context, file: Path, extra_tags: tuple[str, ...]) -> None:
    """Add every feed of an OPML 1.0/2.0 FILE as a feed source; folders and `category`
    attributes become tags. Each outline's title becomes the source's `title` and its htmlUrl
    its `site_url`; its `name` is a short slug of the title (lowercase ASCII, `-2` when taken).
    Feeds whose URL is in the config already are skipped and counted.

    \b
    Examples:
      aggregator opml import freshrss-export.opml
      aggregator opml import feedly.opml --tag feedly
    """
    config = config_or_exit(ctx)
    try:
        found = read_opml(file.read_bytes(), str(file))
    except (OpmlError, OSError) as error:
        click.echo(f"error: {mask_text(str(error))}", err=True)
        ctx.exit(EXIT_FAILED)
    taken = {source.name for source in config.sources}
    entries: list[dict[str, Any]] = []
    present = 0
    for feed in found.feeds:
        if already_in(config, None, feed.url):
            present += 1
            continue
        # An outline with no title of its own is called by its URL: no title then.
        title = feed.title if feed.title != feed.url else None
        name = source_name(title or "", taken, feed.url)
        taken.add(name)
        entry: dict[str, Any] = {"name": name}
        if title:
            entry["title"] = title
        entry |= {"kind": "feed", "url": feed.url}
        if feed.html_url:
            entry["site_url"] = feed.html_url
        tags = list(dict.fromkeys((*feed.tags, *extra_tags)))
        if tags:
            entry["tags"] = tags
        entries.append(entry)
    for message in found.skipped:
        click.echo(f"skipped: {message}", err=True)
    if entries:
        edit_or_exit(ctx, lambda text: add_sources(text, entries))
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
    """Write the config's feed and page sources as OPML 2.0, with their titles (the name when
    a source has none), home pages (htmlUrl) and tags (first tag as the folder, every tag in
    `category`). Folders of posts have no URL and are left out.
    Credentials in a URL (user:password@, api_key=...) are written as *** (see `sources list`):
    such a feed works again only once they are filled in by hand.

    \b
    Examples:
      aggregator opml export > feeds.opml
      aggregator opml export -o /tmp/feeds.opml
    """
    config = config_or_exit(ctx)
    feeds = [
        Subscription(
            title=source.title or source.name,
            url=source.url,
            html_url=source.site_url,
            tags=source.tags,
        )
        for source in config.sources
        if source.url
    ]
    data = write_opml(f"{config.output.title}: sources", feeds)
    if output is None:
        click.echo(data.decode("utf-8"), nl=False)
    else:
        output.write_bytes(data)
        click.echo(f"wrote {len(feeds)} sources to {output}", err=True)
