"""Institutions and their credentials."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from huren.store.tables import credential, org


def add_org(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(org).values(row))


def get_org(conn: Connection, code: str) -> dict[str, Any] | None:
    r = conn.execute(select(org).where(org.c.code == code)).mappings().first()
    return dict(r) if r else None


def list_orgs(conn: Connection, region_prefix: str | None = None) -> list[dict[str, Any]]:
    q = select(org).order_by(org.c.region_code, org.c.code)
    if region_prefix:
        q = q.where(org.c.region_code.startswith(region_prefix, autoescape=True))
    return [dict(r) for r in conn.execute(q).mappings()]


def add_credential(
    conn: Connection, org_code: str, username: str, password_hash: str, role: str, now: datetime
) -> None:
    conn.execute(
        insert(credential).values(
            org_code=org_code, username=username, password_hash=password_hash, role=role, created_at=now
        )
    )


def get_credential(conn: Connection, org_code: str, username: str) -> dict[str, Any] | None:
    r = (
        conn.execute(select(credential).where(credential.c.org_code == org_code, credential.c.username == username))
        .mappings()
        .first()
    )
    return dict(r) if r else None
