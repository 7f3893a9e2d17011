"""Daily counts (lab_exam_report) and the kept rejected submissions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, case, delete, func, insert, select, update

from huren.store import changes, platforms, sealing
from huren.store.tables import REPORT_TABLES, daily_count, metadata, rejected_submission, report_history


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
    plats = platforms.platforms_of(conn, (r["org_code"] for r in rows))
    conn.execute(insert(daily_count), [r | {"received_at": now, "uploaded_by": actor, "platform": plats.get(r["org_code"], "")} for r in rows])
    changes.record(conn, "daily", [(r["org_code"], None, daily_key(r)) for r in rows], now)


def daily_key(row: dict[str, Any]) -> str:
    """A daily count's key in the feed: ``org_code|date_t|dept_code``."""
    return f"{row['org_code']}|{row['date_t'].isoformat()}|{row['dept_code']}"


def daily_counts(
    conn: Connection, org_codes: Sequence[str] | None, day_from: date, day_to: date
) -> list[dict[str, Any]]:
    q = select(daily_count).where(daily_count.c.date_t >= day_from, daily_count.c.date_t < day_to)
    if org_codes is not None:
        q = q.where(daily_count.c.org_code.in_(org_codes))
    return [dict(r) for r in conn.execute(q.order_by(daily_count.c.org_code, daily_count.c.date_t)).mappings()]


def add_rejected(conn: Connection, row: dict[str, Any]) -> int:
    row = row | {"problems": json.dumps(row["problems"], ensure_ascii=False)}
    row.setdefault("platform", platforms.platform_of_cached(conn, row["org_code"]))
    row = sealing.seal_row(sealing.cipher(conn), "rejected_submission", row)
    return int(conn.execute(insert(rejected_submission).values(row)).inserted_primary_key[0])  # type: ignore[index]


def _opened(conn: Connection, row: Any) -> dict[str, Any]:
    """A stored rejected submission with its problems opened (sealed: their messages may echo a value sent)."""
    d = sealing.open_row(sealing.cipher(conn), "rejected_submission", row)
    d["problems"] = json.loads(d["problems"])
    return d


def list_rejected(
    conn: Connection, org_codes: Sequence[str] | None, *, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    q = select(rejected_submission)
    if org_codes is not None:
        q = q.where(rejected_submission.c.org_code.in_(list(org_codes)))
    q = q.order_by(rejected_submission.c.id.desc()).limit(limit).offset(offset)
    return [_opened(conn, r) for r in conn.execute(q).mappings()]


def get_rejected(conn: Connection, rejected_id: int) -> dict[str, Any] | None:
    r = conn.execute(select(rejected_submission).where(rejected_submission.c.id == rejected_id)).mappings().first()
    if not r:
        return None
    return _opened(conn, r)


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


def kept_bytes(conn: Connection, org_code: str, keep_bytes: int) -> int:
    """Bytes of rejected submissions an institution has kept in the blob store (each at most
    ``keep_bytes``: the kept prefix)."""
    t = rejected_submission
    size = case((t.c.payload_size > keep_bytes, keep_bytes), else_=t.c.payload_size)
    q = select(func.coalesce(func.sum(size), 0)).where(t.c.org_code == org_code, t.c.payload_sha256.is_not(None))
    return int(conn.execute(q).scalar_one())


def rejected_index(conn: Connection, org_codes: Sequence[str] | None) -> list[dict[str, Any]]:
    """Every rejected submission in scope, newest first: id, org_code, kind, report_key,
    received_at, seen_at (what rectification is judged by; the problems are read per page)."""
    t = rejected_submission
    q = select(t.c.id, t.c.org_code, t.c.kind, t.c.report_key, t.c.received_at, t.c.seen_at)
    if org_codes is not None:
        q = q.where(t.c.org_code.in_(list(org_codes)))
    return [dict(r) for r in conn.execute(q.order_by(t.c.id.desc())).mappings()]


def mark_seen(conn: Connection, org_code: str, ids: Sequence[int], now: datetime) -> int:
    """Mark the rejected submissions ``ids`` of ``org_code`` not yet seen as seen at ``now``."""
    t = rejected_submission
    n = 0
    for i in range(0, len(ids), 500):
        q = (
            update(t)
            .where(t.c.org_code == org_code, t.c.id.in_(list(ids[i : i + 500])), t.c.seen_at.is_(None))
            .values(seen_at=now)
        )
        n += conn.execute(q).rowcount
    return n


def rejected_by_ids(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        q = select(rejected_submission).where(rejected_submission.c.id.in_(list(ids[i : i + 500])))
        for r in conn.execute(q).mappings():
            d = _opened(conn, r)
            out[d["id"]] = d
    return out


def report_states(
    conn: Connection, kind: str, keys: Iterable[tuple[str, str, str, int, str]]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Per report key: when it was last registered (its first receipt or the latest
    replacement), whether and when it was voided, and when it last changed with a PDF."""
    master_t, _ = REPORT_TABLES[kind]
    cols = ("org_code", "report_form_no", "patient_id", "event_type", "event_no")
    wanted = set(keys)
    by_org: dict[str, set[str]] = {}
    for k in wanted:
        by_org.setdefault(k[0], set()).add(k[1])
    rows: dict[int, dict[str, Any]] = {}
    for org, forms in by_org.items():
        ordered = sorted(forms)
        for i in range(0, len(ordered), 500):
            q = select(
                master_t.c.id, *[master_t.c[c] for c in cols], master_t.c.received_at, master_t.c.updated_at,
                master_t.c.voided, master_t.c.voided_at, master_t.c.pdf_sha256,
            ).where(master_t.c.org_code == org, master_t.c.report_form_no.in_(ordered[i : i + 500]))
            for r in conn.execute(q).mappings():
                if tuple(r[c] for c in cols) in wanted:
                    rows[r["id"]] = dict(r)
    ids = sorted(rows)
    for i in range(0, len(ids), 500):
        hq = (
            select(report_history.c.report_id, func.max(report_history.c.replaced_at))
            .where(report_history.c.kind == kind, report_history.c.report_id.in_(ids[i : i + 500]))
            .group_by(report_history.c.report_id)
        )
        for report_id, last in conn.execute(hq):
            rows[int(report_id)]["replaced_at"] = datetime.fromisoformat(last) if isinstance(last, str) else last
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows.values():
        replaced = row.get("replaced_at")
        registered = max(row["received_at"], replaced) if replaced is not None else row["received_at"]
        out[tuple(row[c] for c in cols)] = {
            "registered_at": registered,
            "voided_at": row["voided_at"] if row["voided"] else None,
            "pdf_at": row["updated_at"] if row["pdf_sha256"] else None,
        }
    return out


def latest_upload(conn: Connection, table_name: str, time_column: str, org_code: str) -> datetime | None:
    """When ``org_code`` last stored anything in ``table_name``."""
    table = metadata.tables[table_name]
    q = select(func.max(table.c[time_column])).where(table.c.org_code == org_code)
    value = conn.execute(q).scalar()
    if isinstance(value, str):  # SQLite without the column's type on an aggregate
        return datetime.fromisoformat(value)
    return value if isinstance(value, datetime) else None
