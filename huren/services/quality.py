"""Data quality: completeness of uploads against declared daily counts (XC-P5), rejected
submissions and their rectification (XC-S2, BJ-4)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from statistics import median
from typing import Any

from huren.context import Clock, Principal
from huren.domain.records import format_value
from huren.errors import InvalidInput, NotFound, Problem
from huren.services import access
from huren.services.audit import AuditService
from huren.store import quality, reports
from huren.store.blobs import BlobStore
from huren.store.database import Database

#: Rejected submissions without a report key → (table, time column) of a later successful upload.
LATER_UPLOAD = {
    "daily": ("daily_count", "received_at"),
    "dept": ("dept", "updated_at"),
    "staff": ("staff", "updated_at"),
    "patient": ("patient", "updated_at"),
    "device": ("device", "updated_at"),
    "qc_record": ("qc_record", "updated_at"),
    "accept": ("accept_record", "received_at"),
    "quote": ("quote_record", "received_at"),
}


class QualityService:
    def __init__(self, db: Database, blobs: BlobStore, clock: Clock, audit: AuditService) -> None:
        self._db = db
        self._blobs = blobs
        self._clock = clock
        self._audit = audit

    def _scope(self, principal: Principal, org_code: str | None) -> list[str] | None:
        """The institutions the caller's quality view covers (huren.domain.access)."""
        access.require(principal, "quality.read")
        with self._db.read() as conn:
            return access.org_scope(conn, principal, "quality.read", org_code)

    def completeness(
        self, principal: Principal, *, org_code: str | None = None, day_from: date | None = None, day_to: date | None = None
    ) -> dict[str, Any]:
        """Declared (daily counts) vs received (registered, not voided) per institution, day, department.

        A report counts on the day of its ``authenticator_dtime`` under its ordering department
        (``participant_dept_code``), as the seed's daily report does. ``day_to`` is inclusive.
        """
        today = self._clock.now().date()
        day_to = day_to or today - timedelta(days=1)
        day_from = day_from or day_to - timedelta(days=6)
        if day_from > day_to:
            raise InvalidInput("日期范围无效", [Problem("day_from", "range", "开始日期不能晚于结束日期")])
        scope = self._scope(principal, org_code)
        end = day_to + timedelta(days=1)
        with self._db.read() as conn:
            declared = quality.daily_counts(conn, scope, day_from, end)
            got_lab = reports.counts_by_day_dept(conn, "lab", scope, day_from, end)
            got_exam = reports.counts_by_day_dept(conn, "exam", scope, day_from, end)
        rows: dict[tuple[str, date, str], dict[str, Any]] = {}
        for d in declared:
            k = (d["org_code"], d["date_t"], d["dept_code"])
            rows[k] = {"dept_name": d["dept_name"], "declared_lab": d["lab_num"], "declared_exam": d["exam_num"]}
        for k in set(got_lab) | set(got_exam):
            rows.setdefault(k, {"dept_name": "", "declared_lab": None, "declared_exam": None})
        out = []
        for (org, day, dept), r in sorted(rows.items()):
            rl, re_ = got_lab.get((org, day, dept), 0), got_exam.get((org, day, dept), 0)
            dl, de = r["declared_lab"], r["declared_exam"]
            out.append(
                {
                    "org_code": org,
                    "date_t": format_value(day),
                    "dept_code": dept,
                    "dept_name": r["dept_name"],
                    "declared": dl is not None,
                    "lab_num": dl,
                    "exam_num": de,
                    "received_lab": rl,
                    "received_exam": re_,
                    "lab_diff": (dl - rl) if dl is not None else None,
                    "exam_diff": (de - re_) if de is not None else None,
                    "complete": dl is not None and dl == rl and de == re_,
                }
            )
        return {
            "day_from": day_from.isoformat(),
            "day_to": day_to.isoformat(),
            "rows": out,
            "differences": [r for r in out if not r["complete"]],
        }

    def timeliness(
        self,
        principal: Principal,
        *,
        org_code: str | None = None,
        day_from: date | None = None,
        day_to: date | None = None,
        late_hours: float = 24,
    ) -> dict[str, Any]:
        """Upload delay from approval (``authenticator_dtime``) to receipt (``received_at``) of the
        lab and exam reports (not voided), per institution and day of approval (XC-P5).

        Rows: count (lab / exam), average, median and longest delay in hours, and how many took
        longer than ``late_hours``; also per day over all institutions in scope, and in total.
        The delays are computed here, not in SQL, so SQLite and PostgreSQL agree. ``day_to`` is
        inclusive; the default window is the 7 days up to yesterday, as for completeness.
        """
        today = self._clock.now().date()
        day_to = day_to or today - timedelta(days=1)
        day_from = day_from or day_to - timedelta(days=6)
        if day_from > day_to:
            raise InvalidInput("日期范围无效", [Problem("day_from", "range", "开始日期不能晚于结束日期")])
        if not late_hours > 0:
            raise InvalidInput("超时阈值无效", [Problem("late_hours", "range", "超时阈值（小时）必须大于0")])
        scope = self._scope(principal, org_code)
        start = datetime.combine(day_from, datetime.min.time())
        end = datetime.combine(day_to + timedelta(days=1), datetime.min.time())
        per_org: dict[tuple[str, date], dict[str, list[float]]] = {}
        with self._db.read() as conn:
            for kind in ("lab", "exam"):
                for org, approved, received in quality.report_delays(conn, kind, scope, start, end):
                    hours = (received - approved).total_seconds() / 3600
                    per_org.setdefault((org, approved.date()), {"lab": [], "exam": []})[kind].append(hours)
        per_day: dict[date, dict[str, list[float]]] = {}
        for (_, day), d in per_org.items():
            acc = per_day.setdefault(day, {"lab": [], "exam": []})
            acc["lab"] += d["lab"]
            acc["exam"] += d["exam"]
        everything = {"lab": [h for d in per_org.values() for h in d["lab"]], "exam": [h for d in per_org.values() for h in d["exam"]]}
        return {
            "day_from": day_from.isoformat(),
            "day_to": day_to.isoformat(),
            "late_hours": late_hours,
            "rows": [
                {"org_code": org, "date_t": day.isoformat()} | _delay_stats(d, late_hours)
                for (org, day), d in sorted(per_org.items())
            ],
            "days": [{"date_t": day.isoformat()} | _delay_stats(d, late_hours) for day, d in sorted(per_day.items())],
            "total": _delay_stats(everything, late_hours),
        }

    def rejected(
        self, principal: Principal, *, org_code: str | None = None, only_open: bool = False, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Rejected submissions, newest first, each with whether it has since been fixed (XC-S2).

        A rejected report counts as fixed once a report with the same primary key was registered
        after it (a rejected void: once that report was voided after it; a rejected PDF: once the
        report got a PDF after it); a rejected upload without a report key (daily counts, master
        data, accept / quote records) once a later upload of the same kind by the same
        institution succeeded. Computed when read, so every worker agrees.
        """
        scope = self._scope(principal, org_code)
        with self._db.read() as conn:
            rows = quality.list_rejected(conn, scope, limit=min(limit, 1000), offset=offset)
            out = [_rejected_out(r) | {"fixed": self._fixed(conn, r)} for r in rows]
        self._audit.record(principal, "rejected_list", target=f"{len(out)} rejected submissions", read=True)
        return [r for r in out if not (only_open and r["fixed"])]

    def _fixed(self, conn: Any, r: dict[str, Any]) -> bool:
        later = LATER_UPLOAD.get(r["kind"])
        if later is not None:  # no report key: fixed once a later upload of that kind succeeded
            table, when = later
            return quality.uploaded_since(conn, table, when, r["org_code"], r["received_at"])
        key_text = r["report_key"] or ""
        kind, _, rest = key_text.partition(":")
        parts = rest.split("|")
        if kind not in ("lab", "exam") or len(parts) != 5 or not parts[3].isdigit():
            return False
        row = reports.find_by_key(conn, kind, (parts[0], parts[1], parts[2], int(parts[3]), parts[4]))
        if row is None:
            return False
        since = r["received_at"]
        if r["kind"].startswith("void_"):
            return bool(row["voided"]) and row["voided_at"] is not None and row["voided_at"] >= since
        if r["kind"] == "pdf":
            return bool(row["pdf_sha256"]) and row["updated_at"] >= since
        return not row["voided"] and row["updated_at"] >= since

    def rejected_payload(self, principal: Principal, rejected_id: int) -> bytes:
        access.require(principal, "quality.read")
        with self._db.read() as conn:
            row = quality.get_rejected(conn, rejected_id)
            if row is None:
                raise NotFound(f"被拒提交 {rejected_id} 不存在")
            access.check_org(conn, principal, "quality.read", row["org_code"])
        data = self._blobs.get(row["payload_sha256"]) if row["payload_sha256"] else None
        # the kept bytes are a patient's data as submitted: a read for the access log (§1.9)
        self._audit.record(
            principal, "rejected_payload", target=f"rejected:{rejected_id} {row['kind']} {row['report_key'] or ''}".rstrip(), read=True
        )
        return data or b""


def _rejected_out(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "org_code": r["org_code"],
        "username": r["username"],
        "kind": r["kind"],
        "channel": r["channel"],
        "report_key": r["report_key"],
        "problems": r["problems"],
        "payload_size": r["payload_size"],
        "received_at": format_value(r["received_at"]),
    }


def _delay_stats(d: dict[str, list[float]], late_hours: float) -> dict[str, Any]:
    """Count, average / median / longest delay (hours, 2 decimals) and the late ones."""
    hours = d["lab"] + d["exam"]
    return {
        "reports": len(hours),
        "lab_reports": len(d["lab"]),
        "exam_reports": len(d["exam"]),
        "avg_hours": round(sum(hours) / len(hours), 2) if hours else None,
        "median_hours": round(median(hours), 2) if hours else None,
        "max_hours": round(max(hours), 2) if hours else None,
        "late": sum(1 for h in hours if h > late_hours),
        "late_rate": round(sum(1 for h in hours if h > late_hours) / len(hours), 4) if hours else None,
    }
