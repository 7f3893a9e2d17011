"""The recognition engine: recent records, recognizable detail, exists-for-order, accept /
reject / quote, full reports for citing, reminder and view logs.

Implements XJ-1.3 / 1.4 (GetCheckLabList, GetCheckLabInfo, ExistsReCureInfo, SubmitAccept,
SubmitQuote, GetLabInfo, GetExamInfo), HZ-14/15/16/17, XC-E3, XC-L6, XC-P4. The rule itself is
``huren.domain.recognition``; this module only gathers its inputs and shapes its answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from huren.context import Clock, Principal
from huren.domain.decisions import KIND_OF_TYPE, check_decisions
from huren.domain.fields import (
    EXAM_SUBITEM,
    EXAMMASTER,
    LAB_SUBITEM,
    LABMASTER,
    REMINDER_LOG,
    SEHR_ACCEPT_RECORD,
    SEHR_QUOTE_RECORD,
)
from huren.domain.recognition import CatalogRule, PriorItem, Verdict, Visit, judge
from huren.domain.regions import split_scope
from huren.domain.records import format_value, to_text
from huren.domain.validation import canonical_id, check_identity, check_record
from huren.errors import Forbidden, InvalidInput, NotFound, Problem
from huren.services import access
from huren.services.audit import AuditService
from huren.services.payloads import dump
from huren.store import audit as audit_store
from huren.store import catalog as catalog_store
from huren.store import recognition as rstore
from huren.store import reports
from huren.store.blobs import BlobStore
from huren.store.database import Database

Reject = Callable[[Principal, str, str, Sequence[Problem], bytes | None, str | None], int]
WINDOWS = (30, 90)
#: the most ordered items one exists-for-order question may carry (a prescription, not a catalog)
MAX_ORDERED = 200
RECORD_NODES = {"accept": ("sehr_accept_record", SEHR_ACCEPT_RECORD), "quote": ("sehr_quote_record", SEHR_QUOTE_RECORD)}


@dataclass(slots=True)
class _Cache:
    at: float = 0.0
    rules: dict[tuple[str, str], CatalogRule] = field(default_factory=dict)
    orgs: dict[str, dict[str, Any]] = field(default_factory=dict)


def report_url(kind: str, report_id: int) -> str:
    return f"/api/v1/{kind}-reports/{report_id}"


def pdf_url(kind: str, report_id: int) -> str:
    return f"/api/v1/recognition/{kind}-reports/{report_id}/pdf"


class RecognitionService:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        clock: Clock,
        audit: AuditService,
        reject: Reject,
        cache_seconds: float = 30.0,
    ) -> None:
        self._db = db
        self._blobs = blobs
        self._clock = clock
        self._audit = audit
        self._reject = reject
        self._cache_seconds = cache_seconds
        self._cache = _Cache()
        self._lock = threading.Lock()

    # -- reference data (catalog rules, institutions), cached -----------------------------
    def invalidate(self) -> None:
        """Forget cached catalog and institutions (other processes refresh within the cache time)."""
        with self._lock:
            self._cache = _Cache()

    def _ref(self) -> _Cache:
        cache = self._cache
        if time.monotonic() - cache.at < self._cache_seconds and cache.at:
            return cache
        with self._db.read() as conn:
            rows = rstore.catalog(conn)
            orgs = rstore.orgs(conn)
        rules = {
            (r["kind"], r["code"]): CatalogRule(
                r["kind"], r["code"], r["name"], bool(r["recognizable"]), int(r["validity_days"]),
                int(r["min_level"]), split_scope(r["region_scope"] or ""),
            )
            for r in rows
        }
        fresh = _Cache(time.monotonic(), rules, orgs)
        with self._lock:
            self._cache = fresh
        return fresh

    def _window(self, days: int) -> datetime:
        if days not in WINDOWS:
            raise InvalidInput("查询时间窗无效", [Problem("days", "dictionary", "近期记录时间窗只能是30天或90天")])
        return self._clock.now() - timedelta(days=days)

    def _verdicts(self, kind: str, rows: list[dict[str, Any]], ordered: set[str] | None = None) -> list[Verdict]:
        ref = self._ref()
        now = self._clock.now()
        out = []
        code_key = "i_class_code" if kind == "lab" else "i_exam_item_code"
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
        return str(self._ref().orgs.get(code, {}).get("name", ""))

    def _log(
        self, principal: Principal, visit: Visit, id_type: str, id_no: str, audit: tuple[str, str],
        conn: Connection | None = None, **kw: Any,
    ) -> None:
        """The reminder shown (XC-P4) and the access-log row, in one transaction: the caller's
        (``conn``, committed before its answer leaves) or a new one."""
        action, target = audit
        reminder = {
            "at": self._clock.now(),
            "action": "reminder",
            "source": "platform",
            "org_code": principal.org_code,
            "dept_code": visit.dept_code,
            "dept_std_code": visit.dept_std_code,
            "doc_code": visit.doc_code,
            "doc_name": visit.doc_name,
            "id_type_code": id_type,
            "id_no": id_no,
            "event_no": visit.event_no,
        } | kw
        if conn is not None:
            rstore.log_reminders(conn, [reminder])
            audit_store.log_access_many(conn, self._audit.rows(principal, action, [(id_type, id_no, target)]))
            return
        with self._db.write() as conn:
            rstore.log_reminders(conn, [reminder])
            audit_store.log_access_many(conn, self._audit.rows(principal, action, [(id_type, id_no, target)]))

    def _check_patient(self, id_type: str, id_no: str) -> str:
        """The canonical ID number, or InvalidInput."""
        problems: list[Problem] = []
        if not id_no:
            problems.append(Problem("id_no", "required", "身份证件号码不能为空"))
        check_identity(id_type, id_no, "id_no", problems)
        if problems:
            raise InvalidInput("患者身份证件无效", problems)
        return canonical_id(id_type, id_no) or id_no

    # -- GetCheckLabList (XJ-1.3.2.1 / 1.4.2.1, HZ-14) -------------------------------------
    def recent(
        self, principal: Principal, id_type: str, id_no: str, *, days: int = 90, visit: Visit = Visit()
    ) -> list[dict[str, Any]]:
        """The patient's recent exam items and lab reports at every institution, newest first;
        ★ (recognition 1) on recognizable exam items, and on lab reports with at least one
        recognizable sub-item."""
        access.require(principal, "recognition.read")
        id_no = self._check_patient(id_type, id_no)
        since = self._window(days)
        with self._db.read() as conn:
            exams = [r for r in rstore.prior_items(conn, "exam", id_type, id_no, since) if not r["voided"]]
            labs = [r for r in rstore.prior_items(conn, "lab", id_type, id_no, since) if not r["voided"]]
        out: list[dict[str, Any]] = []
        for r, v in zip(exams, self._verdicts("exam", exams), strict=True):
            out.append(
                {
                    "type": "check",
                    "report_id": r["id"],
                    "org_code": r["org_code"],
                    "org_name": self._org_name(r["org_code"]),
                    "item_code": r["i_exam_item_code"],
                    "item_name": r["i_exam_item_name"],
                    "dtime": format_value(r["authenticator_dtime"]),
                    "expired_time": format_value(v.expired_time) if v.recognizable else "",
                    "recognition": "1" if v.recognizable else "0",
                    "url": report_url("exam", r["id"]),
                    "pacs_url": r["pacs_url"] or "",
                }
            )
        by_report: dict[int, dict[str, Any]] = {}
        for r, v in zip(labs, self._verdicts("lab", labs), strict=True):
            e = by_report.get(r["id"])
            if e is None:
                e = by_report[r["id"]] = {
                    "type": "lab",
                    "report_id": r["id"],
                    "org_code": r["org_code"],
                    "org_name": self._org_name(r["org_code"]),
                    "item_code": r["class_code"],
                    "item_name": r["report_title"],
                    "dtime": format_value(r["authenticator_dtime"]),
                    "expired_time": "",
                    "recognition": "0",
                    "url": report_url("lab", r["id"]),
                    "pacs_url": "",
                }
            if v.recognizable:
                e["recognition"] = "1"
                e["expired_time"] = max(e["expired_time"], format_value(v.expired_time))
        out.extend(by_report.values())
        out.sort(key=lambda e: (e["dtime"], e["report_id"]), reverse=True)
        n = sum(1 for e in out if e["recognition"] == "1")
        self._log(principal, visit, id_type, id_no, ("recognition_recent", f"{len(out)} records"), kind="", ordered=0, recognizable=n)
        return out

    # -- GetCheckLabInfo (XJ-1.3.2.2) --------------------------------------------------------
    def detail(
        self, principal: Principal, id_type: str, id_no: str, *, days: int = 90, visit: Visit = Visit()
    ) -> dict[str, list[dict[str, Any]]]:
        """Full masters and items of the patient's reports holding at least one recognizable
        item; ``expired_time`` on the recognizable items only (for the hospital's preload cache)."""
        access.require(principal, "recognition.read")
        id_no = self._check_patient(id_type, id_no)
        since = self._window(days)
        out: dict[str, list[dict[str, Any]]] = {"exammaster": [], "labmaster": []}
        with self._db.read() as conn:
            for kind in ("exam", "lab"):
                rows = rstore.prior_items(conn, kind, id_type, id_no, since)
                expiry: dict[int, dict[str, str]] = {}
                for r, v in zip(rows, self._verdicts(kind, rows), strict=True):
                    if v.recognizable:
                        code = r["i_class_code"] if kind == "lab" else r["i_exam_item_code"]
                        expiry.setdefault(r["id"], {})[code] = format_value(v.expired_time)
                out[f"{kind}master"] = self._full(conn, kind, sorted(expiry, reverse=True), expiry)
        n = len(out["exammaster"]) + len(out["labmaster"])
        self._log(principal, visit, id_type, id_no, ("recognition_detail", f"{n} reports"), kind="", ordered=0, recognizable=n)
        return out

    def _full(
        self, conn: Any, kind: str, report_ids: Sequence[int], expiry: dict[int, dict[str, str]] | None = None
    ) -> list[dict[str, Any]]:
        mspec, ispec = (LABMASTER, LAB_SUBITEM) if kind == "lab" else (EXAMMASTER, EXAM_SUBITEM)
        items = reports.get_items(conn, kind, report_ids)
        out = []
        for rid in report_ids:
            m = reports.get_master(conn, kind, rid)
            if m is None:
                continue
            exp = (expiry or {}).get(rid, {})
            code_key = "class_code" if kind == "lab" else "exam_item_code"
            out.append(
                {
                    "report_id": rid,
                    "org_name": self._org_name(m["org_code"]),
                    # seed 002 §1.4.2.4/5 answers carry the institution's region and the upload time
                    "area_code": str(self._ref().orgs.get(m["org_code"], {}).get("region_code", "")),
                    "create_at": format_value(m["received_at"]),
                }
                | to_text(m, mspec)
                | {"url": report_url(kind, rid), "pdf_url": pdf_url(kind, rid) if m["pdf_sha256"] else ""}
                | {"item": [to_text(i, ispec) | {"expired_time": exp.get(i[code_key], "")} for i in items[rid]]}
            )
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
        recognizable recent result, grouped by report. Codes may be the institution's local
        codes: mapped ones are translated, unmapped ones are listed, never guessed."""
        access.require(principal, "recognition.read")
        id_no = self._check_patient(id_type, id_no)
        if not check and not lab:
            raise InvalidInput("没有所开项目", [Problem("check", "required", "检查项目（check）与检验子项（lab）不能同时为空")])
        if len(check) + len(lab) > MAX_ORDERED:
            raise InvalidInput(
                "所开项目过多", [Problem("check", "max_items", f"一次最多查询 {MAX_ORDERED} 个项目（检查项目与检验子项合计）")]
            )
        start = max(self._window(days), since) if since else self._window(days)
        resolved: dict[str, dict[str, str]] = {}
        unmapped: list[dict[str, str]] = []
        ref = self._ref()
        # one connection for the reads and the log rows (one pool checkout, one commit); the
        # answer is returned only once its reminder and access-log rows are committed
        with self._db.write() as conn:
            for kind, codes in (("exam", check), ("lab", lab)):
                local = [c for c in dict.fromkeys(codes) if (kind, c) not in ref.rules]
                mapped = catalog_store.resolve(conn, principal.org_code, kind, local)
                resolved[kind] = {c: (c if (kind, c) in ref.rules else mapped.get(c, "")) for c in dict.fromkeys(codes)}
                unmapped += [{"kind": kind, "code": c} for c, s in resolved[kind].items() if not s]
            rows = {
                kind: rstore.prior_items(
                    conn, kind, id_type, id_no, start,
                    codes=sorted({s for s in resolved[kind].values() if s}), org_code=org_code, until=until,
                )
                if any(resolved[kind].values())
                else []
                for kind in ("exam", "lab")
            }
            std_to_ordered = {kind: {s: c for c, s in resolved[kind].items() if s} for kind in resolved}
            found: set[tuple[str, str]] = set()
            exams: list[dict[str, Any]] = []
            for r, v in zip(rows["exam"], self._verdicts("exam", rows["exam"], set()), strict=True):
                if not v.recognizable:
                    continue
                found.add(("exam", r["i_exam_item_code"]))
                exams.append(
                    self._master_attrs(r, "exam")
                    | {
                        "item_code": r["i_exam_item_code"],
                        "item_name": r["i_exam_item_name"],
                        "ordered_code": std_to_ordered["exam"].get(r["i_exam_item_code"], ""),
                        "expired_time": format_value(v.expired_time),
                        "pacs_url": r["pacs_url"] or "",
                        "conclusion": r["conclusion"] or "",
                    }
                )
            labs: dict[int, dict[str, Any]] = {}
            for r, v in zip(rows["lab"], self._verdicts("lab", rows["lab"], set()), strict=True):
                if not v.recognizable:
                    continue
                found.add(("lab", r["i_class_code"]))
                entry = labs.setdefault(r["id"], self._master_attrs(r, "lab") | {"class_name": r["class_name"], "item": []})
                entry["item"].append(
                    {
                        "item_code": r["i_class_code"],
                        "item_name": r["i_class_name"],
                        "ordered_code": std_to_ordered["lab"].get(r["i_class_code"], ""),
                        "result_value": r["i_result_value"],
                        "lower_value": r["i_norm_lower_limit"] or "",
                        "upper_value": r["i_norm_upper_limit"] or "",
                        "result_unit": r["i_result_unit"] or "",
                        "result_interpre": r["i_result_interpre"],
                        "expired_time": format_value(v.expired_time),
                    }
                )
            ordered = len(resolved["exam"]) + len(resolved["lab"])
            self._log(
                principal, visit, id_type, id_no, ("recognition_exists", f"{len(found)} items"), kind="", ordered=ordered,
                recognizable=len(found), item_codes=",".join(sorted(f"{k}:{c}" for k, c in found)), conn=conn,
            )
        return {"labmaster": list(labs.values()), "exammaster": exams, "unmapped": unmapped, "ordered": ordered, "recognizable": len(found)}

    def _master_attrs(self, r: dict[str, Any], kind: str) -> dict[str, Any]:
        return {
            "report_id": r["id"],
            "org_code": r["org_code"],
            "org_name": self._org_name(r["org_code"]),
            "report_form_no": r["report_form_no"],
            "event_no": r["event_no"],
            "id_no": r["id_no"],
            "id_type_code": r["id_type_code"],
            "event_type": str(r["event_type"]),
            "report_title": r["report_title"],
            "dtime": format_value(r["authenticator_dtime"]),
            "url": report_url(kind, r["id"]),
        }

    # -- GetLabInfo / GetExamInfo (XJ-1.4.2.4 / 1.4.2.5) and HZ-17 ----------------------------
    def accepted_reports(self, principal: Principal, kind: str, id_type: str, id_no: str, event_no: str = "") -> list[dict[str, Any]]:
        """Full reports this institution accepted for the patient (this visit, if given), for citing."""
        access.require(principal, "recognition.read")
        id_no = self._check_patient(id_type, id_no)
        with self._db.read() as conn:
            ids = rstore.accepted_report_ids(conn, principal.org_code, kind, id_type, id_no, event_no or None)
            full = self._full(conn, kind, sorted(ids, reverse=True))
            if kind == "exam":  # the seed answers one exammaster per accepted exam item
                out = []
                for m in full:
                    codes = rstore.accepted_codes(conn, principal.org_code, "exam", m["report_id"])
                    for item in m.pop("item"):
                        if item["exam_item_code"] in codes:
                            out.append(m | {k: v for k, v in item.items() if k not in m or k in ("effective_dtime",)} | {"recognition": item["recognition"]})
                full = out
        self._audit.record(principal, f"recognition_{kind}_info", id_type_code=id_type, id_no=id_no, target=f"{len(full)} reports")
        return full

    def accepted_pdf(self, principal: Principal, kind: str, report_id: int) -> bytes:
        """An accepted report's PDF (HZ-17): only for an institution that accepted the report."""
        access.require(principal, "recognition.read")
        with self._db.read() as conn:
            if not rstore.accepted_codes(conn, principal.org_code, kind, report_id):
                raise Forbidden("只能下载本机构已采纳互认的报告PDF")
            m = reports.get_master(conn, kind, report_id)
        if m is None or not m["pdf_sha256"]:
            raise NotFound(f"报告 {report_id} 没有PDF文件")
        return self._pdf(principal, kind, m)

    def _pdf(self, principal: Principal, kind: str, m: dict[str, Any]) -> bytes:
        data = self._blobs.get(m["pdf_sha256"])
        if data is None:
            raise NotFound(f"报告 {m['id']} 的PDF文件缺失")
        self._audit.record(principal, f"pdf_{kind}", id_type_code=m["id_type_code"], id_no=m["id_no"], target=f"{kind}:{m['id']}")
        return data

    # -- SubmitAccept / SubmitQuote (XJ-1.3.2.5-6, 1.4.2.3, 1.4.2.6, XC-E3, XC-L6) -----------
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
                        f"未找到该患者在机构“{rec['hr_org_code']}”的{'检验' if kind == 'lab' else '检查'}报告“{rec['hr_report_form_no']}”",
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

    def records(self, principal: Principal, table: str, *, org_code: str | None = None, since: datetime | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Accept or quote records: an institution sees its own, a supervisor those of its region."""
        access.require(principal, "records.read")
        _, spec = RECORD_NODES[table]
        with self._db.read() as conn:
            scope = access.org_scope(conn, principal, "records.read", org_code)
            rows = rstore.list_records(conn, table, scope, since=since, limit=min(limit, 1000))
        # the records name patients: a read for the access log (one row per record, §1.9)
        entries = [(r["id_type_code"], r["id_no"], f"{table}:{r['id']}") for r in rows] or [(None, None, f"{table}: 0 records")]
        self._audit.record_many(principal, f"list_{table}_records", entries, read=True)
        return [
            {"id": r["id"], "org_code": r["org_code"], "report_kind": r["report_kind"], "report_id": r["report_id"]}
            | to_text(r, spec)
            for r in rows
        ]

    def citations(self, kind: str, report_id: int) -> list[dict[str, str]]:
        with self._db.read() as conn:
            return [{k: format_value(v) for k, v in c.items()} for c in rstore.citations(conn, kind, report_id)]

    # -- XC-P4: reminder and view records uploaded by hospitals ------------------------------
    def upload_logs(self, payload: Any, principal: Principal, *, channel: str = "rest", raw: bytes | None = None) -> int:
        access.require(principal, "decision.write")
        rows = payload.get("reminder_log") if isinstance(payload, dict) else None
        problems: list[Problem] = []
        out = []
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
            if rec["hr_org_code"] and rec["hr_report_form_no"] and rec["type"]:
                with self._db.read() as conn:
                    report_id = rstore.find_report(
                        conn, KIND_OF_TYPE[rec["type"]], rec["hr_org_code"], rec["hr_report_form_no"], rec["id_type_code"] or "", rec["id_no"] or ""
                    )
            out.append(
                {
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
                    "kind": KIND_OF_TYPE.get(rec["type"] or "", ""),
                    "item_codes": rec["item_codes"] or "",
                    "ordered": rec["ordered"] or 0,
                    "recognizable": rec["recognizable"] or 0,
                    "report_kind": KIND_OF_TYPE.get(rec["type"] or "") if report_id else None,
                    "report_id": report_id,
                }
            )
        if problems:
            kept = self._reject(principal, "reminder_log", channel, problems, raw or dump(payload), None)
            raise InvalidInput("提醒与调阅记录未通过校验", problems, rejected_id=kept)
        with self._db.write() as conn:
            rstore.log_reminders(conn, out)
        return len(out)

