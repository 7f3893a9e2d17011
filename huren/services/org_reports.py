"""An institution's reports, listed by its code (BJ-1.2.1 "通过医疗机构编码查询报告列表接口"):
paged, newest first. A hospital lists its own; a supervisor any institution within its region
(the access policy's ``report.list``). Every patient on the page is written to the access log.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from huren.context import Clock, Principal
from huren.domain import kinds
from huren.domain.records import format_value
from huren.errors import InvalidInput, NotFound, Problem
from huren.services import access
from huren.services.audit import AuditService
from huren.services.refs import Refs, report_url
from huren.store import audit as audit_store
from huren.store import directory
from huren.store import org_reports as store
from huren.store.database import Database

#: the most rows one page may hold
MAX_PAGE = 500
#: the default list window (days back from the end)
DEFAULT_DAYS = 30


class OrgReportsService:
    def __init__(self, db: Database, clock: Clock, audit: AuditService, refs: Refs) -> None:
        self._db = db
        self._refs = refs
        self._clock = clock
        self._audit = audit

    def list(
        self,
        principal: Principal,
        kind: str,
        org_code: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
        include_voided: bool = False,
    ) -> dict[str, Any]:
        problems: list[Problem] = []
        if kind not in kinds.BY_NAME:
            problems.append(Problem("kind", "dictionary", "报告类型应为 lab（检验）或 exam（检查）"))
        if not org_code:
            problems.append(Problem("org_code", "required", "请填写医疗机构编码（org_code）"))
        if offset < 0:
            problems.append(Problem("offset", "range", "起始位置（offset）不能小于 0"))
        if not 1 <= limit <= MAX_PAGE:
            problems.append(Problem("limit", "range", f"每页条数（limit）应在 1 到 {MAX_PAGE} 之间"))
        end = end or self._clock.now() + timedelta(seconds=1)
        start = start or end - timedelta(days=DEFAULT_DAYS)
        if start >= end:
            problems.append(Problem("start", "range", "开始时间必须早于结束时间"))
        if problems:
            raise InvalidInput("报告列表查询条件无效", problems)
        with self._db.read() as conn:
            access.check_org(conn, principal, "report.list", org_code)
            o = directory.get_org(conn, org_code)
            if o is None:
                raise NotFound(f"医疗机构“{org_code}”不存在", [Problem("org_code", "not_found", f"平台中没有机构编码“{org_code}”")])
            total, rows = store.page(conn, kind, org_code, start, end, offset=offset, limit=limit, include_voided=include_voided)
            out = [
                {
                    "report_id": self._refs.report(kind, r["id"]),
                    "kind": kind,
                    "org_code": r["org_code"],
                    "report_form_no": r["report_form_no"],
                    "report_title": r["report_title"],
                    "class_name": r["class_name"],
                    "event_type": str(r["event_type"]),
                    "event_no": r["event_no"],
                    "id_type_code": r["id_type_code"],
                    "id_no": r["id_no"],
                    "name": r["name"],
                    "authenticator_dtime": format_value(r["authenticator_dtime"]),
                    "version": r["version"],
                    "voided": bool(r["voided"]),
                    "has_pdf": bool(r["pdf_sha256"]),
                    "received_at": format_value(r["received_at"]),
                    "url": report_url(self._refs, kind, r["id"]),
                }
                for r in rows
            ]
        if out:
            with self._db.write() as conn:
                audit_store.log_access_many(
                    conn,
                    self._audit.rows(principal, f"list_{kind}_by_org", [(r["id_type_code"], r["id_no"], f"{kind}:{r['id']}") for r in rows]),
                )
        return {
            "org_code": org_code,
            "org_name": str(o["name"]),
            "kind": kind,
            "start": format_value(start),
            "end": format_value(end),
            "total": total,
            "offset": offset,
            "limit": limit,
            "count": len(out),
            "reports": out,
        }
