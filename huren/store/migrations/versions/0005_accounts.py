"""accounts: disabling institutions and users, credential versions, failed-login counters and
revoked page sessions (issue 10 §1.5 revocation, §1.6 brute force)

- ``org.disabled``, ``credential.disabled``: a disabled institution or user cannot log in, and
  its tokens and sessions stop working.
- ``credential.cred_version``: carried in every token and session; disabling, enabling or a
  password change bumps it, so what was issued before is refused on use.
- ``login_failure``: failed logins counted per account and per client address (throttle, lock).
- ``revoked_session``: the nonces of page sessions ended by logout, kept until they would have
  expired anyway.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ALTER TABLE … ADD COLUMN (no batch copy): on SQLite a batch would drop and recreate
    # ``org``, which the credentials of an existing installation reference (foreign keys are on)
    op.add_column("org", sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("credential", sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("credential", sa.Column("cred_version", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("credential", sa.Column("updated_at", sa.DateTime(), nullable=True))
    op.create_table(
        "login_failure",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.BigInteger(), nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_failure")),
    )
    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_failure_last_at"), ["last_at"], unique=False)
    op.create_table(
        "revoked_session",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_revoked_session")),
    )
    with op.batch_alter_table("revoked_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_revoked_session_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("revoked_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_revoked_session_expires_at"))
    op.drop_table("revoked_session")
    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_failure_last_at"))
    op.drop_table("login_failure")
    # ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35), for the same reason as above
    op.drop_column("credential", "updated_at")
    op.drop_column("credential", "cred_version")
    op.drop_column("credential", "disabled")
    op.drop_column("org", "disabled")
