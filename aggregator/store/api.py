"""Store: the one door to the database. Records of models.py in, records out; never ORM rows."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from aggregator.errors import StoreError
from aggregator.models import (
    Article,
    DailyCounts,
    RuleHit,
    SourceState,
    TagSummary,
)
from aggregator.store import articles, audit, feeds, near, sources
from aggregator.store.batch import StoreTransaction
from aggregator.store.engine import (
    describe,
    make_engine,
    parse_url,
    read_transaction,
    store_errors,
    write_transaction,
)

MIGRATIONS = "aggregator.store:migrations"
_REVISIONS = Path(__file__).resolve().parent / "migrations" / "versions"


def newest_revision() -> str:
    """The head revision, read off the file names (NNNN_name.py, revision "NNNN") so that a
    store already current costs no alembic import; a test holds it to alembic's own head."""
    return max(path.name.split("_", 1)[0] for path in _REVISIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


# pg_advisory_xact_lock key serialising migrations of every aggregator on one server.
_MIGRATION_LOCK = 0x61676772  # "aggr"
# alembic's `context` and `op` are module-wide proxies: one migration per process at a time.
_MIGRATING = threading.Lock()


class Store:
    def __init__(self, url: str) -> None:
        self._url = parse_url(url)
        self._name = describe(self._url)
        self._engine = make_engine(self._url)
        self._added: set[str] = set()  # source names known to have a state row

    def __repr__(self) -> str:
        return f"Store({self._name!r})"

    def migrate(self) -> None:
        """Bring the schema to the newest revision; a no-op when it is there already.

        All revisions run in one transaction that first takes a lock (BEGIN IMMEDIATE on
        SQLite, an advisory lock on PostgreSQL), so a second process starting at the same
        moment waits, then finds the schema current.
        """
        if self._revision() == newest_revision():
            return  # the common case, answered without importing alembic (slow to import)
        from alembic import command  # noqa: PLC0415
        from alembic.config import Config  # noqa: PLC0415
        from alembic.util import CommandError  # noqa: PLC0415

        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        with _MIGRATING, self._writing("migrating") as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as error:
                # e.g. the database was migrated by a newer aggregator than this one
                raise StoreError(f"{self._name}: migrating: {error}") from error

    def _revision(self) -> str | None:
        """The schema's alembic revision; None when the store was never migrated."""
        try:
            with self._engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError:
            return None

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _writing(self, what: str) -> Iterator[Connection]:
        with store_errors(f"{self._name}: {what}"), write_transaction(self._engine) as conn:
            yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with store_errors(f"{self._name}: reading"), read_transaction(self._engine) as conn:
            yield conn

    @contextmanager
    def transaction(self, what: str = "saving") -> Iterator[StoreTransaction]:
        """One write transaction for several saves: all of them commit, or none does."""
        with self._writing(what) as conn:
            transaction = StoreTransaction(conn, self._name)
            yield transaction
            transaction.finish()

    def claim(
        self,
        node: str,
        names: Sequence[str],
        now: datetime,
        lease: timedelta,
        *,
        due_only: bool,
    ) -> list[SourceState]:
        """Lease to `node` for `lease` those of `names` no other node holds (and that are due,
        with `due_only`): their states, each with a fresh fencing token. One short
        transaction, committed before any fetch."""
        with self._writing(f"claiming sources for {node}") as conn:
            return sources.claim(conn, node, names, now, now + lease, due_only=due_only)

    def claim_due(
        self, node: str, now: datetime, lease: timedelta, limit: int
    ) -> list[SourceState]:
        """Lease to `node` for `lease` at most `limit` due sources no other node holds, most
        overdue first, whatever their names: a tick's work found without reading every
        source. One short transaction, committed before any fetch."""
        with self._writing(f"claiming due sources for {node}") as conn:
            return sources.claim_due(conn, node, now, now + lease, limit)

    def add_sources(self, names: Sequence[str]) -> None:
        """Make sure each of `names` has a state row (claim_due finds only sources with one);
        names this Store added before are not sent again."""
        new = [name for name in names if name not in self._added]
        if new:
            with self._writing("adding sources") as conn:
                sources.add_sources(conn, new)
            self._added.update(new)

    def release(
        self,
        node: str,
        states: Sequence[SourceState],
        next_fetch_at: datetime | None = None,
    ) -> None:
        """Give back the leases of claimed sources that `node` did not get to; with
        `next_fetch_at`, those sources are not due again before then."""
        if states:
            with self._writing(f"releasing leases of {node}") as conn:
                sources.release(conn, node, states, next_fetch_at)

    def changes_to_render(self, output: str) -> tuple[int, frozenset[str] | None]:
        """The newest feed change, and the tag slugs changed since the output folder `output`
        rendered last ("" for the feed of every story); None when it never did."""
        with self._reading() as conn:
            return feeds.changes_to_render(conn, output)

    def health_changed(self) -> None:
        """A source's health or error changed: every node's index is due again."""
        with self._writing("recording a health change") as conn:
            feeds.health_changed(conn)

    def rendered(self, output: str, upto: int) -> None:
        """`output` now shows every feed change up to `upto`."""
        with self._writing(f"marking {output} rendered") as conn:
            feeds.rendered(conn, output, upto)

    def source_state(self, name: str) -> SourceState | None:
        with self._reading() as conn:
            return sources.source_state(conn, name)

    def known_keys(self, source: str, keys: Sequence[str]) -> set[str]:
        """Which of these article keys the source already has stored."""
        with self._reading() as conn:
            return articles.known_keys(conn, source, keys)

    def source_states(self, names: Sequence[str] | None = None) -> list[SourceState]:
        """Every source's state (by name), or those of `names` that have one."""
        with self._reading() as conn:
            return sources.source_states(conn, names)

    def troubled_states(self) -> list[SourceState]:
        """The states with an error streak or a store-side disabled reason."""
        with self._reading() as conn:
            return sources.troubled_states(conn)

    def node_counts(self, now: datetime) -> tuple[dict[str, int], dict[str, int]]:
        """Sources per node: by who fetched each last, and by who holds a live lease now."""
        with self._reading() as conn:
            return sources.node_counts(conn, now)

    def source_item_counts(self) -> dict[str, int]:
        with self._reading() as conn:
            return sources.source_item_counts(conn)

    def article_count(self) -> int:
        with self._reading() as conn:
            return articles.article_count(conn)

    def tag_summaries(self) -> list[TagSummary]:
        with self._reading() as conn:
            return feeds.tag_summaries(conn)

    def daily_counts(self, today: date, days: int = 30) -> DailyCounts:
        """Items per day per source and per tag, for the `days` days up to `today`; a source or
        tag with no item in them, for the `days` up to its newest item (see DailyCounts)."""
        with self._reading() as conn:
            return feeds.daily_counts(conn, today, days)

    def clusters(self, tag_slug: str | None, limit: int) -> list[tuple[Article, ...]]:
        with self._reading() as conn:
            return feeds.clusters(conn, tag_slug, limit)

    def article(self, article_id: str) -> Article | None:
        with self._reading() as conn:
            return articles.article(conn, article_id)

    def shared_clusters(self, limit: int) -> list[tuple[Article, ...]]:
        """Stories carried by more than one article, newest first, first article first."""
        with self._reading() as conn:
            return near.shared_clusters(conn, limit)

    def article_by_link(self, link: str) -> Article | None:
        """The first-seen article at this canonical URL."""
        with self._reading() as conn:
            return audit.article_by_link(conn, link)

    def clean_audit(self, article_id: str) -> tuple[RuleHit, ...] | None:
        """What the clean stage removed from an article; None when cleaned before audits."""
        with self._reading() as conn:
            return audit.clean_audit(conn, article_id)

    def articles_page(self, source: str | None, after: str, limit: int) -> list[Article]:
        """Stored articles (of one source, or all) with ids after `after`, in id order."""
        with self._reading() as conn:
            return audit.articles_page(conn, source, after, limit)

    def update_cleaned(self, articles: Sequence[Article]) -> list[str]:
        """Save re-cleaned bodies; ids, dates, tags and clusters stay. Returns changed ids."""
        with self._writing("saving re-cleaned articles") as conn:
            return audit.update_cleaned(conn, articles)
