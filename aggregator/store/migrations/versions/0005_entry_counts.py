"""entry counts: per source, how many entries its last successful read skipped (each named
in the log), how many had no date (dated when first seen) and how many were cut to the
config's `limits`, for `status`

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("source_state") as batch:
        batch.add_column(sa.Column("skipped", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("undated", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("limited", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("source_state") as batch:
        batch.drop_column("limited")
        batch.drop_column("undated")
        batch.drop_column("skipped")
