"""article timeline index: (published, source, cluster_id, id, updated) replaces the index on
published alone, so the newest stories and the daily chart are read from the index, not from
the article rows (each about as large as a page)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMELINE = ["published", "source", "cluster_id", "id", "updated"]


def upgrade() -> None:
    # Created before the old one goes: every query that led with `published` keeps an index.
    op.create_index("ix_article_timeline", "article", _TIMELINE)
    op.drop_index("ix_article_published", table_name="article")


def downgrade() -> None:
    op.create_index("ix_article_published", "article", ["published"])
    op.drop_index("ix_article_timeline", table_name="article")
