"""Feeds: what the renderer reads (a tag's stories newest first, tag summaries, items per
day), and the feed-change log that tells each output folder which tags to render again."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import distinct, func, literal_column, select, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from aggregator.models import Article, DailyCounts, TagSummary
from aggregator.store.articles import tags_of
from aggregator.store.plain import Plain, chunks
from aggregator.store.rows import article_from_row
from aggregator.store.tables import ARTICLE, ARTICLE_TAG, SOURCE_STATE, TAG

# Tags with at least this many articles are looked up story by story in clusters(): see
# _has_tagged_member.
TAG_WALK_FROM = 2000


def clusters(connection: Connection, tag_slug: str | None, limit: int) -> list[tuple[Article, ...]]:
    if limit <= 0:
        return []
    query = select(ARTICLE.c.id).where(ARTICLE.c.id == ARTICLE.c.cluster_id)
    if tag_slug is not None:
        tag_id = connection.execute(
            select(TAG.c.id).where(TAG.c.slug == tag_slug)
        ).scalar_one_or_none()
        if tag_id is None:
            return []
        query = query.where(_has_tagged_member(connection, tag_id))
    query = query.order_by(ARTICLE.c.published.desc(), ARTICLE.c.id).limit(limit)
    cluster_ids: list[str] = list(connection.execute(query).scalars())
    members: dict[str, list[Article]] = defaultdict(list)
    first_seen: dict[str, datetime] = {}
    for chunk in chunks(cluster_ids):
        tags = tags_of(connection, ARTICLE.c.cluster_id.in_(chunk))
        rows = connection.execute(select(ARTICLE).where(ARTICLE.c.cluster_id.in_(chunk)))
        for row in rows.mappings():
            members[row["cluster_id"]].append(article_from_row(row, tags.get(row["id"], ())))
            first_seen[row["id"]] = row["first_seen"]

    def member_order(article: Article) -> tuple[bool, datetime, datetime, str]:
        is_other = article.id != article.cluster_id
        return (is_other, first_seen[article.id], article.published, article.id)

    return [tuple(sorted(members[cluster_id], key=member_order)) for cluster_id in cluster_ids]


def _has_tagged_member(connection: Connection, tag_id: int) -> ColumnElement[bool]:
    """The condition on a story's first article (`article`) that a member of its story has
    the tag, in the form that is cheap for the tag's size.

    A large tag is checked story by story: the query walks the stories newest first and
    stops at the feed's limit, a few dozen checks for a tag most articles carry, whatever the
    store's size. A small one is listed member by member instead: walking would visit every
    story of the store before it found a rare tag's few (benchmarks/render_queries.py)."""
    # Aliased, or SQLAlchemy would correlate the subqueries with the outer `article`.
    member = ARTICLE.alias("member")
    links = select(ARTICLE_TAG.c.article_id).where(ARTICLE_TAG.c.tag_id == tag_id)
    counted = select(func.count()).select_from(links.limit(TAG_WALK_FROM).subquery())
    if connection.execute(counted).scalar_one() >= TAG_WALK_FROM:
        tagged_member = (
            select(member.c.id)
            .join(ARTICLE_TAG, ARTICLE_TAG.c.article_id == member.c.id)
            .where(member.c.cluster_id == ARTICLE.c.id, ARTICLE_TAG.c.tag_id == tag_id)
        )
        return tagged_member.exists()
    stories = (
        select(member.c.cluster_id)
        .join(ARTICLE_TAG, ARTICLE_TAG.c.article_id == member.c.id)
        .where(ARTICLE_TAG.c.tag_id == tag_id)
    )
    return ARTICLE.c.id.in_(stories)


def tag_summaries(connection: Connection) -> list[TagSummary]:
    query = (
        select(
            TAG.c.name,
            TAG.c.slug,
            func.count(distinct(ARTICLE.c.cluster_id)),
            func.max(ARTICLE.c.updated),
        )
        .join(ARTICLE_TAG, ARTICLE_TAG.c.tag_id == TAG.c.id)
        .join(ARTICLE, ARTICLE.c.id == ARTICLE_TAG.c.article_id)
        .group_by(TAG.c.id, TAG.c.name, TAG.c.slug)
    )
    summaries = [
        TagSummary(name=name, slug=slug, count=count, last_updated=last_updated)
        for name, slug, count, last_updated in connection.execute(query)
    ]
    # Sorted here: SQLite and PostgreSQL collations order non-ASCII names differently.
    return sorted(summaries, key=lambda tag: (tag.name.casefold(), tag.name, tag.slug))


