"""body digest and moved_from: per source, a hash of the last feed body processed (to skip it
when resent), and the configured URL a permanent redirect was followed from (to ask its
target directly while the config names that URL)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: no body seen yet, so the next one is processed whatever it holds; no redirect
    # followed since, so the next poll asks the configured URL (and records where it leads).
    with op.batch_alter_table("source_state") as batch:
        batch.add_column(sa.Column("body_digest", sa.Text(), nullable=True))
        batch.add_column(sa.Column("moved_from", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_state") as batch:
        batch.drop_column("moved_from")
        batch.drop_column("body_digest")
