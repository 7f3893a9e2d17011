"""Reminders and views (XC-P4): what the platform writes when it shows recognizable results to a
doctor for an order, and the records hospitals upload (``POST /api/v1/reminder-logs``).

A reminder is one pop-up of recognizable results for an order, one per kind shown (seed 002
§1.3.2.3: "检查和检验各操作一次勾选是否互认"); a patient's recent list, the preload detail and a
report opened are not reminders (a report opened is a view). Each row carries its kind, so the
statistics can split 检查 and 检验.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from huren.context import Principal
from huren.domain import access, kinds
from huren.domain.fields import REMINDER_LOG
from huren.domain.recognition import Visit
from huren.domain.validation import canonical_id, check_identity, check_record
from huren.errors import InvalidInput, Problem
from huren.services.payloads import dump
from huren.store import recognition as rstore
from huren.store.database import Database

#: Keeps a rejected submission and returns its ref (RegistryService.reject).
Reject = Callable[[Principal, str, str, Sequence[Problem], bytes | None, str | None], str]


def split_codes(item_codes: str) -> dict[str, list[str]]:
    """``"exam:A,lab:B,lab:C"`` → ``{"exam": ["A"], "lab": ["B", "C"]}``; codes without a kind
    prefix under ``""``."""
    out: dict[str, list[str]] = {}
    for part in (p.strip() for p in item_codes.split(",")):
        if not part:
            continue
        kind, sep, code = part.partition(":")
        if sep and kind in ("exam", "lab"):
            out.setdefault(kind, []).append(code)
        else:
            out.setdefault("", []).append(part)
    return out


def reminder_rows(
    at: datetime, principal: Principal, visit: Visit, id_type: str, id_no: str,
    ordered: dict[str, int], found: dict[str, list[str]], source: str = "platform",
) -> list[dict[str, Any]]:
    """One reminder row per kind with recognizable results shown (none when nothing was)."""
    base = {
        "at": at,
        "action": "reminder",
        "source": source,
        "org_code": principal.org_code,
        "dept_code": visit.dept_code,
        "dept_std_code": visit.dept_std_code,
        "doc_code": visit.doc_code,
        "doc_name": visit.doc_name,
        "id_type_code": id_type,
        "id_no": id_no,
        "event_no": visit.event_no,
    }
    return [
        base | {
            "kind": kind, "ordered": ordered.get(kind, 0), "recognizable": len(codes),
            "item_codes": ",".join(f"{kind}:{c}" for c in sorted(codes)),
        }
        for kind, codes in found.items()
        if codes
    ]


class ReminderService:
    def __init__(self, db: Database, reject: Reject) -> None:
        self._db = db
        self._reject = reject

    def upload_logs(self, payload: Any, principal: Principal, *, channel: str = "rest", raw: bytes | None = None) -> int:
        """Reminder and view records from a hospital, all or nothing. A reminder whose
        ``item_codes`` name both kinds (``exam:…,lab:…``) is kept as one row per kind, as the
        platform keeps its own."""
        access.require(principal, "decision.write")
        rows = payload.get("reminder_log") if isinstance(payload, dict) else None
        problems: list[Problem] = []
        out: list[dict[str, Any]] = []
        if not isinstance(rows, list) or not rows:
            problems.append(Problem("reminder_log", "node", "缺少 reminder_log 节点，或其中没有任何记录"))
            rows = []
        for i, raw_row in enumerate(rows):
            where = f"reminder_log[{i}]"
            if not isinstance(raw_row, dict):
                problems.append(Problem(where, "node", "记录应为一个对象"))
                continue
            rec = check_record(raw_row, REMINDER_LOG, where, problems)
            check_identity(rec["id_type_code"], rec["id_no"], f"{where}.id_no", problems)
            rec["id_no"] = canonical_id(rec["id_type_code"], rec["id_no"])
            report_id = None
            k = kinds.BY_RECORD_TYPE.get(rec["type"] or "")
            if rec["hr_org_code"] and rec["hr_report_form_no"] and rec["type"]:
                with self._db.read() as conn:
                    report_id = rstore.find_report(
                        conn, kinds.BY_RECORD_TYPE[rec["type"]].name, rec["hr_org_code"], rec["hr_report_form_no"], rec["id_type_code"] or "", rec["id_no"] or ""
                    )
            row = {
                "at": rec["at"],
                "action": rec["action"],
                "source": "hospital",
                "org_code": principal.org_code,
                "dept_code": rec["dept_code"] or "",
                "dept_std_code": rec["dept_std_code"] or "",
                "doc_code": rec["doc_code"] or "",
                "doc_name": rec["doc_name"] or "",
                "id_type_code": rec["id_type_code"],
                "id_no": rec["id_no"],
                "event_no": rec["event_no"] or "",
                "kind": k.name if k else "",
                "item_codes": rec["item_codes"] or "",
                "ordered": rec["ordered"] or 0,
                "recognizable": rec["recognizable"] or 0,
                "report_kind": k.name if k and report_id else None,
                "report_id": report_id,
            }
            out.extend(_by_kind(row))
        if problems:
            kept = self._reject(principal, "reminder_log", channel, problems, raw or dump(payload), None)
            raise InvalidInput("提醒与调阅记录未通过校验", problems, rejected_id=kept)
        with self._db.write() as conn:
            rstore.log_reminders(conn, out)
        return len(rows)


def _by_kind(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A row without a kind takes it from its item codes; one naming both kinds becomes two."""
    if row["kind"] or row["action"] != "reminder":
        return [row]
    codes = split_codes(row["item_codes"])
    kinds = [k for k in ("exam", "lab") if k in codes]
    if not kinds or "" in codes:
        return [row]
    if len(kinds) == 1:
        return [row | {"kind": kinds[0]}]
    return [
        row | {"kind": k, "recognizable": len(codes[k]), "item_codes": ",".join(f"{k}:{c}" for c in codes[k])}
        for k in kinds
    ]
