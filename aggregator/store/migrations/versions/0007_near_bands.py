"""near bands: each article_near row keeps its band keys, so the store removes its article_band
rows without banding the signature itself (the dedupe stage's job)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows saved before keep NULL: see store/near.py on the bands they leave behind.
    with op.batch_alter_table("article_near") as batch:
        batch.add_column(sa.Column("bands", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("article_near") as batch:
        batch.drop_column("bands")
