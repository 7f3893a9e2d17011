"""A feed's changes as what another platform applies (issue 13 §2–3): each change row of
``huren.store.changes`` with the current state of what it is about.

Reports are exported as they are now, not as they were when the change was written: the seed's
own registration payload (``{"labmaster": {...}, "lab_subitem": [...]}``, every field as the
seed's text) with their version, ``last_update_dtime``, void state and PDF digest. Applying a
report's current state is idempotent, and the receiving platform's version rule
(``huren.domain.versions``) keeps an older state from overwriting a newer one, whatever order
batches arrive in. A report changed several times within one batch is exported once, with its last
change; the earlier ones say ``superseded_by``. PDFs travel on their own, by SHA-256, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from huren.domain import kinds
from huren.domain.fields import LAB_EXAM_REPORT, SEHR_ACCEPT_RECORD, SEHR_QUOTE_RECORD
from huren.domain.records import format_value, to_text
from huren.store import sealing
from huren.store.tables import REPORT_TABLES, accept_record, daily_count, org, quote_record

#: change kinds that are about a report (its current state is exported)
REPORT_CHANGES = {"lab": "lab", "exam": "exam", "void_lab": "lab", "void_exam": "exam"}


def _text(value: Any) -> str:
    """``format_value`` with the usual case (text) first: a report's 16 records of ~25 fields each."""
    c = value.__class__
    if c is str:
        return str(value)
    if value is None:
        return ""
    if c is datetime:  # as format_value's strftime, at a third of its cost
        return str(value.isoformat(" ", "seconds"))
    if c is int:
        return str(value)
    return format_value(value)


def _report_states(conn: Connection, kind: str, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    master_t, item_t = REPORT_TABLES[kind]
    k = kinds.BY_NAME[kind]
    mnames = [f.name for f in k.master_fields]
    inames = [f.name for f in k.item_fields]
    item_q = select(item_t.c.report_id, *[item_t.c[n] for n in inames])
    order = (item_t.c.report_id, item_t.c[k.item_key])
    out: dict[int, dict[str, Any]] = {}
    fields = sealing.cipher(conn)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        rows = conn.execute(select(master_t).where(master_t.c.id.in_(chunk))).mappings()
        masters = [sealing.open_row(fields, master_t.name, dict(r)) for r in rows]
        # the items as plain tuples in the spec's order (no row mapping per item)
        items: dict[int, list[dict[str, str]]] = {int(m["id"]): [] for m in masters}
        for row in conn.execute(item_q.where(item_t.c.report_id.in_(chunk)).order_by(*order)).all():
            items[row[0]].append({n: _text(v) for n, v in zip(inames, row[1:], strict=True)})
        for m in masters:
            out[int(m["id"])] = {
                "report_kind": kind,
                "report": {k.master_node: {n: _text(m.get(n)) for n in mnames}, k.item_node: items[int(m["id"])]},
                "version": int(m["version"]),
                "voided": bool(m["voided"]),
                "voided_at": format_value(m["voided_at"]),
                "pdf_sha256": m["pdf_sha256"] or "",
                "pdf_size": int(m["pdf_size"] or 0),
            }
    return out


def _records(conn: Connection, table: str, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    t = accept_record if table == "accept" else quote_record
    spec = SEHR_ACCEPT_RECORD if table == "accept" else SEHR_QUOTE_RECORD
    fields = sealing.cipher(conn)
    out: dict[int, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        for r in conn.execute(select(t).where(t.c.id.in_(ids[i : i + 500]))).mappings():
            row = sealing.open_row(fields, t.name, dict(r))
            out[int(row["id"])] = {"record": to_text(row, spec), "report_kind": row["report_kind"], "decided_by": row["org_code"]}
    return out


def _dailies(conn: Connection, keys: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {}
    for key in keys:
        org_code, day, dept = key.split("|", 2)
        r = conn.execute(
            select(daily_count).where(daily_count.c.org_code == org_code, daily_count.c.date_t == day, daily_count.c.dept_code == dept)
        ).mappings().first()
        out[key] = {"daily": to_text(dict(r), LAB_EXAM_REPORT)} if r else None
    return out


def _orgs(conn: Connection, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in conn.execute(select(org).where(org.c.code.in_(sorted(set(codes))))).mappings():
        out[str(r["code"])] = {
            "org": {
                "code": r["code"], "name": r["name"], "region_code": r["region_code"], "level": int(r["level"]), "grade": r["grade"],
                "platform": r["platform"] or "", "disabled": bool(r["disabled"]),
            }
        }
    return out


def export(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The feed rows (in sequence order) as changes to apply elsewhere."""
    last_of: dict[tuple[str, Any], int] = {}
    for r in rows:
        last_of[(_subject(r), r["entity_id"] if r["entity_id"] is not None else r["entity_key"])] = int(r["seq"])
    report_ids: dict[str, list[int]] = {"lab": [], "exam": []}
    record_ids: dict[str, list[int]] = {"accept": [], "quote": []}
    daily_keys: list[str] = []
    org_codes: list[str] = []
    for r in rows:
        kind = r["kind"]
        if kind in ("lab", "exam", "void_lab", "void_exam"):
            report_ids[REPORT_CHANGES[kind]].append(int(r["entity_id"]))
        elif kind in record_ids:
            record_ids[kind].append(int(r["entity_id"]))
        elif kind == "daily":
            daily_keys.append(str(r["entity_key"]))
        elif kind == "org":
            org_codes.append(str(r["entity_key"]))
    states: dict[tuple[str, int], dict[str, Any]] = {}
    for kind, ids in report_ids.items():
        for rid, st in _report_states(conn, kind, sorted(set(ids))).items():
            states[(kind, rid)] = st
    records = {t: _records(conn, t, sorted(set(ids))) for t, ids in record_ids.items()}
    dailies = _dailies(conn, sorted(set(daily_keys)))
    orgs = _orgs(conn, org_codes)
    out: list[dict[str, Any]] = []
    for r in rows:
        kind, seq = r["kind"], int(r["seq"])
        entry: dict[str, Any] = {"seq": seq, "kind": kind, "org_code": r["org_code"], "at": format_value(r["at"])}
        subject_key = (_subject(r), r["entity_id"] if r["entity_id"] is not None else r["entity_key"])
        if last_of[subject_key] != seq:
            entry["superseded_by"] = last_of[subject_key]
        elif kind in REPORT_CHANGES:
            state = states.get((REPORT_CHANGES[kind], int(r["entity_id"])))
            if state is not None:
                entry.update(state)
            else:
                entry["gone"] = True
        elif kind in records:
            entry.update(records[kind].get(int(r["entity_id"])) or {"gone": True})
        elif kind == "daily":
            entry.update(dailies.get(str(r["entity_key"])) or {"gone": True})
        elif kind == "org":
            entry.update(orgs.get(str(r["entity_key"])) or {"gone": True})
        out.append(entry)
    return out


def _subject(r: dict[str, Any]) -> str:
    """What a change is about, for superseding: a report (whatever the change to it), or itself."""
    kind = str(r["kind"])
    if kind in ("lab", "void_lab"):
        return "report:lab"
    if kind in ("exam", "void_exam"):
        return "report:exam"
    return kind
