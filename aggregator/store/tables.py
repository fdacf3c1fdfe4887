"""The database schema, as SQLModel tables; queries use their Core `Table` handles below.

migrations/versions/ holds the same schema as explicit DDL; tests compare the two.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out.

    SQLite keeps naive ISO strings, so everything is normalised to UTC before it is written:
    that keeps string order equal to time order. The original zone lives in separate offset
    columns where it matters.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: the store needs aware ones")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ArticleRow(SQLModel, table=True):
    __tablename__ = "article"
    __table_args__ = (
        # Leads with `source`, so it also serves per-source counts and lookups.
        UniqueConstraint("source", "key", name="uq_article_source_key"),
        # The timeline: newest stories first, and the daily chart's window, read from the index
        # alone (it holds every column those queries ask for), never from the large rows.
        Index("ix_article_timeline", "published", "source", "cluster_id", "id", "updated"),
    )

    id: str = Field(primary_key=True)
    source: str
    key: str = Field(sa_type=Text)
    title: str = Field(sa_type=Text)
    link: str | None = Field(default=None, sa_type=Text)
    # sha256 of `link`: btree entries are size-limited on PostgreSQL, URLs are not.
    link_hash: str | None = Field(default=None, index=True)
    content_hash: str | None = Field(default=None, index=True)
    cluster_id: str = Field(index=True)
    published: datetime = Field(sa_type=UTCDateTime)
    published_offset_minutes: int
    updated: datetime = Field(sa_type=UTCDateTime)
    updated_offset_minutes: int
    author: str | None = Field(default=None, sa_type=Text)
    content_html: str = Field(sa_type=Text)
    raw_html: str = Field(sa_type=Text)
    summary: str = Field(sa_type=Text)
    image: str | None = Field(default=None, sa_type=Text)
    first_seen: datetime = Field(sa_type=UTCDateTime)
    # Hash of every saved field but the identity ones: "changed?" is one comparison.
    signature: str
    # JSON list of [rule, times, [samples]] from the clean stage; "" when cleaned before 0002.
    clean_audit: str = Field(
        default="", sa_type=Text, sa_column_kwargs={"server_default": text("''")}
    )


class TagRow(SQLModel, table=True):
    __tablename__ = "tag"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True)
    name: str = Field(sa_type=Text)


class ArticleTagRow(SQLModel, table=True):
    __tablename__ = "article_tag"

    article_id: str = Field(foreign_key="article.id", primary_key=True, ondelete="CASCADE")
    # Indexed on its own: the primary key leads with article_id, tag filters start from tags.
    tag_id: int = Field(foreign_key="tag.id", primary_key=True, index=True, ondelete="CASCADE")
    position: int


class SourceStateRow(SQLModel, table=True):
    __tablename__ = "source_state"

    name: str = Field(primary_key=True)
    etag: str | None = Field(default=None, sa_type=Text)
    last_modified: str | None = Field(default=None, sa_type=Text)
    last_fetch_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_result: str | None = Field(default=None, sa_type=Text)
    last_error: str | None = Field(default=None, sa_type=Text)
    new_items: int = 0
    error_streak: int = 0
    next_fetch_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    permanent_url: str | None = Field(default=None, sa_type=Text)
    last_status: int | None = None
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_reason: str | None = Field(default=None, sa_type=Text)
    body_digest: str | None = Field(default=None, sa_type=Text)
    moved_from: str | None = Field(default=None, sa_type=Text)
    skipped: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    undated: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    limited: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    fetched_by: str | None = Field(default=None, sa_type=Text)
    claimed_by: str | None = Field(default=None, sa_type=Text)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claim_token: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class FeedChangeRow(SQLModel, table=True):
    """A tag whose feeds a save changed, in commit order ("" for the feed of every story):
    each output folder renders what changed after the mark it rendered last, so a render that
    never happened (a kill between commit and render) is made good by the next one."""

    __tablename__ = "feed_change"

    seq: int | None = Field(default=None, primary_key=True)
    slug: str = Field(sa_type=Text)


class RenderMarkRow(SQLModel, table=True):
    """The last feed change an output folder has rendered."""

    __tablename__ = "render_mark"

    output: str = Field(primary_key=True, sa_type=Text)
    seq: int


class ArticleNearRow(SQLModel, table=True):
    """The near-duplicate layer's view of an article: its MinHash signatures (little-endian
    uint32: 512 bytes for the text, 128 for its lead), their band keys (little-endian int64,
    to remove its article_band rows; NULL on rows saved before they were kept), its 5-gram
    count and its date, under a small integer the bands use."""

    __tablename__ = "article_near"

    seq: int | None = Field(default=None, primary_key=True)
    article_id: str = Field(foreign_key="article.id", unique=True, ondelete="CASCADE")
    published: datetime = Field(sa_type=UTCDateTime)
    shingles: int
    minhash: bytes = Field(sa_type=LargeBinary)
    lead_minhash: bytes = Field(sa_type=LargeBinary)
    bands: bytes | None = Field(default=None, sa_type=LargeBinary)


class ArticleBandRow(SQLModel, table=True):
    """The LSH index: one row per band of an article's signature (store/near.py).

    The primary key is the whole row and the only index; on SQLite the table is WITHOUT ROWID,
    so each row is stored once, in that index (about 17 bytes).
    """

    __tablename__ = "article_band"
    __table_args__ = {"sqlite_with_rowid": False}

    band_key: int = Field(sa_type=BigInteger, primary_key=True)
    article_seq: int = Field(primary_key=True)


METADATA: MetaData = SQLModel.metadata
ARTICLE: Table = METADATA.tables["article"]
TAG: Table = METADATA.tables["tag"]
ARTICLE_TAG: Table = METADATA.tables["article_tag"]
SOURCE_STATE: Table = METADATA.tables["source_state"]
FEED_CHANGE: Table = METADATA.tables["feed_change"]
RENDER_MARK: Table = METADATA.tables["render_mark"]
ARTICLE_NEAR: Table = METADATA.tables["article_near"]
ARTICLE_BAND: Table = METADATA.tables["article_band"]

__all__ = [
    "ARTICLE",
    "ARTICLE_BAND",
    "ARTICLE_NEAR",
    "ARTICLE_TAG",
    "FEED_CHANGE",
    "METADATA",
    "RENDER_MARK",
    "SOURCE_STATE",
    "TAG",
    "ArticleBandRow",
    "ArticleNearRow",
    "ArticleRow",
    "ArticleTagRow",
    "FeedChangeRow",
    "RenderMarkRow",
    "SourceStateRow",
    "TagRow",
    "UTCDateTime",
]
