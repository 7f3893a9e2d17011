"""Signed REST transport: institutions' SM2 public keys and policies, and used nonces."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from huren.store.tables import org_key, used_nonce


def get_key(conn: Connection, org_code: str) -> dict[str, Any] | None:
    r = conn.execute(select(org_key).where(org_key.c.org_code == org_code)).mappings().first()
    return dict(r) if r else None


def policies(conn: Connection) -> list[dict[str, Any]]:
    """Every registered key (one row per institution that registered one; a small table)."""
    return [dict(r) for r in conn.execute(select(org_key)).mappings()]


def _insert(conn: Connection, table: Any) -> Any:
    """The dialect's INSERT, which has ON CONFLICT on both SQLite and PostgreSQL."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def put_key(
    conn: Connection, org_code: str, public_key_hex: str, require_signature: bool, require_encryption: bool,
    now: datetime,
) -> None:
    values = {
        "public_key_hex": public_key_hex,
        "require_signature": require_signature,
        "require_encryption": require_encryption,
        "updated_at": now,
    }
    stmt = _insert(conn, org_key).values(org_code=org_code, created_at=now, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[org_key.c.org_code], set_=values))


def use_nonce(conn: Connection, org_code: str, nonce: str, expires_at: datetime) -> bool:
    """Record a nonce; False when the institution has used it before (and it is still kept)."""
    stmt = _insert(conn, used_nonce).values(org_code=org_code, nonce=nonce, expires_at=expires_at)
    # RETURNING, not rowcount: SQLAlchemy 2.1 + psycopg reports rowcount -1 for this INSERT
    return conn.execute(stmt.on_conflict_do_nothing().returning(used_nonce.c.nonce)).first() is not None


def purge_nonces(conn: Connection, now: datetime) -> int:
    """Forget nonces whose request timestamps are out of the replay window anyway."""
    return int(conn.execute(delete(used_nonce).where(used_nonce.c.expires_at < now)).rowcount)
