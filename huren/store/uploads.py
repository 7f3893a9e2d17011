"""When and how much each institution uploaded: the reports (lab, exam) received since a time and
the last receipt, per institution (the supervisor's overview, huren.services.overview)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, func, select

from huren.store.tables import REPORT_TABLES


def _when(value: object) -> datetime | None:
    if isinstance(value, str):  # SQLite without the column's type on an aggregate
        return datetime.fromisoformat(value)
    return value if isinstance(value, datetime) else None


def received(conn: Connection, org_codes: Sequence[str] | None, since: datetime) -> dict[str, tuple[int, datetime | None]]:
    """Per institution: (reports of every kind — voided ones too: they arrived — received at or
    after ``since``, its latest receipt ever)."""
    out: dict[str, tuple[int, datetime | None]] = {}
    for master_t, _ in REPORT_TABLES.values():
        q = select(
            master_t.c.org_code,
            func.count().filter(master_t.c.received_at >= since),
            func.max(master_t.c.received_at),
        ).group_by(master_t.c.org_code)
        if org_codes is not None:
            q = q.where(master_t.c.org_code.in_(list(org_codes)))
        for org, n, last in conn.execute(q):
            count, latest = out.get(str(org), (0, None))
            when = _when(last)
            if when is not None and (latest is None or when > latest):
                latest = when
            out[str(org)] = (count + int(n or 0), latest)
    return out
