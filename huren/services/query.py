"""Reading reports across institutions: by patient, one report, its PDF, abnormal results.

Implements XC-E4/E5/E6, XC-L7/L8/L9. Every read of a patient's data is written to the access log.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from huren.context import Clock, Principal
from huren.domain import kinds
from huren.domain.records import format_value, to_text
from huren.domain.validation import canonical_id
from huren.errors import InvalidInput, NotFound, Problem
from huren.services import access
from huren.services.audit import AuditService
from huren.services.refs import MISSING, NO_PDF, Refs
from huren.store import directory, recognition, report_queries, reports
from huren.store.blobs import BlobStore
from huren.store.database import Database

#: STD_OBSERVATION_INTERPRET codes that make a lab result abnormal.
ABNORMAL_INTERPRET = ("H", "L", "P", "WP")
#: exammaster.is_abnormal: the seed defines 1 = 正常, 0 = 异常.
EXAM_ABNORMAL = "0"


def report_meta(row: dict[str, Any], kind: str, org_names: dict[str, str], refs: Refs) -> dict[str, Any]:
    return {
        "report_id": refs.report(kind, row["id"]),
        "kind": kind,
        "org_name": org_names.get(row["org_code"], ""),
        "version": row["version"],
        "voided": bool(row["voided"]),
        "voided_at": format_value(row["voided_at"]),
        "has_pdf": bool(row["pdf_sha256"]),
        "received_at": format_value(row["received_at"]),
    }


class QueryService:
    def __init__(self, db: Database, blobs: BlobStore, clock: Clock, audit: AuditService, refs: Refs) -> None:
        self._db = db
        self._refs = refs
        self._blobs = blobs
        self._clock = clock
        self._audit = audit

    def _window(self, start: datetime | None, end: datetime | None, days: int = 90) -> tuple[datetime, datetime]:
        end = end or self._clock.now() + timedelta(seconds=1)
        start = start or end - timedelta(days=days)
        if start >= end:
            raise InvalidInput("查询时间范围无效", [Problem("start", "range", "开始时间必须早于结束时间")])
        return start, end

    def _org_names(self, conn: Any) -> dict[str, str]:
        return {o["code"]: o["name"] for o in directory.list_orgs(conn)}

    def _render(self, conn: Any, kind: str, masters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        k = kinds.BY_NAME[kind]
        names = self._org_names(conn)
        items = reports.get_items(conn, kind, [m["id"] for m in masters])
        return [
            report_meta(m, kind, names, self._refs)
            | {k.master_node: to_text(m, k.master_fields), k.item_node: [to_text(i, k.item_fields) for i in items[m["id"]]]}
            for m in masters
        ]

    def patient_reports(
        self,
        kind: str,
        id_type_code: str,
        id_no: str,
        principal: Principal,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """A patient's lab or exam reports at every institution in [start, end) (default 90 days);
        a supervisor's, at the institutions of its region."""
        access.require(principal, "report.read")
        start, end = self._window(start, end)
        id_no = canonical_id(id_type_code, id_no) or id_no
        with self._db.read() as conn:
            orgs = access.org_scope(conn, principal, "report.read")
            masters = [m for m in report_queries.for_patient(conn, kind, id_type_code, id_no, start, end) if access.in_scope(orgs, m["org_code"])]
            out = self._render(conn, kind, masters)
        self._audit.record(principal, f"query_{kind}", id_type_code=id_type_code, id_no=id_no, target=f"{len(out)} reports")
        return out

    def report(self, kind: str, ref: str, principal: Principal) -> dict[str, Any]:
        """One report by its ref (``report_id`` of the answers); NotFound for a ref that names none."""
        access.require(principal, "report.read")
        report_id = self._refs.report_id(kind, ref)
        with self._db.read() as conn:
            m = reports.get_master(conn, kind, report_id)
            if m is None:
                raise NotFound(MISSING)
            access.check_org(conn, principal, "report.read", m["org_code"])
            out = self._render(conn, kind, [m])[0]
        self._audit.record(principal, f"view_{kind}", id_type_code=m["id_type_code"], id_no=m["id_no"], target=f"{kind}:{report_id}")
        self._log_view(principal, kind, m)
        return out

    def _log_view(self, principal: Principal, kind: str, m: dict[str, Any]) -> None:
        """XC-P4: a report viewed through the platform is a view record (counted in statistics)."""
        with self._db.write() as conn:
            recognition.log_reminders(
                conn,
                [
                    {
                        "at": self._clock.now(),
                        "action": "view",
                        "source": "platform",
                        "org_code": principal.org_code,
                        "id_type_code": m["id_type_code"],
                        "id_no": m["id_no"],
                        "kind": kind,
                        "report_kind": kind,
                        "report_id": m["id"],
                    }
                ],
            )

    def pdf(self, kind: str, ref: str, principal: Principal) -> bytes:
        access.require(principal, "report.read")
        report_id = self._refs.report_id(kind, ref)
        with self._db.read() as conn:
            m = reports.get_master(conn, kind, report_id)
            if m is None:
                raise NotFound(MISSING)
            access.check_org(conn, principal, "report.read", m["org_code"])
        data = self._blobs.get(m["pdf_sha256"]) if m["pdf_sha256"] else None
        if data is None:
            raise NotFound(NO_PDF)
        self._audit.record(principal, f"pdf_{kind}", id_type_code=m["id_type_code"], id_no=m["id_no"], target=f"{kind}:{report_id}")
        return data

    def history(self, kind: str, ref: str, principal: Principal) -> list[dict[str, Any]]:
        """Earlier versions of one of the caller's own reports (a supervisor's: of its region)."""
        access.require(principal, "history.read")
        report_id = self._refs.report_id(kind, ref)
        with self._db.read() as conn:
            m = reports.get_master(conn, kind, report_id)
            if m is None:
                raise NotFound(MISSING)
            access.check_org(conn, principal, "history.read", m["org_code"])
            versions = reports.history(conn, kind, report_id)
        self._audit.record(
            principal, f"history_{kind}", id_type_code=m["id_type_code"], id_no=m["id_no"], target=f"{kind}:{report_id}"
        )
        return versions

    def abnormal(
        self,
        kind: str,
        id_type_code: str,
        id_no: str,
        principal: Principal,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Abnormal results: lab items interpreted H/L/P/WP; exam reports with is_abnormal = 0."""
        access.require(principal, "report.read")
        start, end = self._window(start, end)
        id_no = canonical_id(id_type_code, id_no) or id_no
        with self._db.read() as conn:
            orgs = access.org_scope(conn, principal, "report.read")
            names = self._org_names(conn)
            if kind == kinds.LAB.name:  # lab: abnormal items; exam: abnormal reports
                rows = [
                    (m, i)
                    for m, i in report_queries.abnormal_lab_items(conn, id_type_code, id_no, start, end, ABNORMAL_INTERPRET)
                    if access.in_scope(orgs, m["org_code"])
                ]
                out = [
                    report_meta(m, kind, names, self._refs)
                    | {kinds.LAB.master_node: to_text(m, kinds.LAB.master_fields), kinds.LAB.item_node: to_text(i, kinds.LAB.item_fields)}
                    for m, i in rows
                ]
            else:
                masters = [
                    m
                    for m in report_queries.for_patient(conn, kinds.EXAM.name, id_type_code, id_no, start, end)
                    if m["is_abnormal"] == EXAM_ABNORMAL and access.in_scope(orgs, m["org_code"])
                ]
                out = self._render(conn, kinds.EXAM.name, masters)
        self._audit.record(principal, f"abnormal_{kind}", id_type_code=id_type_code, id_no=id_no, target=f"{len(out)} results")
        return out
