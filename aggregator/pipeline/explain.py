"""`aggregator explain`: one stored article, its source, and what the clean stage removed."""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.config import Config, SourceConfig
from aggregator.models import Article, RuleHit
from aggregator.pipeline.process import Recipe
from aggregator.store import Store
from aggregator.urls import canonical_url, is_web_url


@dataclass(frozen=True, slots=True)
class Explanation:
    article: Article
    source: SourceConfig | None  # None: the source is no longer in the config
    audit: tuple[RuleHit, ...] | None  # None: cleaned before audits were kept
    drop: tuple[str, ...] = ()  # the clean rules that apply to it under the current config
    drop_text: tuple[str, ...] = ()


def explain(config: Config, store: Store, reference: str) -> Explanation | None:
    """The article with this id, else the first one seen at this URL; None when neither."""
    article = store.article(reference.strip())
    if article is None and is_web_url(reference.strip()):
        url = reference.strip()
        article = store.article_by_link(canonical_url(url)) or store.article_by_link(url)
    if article is None:
        return None
    source = config.source(article.source)
    drop: tuple[str, ...] = ()
    drop_text: tuple[str, ...] = ()
    if source is not None:
        drop, drop_text = Recipe.of(config, source).clean_rules(article.link)
    return Explanation(article, source, store.clean_audit(article.id), drop, drop_text)
