"""Monthly partitions of the report, item and log tables on PostgreSQL (migration 0011).

Which tables are partitioned and by what (``PARTITIONED``): the reports and their items by
``received_at`` (set once, at a report's first registration: a row never moves), the access and
reminder logs by ``at``, the report history by ``replaced_at``, the rejected submissions by
``received_at``. Each has one partition per month (``lab_report_p202612`` holds December 2026)
and a DEFAULT partition (``lab_report_default``) so that an insert never fails for a month
without its own partition. Here: making the coming months' partitions ahead (:func:`ensure`;
rows already in the DEFAULT partition for that month are moved into it), listing them
(:func:`partitions`), and detaching old months for archiving (:func:`detach`), which refuses a
month the recognition engine may still read.

The business key of a report (seed 002: org_code, report_form_no, patient_id, event_type,
event_no) cannot be a UNIQUE constraint of a partitioned table (it must contain the partition
key), so it lives in a small unpartitioned table per kind (``lab_report_key``), kept by a
trigger on the report table; :func:`claim_key` is how the store registers a new report there.
``report_lead`` holds, per kind, how far an authentication time may lie after its report's
receipt (at least ``MIN_LEAD``): the recognition queries read ``received_at >= since - lead``
(:func:`received_floor`) so PostgreSQL scans only the partitions from that month on. SQLite
(the embedded default) has none of this: its tables stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Interval, MetaData, String, Table, select, text

from huren.errors import InvalidInput, Problem

#: partitioned table → its partition key column
PARTITIONED: dict[str, str] = {
    "lab_report": "received_at",
    "lab_item": "received_at",
    "exam_report": "received_at",
    "exam_item": "received_at",
    "report_history": "replaced_at",
    "rejected_submission": "received_at",
    "access_log": "at",
    "reminder_log": "at",
}
#: tables partitioned together: a parent first, then the tables whose rows reference it
FAMILIES: tuple[tuple[str, ...], ...] = (
    ("lab_report", "lab_item"),
    ("exam_report", "exam_item"),
    ("report_history",),
    ("rejected_submission",),
    ("access_log",),
    ("reminder_log",),
)
#: report table → the kind its ``report_lead`` row is kept under
REPORT_KINDS = {"lab_report": "lab", "exam_report": "exam"}
KEY_COLUMNS = ("org_code", "report_form_no", "patient_id", "event_type", "event_no")
#: the least slack between an authentication time and its receipt the queries allow: a hospital
#: clock up to a day ahead of the platform's never raises ``report_lead``
MIN_LEAD = timedelta(days=1)

#: the PostgreSQL-only table of the leads (not in huren.store.tables' metadata: SQLite has none)
_meta = MetaData()
report_lead = Table("report_lead", _meta, Column("kind", String(8), primary_key=True), Column("lead", Interval, nullable=False))


@dataclass(frozen=True, slots=True)
class Partition:
    table: str
    name: str
    month: date | None  # None: the DEFAULT partition
    rows: int  # the planner's estimate (pg_class.reltuples), -1 before the first ANALYZE


def month_of(value: datetime | date) -> date:
    return date(value.year, value.month, 1)


def add_months(month: date, n: int) -> date:
    k = month.year * 12 + month.month - 1 + n
    return date(k // 12, k % 12 + 1, 1)


def parse_month(value: str) -> date:
    """``YYYY-MM`` as the first day of that month; a clear refusal otherwise."""
    try:
        year, month = value.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError(value)
        return date(int(year), int(month), 1)
    except ValueError:
        message = f"月份应写作 YYYY-MM（如 2025-01），现为“{value}”"
        raise InvalidInput(message, [Problem("before", "format", message)]) from None


def partition_name(table: str, month: date) -> str:
    return f"{table}_p{month:%Y%m}"


def default_name(table: str) -> str:
    return f"{table}_default"


def is_partitioned(conn: Connection) -> bool:
    """PostgreSQL at migration 0011 or later (SQLite is never partitioned)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass('lab_report')")).scalar()
    return kind == "p"


