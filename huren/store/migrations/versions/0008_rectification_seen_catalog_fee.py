"""rectification seen by the hospital, catalog fee, catalog edits (issue 11 items 9–11)

- ``rejected_submission.seen_at``: when the submitting institution's own account first opened
  the rejected submission in its open items (NULL: not yet seen).
- ``catalog_item.fee``: the optional fee per item (收费标准 / 单价, yuan) the cost-avoided estimate
  of the statistics uses (NULL: not given).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rejected_submission") as t:
        t.add_column(sa.Column("seen_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("catalog_item") as t:
        t.add_column(sa.Column("fee", sa.Numeric(12, 2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("catalog_item") as t:
        t.drop_column("fee")
    with op.batch_alter_table("rejected_submission") as t:
        t.drop_column("seen_at")
