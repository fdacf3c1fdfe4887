"""The CPU side of a pass, run in worker processes: parse, clean, tag and identify.

The main process submits `run_job(job, *args)` with one of the jobs below. Everything here
takes and returns picklable records, and reports trouble as data (a problem message, or
`error` for the whole source) rather than raising across the process boundary.

Each job imports the stages it runs when it first runs, in the process that runs it: the main
process of a pass of 304s, which only refers to the jobs, never loads lxml, nh3 or the dedupe
stage.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TypeAlias
from zoneinfo import ZoneInfo

from aggregator.errors import AggregatorError, EntryError, describe
from aggregator.models import Article, CleanedHtml, Document, Entry, Limits
from aggregator.pipeline.recipe import Processed, Recipe
from aggregator.tags import TagRule, rule_tags, unique_tags

log = logging.getLogger("aggregator")

Job: TypeAlias = Callable[..., Processed]


def run_job(job: Job, *args: object) -> Processed:
    """`job(*args)`, whatever it raises turned into a failed source, as data: an exception
    pickled across the process boundary could carry what does not unpickle, and would say
    less."""
    try:
        return job(*args)
    except Exception as error:
        log.debug("%s failed", job.__name__, exc_info=True)
        return Processed(error=describe(error))


def process_posts(folder: Path, recipe: Recipe) -> Processed:
    from aggregator.parse import parse_post
    from aggregator.sources.posts import read_posts

    try:
        documents = list(read_posts(recipe.source, folder))
    except AggregatorError as error:
        return Processed(error=getattr(error, "reason", str(error)))
    entries: list[Entry] = []
    problems: list[str] = []
    for document in documents:
        if isinstance(document, EntryError):
            problems.append(str(document))
            continue
        try:
            entries.append(parse_post(document, ZoneInfo(recipe.zone)))
        except EntryError as error:
            problems.append(str(error))
    return _articles(entries, problems, recipe)


def process_feed(document: Document, recipe: Recipe) -> Processed:
    from aggregator.parse import parse_feed

    try:
        feed = parse_feed(document, ZoneInfo(recipe.zone))
    except EntryError as error:
        return Processed(error=error.reason)
    if not feed.entries and feed.problems:
        # Nothing readable at all is a failing source, not an empty one.
        return Processed(error="malformed feed: " + "; ".join(feed.problems[:3]))
    # The fallback parser's first message says why it was needed: a note, not a skipped entry.
    recovered = 1 if feed.parser == "feedparser" else 0
    processed = _articles(list(feed.entries), list(feed.problems[recovered:]), recipe)
    return replace(processed, notes=feed.problems[:recovered])


def process_article_page(document: Document, recipe: Recipe) -> Processed:
    from aggregator.parse import extract_article

    try:
        entry = extract_article(
            document,
            content_selector=recipe.content_selector,
            title_selector=recipe.title_selector,
            date_selector=recipe.date_selector,
            default_zone=ZoneInfo(recipe.zone),
        )
    except EntryError as error:
        return Processed(problems=(str(error),))
    return _articles([entry], [], recipe)


def _articles(entries: list[Entry], problems: list[str], recipe: Recipe) -> Processed:
    """Every entry cleaned, then every cleaned entry tagged and identified: each step's code
    and tables stay warm across a feed's entries (alternating them slowed both). A failing
    entry is skipped alone, with its reason, at either step."""
    cleaned: list[tuple[Entry, CleanedHtml, bool]] = []
    for entry in entries:
        try:
            cleaned.append(_cleaned(entry, recipe))
        except Exception as error:  # this entry's fault, or a library's on it: skip it alone
            problems.append(f"{entry.origin}: {describe(error)}")
    rules = _rules(recipe.rules)
    articles: dict[str, Article] = {}
    limited = 0
    for entry, clean, cut in cleaned:
        try:
            article = _identified(entry, clean, recipe, rules)
        except Exception as error:  # as above
            problems.append(f"{entry.origin}: {describe(error)}")
            continue
        if article.id in articles:
            problems.append(f"{entry.origin}: same story as an earlier entry (key {entry.key})")
            continue
        articles[article.id] = article
        limited += cut
    return Processed(tuple(articles.values()), tuple(problems), limited=limited)


def _cleaned(entry: Entry, recipe: Recipe) -> tuple[Entry, CleanedHtml, bool]:
    """The entry within the limits, its HTML cleaned, and whether either cut something."""
    from aggregator.clean import clean_html

    entry, cut = _within_limits(entry, recipe.limits)
    drop, drop_text = recipe.clean_rules(entry.link)
    cleaned = clean_html(
        entry.content_html,
        entry.link,
        drop_selectors=drop,
        drop_text=drop_text,
        max_depth=recipe.limits.html_depth,
    )
    return entry, cleaned, cut or "depth-limit" in cleaned.rules


def _identified(
    entry: Entry, cleaned: CleanedHtml, recipe: Recipe, rules: tuple[TagRule, ...]
) -> Article:
    """The cleaned entry tagged (the source's, its own categories, the rules') and identified."""
    from aggregator.dedupe import identify

    own_tags = entry.tags if recipe.categories == "tags" else ()
    tags = unique_tags([*recipe.tags, *own_tags, *rule_tags(rules, entry.title, cleaned.text)])
    return identify(entry, cleaned, tags)


def _within_limits(entry: Entry, limits: Limits) -> tuple[Entry, bool]:
    """The entry with at most `limits.categories` categories of at most
    `limits.category_length` characters, and a title of at most `limits.title_length`."""
    tags = tuple(tag[: limits.category_length] for tag in entry.tags[: limits.categories])
    title = entry.title
    if len(title) > limits.title_length:
        title = title[: limits.title_length - 1].rstrip() + "…"
    if tags == entry.tags and title == entry.title:
        return entry, False
    return replace(entry, tags=tags, title=title), True


@lru_cache(maxsize=64)
def _rules(rules: tuple[tuple[str, str], ...]) -> tuple[TagRule, ...]:
    return tuple(TagRule(tag, re.compile(pattern)) for tag, pattern in rules)