def received_floor(dialect: str, kind: str, since: ColumnElement[Any]) -> ColumnElement[Any] | None:
    """The lower bound on ``received_at`` implied by ``authenticator_dtime >= since`` (PostgreSQL:
    ``since`` minus this kind's lead, read in the same statement so PostgreSQL prunes the older
    partitions while it runs); None on SQLite, where nothing is partitioned."""
    if dialect != "postgresql":
        return None
    lead = select(report_lead.c.lead).where(report_lead.c.kind == kind).scalar_subquery()
    return since - lead


def claim_key(conn: Connection, table: str, key: tuple[Any, ...], received_at: datetime) -> int | None:
    """PostgreSQL: register a new report's business key with a fresh id from the report table's
    sequence; the id, or None when a report with that key exists (committed, or being written by
    a transaction this one then waits for, as ``INSERT … ON CONFLICT`` does)."""
    cols = ", ".join(KEY_COLUMNS)
    binds = ", ".join(f":{c}" for c in KEY_COLUMNS)
    stmt = text(
        f"INSERT INTO {table}_key ({cols}, report_id, received_at) "
        f"VALUES ({binds}, nextval(pg_get_serial_sequence('{table}', 'id')), :received_at) "
        "ON CONFLICT DO NOTHING RETURNING report_id"
    )
    rid = conn.execute(stmt, dict(zip(KEY_COLUMNS, key, strict=True)) | {"received_at": received_at}).scalar()
    return None if rid is None else int(rid)


def partitions(conn: Connection) -> list[Partition]:
    """Every partition of the partitioned tables, by table then month (DEFAULT last)."""
    rows = conn.execute(text(
        "SELECT p.relname, c.relname, c.reltuples::bigint, pg_get_expr(c.relpartbound, c.oid) "
        "FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE p.relname = ANY(:tables) AND p.relnamespace = to_regnamespace(current_schema())"
    ), {"tables": list(PARTITIONED)}).all()
    out = []
    for parent, name, tuples, _bound in rows:
        month = None if name == default_name(parent) else _month_of_name(parent, name)
        out.append(Partition(parent, name, month, int(tuples)))
    order = list(PARTITIONED)
    return sorted(out, key=lambda p: (order.index(p.table), p.month is None, p.month or date.min, p.name))


def _month_of_name(table: str, name: str) -> date | None:
    tail = name[len(table) + 2 :]
    if not name.startswith(f"{table}_p") or len(tail) != 6 or not tail.isdigit():
        return None
    return date(int(tail[:4]), int(tail[4:]), 1)


def _exists(conn: Connection, name: str) -> bool:
    return conn.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}).scalar_one() is True


def _bounds(month: date) -> tuple[str, str]:
    return f"{month:%Y-%m-%d} 00:00:00", f"{add_months(month, 1):%Y-%m-%d} 00:00:00"


def ensure(conn: Connection, months: list[date]) -> list[str]:
    """Create the partitions of ``months`` that are missing, for every partitioned table; rows the
    DEFAULT partition already holds for such a month are moved into it (in the caller's
    transaction). Returns the partitions created."""
    created: list[str] = []
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('huren.store.partitions'))"))  # one at a time
    for month in sorted(set(months)):
        for family in FAMILIES:
            missing = [t for t in family if not _exists(conn, partition_name(t, month))]
            if missing:
                _create(conn, family, missing, month)
                created += [partition_name(t, month) for t in missing]
    return created


def ensure_ahead(conn: Connection, now: datetime) -> list[str]:
    """This month's and the next month's partitions (``huren serve`` and ``huren db upgrade``
    call it on start); nothing on SQLite."""
    if not is_partitioned(conn):
        return []
    return ensure(conn, [month_of(now), add_months(month_of(now), 1)])


