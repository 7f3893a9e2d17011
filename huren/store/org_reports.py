"""One institution's reports, a page at a time (BJ-1.2.1 "通过医疗机构编码查询报告列表")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from huren.store import sealing
from huren.store.tables import REPORT_TABLES

#: the master columns a list row shows (the full report is one more call)
LIST_COLUMNS = (
    "id", "org_code", "report_form_no", "report_title", "event_type", "event_no", "id_type_code", "id_no", "name",
    "class_name", "authenticator_dtime", "version", "voided", "pdf_sha256", "received_at",
)


def page(
    conn: Connection, kind: str, org_code: str, start: datetime, end: datetime, *, offset: int, limit: int, include_voided: bool
) -> tuple[int, list[dict[str, Any]]]:
    """(how many reports match, one page of them), newest authentication first."""
    m, _ = REPORT_TABLES[kind]
    where = [m.c.org_code == org_code, m.c.authenticator_dtime >= start, m.c.authenticator_dtime < end]
    if not include_voided:
        where.append(m.c.voided.is_(False))
    total = int(conn.execute(select(func.count()).select_from(m).where(*where)).scalar_one())
    q = (
        select(*(m.c[c] for c in LIST_COLUMNS))
        .where(*where)
        .order_by(m.c.authenticator_dtime.desc(), m.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    fields = sealing.cipher(conn)
    return total, [sealing.open_row(fields, m.name, r) for r in conn.execute(q).mappings()]
