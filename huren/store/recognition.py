"""Queries of the recognition engine: prior items of a patient, decisions, citations, logs.

ID numbers are sealed at rest (huren.store.sealing): lookups by patient compare ``id_no_bidx``,
records and reminders are sealed as they are written and opened as they are read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect

from huren.domain import kinds
from huren.store import changes, partitions, platforms, sealing
from huren.store.direct import DirectInsert, DirectSelect
from huren.store.tables import (
    REPORT_TABLES,
    accept_record,
    catalog_item,
    org,
    quote_record,
    reminder_log,
)

#: the stored id_no is not read (sealed): prior_items answers with the ID number asked for
LAB_MASTER_COLS: tuple[str, ...] = (
    "id", "org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_type_code",
    "report_title", "class_code", "class_name", "authenticator_dtime", "voided",
)
LAB_ITEM_COLS: tuple[str, ...] = (
    "serial_no", "class_code", "class_name", "class_local_name", "result_value", "result_unit",
    "norm_lower_limit", "norm_upper_limit", "result_interpre", "effective_dtime", "recognition",
)
EXAM_MASTER_COLS: tuple[str, ...] = (
    "id", "org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_type_code",
    "report_title", "class_name", "authenticator_dtime", "voided", "pacs_url", "conclusion",
)
EXAM_ITEM_COLS: tuple[str, ...] = ("exam_item_code", "exam_item_name", "body_part_name", "effective_dtime", "recognition")
#: kind name → the master and item columns a prior-items query reads
PRIOR_COLS = {kinds.LAB.name: (LAB_MASTER_COLS, LAB_ITEM_COLS), kinds.EXAM.name: (EXAM_MASTER_COLS, EXAM_ITEM_COLS)}


def orgs(conn: Connection) -> dict[str, dict[str, Any]]:
    return {r["code"]: dict(r) for r in conn.execute(select(org)).mappings()}


def catalog(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(catalog_item)).mappings()]


@lru_cache(maxsize=256)
def _prior_query(
    dialect: Dialect, kind: str, n_codes: int | None, has_org: bool, has_until: bool, fresh: bool = False
) -> DirectSelect:
    """The prior-items query, built and compiled once per dialect and shape (how many codes,
    whether an institution and an end time are given, whether the codes carry a freshness
    bound), run on the DBAPI cursor: building a 30-column select on every call cost more than
    running it, and Core's per-call result handling was the rest of the service's overhead over
    the SQL (docs/performance.md)."""
    m, i = REPORT_TABLES[kind]
    mcols, icols = PRIOR_COLS[kind]
    code_col = i.c[kinds.BY_NAME[kind].item_code_field]
    cols = [m.c[c] for c in mcols] + [i.c[c].label(f"i_{c}") for c in icols]
    when = m.c.authenticator_dtime.type
    q = (
        select(*cols)
        .join(i, i.c.report_id == m.c.id)
        .where(
            m.c.id_type_code == bindparam("id_type_code", type_=m.c.id_type_code.type),
            m.c.id_no_bidx == bindparam("id_no_bidx", type_=m.c.id_no_bidx.type),
            m.c.authenticator_dtime >= bindparam("since", type_=when),
        )
    )
    floor = partitions.received_floor(dialect.name, kind, bindparam("since", type_=when))
    if floor is not None:  # PostgreSQL: read only the monthly partitions from the floor on
        q = q.where(m.c.received_at >= floor, i.c.received_at == m.c.received_at, i.c.received_at >= floor)
    if n_codes is not None:
        q = q.where(code_col.in_([bindparam(f"code_{n}", type_=code_col.type) for n in range(n_codes)]))
        if fresh:  # per code: a result time after its bound, flag 1, report not voided
            result_time = func.coalesce(i.c.effective_dtime, m.c.authenticator_dtime)
            q = q.where(
                i.c.recognition == 1,
                m.c.voided.is_(False),
                or_(*[
                    and_(code_col == bindparam(f"code_{n}", type_=code_col.type), result_time > bindparam(f"fresh_{n}", type_=when))
                    for n in range(n_codes)
                ]),
            )
    if has_org:
        q = q.where(m.c.org_code == bindparam("org_code", type_=m.c.org_code.type))
    if has_until:
        q = q.where(m.c.authenticator_dtime < bindparam("until", type_=when))
    return DirectSelect(q.order_by(m.c.authenticator_dtime.desc(), m.c.id.desc()), dialect)


def prior_items(
    conn: Connection,
    kind: str,
    id_type_code: str,
    id_no: str,
    since: datetime,
    codes: Sequence[str] | None = None,
    org_code: str | None = None,
    until: datetime | None = None,
    fresh_after: Sequence[datetime] | None = None,
) -> list[dict[str, Any]]:
    """A patient's report items (joined with their master) authenticated since ``since``,
    optionally only of the given standard codes / institution / until a time. One indexed query:
    (id_type_code, id_no_bidx, authenticator_dtime) on the master, then the items by report id.
    The patient is found by the blind index of ``id_no`` (one HMAC); no sealed value is opened:
    each row's ``id_no`` is the (canonical) one asked for.

    ``fresh_after`` (with ``codes``, one time per code) keeps only the items a recognition can
    still accept, the rule's conditions on the row itself (huren.domain.recognition.judge): result
    time (the item's ``effective_dtime``, else the report's authentication) after that code's
    time, the item's flag 1, the report not voided. The caller judges what comes back as before;
    the rows it would have refused for these reasons are just not read."""
    if codes is not None and not codes:
        return []
    if fresh_after is not None and (codes is None or len(fresh_after) != len(codes)):
        raise ValueError("fresh_after needs one time per code")
    n_codes = None if codes is None else len(codes)
    query = _prior_query(conn.dialect, kind, n_codes, org_code is not None, until is not None, fresh_after is not None)
    params: dict[str, Any] = {"id_type_code": id_type_code, "id_no_bidx": sealing.blind_id(sealing.cipher(conn), id_no), "since": since}
    if codes is not None:
        params.update((f"code_{n}", c) for n, c in enumerate(codes))
    if fresh_after is not None:
        params.update((f"fresh_{n}", t) for n, t in enumerate(fresh_after))
    if org_code is not None:
        params["org_code"] = org_code
    if until is not None:
        params["until"] = until
    rows = query.all(conn, params)
    for r in rows:
        r["id_no"] = id_no
    return rows


#: the dedupe key of a record: the ID number by its blind index (its sealed value differs every time)
RECORD_KEY = ("org_code", "new_event_no", "hr_org_code", "hr_report_form_no", "code", "id_type_code", "id_no_bidx", "record_time")


def add_records(conn: Connection, table_name: str, rows: Sequence[dict[str, Any]]) -> int:
    """Insert accept / quote records; one already stored (same institution, visit, prior item,
    record time and verdict — a resent upload) is skipped. Returns how many were new."""
    table = accept_record if table_name == "accept" else quote_record
    if not rows:
        return 0
    ins: Any = sqlite_insert(table) if conn.dialect.name == "sqlite" else pg_insert(table)
    key = [*RECORD_KEY, "is_accept"] if table_name == "accept" else list(RECORD_KEY)
    stmt = ins.on_conflict_do_nothing(index_elements=key).returning(table.c.id)
    fields = sealing.cipher(conn)
    plats = platforms.platforms_of(conn, (r["org_code"] for r in rows))
    new: list[tuple[str, int | None, str | None]] = []
    at = None
    for r in rows:
        rid = conn.execute(stmt, sealing.seal_row(fields, table.name, r | {"platform": plats.get(r["org_code"], "")})).scalar()
        if rid is not None:
            new.append((r["org_code"], int(rid), None))
            at = r["received_at"]
    if new and at is not None:
        changes.record(conn, table_name, new, at)
    return len(new)


def accepted_report_ids(
    conn: Connection, org_code: str, kind: str, id_type_code: str, id_no: str, event_no: str | None
) -> list[int]:
    """Reports this institution accepted (is_accept 1) for this patient (and visit, if given)."""
    q = select(accept_record.c.report_id).where(
        accept_record.c.org_code == org_code,
        accept_record.c.report_kind == kind,
        accept_record.c.id_type_code == id_type_code,
        accept_record.c.id_no_bidx == sealing.blind_id(sealing.cipher(conn), id_no),
        accept_record.c.is_accept == "1",
        accept_record.c.report_id.is_not(None),
    )
    if event_no:
        q = q.where(accept_record.c.new_event_no == event_no)
    return sorted({int(r) for r in conn.execute(q.distinct()).scalars()})


def accepted_codes(conn: Connection, org_code: str, kind: str, report_id: int) -> set[str]:
    q = select(accept_record.c.code).where(
        accept_record.c.org_code == org_code,
        accept_record.c.report_kind == kind,
        accept_record.c.report_id == report_id,
        accept_record.c.is_accept == "1",
    )
    return set(conn.execute(q).scalars())


def citations(conn: Connection, kind: str, report_id: int) -> list[dict[str, Any]]:
    q = (
        select(
            quote_record.c.org_code,
            org.c.name.label("org_name"),
            quote_record.c.dept_code,
            quote_record.c.dept_name,
            quote_record.c.doc_code,
            quote_record.c.doc_name,
            func.max(quote_record.c.record_time).label("record_time"),
        )
        .join(org, org.c.code == quote_record.c.org_code, isouter=True)
        .where(quote_record.c.report_kind == kind, quote_record.c.report_id == report_id)
        .group_by(
            quote_record.c.org_code, org.c.name, quote_record.c.dept_code, quote_record.c.dept_name,
            quote_record.c.doc_code, quote_record.c.doc_name,
        )
        .order_by(quote_record.c.org_code, quote_record.c.dept_code, quote_record.c.doc_code)
    )
    return [dict(r) for r in conn.execute(q).mappings()]


def list_records(
    conn: Connection, table_name: str, org_codes: Sequence[str] | None, *, since: datetime | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    table = accept_record if table_name == "accept" else quote_record
    q = select(table)
    if org_codes is not None:
        q = q.where(table.c.org_code.in_(list(org_codes)))
    if since is not None:
        q = q.where(table.c.record_time >= since)
    fields = sealing.cipher(conn)
    return [sealing.open_row(fields, table.name, r) for r in conn.execute(q.order_by(table.c.id.desc()).limit(limit)).mappings()]


@lru_cache(maxsize=4)
def _reminder_insert(dialect: Dialect) -> DirectInsert:
    return DirectInsert(reminder_log, dialect)


def log_reminders(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Reminders shown and reports viewed (XC-P4), in the caller's transaction. Written on the
    DBAPI cursor: one is written on every exists-for-order call. The ID numbers are sealed here."""
    fields = sealing.cipher(conn)
    for r in rows:
        if "platform" not in r:
            r["platform"] = platforms.platform_of_cached(conn, r["org_code"])
    _reminder_insert(conn.dialect).run(conn, sealing.seal_rows(fields, "reminder_log", rows))


