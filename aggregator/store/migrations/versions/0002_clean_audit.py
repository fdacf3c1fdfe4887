"""clean audit: per article, the clean rules that fired and what they removed

Revision ID: 0002
Revises: 0001
Create Date: 2024-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # "" marks articles cleaned before the audit existed; `aggregator reclean` fills it in.
    with op.batch_alter_table("article") as batch:
        batch.add_column(
            sa.Column("clean_audit", sa.Text(), nullable=False, server_default=sa.text("''"))
        )


def downgrade() -> None:
    with op.batch_alter_table("article") as batch:
        batch.drop_column("clean_audit")
