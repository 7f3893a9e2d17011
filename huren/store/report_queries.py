"""Queries across reports: a patient's reports in a period, a patient's abnormal lab items, and the
reports received per institution, day and department (completeness).

A patient is found by the blind index of the ID number (``id_no_bidx``, huren.store.sealing), and
the rows come back opened. On PostgreSQL a bound on ``authenticator_dtime`` from below also bounds
``received_at`` (huren.store.partitions.received_floor), so only the recent monthly partitions are
read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from huren.store import partitions, sealing
from huren.store.tables import REPORT_TABLES


def for_patient(
    conn: Connection,
    kind: str,
    id_type_code: str,
    id_no: str,
    start: datetime,
    end: datetime,
    *,
    include_voided: bool = False,
) -> list[dict[str, Any]]:
    """A patient's reports across institutions, newest first, by authentication time."""
    master_t, _ = REPORT_TABLES[kind]
    fields = sealing.cipher(conn)
    q = select(master_t).where(
        master_t.c.id_type_code == id_type_code,
        master_t.c.id_no_bidx == sealing.blind_id(fields, id_no),
        master_t.c.authenticator_dtime >= start,
        master_t.c.authenticator_dtime < end,
    )
    floor = partitions.received_floor(conn.dialect.name, kind, bindparam("since_floor", start, type_=master_t.c.received_at.type))
    if floor is not None:
        q = q.where(master_t.c.received_at >= floor)
    if not include_voided:
        q = q.where(master_t.c.voided.is_(False))
    q = q.order_by(master_t.c.authenticator_dtime.desc(), master_t.c.id.desc())
    return [sealing.open_row(fields, master_t.name, r) for r in conn.execute(q).mappings()]


def abnormal_lab_items(
    conn: Connection, id_type_code: str, id_no: str, start: datetime, end: datetime, codes: Sequence[str]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    master_t, item_t = REPORT_TABLES["lab"]
    fields = sealing.cipher(conn)
    q = (
        select(master_t, *[c.label(f"item__{c.name}") for c in item_t.c])
        .join(item_t, item_t.c.report_id == master_t.c.id)
        .where(
            master_t.c.id_type_code == id_type_code,
            master_t.c.id_no_bidx == sealing.blind_id(fields, id_no),
            master_t.c.authenticator_dtime >= start,
            master_t.c.authenticator_dtime < end,
            master_t.c.voided.is_(False),
            item_t.c.result_interpre.in_(codes),
        )
        .order_by(master_t.c.authenticator_dtime.desc(), item_t.c.serial_no)
    )
    floor = partitions.received_floor(conn.dialect.name, "lab", bindparam("since_floor", start, type_=master_t.c.received_at.type))
    if floor is not None:
        q = q.where(master_t.c.received_at >= floor, item_t.c.received_at == master_t.c.received_at, item_t.c.received_at >= floor)
    out = []
    for r in conn.execute(q).mappings():
        master = sealing.open_row(fields, master_t.name, {k: v for k, v in r.items() if not k.startswith("item__")})
        item = {k[6:]: v for k, v in r.items() if k.startswith("item__")}
        out.append((master, item))
    return out


def counts_by_day_dept(
    conn: Connection, kind: str, org_codes: Sequence[str] | None, day_from: date, day_to: date
) -> dict[tuple[str, date, str], int]:
    """Received, not voided reports per (org, day of authentication, ordering department)."""
    master_t, _ = REPORT_TABLES[kind]
    day = func.date(master_t.c.authenticator_dtime)
    q = (
        select(master_t.c.org_code, day.label("day"), master_t.c.participant_dept_code, func.count())
        .where(
            master_t.c.authenticator_dtime >= datetime.combine(day_from, datetime.min.time()),
            master_t.c.authenticator_dtime < datetime.combine(day_to, datetime.min.time()),
            master_t.c.voided.is_(False),
        )
        .group_by(master_t.c.org_code, day, master_t.c.participant_dept_code)
    )
    if org_codes is not None:
        q = q.where(master_t.c.org_code.in_(org_codes))
    floor = partitions.received_floor(conn.dialect.name, kind, bindparam("since_floor", datetime.combine(day_from, datetime.min.time()), type_=master_t.c.received_at.type))
    if floor is not None:
        q = q.where(master_t.c.received_at >= floor)
    out: dict[tuple[str, date, str], int] = {}
    for org_code, d, dept, n in conn.execute(q):
        d = date.fromisoformat(d) if isinstance(d, str) else d
        out[(org_code, d, dept)] = int(n)
    return out
