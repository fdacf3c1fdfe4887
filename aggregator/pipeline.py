"""The one place where the stages are composed.

    sources ─▶ parse ─▶ clean ─▶ dedupe ─▶ store ─▶ dedupe.merge_cluster ─▶ render

A pass ingests every due source, one store transaction per source (articles and the source's
state together, so a crash never half-saves a source), then re-renders the feeds.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.clean import clean_html
from aggregator.config import Config, SourceConfig
from aggregator.dedupe import assign_clusters, identify, merge_cluster
from aggregator.errors import AggregatorError, EntryError, SourceError
from aggregator.models import (
    Article,
    FeedData,
    FeedItem,
    SiteSettings,
    SourceHealth,
    SourceState,
)
from aggregator.parse import parse_post
from aggregator.render import render_site
from aggregator.sources import read_posts
from aggregator.store import Store
from aggregator.tagging import TagRule, rule_tags, unique_tags

log = logging.getLogger("aggregator")

MAX_BACKOFF = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class SourceReport:
    name: str
    new: int = 0
    changed: int = 0
    skipped: tuple[str, ...] = ()  # one message per post or entry that was skipped
    error: str | None = None  # the whole source failed
    backing_off_until: datetime | None = None  # not fetched this pass


@dataclass(frozen=True, slots=True)
class PassReport:
    sources: tuple[SourceReport, ...] = ()
    written: tuple[Path, ...] = ()
    new: int = 0

    @property
    def failed(self) -> tuple[SourceReport, ...]:
        return tuple(report for report in self.sources if report.error)


def open_store(config: Config) -> Store:
    store = Store(config.store.url)
    store.migrate()
    return store


def run_pass(
    config: Config,
    store: Store,
    *,
    retry_failed: bool = False,
    due_only: bool = False,
    now: datetime | None = None,
) -> PassReport:
    """Ingest every enabled source that is not backing off, then re-render the feeds.

    `due_only` (the daemon): only sources whose next_fetch_at has come, and feeds are rendered
    only when something changed or nothing was rendered yet.
    """
    now = now or datetime.now(UTC)
    states = {state.name: state for state in store.source_states()}
    reports: list[SourceReport] = []
    for source in config.sources:
        if not source.enabled:
            continue
        state = states.get(source.name) or SourceState(name=source.name)
        if due_only and state.next_fetch_at and state.next_fetch_at > now:
            continue
        if _backing_off(state, now) and not retry_failed:
            log.warning(
                "%s: backing off after %d failures; next try %s (use --retry-failed to try now)",
                source.name,
                state.error_streak,
                state.next_fetch_at,
            )
            reports.append(SourceReport(source.name, backing_off_until=state.next_fetch_at))
            continue
        reports.append(ingest_source(config, store, source, state, now))
    changed = any(report.new or report.changed or report.error for report in reports)
    needs_render = not due_only or changed or not (config.output.dir / "index.html").exists()
    written = publish(config, store) if needs_render else ()
    return PassReport(
        sources=tuple(reports), written=written, new=sum(report.new for report in reports)
    )


def ingest_source(
    config: Config, store: Store, source: SourceConfig, state: SourceState, now: datetime
) -> SourceReport:
    """Read, parse, clean and identify one source's articles and save them in one transaction."""
    interval = config.interval(source)
    try:
        articles, skipped = _read_articles(config, source)
        articles = cluster(store, articles)
        saved = store.save_articles(
            source.name,
            articles,
            SourceState(
                name=source.name,
                etag=state.etag,
                last_modified=state.last_modified,
                last_fetch_at=now,
                last_success_at=now,
                last_result="ok",
                new_items=0,
                error_streak=0,
                next_fetch_at=now + interval,
                permanent_url=state.permanent_url,
            ),
        )
    except AggregatorError as error:
        message = error.reason if isinstance(error, SourceError) else str(error)
        streak = state.error_streak + 1
        store.save_state(
            SourceState(
                name=source.name,
                etag=state.etag,
                last_modified=state.last_modified,
                last_fetch_at=now,
                last_success_at=state.last_success_at,
                last_result="error",
                last_error=message,
                error_streak=streak,
                next_fetch_at=now + backoff(interval, streak),
                permanent_url=state.permanent_url,
            )
        )
        log.error("%s: failed: %s", source.name, message)
        return SourceReport(source.name, error=message)
    for message in skipped:
        log.warning("%s: skipped %s", source.name, message)
    log.info(
        "%s: %d new, %d changed, %d skipped",
        source.name,
        len(saved.new),
        len(saved.changed),
        len(skipped),
    )
    return SourceReport(
        source.name, new=len(saved.new), changed=len(saved.changed), skipped=tuple(skipped)
    )


def _read_articles(config: Config, source: SourceConfig) -> tuple[list[Article], list[str]]:
    if source.kind != "posts" or source.path is None:
        raise SourceError(source.name, f"sources of kind {source.kind!r} are not supported yet")
    rules = [TagRule(rule.tag, re.compile(rule.match)) for rule in config.rules]
    articles: dict[str, Article] = {}
    skipped: list[str] = []
    for document in read_posts(source.name, source.path):
        if isinstance(document, EntryError):
            skipped.append(str(document))
            continue
        try:
            entry = parse_post(document)
        except EntryError as error:
            skipped.append(str(error))
            continue
        cleaned = clean_html(
            entry.content_html,
            entry.link,
            drop_selectors=source.clean.drop,
            drop_text=source.clean.drop_text,
        )
        tags = unique_tags(
            [*source.tags, *entry.tags, *rule_tags(rules, entry.title, cleaned.text)]
        )
        article = identify(entry, cleaned, tags)
        if article.id in articles:
            skipped.append(f"{entry.origin}: same story as an earlier file (key {entry.key})")
            continue
        articles[article.id] = article
    return list(articles.values()), skipped


def cluster(store: Store, articles: list[Article]) -> list[Article]:
    """Put each article in the cluster of a stored or earlier copy of the same story."""
    known = store.find_clusters(
        [article.link for article in articles if article.link],
        [article.content_hash for article in articles if article.content_hash],
    )
    return assign_clusters(articles, known)


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
    return render_site(site, feeds, tags, health).written


def _items(clusters: Iterable[tuple[Article, ...]]) -> tuple[FeedItem, ...]:
    return tuple(merge_cluster(members) for members in clusters)


def backoff(interval: timedelta, streak: int) -> timedelta:
    """interval x 2^streak with up to 10% jitter, capped at 24 h."""
    doubling: int = 2 ** min(streak, 20)
    base = min(interval * doubling, MAX_BACKOFF)
    jittered: timedelta = base * (1 + random.uniform(0, 0.1))
    return min(jittered, MAX_BACKOFF)


def _backing_off(state: SourceState, now: datetime) -> bool:
    return bool(state.error_streak and state.next_fetch_at and state.next_fetch_at > now)
