"""The recognition engine's answers: recent records, recognizable detail, exists-for-order
(XJ-1.3.2.1-2, XJ-1.4.2.2, HZ-14/15/16, XC-P4).

The rule itself is ``huren.domain.recognition``; this room gathers its inputs and shapes its
answers. Its neighbours: the decisions (``services/decisions.py``: accept / reject / quote,
reports for citing) and the hospitals' reminder uploads (``services/reminders.py``), reached
through this service for the transports.

Two windows: the *list window* of the seed (30 or 90 days) bounds the recent list; the *search
window* reaches back as far as the longest validity in force in the catalog, so a result still
recognizable is offered however old it is (recent lists it beyond the list window only when
it is recognizable).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from huren.context import Clock, Principal
from huren.domain import answers, kinds
from huren.domain.decisions import mark_decided
from huren.domain.recognition import PriorItem, Verdict, Visit, judge
from huren.domain.records import format_value
from huren.errors import InvalidInput, Problem
from huren.services import access
from huren.services.audit import AuditService
from huren.services.decisions import DecisionService, Reject
from huren.services.reference import Reference, ReferenceCache, check_patient, full_reports
from huren.services.refs import Refs, report_url
from huren.services.reminders import ReminderService, reminder_rows
from huren.store import audit as audit_store
from huren.store import catalog as catalog_store
from huren.store import recognition as rstore
from huren.store import report_queries
from huren.store.blobs import BlobStore
from huren.store.database import Database

__all__ = ["MAX_ORDERED", "WINDOWS", "RecognitionService"]

WINDOWS = (30, 90)
#: the most ordered items one exists-for-order question may carry (a prescription, not a catalog)
MAX_ORDERED = 200
#: kind name → the prior-items row column holding the item's standard code
CODE_COLUMN = {k.name: f"i_{k.item_code_field}" for k in kinds.ALL}


def report_reason(items: Sequence[dict[str, Any]]) -> str:
    """Why a lab report has no recognizable sub-item: its sub-items' most frequent reason (the
    first such in the report's order on a tie)."""
    reasons = [str(i["reason"]) for i in items if i["reason"]]
    return Counter(reasons).most_common(1)[0][0] if reasons else ""


