"""Doctors' decisions on prior results: accept / reject and quote records (XJ-1.3.2.5-6,
1.4.2.3, 1.4.2.6, XC-E3, XC-L6), the reports an institution accepted, for citing (XJ-1.4.2.4 /
1.4.2.5, HZ-17), the decisions already recorded for a visit (HZ-16), and how often an
institution's own results were recognized elsewhere (BJ-1.3 / BJ-1.4).

The checks of a decision record are ``huren.domain.decisions``; this room finds the prior report
in the store and keeps the records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from huren.context import Clock, Principal
from huren.domain import dictionaries, kinds, limits
from huren.domain.decisions import NODES, check_decisions
from huren.domain.recognition import VISIT_MAX
from huren.domain.records import format_value, to_text
from huren.errors import Forbidden, InvalidInput, NotFound, Problem
from huren.services import access
from huren.services.audit import AuditService
from huren.services.payloads import dump
from huren.services.reference import ReferenceCache, check_patient, full_reports
from huren.services.refs import MISSING, NO_PDF, Refs
from huren.store import recognition as rstore
from huren.store import reports
from huren.store.blobs import BlobStore
from huren.store.database import Database

#: Keeps a rejected submission and returns its ref (RegistryService.reject).
Reject = Callable[[Principal, str, str, Sequence[Problem], bytes | None, str | None], str]


class DecisionService:
    def __init__(
        self, db: Database, blobs: BlobStore, clock: Clock, audit: AuditService, reject: Reject, ref: ReferenceCache, refs: Refs
    ) -> None:
        self._db = db
        self._refs = refs
        self._blobs = blobs
        self._clock = clock
        self._audit = audit
        self._reject = reject
        self._ref = ref

    # -- SubmitAccept / SubmitQuote -----------------------------------------------------------
    def submit(
        self, table: str, payload: Any, principal: Principal, *, channel: str = "rest", raw: bytes | None = None
    ) -> int:
        """Store accept (``table="accept"``) or quote records; all or nothing. Each must name a
        registered report of that patient and an item of it; a rejection needs a reason."""
        access.require(principal, "decision.write")
        now = self._clock.now()
        with self._db.read() as conn:

            def locate(where: str, kind: str, rec: dict[str, Any]) -> Problem | None:
                rid = rstore.find_report(conn, kind, rec["hr_org_code"], rec["hr_report_form_no"], rec["id_type_code"], rec["id_no"])
                if rid is None:
                    return Problem(
                        f"{where}.hr_report_form_no",
                        "not_found",
                        f"未找到该患者在机构“{rec['hr_org_code']}”的{kinds.BY_NAME[kind].report_name}“{rec['hr_report_form_no']}”",
                    )
                if rec["code"] not in rstore.item_codes(conn, kind, rid):
                    return Problem(f"{where}.code", "unknown_item", f"报告中没有项目编码“{rec['code']}”")
                rec.update(org_code=principal.org_code, report_kind=kind, report_id=rid, received_at=now)
                return None

            records, problems = check_decisions(table, payload, locate)
        if problems:
            rid_kept = self._reject(principal, table, channel, problems, raw or dump(payload), None)
            raise InvalidInput(f"{'互认' if table == 'accept' else '引用'}记录未通过校验", problems, rejected_id=rid_kept)
        with self._db.write() as conn:
            rstore.add_records(conn, table, records)
        return len(records)

    def records(
        self, principal: Principal, table: str, *, org_code: str | None = None, since: datetime | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Accept or quote records: an institution sees its own, a supervisor those of its region."""
        access.require(principal, "records.read")
        _, spec = NODES[table]
        with self._db.read() as conn:
            scope = access.org_scope(conn, principal, "records.read", org_code)
            rows = rstore.list_records(conn, table, scope, since=since, limit=min(limit, 1000))
        # the records name patients: a read for the access log (one row per record, §1.9)
        entries = [(r["id_type_code"], r["id_no"], f"{table}:{r['id']}") for r in rows] or [(None, None, f"{table}: 0 records")]
        self._audit.record_many(principal, f"list_{table}_records", entries, read=True)
        return [
            {
                "id": self._refs.record(table, r["id"]),  # a ref, as report ids are: no walking the records
                "org_code": r["org_code"],
                "report_kind": r["report_kind"],
                "report_id": self._refs.report(r["report_kind"], r["report_id"]) if r["report_id"] and r["report_kind"] else None,
            }
            | to_text(r, spec)
            for r in rows
        ]

    def citations(self, kind: str, report_id: int) -> list[dict[str, str]]:
        with self._db.read() as conn:
            return [{k: format_value(v) for k, v in c.items()} for c in rstore.citations(conn, kind, report_id)]

    def for_visit(self, conn: Any, principal: Principal, id_type: str, id_no: str, event_no: str) -> list[dict[str, Any]]:
        """The accept / reject decisions this institution already recorded for this visit (HZ-16),
        in the caller's connection; none without a visit number."""
        if not event_no:
            return []
        return rstore.visit_decisions(conn, principal.org_code, id_type, id_no, event_no)

    def visit_decisions(
        self, principal: Principal, id_type: str, id_no: str, event_no: str, org_code: str | None = None
    ) -> dict[str, Any]:
        """One visit's decisions for a HIS that polls (the pages send the same by postMessage):
        the institution's own (``records.read``: its system account or administrator), a
        supervisor's within its region (``org_code``). Accepted items (to withdraw from the
        order) and rejected ones with their reasons; a logged read of the patient."""
        access.require(principal, "records.read")
        id_no = check_patient(id_type, id_no)
        event_no = limits.clean_text(event_no.strip(), "event_no", "就诊流水号", VISIT_MAX)
        if not event_no:
            raise InvalidInput("请填写就诊流水号", [Problem("event_no", "required", "请填写就诊流水号（event_no）")])
        code = org_code or principal.org_code
        ref = self._ref.get()
        reasons = dictionaries.load("REJECT_REASON")
        with self._db.read() as conn:
            access.check_org(conn, principal, "records.read", code)
            rows = rstore.visit_decisions(conn, code, id_type, id_no, event_no)
            kept: dict[tuple[str, str, str, str], dict[str, Any]] = {}
            for r in rows:  # oldest first: the latest decision on an item is the one that holds
                kind = kinds.BY_RECORD_TYPE[str(r["type"])].name
                rid = rstore.find_report(conn, kind, r["hr_org_code"], r["hr_report_form_no"], id_type, id_no)
                kept[(str(r["type"]), r["hr_org_code"], r["hr_report_form_no"], r["code"])] = {
                    "type": str(r["type"]),
                    "kind": kind,
                    "code": r["code"],
                    "hr_org_code": r["hr_org_code"],
                    "org_name": ref.org_name(r["hr_org_code"]),
                    "hr_report_form_no": r["hr_report_form_no"],
                    "report_id": self._refs.report(kind, rid) if rid is not None else None,
                    "record_time": format_value(r["record_time"]),
                } | ({"reason": r["reason"], "reason_name": reasons.get(r["reason"] or "", "")} if r["is_accept"] == "2" else {})
        self._audit.record(principal, "visit_decisions", id_type_code=id_type, id_no=id_no, target=f"{code} visit:{event_no}", read=True)
        out = list(kept.values())
        return {
            "version": 1,
            "org_code": code,
            "patient": {"id_type_code": id_type, "id_no": id_no},
            "visit": {"event_no": event_no},
            "accepted": [d for d in out if "reason" not in d],
            "rejected": [d for d in out if "reason" in d],
        }

    # -- GetLabInfo / GetExamInfo and HZ-17 ---------------------------------------------------
    def accepted_reports(self, principal: Principal, kind: str, id_type: str, id_no: str, event_no: str = "") -> list[dict[str, Any]]:
        """Full reports this institution accepted for the patient (this visit, if given), for citing."""
        access.require(principal, "recognition.read")
        id_no = check_patient(id_type, id_no)
        ref = self._ref.get()
        with self._db.read() as conn:
            ids = rstore.accepted_report_ids(conn, principal.org_code, kind, id_type, id_no, event_no or None)
            full = full_reports(conn, ref, self._refs, kind, sorted(ids, reverse=True))
            if kind == "exam":  # the seed answers one exammaster per accepted exam item
                out = []
                for m in full:
                    codes = rstore.accepted_codes(conn, principal.org_code, "exam", self._refs.report_id("exam", m["report_id"]))
                    for item in m.pop("item"):
                        if item["exam_item_code"] in codes:
                            out.append(m | {k: v for k, v in item.items() if k not in m or k in ("effective_dtime",)} | {"recognition": item["recognition"]})
                full = out
        self._audit.record(principal, f"recognition_{kind}_info", id_type_code=id_type, id_no=id_no, target=f"{len(full)} reports")
        return full

    def accepted_pdf(self, principal: Principal, kind: str, ref: str) -> bytes:
        """An accepted report's PDF (HZ-17), by its ref: only for an institution that accepted the report."""
        access.require(principal, "recognition.read")
        report_id = self._refs.report_id(kind, ref)
        with self._db.read() as conn:
            m = reports.get_master(conn, kind, report_id)
            if m is None:  # as a ref that names no report: one answer for both
                raise NotFound(MISSING)
            if not rstore.accepted_codes(conn, principal.org_code, kind, report_id):
                raise Forbidden("只能下载本机构已采纳互认的报告PDF")
        if not m["pdf_sha256"]:
            raise NotFound(NO_PDF)
        data = self._blobs.get(m["pdf_sha256"])
        if data is None:
            raise NotFound(NO_PDF)
        self._audit.record(principal, f"pdf_{kind}", id_type_code=m["id_type_code"], id_no=m["id_no"], target=f"{kind}:{m['id']}")
        return data

    # -- an institution's own results, recognized elsewhere ----------------------------------
    def recognized_elsewhere(
        self, principal: Principal, *, org_code: str | None = None, day_from: date | None = None, day_to: date | None = None
    ) -> dict[str, Any]:
        """How often other institutions accepted (or rejected) this institution's results: totals,
        by 检查 / 检验, and by deciding institution. A hospital sees its own; a supervisor those within its region
        (the access policy's ``statistics.read``)."""
        code = org_code or principal.org_code
        day_to = day_to or self._clock.now().date()
        day_from = day_from or day_to - timedelta(days=29)
        limits.check_day_range(day_from, day_to)
        start = datetime.combine(day_from, datetime.min.time())
        end = datetime.combine(day_to + timedelta(days=1), datetime.min.time())
        ref = self._ref.get()
        with self._db.read() as conn:
            access.check_org(conn, principal, "statistics.read", code)
            rows = rstore.recognized_elsewhere(conn, code, start, end)
        total = {"accepted": 0, "rejected": 0}
        by_kind: dict[str, dict[str, Any]] = {
            k.name: {"kind": k.name, "name": k.zh, "accepted": 0, "rejected": 0} for k in kinds.ALL
        }
        by_org: dict[str, dict[str, Any]] = {}
        for r in rows:
            key = "accepted" if r["is_accept"] == "1" else "rejected"
            n = int(r["n"])
            total[key] += n
            if r["report_kind"] in by_kind:
                by_kind[r["report_kind"]][key] += n
            o = by_org.setdefault(
                r["org_code"], {"org_code": r["org_code"], "org_name": ref.org_name(r["org_code"]), "accepted": 0, "rejected": 0}
            )
            o[key] += n
        return {
            "org_code": code,
            "org_name": ref.org_name(code),
            "day_from": day_from.isoformat(),
            "day_to": day_to.isoformat(),
            "total": total,
            "by_kind": list(by_kind.values()),
            "by_org": sorted(by_org.values(), key=lambda o: (-o["accepted"], o["org_code"])),
        }