def _create(conn: Connection, family: tuple[str, ...], missing: list[str], month: date) -> None:
    lo, hi = _bounds(month)
    where = {t: f'"{PARTITIONED[t]}" >= TIMESTAMP \'{lo}\' AND "{PARTITIONED[t]}" < TIMESTAMP \'{hi}\'' for t in family}
    held = [t for t in family if conn.execute(text(f'SELECT EXISTS (SELECT 1 FROM "{default_name(t)}" WHERE {where[t]})')).scalar_one()]
    for t in held:  # keep the rows aside while the month's partition takes over their range
        conn.execute(text(f'CREATE TEMP TABLE "_move_{t}" ON COMMIT DROP AS SELECT * FROM "{default_name(t)}" WHERE {where[t]}'))
    for t in reversed(family):  # the referencing rows first
        if t in held:
            conn.execute(text(f'DELETE FROM "{default_name(t)}" WHERE {where[t]}'))
    for t in missing:
        conn.execute(text(
            f'CREATE TABLE "{partition_name(t, month)}" PARTITION OF "{t}" '
            f"FOR VALUES FROM ('{lo}') TO ('{hi}')"
        ))
    for t in family:  # the referenced rows first
        if t in held:
            conn.execute(text(f'INSERT INTO "{t}" SELECT * FROM "_move_{t}"'))
            conn.execute(text(f'DROP TABLE "_move_{t}"'))


def detachable_before(now: datetime, longest_validity_days: int, lead: timedelta) -> date:
    """The first month that must stay attached: a recognition query reaches back to
    ``now - longest validity``, and from there ``lead`` more by ``received_at``."""
    return month_of(now - timedelta(days=longest_validity_days) - lead) if longest_validity_days >= 0 else date.min


def longest_lead(conn: Connection) -> timedelta:
    leads = [v for v in conn.execute(select(report_lead.c.lead)).scalars() if v is not None]
    return max(leads, default=MIN_LEAD)


def detach(conn: Connection, before: date, *, now: datetime, longest_validity_days: int) -> list[str]:
    """Detach every monthly partition of a month before ``before`` from its table (the tables stay,
    for archiving or dropping). Refused when a month could still hold results a recognition query
    reads (the longest validity in the catalog plus the lead). The report keys of the detached
    months are removed, so a later registration of such a key makes a new report.

    Plain ``DETACH PARTITION``: ``CONCURRENTLY`` is not allowed on a table with a DEFAULT partition
    (PostgreSQL); the detach holds its lock only for the catalog change."""
    keep_from = detachable_before(now, longest_validity_days, longest_lead(conn))
    if before > keep_from:
        message = (
            f"不能分离 {before:%Y-%m} 之前的分区：最长互认有效期为 {longest_validity_days} 天，"
            f"{keep_from:%Y-%m} 及以后月份的报告仍可能被互认查询读取；最晚可指定 --before {keep_from:%Y-%m}"
        )
        raise InvalidInput(message, [Problem("before", "retention", message)])
    detached: list[str] = []
    by_table: dict[str, list[Partition]] = {}
    for p in partitions(conn):
        if p.month is not None and p.month < before:
            by_table.setdefault(p.table, []).append(p)
    for family in FAMILIES:
        months = sorted({p.month for t in family for p in by_table.get(t, []) if p.month is not None})
        for month in months:
            detached += _detach_month(conn, family, month)
    return detached


def _detach_month(conn: Connection, family: tuple[str, ...], month: date) -> list[str]:
    names = [(t, partition_name(t, month)) for t in family if _exists(conn, partition_name(t, month))]
    for t, name in reversed(names):  # referencing tables first; their FK then points at the detached month
        conn.execute(text(f'ALTER TABLE "{t}" DETACH PARTITION "{name}"'))
        if t != family[0]:
            for fk in conn.execute(text(
                "SELECT conname FROM pg_constraint WHERE conrelid = CAST(:n AS regclass) AND contype = 'f' AND conparentid = 0"
            ), {"n": name}).scalars():
                conn.execute(text(f'ALTER TABLE "{name}" DROP CONSTRAINT "{fk}"'))
    parent = family[0]
    if parent in REPORT_KINDS and names and names[0][0] == parent:
        lo, hi = _bounds(month)
        conn.execute(text(
            f"DELETE FROM {parent}_key WHERE received_at >= TIMESTAMP '{lo}' AND received_at < TIMESTAMP '{hi}'"
        ))
        for _t, name in names[1:]:  # the archived items keep pointing at their archived reports
            conn.execute(text(
                f'ALTER TABLE "{name}" ADD CONSTRAINT "fk_{name}_report" FOREIGN KEY (report_id, received_at) '
                f'REFERENCES "{names[0][1]}" (id, received_at) ON DELETE CASCADE ON UPDATE CASCADE'
            ))
    return [n for _, n in names]