def _group(table: Any, by: str, time_col: Any) -> Any:
    if by == "org":
        return table.c.org_code
    if by == "dept":
        return table.c.dept_std_code
    if by == "day":
        return func.date(time_col)
    return literal("")


def statistics(
    conn: Connection, by: str, org_codes: Sequence[str] | None, start: datetime, end: datetime
) -> dict[str, dict[str, Any]]:
    """Counts per group key: reminders shown, recognizable found, accepted, rejected (by reason), cited;
    the same counts split by kind under ``by_kind`` (exam 检查 / lab 检验).

    ``by``: org | dept | day | item | all. Reminders carry no item, so grouped by item they are
    counted under the empty key only through ``all``.
    """
    out: dict[str, dict[str, Any]] = {}

    def counts() -> dict[str, int]:
        return {"reminders": 0, "recognizable": 0, "views": 0, "accepted": 0, "rejected": 0, "cited": 0}

    def row(key: Any) -> dict[str, Any]:
        k = "" if key is None else str(key)
        return out.setdefault(
            k,
            {"key": k, **counts(), "rejected_by_reason": {}, "by_kind": {"exam": counts(), "lab": counts()}},
        )

    def add(r: dict[str, Any], kind: Any, what: str, n: int) -> None:
        r[what] += n
        if kind in r["by_kind"]:
            r["by_kind"][kind][what] += n

    def scoped(table: Any, time_col: Any, q: Any) -> Any:
        q = q.where(time_col >= start, time_col < end)
        if org_codes is not None:
            q = q.where(table.c.org_code.in_(list(org_codes)))
        return q

    if by != "item":
        g = _group(reminder_log, by, reminder_log.c.at)
        q = scoped(
            reminder_log,
            reminder_log.c.at,
            select(
                g.label("k"), reminder_log.c.action, reminder_log.c.kind, func.count(),
                func.coalesce(func.sum(reminder_log.c.recognizable), 0),
            ).group_by(g, reminder_log.c.action, reminder_log.c.kind),
        )
        for k, action, kind, n, rec in conn.execute(q):
            r = row(k)
            if action == "view":
                add(r, kind, "views", int(n))
            else:
                add(r, kind, "reminders", int(n))
                add(r, kind, "recognizable", int(rec))
    ga = accept_record.c.code if by == "item" else _group(accept_record, by, accept_record.c.record_time)
    q = scoped(
        accept_record,
        accept_record.c.record_time,
        select(ga.label("k"), accept_record.c.report_kind, accept_record.c.is_accept, accept_record.c.reason, func.count()).group_by(
            ga, accept_record.c.report_kind, accept_record.c.is_accept, accept_record.c.reason
        ),
    )
    for k, kind, is_accept, reason, n in conn.execute(q):
        r = row(k)
        if is_accept == "1":
            add(r, kind, "accepted", int(n))
        else:
            add(r, kind, "rejected", int(n))
            key = reason or ""
            r["rejected_by_reason"][key] = r["rejected_by_reason"].get(key, 0) + int(n)
    gq = quote_record.c.code if by == "item" else _group(quote_record, by, quote_record.c.record_time)
    q = scoped(
        quote_record, quote_record.c.record_time,
        select(gq.label("k"), quote_record.c.report_kind, func.count()).group_by(gq, quote_record.c.report_kind),
    )
    for k, kind, n in conn.execute(q):
        add(row(k), kind, "cited", int(n))
    for r in out.values():
        decided = r["accepted"] + r["rejected"]
        r["recognition_rate"] = round(r["accepted"] / decided, 4) if decided else None
        r["tests_avoided"] = r["accepted"]
    return out


