"""What the main process hands a worker process, and what it hands back; kept light.

The main process of a pass builds Recipes and submits jobs by name (`run_job`), so it never
imports the parse, clean and dedupe stages (lxml, nh3, numpy) unless it does CPU work itself:
a pass of 304s, and the memory of an idle daemon, do not pay for them.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aggregator.errors import describe
from aggregator.models import Article, Limits

if TYPE_CHECKING:  # workers never load the config model (pydantic): the Recipe carries it
    from aggregator.config import Config, SourceConfig


@dataclass(frozen=True, slots=True)
class Recipe:
    """What the CPU work needs to know about a source."""

    source: str
    tags: tuple[str, ...] = ()
    rules: tuple[tuple[str, str], ...] = ()  # (tag, pattern)
    drop: tuple[str, ...] = ()
    drop_text: tuple[str, ...] = ()
    zone: str = "UTC"
    hosts: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = ()  # host, drop, drop_text
    content_selector: str | None = None
    title_selector: str | None = None
    date_selector: str | None = None
    categories: str = "tags"  # tags: the entries' own categories become tags; ignore: not
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def of(cls, config: Config, source: SourceConfig) -> Recipe:
        return cls(
            source=source.name,
            tags=source.tags,
            rules=tuple((rule.tag, rule.match) for rule in config.rules),
            drop=source.clean.drop,
            drop_text=source.clean.drop_text,
            zone=source.timezone or config.defaults.timezone,
            content_selector=source.content_selector,
            title_selector=source.title_selector,
            date_selector=source.date_selector,
            categories=source.categories,
            limits=Limits(**config.limits.model_dump()),
            hosts=tuple(
                (host, rules.drop, rules.drop_text) for host, rules in config.clean.items()
            ),
        )

    def clean_rules(self, link: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Drop selectors and drop_text patterns for an article at `link`: the source's own,
        then those of every configured host the link belongs to."""
        drop, drop_text = self.drop, self.drop_text
        if self.hosts and link:
            try:
                host = (urlsplit(link).hostname or "").rstrip(".")
            except ValueError:  # a malformed link (bad IPv6 literal): no host rules apply
                host = ""
            for name, selectors, patterns in self.hosts:
                if host == name or host.endswith("." + name):
                    drop, drop_text = drop + selectors, drop_text + patterns
        return drop, drop_text


@dataclass(frozen=True, slots=True)
class Processed:
    articles: tuple[Article, ...] = ()
    problems: tuple[str, ...] = ()  # one message per skipped post or entry
    notes: tuple[str, ...] = ()  # how the source was read, when that is worth a line in the log
    limited: int = 0  # entries cut to the limits (HTML depth, categories, title)
    error: str | None = None  # the whole source could not be read


def run_job(name: str, *args: Any) -> Processed:
    """Call aggregator.pipeline.process.<name>(*args): what the main process submits to a
    worker, so that pickling the call needs no import of the CPU stages on its side.

    Whatever the job raises fails its source alone, as data: an exception pickled across the
    process boundary could carry what does not unpickle, and would say less."""
    try:
        process = importlib.import_module("aggregator.pipeline.process")
        result: Processed = getattr(process, name)(*args)
    except Exception as error:
        logging.getLogger("aggregator").debug("%s failed", name, exc_info=True)
        return Processed(error=describe(error))
    return result