class RecognitionService:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        clock: Clock,
        audit: AuditService,
        reject: Reject,
        refs: Refs,
        cache_seconds: float = 30.0,
    ) -> None:
        self._db = db
        self._refs = refs
        self._clock = clock
        self._audit = audit
        self._cache = ReferenceCache(db, cache_seconds)
        self.decisions = DecisionService(db, blobs, clock, audit, reject, self._cache, refs)
        self.reminders = ReminderService(db, reject)
        # the transports reach the neighbouring rooms through this service
        self.submit = self.decisions.submit
        self.records = self.decisions.records
        self.citations = self.decisions.citations
        self.accepted_reports = self.decisions.accepted_reports
        self.accepted_pdf = self.decisions.accepted_pdf
        self.recognized_elsewhere = self.decisions.recognized_elsewhere
        self.upload_logs = self.reminders.upload_logs

    # -- reference data (catalog rules, institutions), cached -----------------------------
    def invalidate(self) -> None:
        """Forget cached catalog and institutions (other processes refresh within the cache time)."""
        self._cache.invalidate()

    def _ref(self) -> Reference:
        return self._cache.get()

    def _window(self, days: int) -> datetime:
        """The start of the seed's list window (30 or 90 days)."""
        if days not in WINDOWS:
            raise InvalidInput("查询时间窗无效", [Problem("days", "dictionary", "近期记录时间窗只能是30天或90天")])
        return self._clock.now() - timedelta(days=days)

    def _search_start(self, days: int, ref: Reference) -> datetime:
        """The start of the search window: the list window, or further back when the catalog
        keeps a result recognizable for longer."""
        return min(self._window(days), self._clock.now() - timedelta(days=ref.longest_validity()))

    def _verdicts(self, kind: str, rows: list[dict[str, Any]], ordered: set[str] | None = None) -> list[Verdict]:
        ref = self._ref()
        now = self._clock.now()
        out = []
        code_key = CODE_COLUMN[kind]
        for r in rows:
            o = ref.orgs.get(r["org_code"], {})
            item = PriorItem(
                kind,
                r[code_key],
                int(r["i_recognition"]),
                r["i_effective_dtime"] or r["authenticator_dtime"],
                bool(r["voided"]),
                int(o.get("level", 0)),
                str(o.get("region_code", "")),
            )
            code = r[code_key]
            out.append(judge(item, ref.rules.get((kind, code)), now, code if ordered is not None else None))
        return out

    def _org_name(self, code: str) -> str:
        return self._ref().org_name(code)

    def _log(self, conn: Connection, principal: Principal, reminders: list[dict[str, Any]], audit: tuple[str, str, str, str]) -> None:
        """The reminders shown (XC-P4) and the access-log row, in the caller's transaction
        (committed before its answer leaves)."""
        action, id_type, id_no, target = audit
        if reminders:
            rstore.log_reminders(conn, reminders)
        audit_store.log_access_many(conn, self._audit.rows(principal, action, [(id_type, id_no, target)]))

    # -- GetCheckLabList (XJ-1.3.2.1 / 1.4.2.1, HZ-14) -------------------------------------
    def recent(
        self, principal: Principal, id_type: str, id_no: str, *, days: int = 90, visit: Visit = Visit()
    ) -> list[dict[str, Any]]:
        """The patient's exam items and lab reports of the list window at every institution,
        and older ones still recognizable, newest first; ★ (recognition 1) on recognizable exam
        items, and on lab reports with at least one recognizable sub-item. A list is not a
        reminder: only the access log records it."""
        access.require(principal, "recognition.read")
        id_no = check_patient(id_type, id_no)
        window = self._window(days)
        ref = self._ref()
        since = self._search_start(days, ref)
        with self._db.read() as conn:
            exams = [r for r in rstore.prior_items(conn, "exam", id_type, id_no, since) if not r["voided"]]
            labs = [r for r in rstore.prior_items(conn, "lab", id_type, id_no, since) if not r["voided"]]
        out: list[dict[str, Any]] = []
        for r, v in zip(exams, self._verdicts("exam", exams), strict=True):
            if not v.recognizable and r["authenticator_dtime"] < window:
                continue
            out.append(
                {
                    "type": "check",
                    "report_id": self._refs.report("exam", r["id"]),
                    "_id": r["id"],
                    "org_code": r["org_code"],
                    "org_name": ref.org_name(r["org_code"]),
                    "item_code": r["i_exam_item_code"],
                    "item_name": r["i_exam_item_name"],
                    "dtime": format_value(r["authenticator_dtime"]),
                    "expired_time": format_value(v.expired_time) if v.recognizable else "",
                    "recognition": "1" if v.recognizable else "0",
                    "url": report_url(self._refs, "exam", r["id"]),
                    "pacs_url": r["pacs_url"] or "",
                    "reason": v.reason or "",
                }
            )
        by_report: dict[int, dict[str, Any]] = {}
        for r, v in zip(labs, self._verdicts("lab", labs), strict=True):
            e = by_report.get(r["id"])
            if e is None:
                e = by_report[r["id"]] = {
                    "type": "lab",
                    "report_id": self._refs.report("lab", r["id"]),
                    "_id": r["id"],
                    "org_code": r["org_code"],
                    "org_name": ref.org_name(r["org_code"]),
                    "item_code": r["class_code"],
                    "item_name": r["report_title"],
                    "dtime": format_value(r["authenticator_dtime"]),
                    "expired_time": "",
                    "recognition": "0",
                    "url": report_url(self._refs, "lab", r["id"]),
                    "pacs_url": "",
                    "reason": "",
                    "items": [],
                    "_old": r["authenticator_dtime"] < window,
                }
            e["items"].append(
                {
                    "item_code": r["i_class_code"],
                    "item_name": r["i_class_name"],
                    "recognition": "1" if v.recognizable else "0",
                    "expired_time": format_value(v.expired_time) if v.expired_time else "",
                    "reason": v.reason or "",
                }
            )
            if v.recognizable:
                e["recognition"] = "1"
                e["expired_time"] = max(e["expired_time"], format_value(v.expired_time))
        for e in by_report.values():
            e["reason"] = "" if e["recognition"] == "1" else report_reason(e["items"])
        out.extend(e for e in by_report.values() if e["recognition"] == "1" or not e["_old"])
        out.sort(key=lambda e: (e["dtime"], e["_id"]), reverse=True)  # newest first, by store order within a second
        out = [{k: v for k, v in e.items() if k not in ("_old", "_id")} for e in out]
        self._audit.record(principal, "recognition_recent", id_type_code=id_type, id_no=id_no, target=f"{len(out)} records")
        return out

    def patient(self, principal: Principal, id_type: str, id_no: str) -> dict[str, str]:
        """Who the patient is, for a page's header: name, sex and birth date as the newest report
        of the search window writes them (empty when there is none). Read with the recent list
        (whose access-log row covers it), so not logged again and not a report view."""
        access.require(principal, "recognition.read")
        id_no = check_patient(id_type, id_no)
        start = self._search_start(90, self._ref())
        end = self._clock.now() + timedelta(seconds=1)
        newest: dict[str, Any] | None = None
        with self._db.read() as conn:
            for kind in kinds.NAMES:
                masters = report_queries.for_patient(conn, kind, id_type, id_no, start, end)
                if masters and (newest is None or masters[0]["authenticator_dtime"] > newest["authenticator_dtime"]):
                    newest = masters[0]
        if newest is None:
            return {}
        return {
            "name": str(newest.get("name") or ""),
            "sex_code": str(newest.get("sex_code") or ""),
            "sex_name": str(newest.get("sex_name") or ""),
            "birth_date": format_value(newest.get("birth_date"))[:10] if newest.get("birth_date") else "",
        }

    # -- GetCheckLabInfo (XJ-1.3.2.2) --------------------------------------------------------
    def detail(
        self, principal: Principal, id_type: str, id_no: str, *, days: int = 90, visit: Visit = Visit()
    ) -> dict[str, list[dict[str, Any]]]:
        """Full masters and items of the patient's reports holding at least one recognizable
        item, over the search window; ``expired_time`` on the recognizable items only (for the
        hospital's preload cache). A preload is not a reminder: only the access log records it."""
        access.require(principal, "recognition.read")
        id_no = check_patient(id_type, id_no)
        ref = self._ref()
        since = self._search_start(days, ref)
        out: dict[str, list[dict[str, Any]]] = {"exammaster": [], "labmaster": []}
        with self._db.read() as conn:
            for kind in kinds.NAMES:
                rows = rstore.prior_items(conn, kind, id_type, id_no, since)
                expiry: dict[int, dict[str, str]] = {}
                code_key = CODE_COLUMN[kind]
                for r, v in zip(rows, self._verdicts(kind, rows), strict=True):
                    if v.recognizable:
                        expiry.setdefault(r["id"], {})[r[code_key]] = format_value(v.expired_time)
                out[f"{kind}master"] = full_reports(conn, ref, self._refs, kind, sorted(expiry, reverse=True), expiry)
        n = len(out["exammaster"]) + len(out["labmaster"])
        self._audit.record(principal, "recognition_detail", id_type_code=id_type, id_no=id_no, target=f"{n} reports")
        return out

    # -- ExistsReCureInfo (XJ-1.4.2.2, HZ-15, HZ-16) -----------------------------------------
    def exists(
        self,
        principal: Principal,
        id_type: str,
        id_no: str,
        *,
        check: Sequence[str] = (),
        lab: Sequence[str] = (),
        visit: Visit = Visit(),
        days: int = 90,
        org_code: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        """Which of the ordered exam items (``check``) and lab sub-items (``lab``) have a
        recognizable result, grouped by report, over the search window (narrowed by ``since``).
        Codes may be the institution's local codes: mapped ones are translated, unmapped ones
        are listed, never guessed. Items this institution already decided for this visit
        (``visit.event_no``) carry their ``decision``; the others shown are the reminder (XC-P4),
        one row per kind."""
        access.require(principal, "recognition.read")
        id_no = check_patient(id_type, id_no)
        answers.check_orders(check, lab)
        ref = self._ref()
        start = self._search_start(days, ref)
        if since and since > start:
            start = since

        def is_standard(kind: str, code: str) -> bool:
            return (kind, code) in ref.rules

        # one connection for the reads and the log rows (one pool checkout, one commit); the
        # answer is returned only once its reminder and access-log rows are committed (not fsynced
        # by themselves on SQLite: they are synced with the next durable commit or checkpoint)
        with self._db.write(durable=False) as conn:
            mapped = {
                kind: catalog_store.resolve(conn, principal.org_code, kind, answers.local_codes(kind, codes, is_standard))
                for kind, codes in (("exam", check), ("lab", lab))
            }
            orders = answers.resolve_orders(check, lab, is_standard, mapped)
            rows = {kind: self._prior_ordered(conn, ref, kind, id_type, id_no, start, orders.standard(kind), org_code, until) for kind in ("exam", "lab")}
            answer = answers.exists_answer(orders, self._hits(rows, ref))
            exams, labs, resolved = answer["exammaster"], answer["labmaster"], orders.resolved
            pending = mark_decided(exams, labs, self.decisions.for_visit(conn, principal, id_type, id_no, visit.event_no))
            shown: dict[str, list[str]] = {"exam": [], "lab": []}
            for kind, code in sorted(pending):
                shown[kind].append(code)
            reminders = reminder_rows(
                self._clock.now(), principal, visit, id_type, id_no, {k: len(v) for k, v in resolved.items()}, shown
            )
            if reminders and visit.event_no:  # the same items shown again in the same visit: one reminder
                seen = rstore.visit_reminders(conn, principal.org_code, id_type, id_no, visit.event_no)
                reminders = [r for r in reminders if (r["kind"], r["item_codes"]) not in seen]
            self._log(conn, principal, reminders, ("recognition_exists", id_type, id_no, f"{answer['recognizable']} items"))
        return answer

    def _prior_ordered(
        self, conn: Connection, ref: Reference, kind: str, id_type: str, id_no: str, start: datetime,
        codes: Sequence[str], org_code: str | None, until: datetime | None,
    ) -> list[dict[str, Any]]:
        """The prior items of the ordered standard ``codes`` that can still be recognizable: codes
        the catalog does not mark recognizable are not read, and the query keeps only items whose
        result is within the code's validity, flagged 1, of a report not voided (the rest would be
        refused by the rule, which still judges every row read). The bound is taken before the
        rule's ``now``, so it never leaves out an item the rule accepts."""
        wanted = [c for c in codes if (rule := ref.rules.get((kind, c))) is not None and rule.recognizable]
        if not wanted:
            return []
        now = self._clock.now()
        fresh = [now - timedelta(days=ref.rules[(kind, c)].validity_days) for c in wanted]
        return rstore.prior_items(conn, kind, id_type, id_no, start, codes=wanted, org_code=org_code, until=until, fresh_after=fresh)

    def _hits(self, rows: dict[str, list[dict[str, Any]]], ref: Reference) -> list[answers.Hit]:
        """The recognizable prior items of ``rows`` (the ordered codes), for the exists answer."""
        hits: list[answers.Hit] = []
        for r, v in zip(rows["exam"], self._verdicts("exam", rows["exam"], set()), strict=True):
            if v.recognizable:
                fields = {"expired_time": format_value(v.expired_time), "pacs_url": r["pacs_url"] or "", "conclusion": r["conclusion"] or ""}
                hits.append(answers.Hit("exam", self._master_attrs(r, "exam", ref), r["i_exam_item_code"], r["i_exam_item_name"], fields))
        for r, v in zip(rows["lab"], self._verdicts("lab", rows["lab"], set()), strict=True):
            if v.recognizable:
                fields = {
                    "result_value": r["i_result_value"],
                    "lower_value": r["i_norm_lower_limit"] or "",
                    "upper_value": r["i_norm_upper_limit"] or "",
                    "result_unit": r["i_result_unit"] or "",
                    "result_interpre": r["i_result_interpre"],
                    "expired_time": format_value(v.expired_time),
                }
                report = self._master_attrs(r, "lab", ref) | {"class_name": r["class_name"]}
                hits.append(answers.Hit("lab", report, r["i_class_code"], r["i_class_name"], fields))
        return hits

    def _master_attrs(self, r: dict[str, Any], kind: str, ref: Reference) -> dict[str, Any]:
        return {
            "report_id": self._refs.report(kind, r["id"]),
            "org_code": r["org_code"],
            "org_name": ref.org_name(r["org_code"]),
            "report_form_no": r["report_form_no"],
            "event_no": r["event_no"],
            "id_no": r["id_no"],
            "id_type_code": r["id_type_code"],
            "event_type": str(r["event_type"]),
            "report_title": r["report_title"],
            "dtime": format_value(r["authenticator_dtime"]),
            "url": report_url(self._refs, kind, r["id"]),
        }