def visit_decisions(conn: Connection, org_code: str, id_type_code: str, id_no: str, event_no: str) -> list[dict[str, Any]]:
    """The accept / reject records an institution stored for one visit of a patient, oldest first
    (indexed: id_type_code, id_no_bidx, new_event_no)."""
    q = (
        select(
            accept_record.c.type, accept_record.c.hr_org_code, accept_record.c.hr_report_form_no, accept_record.c.code,
            accept_record.c.is_accept, accept_record.c.reason, accept_record.c.record_time,
        )
        .where(
            accept_record.c.id_type_code == id_type_code,
            accept_record.c.id_no_bidx == sealing.blind_id(sealing.cipher(conn), id_no),
            accept_record.c.new_event_no == event_no,
            accept_record.c.org_code == org_code,
        )
        .order_by(accept_record.c.record_time, accept_record.c.id)
    )
    return [dict(r) for r in conn.execute(q).mappings()]


def visit_reminders(conn: Connection, org_code: str, id_type_code: str, id_no: str, event_no: str) -> set[tuple[str, str]]:
    """The (kind, item_codes) of the reminders an institution already logged for one visit of a
    patient (indexed: id_type_code, id_no_bidx, at)."""
    r = reminder_log
    q = select(r.c.kind, r.c.item_codes).where(
        r.c.id_type_code == id_type_code, r.c.id_no_bidx == sealing.blind_id(sealing.cipher(conn), id_no), r.c.org_code == org_code,
        r.c.event_no == event_no, r.c.action == "reminder",
    )
    return {(str(k), str(c)) for k, c in conn.execute(q)}


