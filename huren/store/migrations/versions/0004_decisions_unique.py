"""accept and quote records unique per institution, visit, prior item and record time (and verdict)

A hospital's front-end machine retries an upload whose answer it did not see; the platform must
not count that decision twice.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ["org_code", "new_event_no", "hr_org_code", "hr_report_form_no", "code", "id_type_code", "id_no", "record_time"]


def upgrade() -> None:
    with op.batch_alter_table("accept_record", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_accept_record_visit_item", [*COLUMNS, "is_accept"])
    with op.batch_alter_table("quote_record", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_quote_record_visit_item", COLUMNS)


def downgrade() -> None:
    with op.batch_alter_table("quote_record", schema=None) as batch_op:
        batch_op.drop_constraint("uq_quote_record_visit_item", type_="unique")
    with op.batch_alter_table("accept_record", schema=None) as batch_op:
        batch_op.drop_constraint("uq_accept_record_visit_item", type_="unique")
