"""The clean audit at work on stored articles: `explain` shows what the clean stage removed from
one article and why; `reclean` runs stored raw bodies through the config's current clean rules
and re-renders the feeds.

After a rule change (`clean:` on a source or keyed by host), past articles are cleaned again
from the raw HTML the store kept. Ids, dates, tags and the story an article belongs to stay as
they are; the body, summary, lead image, text hash, near-duplicate signature and audit follow
the new rules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from aggregator.clean import clean_html
from aggregator.config import Config, SourceConfig
from aggregator.dedupe import identify
from aggregator.errors import AggregatorError
from aggregator.models import Article, Entry, RuleHit
from aggregator.pipeline.publish import publish
from aggregator.pipeline.recipe import Recipe
from aggregator.store import Store
from aggregator.urls import canonical_url, is_web_url

BATCH = 200


@dataclass(frozen=True, slots=True)
class RecleanReport:
    seen: int = 0
    changed: tuple[str, ...] = ()  # ids of articles whose cleaned body changed
    orphans: int = 0  # articles of sources no longer in the config, left as they are
    written: tuple[Path, ...] = ()  # feed files re-rendered (none when nothing changed)


def reclean(config: Config, store: Store, source: str | None = None) -> RecleanReport:
    """Re-clean every stored article (of `source` only, when given) and re-render the feeds if
    any changed. Raises AggregatorError for a source name the config does not know."""
    if source is not None and config.source(source) is None:
        raise AggregatorError(f"{source}: no such source in {config.path}")
    recipes = {item.name: Recipe.of(config, item) for item in config.sources}
    seen = orphans = 0
    changed: list[str] = []
    after = ""
    while page := store.articles_page(source, after, BATCH):
        after = page[-1].id
        seen += len(page)
        fresh: list[Article] = []
        for article in page:
            recipe = recipes.get(article.source)
            if recipe is None:
                orphans += 1
            else:
                fresh.append(reclean_article(article, recipe))
        changed += store.update_cleaned(fresh)
    written = publish(config, store) if changed else ()
    return RecleanReport(seen, tuple(changed), orphans, written)


def reclean_article(article: Article, recipe: Recipe) -> Article:
    """The article as the current rules clean its stored raw HTML."""
    drop, drop_text = recipe.clean_rules(article.link)
    cleaned = clean_html(article.raw_html, article.link, drop_selectors=drop, drop_text=drop_text)
    entry = Entry(
        source=article.source,
        origin=article.link or article.id,
        key=article.key,
        title=article.title,
        link=article.link,
        published=article.published,
        updated=article.updated,
        author=article.author,
        tags=article.tags,
        content_html=article.raw_html,
        image=article.image,
    )
    fresh = identify(entry, cleaned, article.tags)
    return replace(fresh, cluster_id=article.cluster_id)


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
