"""Institutions and their credentials; failed-login counters and revoked page sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from huren.store import changes
from huren.store.tables import credential, login_failure, org, revoked_session


def add_org(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(org).values(row))
    changes.record(conn, "org", [(row["code"], None, row["code"])], row["created_at"])


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
            org_code=org_code, username=username, password_hash=password_hash, role=role, created_at=now,
            disabled=False, cred_version=1, updated_at=now,
        )
    )


def get_credential(conn: Connection, org_code: str, username: str) -> dict[str, Any] | None:
    r = (
        conn.execute(select(credential).where(credential.c.org_code == org_code, credential.c.username == username))
        .mappings()
        .first()
    )
    return dict(r) if r else None


def account_state(conn: Connection, org_code: str, username: str) -> tuple[int, str, bool] | None:
    """(credential version, role, active) of a user; active when neither it nor its institution
    is disabled. None when there is no such user."""
    r = conn.execute(
        select(credential.c.cred_version, credential.c.role, credential.c.disabled, org.c.disabled.label("org_disabled"))
        .join(org, org.c.code == credential.c.org_code)
        .where(credential.c.org_code == org_code, credential.c.username == username)
    ).first()
    if r is None:
        return None
    return int(r.cred_version), str(r.role), not (r.disabled or r.org_disabled)


def set_org_disabled(conn: Connection, code: str, disabled: bool, now: datetime) -> bool:
    """Disable or enable an institution and bump the version of each of its credentials; False
    when there is no such institution."""
    if conn.execute(update(org).where(org.c.code == code).values(disabled=disabled)).rowcount == 0:
        return False
    conn.execute(
        update(credential)
        .where(credential.c.org_code == code)
        .values(cred_version=credential.c.cred_version + 1, updated_at=now)
    )
    changes.record(conn, "org", [(code, None, code)], now)
    return True


def update_credential(conn: Connection, org_code: str, username: str, now: datetime, **values: Any) -> bool:
    """Change a credential (``disabled``, ``password_hash``) and bump its version; False when
    there is no such user."""
    res = conn.execute(
        update(credential)
        .where(credential.c.org_code == org_code, credential.c.username == username)
        .values(cred_version=credential.c.cred_version + 1, updated_at=now, **values)
    )
    return res.rowcount > 0


def list_credentials(conn: Connection, org_code: str) -> list[dict[str, Any]]:
    q = (
        select(credential.c.username, credential.c.role, credential.c.disabled, credential.c.created_at)
        .where(credential.c.org_code == org_code)
        .order_by(credential.c.username)
    )
    return [dict(r) for r in conn.execute(q).mappings()]


# -- failed logins ---------------------------------------------------------------------------
def failures(conn: Connection, keys: list[str]) -> dict[str, dict[str, Any]]:
    rows = conn.execute(select(login_failure).where(login_failure.c.key.in_(keys))).mappings()
    return {r["key"]: dict(r) for r in rows}


def put_failure(conn: Connection, row: dict[str, Any], exists: bool) -> None:
    if exists:
        conn.execute(update(login_failure).where(login_failure.c.key == row["key"]).values(row))
    else:
        conn.execute(insert(login_failure).values(row))


def clear_failures(conn: Connection, key: str) -> None:
    conn.execute(delete(login_failure).where(login_failure.c.key == key))


def purge_failures(conn: Connection, older_than: int) -> None:
    conn.execute(
        delete(login_failure).where(login_failure.c.last_at < older_than, login_failure.c.locked_until < older_than)
    )


# -- revoked page sessions -------------------------------------------------------------------
def revoke_session(conn: Connection, nonce: str, expires_at: int, now: int) -> None:
    conn.execute(delete(revoked_session).where(revoked_session.c.expires_at < now))
    if conn.execute(select(revoked_session.c.nonce).where(revoked_session.c.nonce == nonce)).first() is None:
        conn.execute(insert(revoked_session).values(nonce=nonce, expires_at=expires_at))


def session_revoked(conn: Connection, nonce: str) -> bool:
    return conn.execute(select(revoked_session.c.nonce).where(revoked_session.c.nonce == nonce)).first() is not None


def upsert_org(conn: Connection, row: dict[str, Any]) -> None:
    """An institution as another platform holds it (federation): added, or its name, division,
    level, platform and disabled state updated; its credentials here are untouched."""
    values = {k: row[k] for k in ("name", "region_code", "level", "grade", "platform", "disabled")}
    if conn.execute(update(org).where(org.c.code == row["code"]).values(values)).rowcount == 0:
        conn.execute(insert(org).values(row))
    changes.record(conn, "org", [(row["code"], None, row["code"])], row["created_at"])
