"""platform tree, change feeds, federation watermarks (issue 13, XJ-1.1)

- ``platform``: the tree (region → cities, real or virtual → institutions; a cross-provincial
  level above), which platforms this deployment keeps (``local``), each feed's sequencer state.
- ``feed_change``: one row per change per local feed; ``seq`` dense and increasing per feed, given
  after commit by the sequencer (huren.store.changes).
- ``federation_peer``: how far each child platform's feed has been applied here.
- ``platform`` column (default "") on the reports, decisions, reminders, daily counts, rejected
  submissions and the access log: the platform the row was written in; an index on ``org.platform``.

Rows already stored keep ""; ``huren platform add`` assigns institutions to platforms.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: the tables that gain a ``platform`` column
CARRIERS = ("lab_report", "exam_report", "accept_record", "quote_record", "reminder_log", "daily_count", "rejected_submission", "access_log")


def upgrade() -> None:
    op.create_table(
        "platform",
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("division", sa.String(12), nullable=False),
        sa.Column("virtual", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("local", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("last_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["parent"], ["platform.code"], name="fk_platform_parent_platform"),
        sa.PrimaryKeyConstraint("code", name="pk_platform"),
    )
    op.create_table(
        "feed_change",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("feed", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("org_code", sa.String(128), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=True),
        sa.Column("entity_key", sa.String(700), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feed_change"),
        sa.UniqueConstraint("feed", "seq", name="uq_feed_change_feed_seq"),
    )
    op.create_index("ix_feed_change_feed_id", "feed_change", ["feed", "id"])
    op.create_table(
        "federation_peer",
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("applied_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("source_last_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("source_at", sa.DateTime(), nullable=True),
        sa.Column("applied_at", sa.DateTime(), nullable=True),
        sa.Column("applied_total", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("gaps", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("platform", name="pk_federation_peer"),
    )
    for table in CARRIERS:
        with op.batch_alter_table(table) as t:
            t.add_column(sa.Column("platform", sa.String(64), nullable=False, server_default=""))
    op.create_index("ix_org_platform", "org", ["platform"])


def downgrade() -> None:
    op.drop_index("ix_org_platform", table_name="org")
    for table in reversed(CARRIERS):
        with op.batch_alter_table(table) as t:
            t.drop_column("platform")
    op.drop_table("federation_peer")
    op.drop_index("ix_feed_change_feed_id", table_name="feed_change")
    op.drop_table("feed_change")
    op.drop_table("platform")
