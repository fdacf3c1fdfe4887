"""Publishing: the store's clusters merged into feed items and handed to render."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from aggregator.config import Config
from aggregator.dedupe import merge_cluster
from aggregator.models import Article, FeedData, FeedItem, SiteSettings, SourceHealth
from aggregator.render import render_site
from aggregator.schedule import health as source_health
from aggregator.store import Store


def publish(config: Config, store: Store) -> tuple[Path, ...]:
    """Render the all-stories feed, one feed per tag, the index and the OPML."""
    limit = config.output.items_per_feed
    tags = store.tag_summaries()
    feeds = [FeedData(None, config.output.title, _items(store.clusters(None, limit)))]
    feeds += [FeedData(tag.slug, tag.name, _items(store.clusters(tag.slug, limit))) for tag in tags]
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
    )
    # The chart window ends on the newest item, never after today: same data, same page.
    now = datetime.now(UTC)
    labels = {
        source.name: source_health(states.get(source.name), now, enabled=source.enabled)
        for source in config.sources
    }
    daily = store.daily_counts(now.date())
    return render_site(site, feeds, tags, health, daily=daily, health=labels).written


def _items(clusters: Iterable[tuple[Article, ...]]) -> tuple[FeedItem, ...]:
    return tuple(merge_cluster(members) for members in clusters)
