"""initial schema: articles, tags, their links, source states, the near-duplicate index

Revision ID: 0001
Revises:
Create Date: 2024-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain DateTime here, not the store's UTCDateTime: a revision must not change when
# application types do. The DDL is the same.
_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "article",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("link_hash", sa.String(), nullable=True),
        sa.Column("content_hash", sa.String(), nullable=True),
        sa.Column("cluster_id", sa.String(), nullable=False),
        sa.Column("published", _TIMESTAMP, nullable=False),
        sa.Column("published_offset_minutes", sa.Integer(), nullable=False),
        sa.Column("updated", _TIMESTAMP, nullable=False),
        sa.Column("updated_offset_minutes", sa.Integer(), nullable=False),
        sa.Column("author", sa.Text(), nullable=True),
        sa.Column("content_html", sa.Text(), nullable=False),
        sa.Column("raw_html", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("image", sa.Text(), nullable=True),
        sa.Column("first_seen", _TIMESTAMP, nullable=False),
        sa.Column("signature", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "key", name="uq_article_source_key"),
    )
    op.create_index("ix_article_link_hash", "article", ["link_hash"])
    op.create_index("ix_article_content_hash", "article", ["content_hash"])
    op.create_index("ix_article_cluster_id", "article", ["cluster_id"])
    op.create_index("ix_article_published", "article", ["published"])

    op.create_table(
        "tag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )

    op.create_table(
        "article_tag",
        sa.Column("article_id", sa.String(), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["article.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tag_id"], ["tag.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("article_id", "tag_id"),
    )
    op.create_index("ix_article_tag_tag_id", "article_tag", ["tag_id"])

    op.create_table(
        "source_state",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("last_fetch_at", _TIMESTAMP, nullable=True),
        sa.Column("last_success_at", _TIMESTAMP, nullable=True),
        sa.Column("last_result", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("new_items", sa.Integer(), nullable=False),
        sa.Column("error_streak", sa.Integer(), nullable=False),
        sa.Column("next_fetch_at", _TIMESTAMP, nullable=True),
        sa.Column("permanent_url", sa.Text(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("failing_since", _TIMESTAMP, nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_source_state_next_fetch_at", "source_state", ["next_fetch_at"])

    # Near-duplicate layer: MinHash signatures, and the LSH bands indexing them.
    op.create_table(
        "article_near",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.String(), nullable=False),
        sa.Column("published", _TIMESTAMP, nullable=False),
        sa.Column("shingles", sa.Integer(), nullable=False),
        sa.Column("minhash", sa.LargeBinary(), nullable=False),
        sa.Column("lead_minhash", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["article.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("article_id"),
    )
    op.create_table(
        "article_band",
        sa.Column("band_key", sa.BigInteger(), nullable=False),
        sa.Column("article_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("band_key", "article_seq"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("article_band")
    op.drop_table("article_near")
    op.drop_table("source_state")
    op.drop_table("article_tag")
    op.drop_table("tag")
    op.drop_table("article")