def daily_counts(connection: Connection, today: date, days: int) -> DailyCounts:
    """Articles per source and stories per tag for each of `days` days up to `today`: one
    grouped query for both. A source or tag with nothing in those days but items before gets
    the `days` up to its own newest item instead; finding them reads only their own articles
    (a quiet source's or tag's history), never the rest of the store."""
    tomorrow = datetime.combine(today + timedelta(days=1), time(), UTC)
    published = ARTICLE.c.published
    newest = connection.execute(
        select(func.max(published)).where(published < tomorrow)
    ).scalar_one_or_none()
    if newest is None:
        return DailyCounts(None, days, {}, {})
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(), UTC)
    day = _day_of(connection)
    window = (published >= start) & (published < tomorrow)
    per_source = (
        select(
            literal_column("'s'").label("kind"),
            ARTICLE.c.source.label("key"),
            day.label("day"),
            func.count().label("n"),
        )
        .where(window)
        .group_by(ARTICLE.c.source, day)
    )
    per_tag = (
        select(literal_column("'t'"), TAG.c.slug, day, func.count(distinct(ARTICLE.c.cluster_id)))
        .join(ARTICLE_TAG, ARTICLE_TAG.c.tag_id == TAG.c.id)
        .join(ARTICLE, ARTICLE.c.id == ARTICLE_TAG.c.article_id)
        .where(window)
        .group_by(TAG.c.slug, day)
    )
    series: dict[str, dict[str, list[int]]] = {"s": {}, "t": {}}
    for kind, key, on, count in connection.execute(union_all(per_source, per_tag)):
        index = (date.fromisoformat(on) - first).days
        series[kind].setdefault(key, [0] * days)[index] += count
    sources = {key: tuple(counts) for key, counts in series["s"].items()}
    tags = {key: tuple(counts) for key, counts in series["t"].items()}
    quiet_sources = [
        name for (name,) in connection.execute(select(SOURCE_STATE.c.name)) if name not in sources
    ]
    quiet_tags = [slug for (slug,) in connection.execute(select(TAG.c.slug)) if slug not in tags]
    source_ends = _own_windows(
        connection, "s", sorted(quiet_sources), days=days, before=tomorrow, into=sources
    )
    tag_ends = _own_windows(
        connection, "t", sorted(quiet_tags), days=days, before=tomorrow, into=tags
    )
    return DailyCounts(
        today,
        days,
        dict(sorted(sources.items())),
        dict(sorted(tags.items())),
        source_ends,
        tag_ends,
    )


def _day_of(connection: Connection) -> ColumnElement[str]:
    """An article's day of publication (UTC) as YYYY-MM-DD."""
    published = ARTICLE.c.published
    if connection.dialect.name == "postgresql":
        # Literals, not bound parameters: PostgreSQL matches GROUP BY expressions textually.
        utc = func.timezone(literal_column("'UTC'"), published)
        return func.to_char(utc, literal_column("'YYYY-MM-DD'"))
    return func.strftime(literal_column("'%Y-%m-%d'"), published)  # SQLite keeps naive UTC text


def _own_windows(
    connection: Connection,
    kind: str,
    keys: Sequence[str],
    *,
    days: int,
    before: datetime,
    into: dict[str, tuple[int, ...]],
) -> dict[str, date]:
    """For each of `keys` (sources for kind "s", tag slugs for "t") with items before
    `before`: its counts over the `days` up to its newest item, put in `into`; returns where
    each such window ends."""
    day = _day_of(connection)
    per_day: dict[str, dict[date, int]] = defaultdict(dict)
    for chunk in chunks(keys):
        if kind == "s":
            query = (
                select(ARTICLE.c.source, day, func.count())
                .where(ARTICLE.c.source.in_(chunk), ARTICLE.c.published < before)
                .group_by(ARTICLE.c.source, day)
            )
        else:
            query = (
                select(TAG.c.slug, day, func.count(distinct(ARTICLE.c.cluster_id)))
                .join(ARTICLE_TAG, ARTICLE_TAG.c.tag_id == TAG.c.id)
                .join(ARTICLE, ARTICLE.c.id == ARTICLE_TAG.c.article_id)
                .where(TAG.c.slug.in_(chunk), ARTICLE.c.published < before)
                .group_by(TAG.c.slug, day)
            )
        for key, on, count in connection.execute(query):
            per_day[key][date.fromisoformat(on)] = count
    ends: dict[str, date] = {}
    for key, counts in sorted(per_day.items()):
        last = max(counts)
        ends[key] = last
        into[key] = tuple(
            counts.get(last - timedelta(days=back), 0) for back in range(days - 1, -1, -1)
        )
    return ends


def changes_to_render(connection: Connection, output: str) -> tuple[int, frozenset[str] | None]:
    """The newest feed change, and the slugs changed since `output` rendered last (`""`: the
    feed of every story); None when it never rendered, so everything is due."""
    plain = Plain(connection)
    newest = plain.rows("SELECT coalesce(max(seq), 0) FROM feed_change", ())[0][0]
    mark = plain.rows("SELECT seq FROM render_mark WHERE output = ?", (output,))
    if not mark:
        return int(newest), None
    slugs = plain.rows("SELECT DISTINCT slug FROM feed_change WHERE seq > ?", (mark[0][0],))
    return int(newest), frozenset(slug for (slug,) in slugs)


def health_changed(connection: Connection) -> None:
    """A source's line on the status page changed: every output renders its index again (the
    change of "", which also renders the feed of every story, as any change does)."""
    Plain(connection).run("INSERT INTO feed_change (slug) VALUES (?)", ("",))


_MARK = (
    "INSERT INTO render_mark (output, seq) VALUES (?, ?)"
    " ON CONFLICT (output) DO UPDATE SET seq = excluded.seq"
)

# Strictly below: the newest row stays, so a new seq (SQLite reuses the largest rowid + 1)
# is always above every mark.
_FORGET_RENDERED = "DELETE FROM feed_change WHERE seq < (SELECT min(seq) FROM render_mark)"


def rendered(connection: Connection, output: str, upto: int) -> None:
    """Record that `output` has rendered every change up to `upto`; changes every output has
    rendered are no longer needed."""
    plain = Plain(connection)
    plain.run(_MARK, (output, upto))
    plain.run(_FORGET_RENDERED)
