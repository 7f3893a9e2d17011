"""Daily counts (lab_exam_report) and the kept rejected submissions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from huren.store.tables import REPORT_TABLES, daily_count, metadata, rejected_submission


def upsert_daily(conn: Connection, rows: Sequence[dict[str, Any]], *, now: datetime, actor: str) -> None:
    """Replace the counts of each (org_code, date_t, dept_code)."""
    for r in rows:
        conn.execute(
            delete(daily_count).where(
                daily_count.c.org_code == r["org_code"],
                daily_count.c.date_t == r["date_t"],
                daily_count.c.dept_code == r["dept_code"],
            )
        )
    conn.execute(insert(daily_count), [r | {"received_at": now, "uploaded_by": actor} for r in rows])


def daily_counts(
    conn: Connection, org_codes: Sequence[str] | None, day_from: date, day_to: date
) -> list[dict[str, Any]]:
    q = select(daily_count).where(daily_count.c.date_t >= day_from, daily_count.c.date_t < day_to)
    if org_codes is not None:
        q = q.where(daily_count.c.org_code.in_(org_codes))
    return [dict(r) for r in conn.execute(q.order_by(daily_count.c.org_code, daily_count.c.date_t)).mappings()]


def add_rejected(conn: Connection, row: dict[str, Any]) -> int:
    row = row | {"problems": json.dumps(row["problems"], ensure_ascii=False)}
    return int(conn.execute(insert(rejected_submission).values(row)).inserted_primary_key[0])  # type: ignore[index]


def list_rejected(
    conn: Connection, org_codes: Sequence[str] | None, *, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    q = select(rejected_submission)
    if org_codes is not None:
        q = q.where(rejected_submission.c.org_code.in_(list(org_codes)))
    q = q.order_by(rejected_submission.c.id.desc()).limit(limit).offset(offset)
    out = []
    for r in conn.execute(q).mappings():
        d = dict(r)
        d["problems"] = json.loads(d["problems"])
        out.append(d)
    return out


def get_rejected(conn: Connection, rejected_id: int) -> dict[str, Any] | None:
    r = conn.execute(select(rejected_submission).where(rejected_submission.c.id == rejected_id)).mappings().first()
    if not r:
        return None
    d = dict(r)
    d["problems"] = json.loads(d["problems"])
    return d


def uploaded_since(conn: Connection, table_name: str, time_column: str, org_code: str, since: datetime) -> bool:
    """Whether ``org_code`` stored anything in ``table_name`` at or after ``since``."""
    table = metadata.tables[table_name]
    q = select(table.c[time_column]).where(table.c.org_code == org_code, table.c[time_column] >= since).limit(1)
    return conn.execute(q).first() is not None


def report_delays(
    conn: Connection, kind: str, org_codes: Sequence[str] | None, start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime]]:
    """(org_code, authenticator_dtime, received_at) of the reports (not voided) of ``kind``
    approved in [start, end). The delays are computed by the caller: date arithmetic differs
    between SQLite and PostgreSQL."""
    master_t, _ = REPORT_TABLES[kind]
    q = select(master_t.c.org_code, master_t.c.authenticator_dtime, master_t.c.received_at).where(
        master_t.c.authenticator_dtime >= start,
        master_t.c.authenticator_dtime < end,
        master_t.c.voided.is_(False),
    )
    if org_codes is not None:
        q = q.where(master_t.c.org_code.in_(list(org_codes)))
    return [(str(o), a, r) for o, a, r in conn.execute(q)]
