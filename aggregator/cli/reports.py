"""What the store says: `status` (each source's health, schedule and node) and `clusters`
(stories carried by more than one article)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click

from aggregator.cli.common import config_or_exit, with_store


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Per source: health, last fetch, result, new items, entries skipped and undated, error
    streak, next due, last error.

    Health is ok, failing, backing off, dead or disabled. Undated entries carried no date and
    are dated when first seen. With several nodes on one store, `node` shows which fetched a
    source last and which holds it now. URLs are shown without their credentials.

    \b
    Examples:
      aggregator status
      aggregator status --json | jq '.[] | select(.health != "ok")'
    """
    import json

    from aggregator.redact import mask_text, mask_url
    from aggregator.sources.schedule import health

    config = config_or_exit(ctx)
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


@click.command()
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Stories to list."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
@click.pass_context
def clusters(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List stories carried by more than one article, newest first, with every member's
    source and link (the first member is the one the feeds show).

    \b
    Examples:
      aggregator clusters
      aggregator clusters --limit 5 --json
    """
    import json

    config = config_or_exit(ctx)
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
