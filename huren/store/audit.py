"""The access log: every read of a patient's data.

The patient's ID number is sealed at rest (issue 10 §1.8, ``huren.crypto.aead``): ``id_no`` holds
``enc1:…`` bound to ``access_log.id_no``, and ``id_no_bidx`` its keyed blind index (domain
``id_no``), which is what lookups by patient compare. :func:`sealed_id` makes the pair for a row
(``huren.services.audit`` does, for every row it writes); :func:`list_access` finds rows by the
index and opens the values — a value that does not open (another data key, a value moved from
another column) is :class:`huren.errors.NotConfigured`, never returned in part.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.engine import Dialect

from huren.crypto.aead import FieldCipher
from huren.store import platforms, sealing
from huren.store.direct import DirectInsert
from huren.store.tables import access_log

TABLE = "access_log"
ID_DOMAIN = sealing.ID_DOMAIN


def sealed_id(fields: FieldCipher, id_no: str | None) -> tuple[str | None, str | None]:
    """(sealed ``id_no``, its blind index) of an access-log row; (None, None) for no patient."""
    if id_no is None:
        return None, None
    row = sealing.seal_row(fields, TABLE, {"id_no": id_no})
    return row["id_no"], row["id_no_bidx"]


def open_id(fields: FieldCipher, value: str | None) -> str | None:
    """The ID number of a stored row (NotConfigured when it does not open)."""
    return sealing.open_value(fields, TABLE, "id_no", value, "")


def log_access(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(access_log).values({"platform": platforms.platform_of_cached(conn, row["org_code"])} | row))


@lru_cache(maxsize=4)
def _access_insert(dialect: Dialect) -> DirectInsert:
    return DirectInsert(access_log, dialect)


def log_access_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Access-log rows in the caller's transaction, on the DBAPI cursor (written on every read
    of a patient's data, so on the hot paths). Rows come sealed (``AuditService.rows``); each
    carries the platform of the reading institution."""
    for r in rows:
        if "platform" not in r:
            r["platform"] = platforms.platform_of_cached(conn, r["org_code"])
    _access_insert(conn.dialect).run(conn, rows)


def list_access(
    conn: Connection, fields: FieldCipher, *, id_type_code: str | None = None, id_no: str | None = None,
    since: datetime | None = None, limit: int = 200,
) -> list[dict[str, Any]]:
    """Access-log rows, newest first, with ``id_no`` opened (by patient through the blind index)."""
    q = select(access_log)
    if id_type_code is not None:
        q = q.where(access_log.c.id_type_code == id_type_code)
    if id_no is not None:
        q = q.where(access_log.c.id_no_bidx == sealing.blind_id(fields, id_no))
    if since is not None:
        q = q.where(access_log.c.at >= since)
    out = []
    for r in conn.execute(q.order_by(access_log.c.id.desc()).limit(limit)).mappings():
        row = dict(r)
        row["id_no"] = open_id(fields, row["id_no"])
        out.append(row)
    return out


def seal_existing(conn: Connection, fields: FieldCipher, *, batch: int = 1000) -> int:
    """Seal the ID numbers of rows written before they were sealed (the 0006 migration); returns
    how many rows were converted. Rows already sealed are left as they are."""
    return sealing.seal_existing(conn, fields, TABLE, batch=batch)
