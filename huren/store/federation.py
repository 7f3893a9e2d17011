"""The child feeds applied on this deployment (``federation_peer``): how far each is applied."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from huren.store.tables import federation_peer


def get_peer(conn: Connection, code: str) -> dict[str, Any] | None:
    r = conn.execute(select(federation_peer).where(federation_peer.c.platform == code)).mappings().first()
    return dict(r) if r else None


def list_peers(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(federation_peer).order_by(federation_peer.c.platform)).mappings()]


def put_peer(
    conn: Connection,
    code: str,
    now: datetime,
    *,
    applied_seq: int | None = None,
    source_last_seq: int | None = None,
    source_at: datetime | None = None,
    applied: int = 0,
    gaps: int = 0,
    error: str | None = None,
) -> dict[str, Any]:
    """Record what a batch did (the row made on first use); the row as it is now."""
    found = conn.execute(select(federation_peer).where(federation_peer.c.platform == code).with_for_update()).mappings().first()
    cur: dict[str, Any] | None = dict(found) if found else None
    if cur is None:
        conn.execute(insert(federation_peer).values(platform=code, applied_seq=0, source_last_seq=0, applied_total=0, gaps=0, updated_at=now))
        cur = {"applied_seq": 0, "source_last_seq": 0, "applied_total": 0, "gaps": 0, "source_at": None}
    values: dict[str, Any] = {"updated_at": now, "last_error": error}
    if applied_seq is not None and applied_seq > int(cur["applied_seq"]):
        values["applied_seq"] = applied_seq
    if source_last_seq is not None:
        values["source_last_seq"] = max(source_last_seq, int(values.get("applied_seq", cur["applied_seq"])))
    if source_at is not None and (cur["source_at"] is None or source_at > cur["source_at"]):
        values["source_at"] = source_at
    if applied:
        values["applied_total"] = int(cur["applied_total"]) + applied
        values["applied_at"] = now
    if gaps:
        values["gaps"] = int(cur["gaps"]) + gaps
    conn.execute(update(federation_peer).where(federation_peer.c.platform == code).values(values))
    row = get_peer(conn, code)
    assert row is not None
    return row
