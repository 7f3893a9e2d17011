"""Doctors' decisions on prior results: accept / reject (sehr_accept_record) and citations
(sehr_quote_record), checked the same way by the platform and by the hospital's gateway.

A rejection (is_accept 2) needs a reason from §3.13; an acceptance carries none. Where the prior
report lives is the caller's to check (``locate``): the platform looks in its store, the gateway
in its preload cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from huren.domain import kinds
from huren.domain.fields import SEHR_ACCEPT_RECORD, SEHR_QUOTE_RECORD, Field
from huren.domain.validation import canonical_id, check_identity, check_record
from huren.errors import Problem

NODES: dict[str, tuple[str, tuple[Field, ...]]] = {
    "accept": ("sehr_accept_record", SEHR_ACCEPT_RECORD),
    "quote": ("sehr_quote_record", SEHR_QUOTE_RECORD),
}

#: ``locate(where, kind, record)`` → a problem with the prior report or item, or None when fine
#: (it may also annotate ``record``, e.g. with the report id it found).
Locate = Callable[[str, str, dict[str, Any]], Problem | None]


def check_decisions(table: str, payload: Any, locate: Locate) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Every record of a ``{"sehr_accept_record": [...]}`` / ``{"sehr_quote_record": [...]}``
    payload, normalised, and every problem at once (all or nothing is the caller's rule)."""
    node, spec = NODES[table]
    rows = payload.get(node) if isinstance(payload, dict) else None
    problems: list[Problem] = []
    records: list[dict[str, Any]] = []
    if not isinstance(rows, list) or not rows:
        return [], [Problem(node, "node", f"缺少 {node} 节点，或其中没有任何记录")]
    for i, raw in enumerate(rows):
        where = f"{node}[{i}]"
        if not isinstance(raw, dict):
            problems.append(Problem(where, "node", "记录应为一个对象"))
            continue
        before = len(problems)
        rec = check_record(raw, spec, where, problems)
        check_identity(rec["id_type_code"], rec["id_no"], f"{where}.id_no", problems)
        rec["id_no"] = canonical_id(rec["id_type_code"], rec["id_no"])
        if table == "accept":
            if rec["is_accept"] == "2" and not rec["reason"]:
                problems.append(Problem(f"{where}.reason", "required", "不采纳（is_accept=2）时必须填写不互认理由编码"))
            if rec["is_accept"] == "1":
                rec["reason"] = None
        if len(problems) > before:
            continue
        problem = locate(where, kinds.BY_RECORD_TYPE[rec["type"]].name, rec)
        if problem is not None:
            problems.append(problem)
            continue
        records.append(rec)
    return records, problems


def mark_decided(
    exams: list[dict[str, Any]], labs: list[dict[str, Any]], recorded: list[dict[str, Any]]
) -> set[tuple[str, str]]:
    """HZ-16: an exists-for-order answer that knows the decisions already recorded for the visit.

    ``exams`` (exam masters with ``item_code``) and ``labs`` (lab masters with ``item``) are the
    answer's recognizable entries; ``recorded`` the visit's accept records (``type``,
    ``hr_org_code``, ``hr_report_form_no``, ``code``, ``is_accept``, ``reason``, ``record_time``),
    oldest first. Each entry decided for the visit gains ``decision`` = {``is_accept``,
    ``reason``, ``record_time``} (the latest one recorded). Returns the (kind, code) pairs with
    at least one entry still undecided: what the doctor is still to be asked about.
    """
    latest: dict[tuple[str, str, str, str], dict[str, str]] = {}
    for r in recorded:
        k = kinds.BY_RECORD_TYPE.get(str(r.get("type") or ""))
        if k is None:
            continue
        key = (k.name, str(r["hr_org_code"]), str(r["hr_report_form_no"]), str(r["code"]))
        when: Any = r.get("record_time")
        latest[key] = {
            "is_accept": str(r["is_accept"]),
            "reason": str(r.get("reason") or ""),
            "record_time": when.strftime("%Y-%m-%d %H:%M:%S") if hasattr(when, "strftime") else str(when or ""),
        }
    pending: set[tuple[str, str]] = set()

    def mark(kind: str, org: str, form_no: str, entry: dict[str, Any]) -> None:
        decision = latest.get((kind, org, form_no, str(entry["item_code"])))
        if decision is None:
            pending.add((kind, str(entry["item_code"])))
        else:
            entry["decision"] = dict(decision)

    for m in exams:
        mark("exam", str(m["org_code"]), str(m["report_form_no"]), m)
    for m in labs:
        for item in m["item"]:
            mark("lab", str(m["org_code"]), str(m["report_form_no"]), item)
    return pending
