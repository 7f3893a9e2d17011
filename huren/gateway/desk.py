"""The decision desk of the gateway: accept / reject / quote decisions taken at the hospital,
validated as the platform validates them (``huren.domain.decisions``) so a bad decision is
refused before it is queued, kept in the preload cache and handed to the outbox together; and
the reminders and views the gateway shows from its cache, queued for the platform's reminder
log (XC-P4). Used by the local API (``/accept``, ``/quote``, ``/exists``) and the doctor's pages."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

from huren.domain import decisions, kinds
from huren.domain.recognition import Visit
from huren.domain.records import format_value, to_text
from huren.errors import InvalidInput, Problem
from huren.gateway.model import Record
from huren.gateway.preload_cache import PreloadCache
from huren.gateway.preload_store import Entry

SOURCE = "preload"


def check_decisions(cache: PreloadCache, table: str, payload: Any) -> list[dict[str, str]]:
    """Validate accept (``table="accept"``) or quote rows as the platform does, as far as the
    hospital can know: the seed's field table, the ID number, a reason for a rejection (all in
    ``huren.domain.decisions``), and — when the cache holds the report — that the item is one of
    the report's. All or nothing: the rows in the seed's text form, or InvalidInput naming every
    problem."""
    _, spec = decisions.NODES[table]

    def locate(where: str, kind: str, rec: dict[str, Any]) -> Problem | None:
        codes = cache.report_items(cache.load(rec["id_type_code"], rec["id_no"]), kind, rec["hr_org_code"], rec["hr_report_form_no"])
        if codes is not None and rec["code"] not in codes:
            return Problem(f"{where}.code", "unknown_item", f"报告“{rec['hr_report_form_no']}”中没有项目编码“{rec['code']}”")
        return None

    records, problems = decisions.check_decisions(table, payload, locate)
    out = [to_text(rec, spec) for rec in records]
    if problems:
        what = "互认" if table == "accept" else "引用"
        raise InvalidInput(f"{what}记录未通过校验，未保存也未上传，请修改后重新提交", problems)
    return out


def decision_records(table: str, rows: list[dict[str, str]]) -> list[Record]:
    """One outbox record per decision; the key names the decision (report, item, visit — the report
    names the patient, so the key holds no ID number and can be shown in the gateway's logs)."""
    node, _ = decisions.NODES[table]
    return [
        Record(
            kind=table,
            key=f"{table}:" + "|".join(r[k] for k in ("hr_org_code", "hr_report_form_no", "code", "new_event_no")),
            payload={node: [r]},
            source=SOURCE,
        )
        for r in rows
    ]


def reminder_record(entry: Entry, visit: Visit, shown: dict[str, list[str]], ordered: dict[str, int], at: str) -> Record | None:
    """The reminder a doctor was shown by the gateway (exists-for-order answered from the cache),
    as the platform logs its own (XC-P4): one row per kind with recognizable results shown —
    ``shown``: the codes not yet decided for the visit — with the ordered and shown counts and
    the items; none when nothing was shown."""
    base = {
        "action": "reminder", "at": at, "id_type_code": entry.id_type_code, "id_no": entry.id_no,
        "event_no": visit.event_no, "dept_code": visit.dept_code, "dept_std_code": visit.dept_std_code,
        "doc_code": visit.doc_code, "doc_name": visit.doc_name,
    }
    rows = [
        base | {
            "item_codes": ",".join(f"{kind}:{c}" for c in codes), "ordered": str(ordered.get(kind, 0)),
            "recognizable": str(len(codes)), "type": kinds.BY_NAME[kind].record_type,
        }
        for kind, codes in shown.items()
        if codes
    ]
    if not rows:
        return None
    return Record(kind="reminder", key=f"reminder:{uuid.uuid4().hex}", payload={"reminder_log": rows}, source=SOURCE)


def view_record(kind: str, master: dict[str, Any], at: str) -> Record:
    """A report the gateway showed from its cache (the platform unreachable), for the
    platform's reminder log as a view (XC-P4)."""
    row = {
        "action": "view", "at": at, "id_type_code": str(master.get("id_type_code", "")), "id_no": str(master.get("id_no", "")),
        "hr_org_code": str(master.get("org_code", "")), "hr_report_form_no": str(master.get("report_form_no", "")),
        "type": kinds.BY_NAME[kind].record_type,
    }
    return Record(kind="reminder", key=f"reminder:{uuid.uuid4().hex}", payload={"reminder_log": [row]}, source=SOURCE)


class DecisionDesk:
    """Decisions taken at the hospital: validated, kept in the cache and queued for upload
    together; and the reminders shown from the cache, queued for the platform's reminder log."""

    def __init__(self, cache: PreloadCache, enqueue: Callable[[list[Record]], None]) -> None:
        self.cache = cache
        self.enqueue = enqueue
        self._lock = threading.Lock()  # kept and queued together, one batch at a time

    def submit(self, table: str, payload: Any) -> dict[str, Any]:
        rows = check_decisions(self.cache, table, payload)
        records = decision_records(table, rows)
        with self._lock:
            ids = self.cache.add_decisions(table, rows)
            try:
                self.enqueue(records)
            except BaseException:
                self.cache.remove_decisions(ids)
                raise
        return {"code": "ok", "message": "ok", "rows": len(rows), "queued": len(records)}

    def exists(self, entry: Entry, visit: Visit, **order: Any) -> dict[str, Any]:
        """Exists-for-order answered from ``entry``, knowing the decisions already taken here for
        the visit (HZ-16: they carry their ``decision``, as the platform answers); the reminder
        of what is still to decide is queued for the platform (a failing outbox fails the
        question: no reminder goes unrecorded)."""
        answer = self.cache.exists(entry, **order)
        recorded = [d for d in self.cache.decisions(entry.id_type_code, entry.id_no, visit.event_no) if d["kind"] == "accept"] if visit.event_no else []
        pending = decisions.mark_decided(answer["exammaster"], answer["labmaster"], recorded)
        shown: dict[str, list[str]] = {k.name: [] for k in kinds.ALL}
        for kind, code in sorted(pending):
            shown[kind].append(code)
        ordered = {k.name: len(dict.fromkeys(order.get(k.order_key) or ())) for k in kinds.ALL}
        reminder = reminder_record(entry, visit, shown, ordered, format_value(self.cache.clock.now()))
        if reminder is not None:
            self.enqueue([reminder])
        return answer

    def viewed(self, kind: str, master: dict[str, Any]) -> None:
        """A report shown from the cache: queued as a view for the platform's log."""
        self.enqueue([view_record(kind, master, format_value(self.cache.clock.now()))])
