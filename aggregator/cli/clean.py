"""`aggregator explain` and `aggregator reclean`: why the clean stage removed what it removed,
and cleaning stored articles again after a rule change. Thin: the work is in
aggregator.pipeline.reclean."""

from __future__ import annotations

import json

import click

from aggregator.cli.common import (
    EXIT_FAILED,
    complete_source,
    config_or_exit,
    source_or_exit,
    with_store,
)


@click.command()
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
@click.pass_context
def explain(ctx: click.Context, reference: str, as_json: bool) -> None:
    """Show a stored article (by id or URL), its source, and which clean rules fired on it
    with samples of what they removed: why text vanished.

    REFERENCE is an article's id, or its link in any spelling (tracking parameters and the
    fragment do not count).

    \b
    Examples:
      aggregator explain https://www.zaobao.com/news/china/story20240501-1
      aggregator explain 3f2a9c1e --json
    """
    from aggregator.pipeline.reclean import explain as explain_article

    config = config_or_exit(ctx)
    found = with_store(ctx, config, lambda store: explain_article(config, store, reference))
    if found is None:
        click.echo(f"error: no stored article has the id or URL {reference!r}", err=True)
        ctx.exit(EXIT_FAILED)
        return
    article, source = found.article, found.source
    audit = None if found.audit is None else [hit._asdict() for hit in found.audit]
    if as_json:
        document = {
            "id": article.id,
            "title": article.title,
            "link": article.link,
            "published": article.published.isoformat(),
            "source": source.name if source else article.source,
            "source_kind": source.kind if source else None,
            "source_location": str(source.url or source.path) if source else None,
            "kept_characters": len(article.content_html),
            "raw_characters": len(article.raw_html),
            "source_rules": {"drop": list(found.drop), "drop_text": list(found.drop_text)},
            "rules": audit,
        }
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    click.echo(article.title)
    click.echo(f"  id:        {article.id}")
    click.echo(f"  link:      {article.link or '(none)'}")
    click.echo(f"  published: {article.published.isoformat()}")
    if source is None:
        click.echo(f"  source:    {article.source} (no longer in the config)")
    else:
        click.echo(f"  source:    {source.name} ({source.kind}, {source.url or source.path})")
    click.echo(
        f"  body:      {len(article.raw_html)} characters raw, "
        f"{len(article.content_html)} kept after cleaning"
    )
    for name, values in (("drop", found.drop), ("drop_text", found.drop_text)):
        if values:
            click.echo(f"  clean.{name}: {', '.join(values)}")
    if found.audit is None:
        click.echo("no audit: cleaned before audits were kept; `aggregator reclean` records one")
        return
    if not found.audit:
        click.echo("no clean rule fired: nothing was removed")
        return
    click.echo("rules that fired:")
    for hit in found.audit:
        click.echo(f"  {hit.rule} x{hit.times}")
        for sample in hit.samples:
            click.echo(f"      removed: {sample}")


@click.command()
@click.option(
    "--source",
    "source",
    default=None,
    shell_complete=complete_source,
    help="Only this source's articles.",
)
@click.pass_context
def reclean(ctx: click.Context, source: str | None) -> None:
    """Clean stored articles again from their raw HTML with the config's current rules, save
    those that changed, and re-render the feeds.

    Run it after adding or changing a `clean` rule; ids, dates, tags and stories stay. Running
    it twice changes nothing the second time.

    \b
    Examples:
      aggregator reclean
      aggregator reclean --source sina-finance
    """
    from aggregator.pipeline.reclean import reclean as reclean_articles

    config = config_or_exit(ctx)
    if source is not None:
        source_or_exit(ctx, config, source)
    report = with_store(ctx, config, lambda store: reclean_articles(config, store, source))
    click.echo(
        f"re-cleaned {report.seen} articles: {len(report.changed)} changed, "
        f"{len(report.written)} files rendered"
    )
    if report.orphans:
        click.echo(f"left as they are, their source no longer in the config: {report.orphans}")
