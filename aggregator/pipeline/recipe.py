"""What the main process hands a worker process (a Recipe), and what it hands back (Processed).

Workers never load the config model (pydantic): the Recipe carries what they need of it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aggregator import __version__
from aggregator.models import Article, Document, Limits

if TYPE_CHECKING:
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


def body_digest(document: Document, recipe: Recipe) -> str:
    """A feed body's hash, with everything that shapes what processing makes of it: the
    source's recipe (tags, rules, clean settings, zone), the URL its links resolve against,
    the Content-Type (a charset) and this version of aggregator (a parser or cleaner fix)."""
    digest = hashlib.sha256(usedforsecurity=False)
    context = (__version__, repr(recipe), document.base_url, document.content_type)
    digest.update(repr(context).encode())
    digest.update(document.data)
    return digest.hexdigest()
