"""sealed patient identity in the reports and the records: no ID number or name in clear at rest
(issue 10 §1.8)

- ``lab_report`` / ``exam_report``: ``id_no``, ``name``, ``card_no`` widened to hold ``enc1:`` +
  base64url of an SM4-GCM envelope (``huren.store.sealing``); ``id_no_bidx`` added (the ID
  number's keyed blind index, domain ``id_no``), and the index by patient now covers it instead
  of the ID number.
- ``accept_record`` / ``quote_record``: ``id_no`` sealed, ``id_no_bidx`` added; the index by
  patient and visit and the unique decision key (``uq_*_visit_item``) use the blind index.
- ``reminder_log``: ``id_no`` sealed, ``id_no_bidx`` added and indexed.
- ``report_history.snapshot`` (the whole old version) and ``rejected_submission.problems`` (whose
  messages may echo a value sent) sealed whole.
- Existing rows are converted here in batches with the installation's data keys
  (``huren.store.migrate.upgrade(…, fields=…)``); without them the migration refuses a database
  that holds such rows.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SEALED_LEN = 768  # huren.store.tables.SEALED_LEN when this migration was written
RECORD = ["org_code", "new_event_no", "hr_org_code", "hr_report_form_no", "code", "id_type_code"]

NO_KEYS = (
    "迁移0007需要数据密钥来加密报告、互认记录与提醒记录中已有的患者身份信息：请用 huren db upgrade 升级"
    "（它读取数据目录 keys/ 下的数据密钥），不要直接运行 alembic"
)

#: table → its rows that hold something to seal
_TO_SEAL = {
    "lab_report": "SELECT 1 FROM lab_report LIMIT 1",
    "exam_report": "SELECT 1 FROM exam_report LIMIT 1",
    "accept_record": "SELECT 1 FROM accept_record LIMIT 1",
    "quote_record": "SELECT 1 FROM quote_record LIMIT 1",
    "reminder_log": "SELECT 1 FROM reminder_log WHERE id_no IS NOT NULL LIMIT 1",
    "report_history": "SELECT 1 FROM report_history LIMIT 1",
    "rejected_submission": "SELECT 1 FROM rejected_submission LIMIT 1",
}


def upgrade() -> None:
    bind = op.get_bind()
    fields = context.config.attributes.get("fields")
    # refused before any DDL: pysqlite commits ALTER TABLE whatever the transaction says
    if fields is None and any(bind.execute(sa.text(q)).first() for q in _TO_SEAL.values()):
        raise RuntimeError(NO_KEYS)
    sqlite = bind.dialect.name == "sqlite"
    if not sqlite:  # SQLite's VARCHAR has no length limit
        for table in ("lab_report", "exam_report"):
            for column in ("id_no", "name", "card_no"):
                op.alter_column(table, column, type_=sa.String(length=SEALED_LEN), existing_type=sa.String(length=128))
        for table in ("accept_record", "quote_record", "reminder_log"):
            op.alter_column(table, "id_no", type_=sa.String(length=SEALED_LEN), existing_type=sa.String(length=128))
    for table in ("lab_report", "exam_report"):
        op.add_column(table, sa.Column("id_no_bidx", sa.String(length=32), nullable=True))
        op.drop_index(f"ix_{table}_id_type_code_id_no_authenticator_dtime", table_name=table)
        op.create_index(
            f"ix_{table}_id_type_code_id_no_bidx_authenticator_dtime", table, ["id_type_code", "id_no_bidx", "authenticator_dtime"]
        )
    op.add_column("reminder_log", sa.Column("id_no_bidx", sa.String(length=32), nullable=True))
    op.drop_index("ix_reminder_log_id_type_code_id_no_at", table_name="reminder_log")
    op.create_index("ix_reminder_log_id_type_code_id_no_bidx_at", "reminder_log", ["id_type_code", "id_no_bidx", "at"])
    op.add_column("accept_record", sa.Column("id_no_bidx", sa.String(length=32), nullable=True))
    op.add_column("quote_record", sa.Column("id_no_bidx", sa.String(length=32), nullable=True))
    op.drop_index("ix_accept_record_id_type_code_id_no_new_event_no", table_name="accept_record")
    op.create_index("ix_accept_record_id_type_code_id_no_bidx_new_event_no", "accept_record", ["id_type_code", "id_no_bidx", "new_event_no"])
    # the unique decision keys: a table copy on SQLite (its constraints live in the CREATE TABLE)
    for table, extra in (("accept_record", ["is_accept"]), ("quote_record", [])):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_visit_item", type_="unique")
            batch.create_unique_constraint(f"uq_{table}_visit_item", [*RECORD, "id_no_bidx", "record_time", *extra])
    if fields is not None:
        from huren.store import sealing

        for table in _TO_SEAL:
            sealing.seal_existing(bind, fields, table)


def downgrade() -> None:
    raise NotImplementedError("0007 seals patient identity at rest; it is not undone")
