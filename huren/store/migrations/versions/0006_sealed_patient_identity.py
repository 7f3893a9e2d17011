"""sealed patient identity: the access log's ID numbers and the master-data patients' ID numbers,
names, card numbers and phones sealed at rest (issue 10 §1.8)

- ``access_log.id_no`` widened to hold ``enc1:`` + base64url of an SM4-GCM envelope
  (``huren.crypto.aead``), and ``access_log.id_no_bidx`` added: its keyed blind index, which the
  index by patient now covers instead of the ID number.
- ``patient.id_no``, ``name``, ``card_no``, ``phone`` widened the same way (sealed, bound to the
  column and the row), and ``patient.id_no_bidx`` added, indexed with ``id_type_code``.
- Existing rows are converted here, with the data keys of the installation the migration runs for
  (``huren.store.migrate.upgrade(…, fields=…)``, as ``huren db upgrade`` and bootstrap pass them).
  Without them the migration refuses a database that holds ID numbers in clear.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SEALED_LEN = 768  # huren.store.tables.SEALED_LEN when this migration was written

NO_KEYS = (
    "迁移0006需要数据密钥来加密访问日志与患者主数据中已有的身份信息：请用 huren db upgrade 升级"
    "（它读取数据目录 keys/ 下的数据密钥），不要直接运行 alembic"
)


def upgrade() -> None:
    bind = op.get_bind()
    fields = context.config.attributes.get("fields")
    # refused before any DDL: pysqlite commits ALTER TABLE whatever the transaction says
    if fields is None and (
        bind.execute(sa.text("SELECT 1 FROM access_log WHERE id_no IS NOT NULL LIMIT 1")).first()
        or bind.execute(sa.text("SELECT 1 FROM patient LIMIT 1")).first()
    ):
        raise RuntimeError(NO_KEYS)
    # plain ALTER TABLE (no batch copy on SQLite, whose VARCHAR has no length limit anyway)
    if bind.dialect.name != "sqlite":
        op.alter_column("access_log", "id_no", type_=sa.String(length=SEALED_LEN), existing_type=sa.String(length=128))
        for column, old in (("id_no", 128), ("name", 128), ("card_no", 128), ("phone", 32)):
            op.alter_column("patient", column, type_=sa.String(length=SEALED_LEN), existing_type=sa.String(length=old))
    op.add_column("access_log", sa.Column("id_no_bidx", sa.String(length=32), nullable=True))
    op.drop_index("ix_access_log_id_type_code_id_no_at", table_name="access_log")
    op.create_index("ix_access_log_id_type_code_id_no_bidx_at", "access_log", ["id_type_code", "id_no_bidx", "at"])
    op.add_column("patient", sa.Column("id_no_bidx", sa.String(length=32), nullable=True))
    op.drop_index("ix_patient_id_type_code_id_no", table_name="patient")
    op.create_index("ix_patient_id_type_code_id_no_bidx", "patient", ["id_type_code", "id_no_bidx"])
    if fields is not None:
        from huren.store import audit, masterdata

        audit.seal_existing(bind, fields)
        masterdata.seal_existing(bind, fields)


def downgrade() -> None:
    raise NotImplementedError("0006 seals patient identity at rest; it is not undone")
