"""render mark: the tags each save changed, in commit order, and per output folder the last
change it rendered, so a render a kill prevented is made good by the next run

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feed_change",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    # No mark yet: every output folder renders in full once, as after a crash.
    op.create_table(
        "render_mark",
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("output"),
    )


def downgrade() -> None:
    op.drop_table("render_mark")
    op.drop_table("feed_change")
