"""The access log: every read of a patient's data."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.engine import Dialect

from huren.store.direct import DirectInsert
from huren.store.tables import access_log


def log_access(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(access_log).values(row))


@lru_cache(maxsize=4)
def _access_insert(dialect: Dialect) -> DirectInsert:
    return DirectInsert(access_log, dialect)


def log_access_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Access-log rows in the caller's transaction, on the DBAPI cursor (written on every read
    of a patient's data, so on the hot paths)."""
    _access_insert(conn.dialect).run(conn, rows)


def list_access(
    conn: Connection, *, id_type_code: str | None = None, id_no: str | None = None, since: datetime | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    q = select(access_log)
    if id_type_code is not None:
        q = q.where(access_log.c.id_type_code == id_type_code)
    if id_no is not None:
        q = q.where(access_log.c.id_no == id_no)
    if since is not None:
        q = q.where(access_log.c.at >= since)
    return [dict(r) for r in conn.execute(q.order_by(access_log.c.id.desc()).limit(limit)).mappings()]