def recognized_elsewhere(conn: Connection, org_code: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Decisions other institutions recorded on this institution's results in [start, end):
    counts per deciding institution, kind and verdict."""
    a = accept_record
    q = (
        select(a.c.org_code, a.c.report_kind, a.c.is_accept, func.count().label("n"))
        .where(a.c.hr_org_code == org_code, a.c.org_code != org_code, a.c.record_time >= start, a.c.record_time < end)
        .group_by(a.c.org_code, a.c.report_kind, a.c.is_accept)
    )
    return [dict(r) for r in conn.execute(q).mappings()]


def find_report(conn: Connection, kind: str, org_code: str, report_form_no: str, id_type_code: str, id_no: str) -> int | None:
    """The current report of an institution with this form number for this patient."""
    m, _ = REPORT_TABLES[kind]
    q = select(m.c.id).where(
        m.c.org_code == org_code, m.c.report_form_no == report_form_no, m.c.id_type_code == id_type_code,
        m.c.id_no_bidx == sealing.blind_id(sealing.cipher(conn), id_no),
    )
    rid = conn.execute(q.order_by(m.c.id.desc()).limit(1)).scalar()
    return None if rid is None else int(rid)


def item_codes(conn: Connection, kind: str, report_id: int) -> set[str]:
    _, i = REPORT_TABLES[kind]
    q = select(i.c[kinds.BY_NAME[kind].item_code_field]).where(i.c.report_id == report_id)
    return set(conn.execute(q).scalars())
