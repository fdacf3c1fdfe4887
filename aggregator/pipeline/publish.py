"""Publishing: the store's clusters merged into feed items and handed to render."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from pathlib import Path

from aggregator.config import Config
from aggregator.dedupe import merge_cluster
from aggregator.models import Article, FeedData, FeedItem, SiteSettings, SourceHealth
from aggregator.pipeline.run import render_key
from aggregator.render import remove_leftovers, render_site, tags_without_pages
from aggregator.sources.schedule import health as source_health
from aggregator.store import Store
from aggregator.tags import slugify

log = logging.getLogger("aggregator")


def publish(
    config: Config, store: Store, touched: Collection[str] | None = None
) -> tuple[Path, ...]:
    """Render the all-stories feed, the feeds of the tags in `touched` (of every tag when None)
    with their HTML pages, the index, the sources page and the OPML. A tag whose page is
    missing from the output folder is rendered too, so the index never links to a 404.

    The daemon passes the slugs its pass touched, so a pass that changed one tag reads and
    renders that tag's feeds and leaves the others' files (and their ETags) alone.
    """
    limit = config.output.items_per_feed
    # The user's own tags (of sources and rules) first, then the entries' own categories.
    chosen = {slugify(tag) for source in config.sources for tag in source.tags}
    chosen |= {slugify(rule.tag) for rule in config.rules}
    tags = sorted(store.tag_summaries(), key=lambda tag: tag.slug not in chosen)
    if touched is not None:
        touched = set(touched) | tags_without_pages(config.output.dir, [tag.slug for tag in tags])
    feeds = [FeedData(None, config.output.title, _items(store.clusters(None, limit)))]
    feeds += [
        FeedData(tag.slug, tag.name, _items(store.clusters(tag.slug, limit)))
        for tag in tags
        if touched is None or tag.slug in touched
    ]
    states = {state.name: state for state in store.source_states()}
    counts = store.source_item_counts()
    health = [
        SourceHealth(
            name=source.name,
            kind=source.kind,
            enabled=source.enabled,
            items=counts.get(source.name, 0),
            state=states.get(source.name),
        )
        for source in config.sources
    ]
    site = SiteSettings(
        dir=config.output.dir,
        base_url=config.output.base_url,
        title=config.output.title,
        items_per_feed=limit,
        source_titles={source.name: source.title for source in config.sources if source.title},
    )
    # The charts end today (UTC): a page drawn on another day may differ.
    now = datetime.now(UTC)
    labels = {
        source.name: source_health(states.get(source.name), now, enabled=source.enabled)
        for source in config.sources
    }
    daily = store.daily_counts(now.date())
    return render_site(site, feeds, tags, health, daily=daily, health=labels).written


def _items(clusters: Iterable[tuple[Article, ...]]) -> tuple[FeedItem, ...]:
    return tuple(merge_cluster(members) for members in clusters)


def recover(config: Config, store: Store) -> tuple[Path, ...]:
    """After a crash or kill: drop the temp files of interrupted writes, then render every feed,
    since a source's articles may have been committed by a pass that died before rendering."""
    for leftover in remove_leftovers(config.output.dir):
        log.warning("removed %s, left by an interrupted write", leftover)
    if store.article_count() == 0:
        return ()  # a first start: the first pass renders, no empty feeds meanwhile
    key = render_key(config)
    newest, _ = store.changes_to_render(key)
    written = publish(config, store)
    store.rendered(key, newest)  # so the first pass does not render it all again
    return written
