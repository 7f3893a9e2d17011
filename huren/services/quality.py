"""Data quality: completeness of uploads against declared daily counts (XC-P5), rejected
submissions and their rectification (XC-S2, BJ-4)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from huren.context import Clock, Principal
from huren.domain import figures, idcard, labels, limits
from huren.domain.records import format_value
from huren.errors import NotFound
from huren.services import access, platform_groups
from huren.services.audit import AuditService
from huren.services.refs import MISSING_REJECTED, Refs
from huren.store import quality, report_queries
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


#: Days an institution has to rectify a rejected submission (the deadline shown), by default.
RECTIFY_DAYS = 7

#: Roles whose opening of their own open items marks them seen (the institution's accounts).
SEEING_ROLES = ("admin", "hospital")


class QualityService:
    def __init__(
        self, db: Database, blobs: BlobStore, clock: Clock, audit: AuditService, refs: Refs, *, rectify_days: int = RECTIFY_DAYS
    ) -> None:
        if not 1 <= rectify_days <= 365:
            raise ValueError("rectify_days must be 1..365")
        self._rectify_days = rectify_days
        self._db = db
        self._refs = refs
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
        limits.check_day_range(day_from, day_to)
        scope = self._scope(principal, org_code)
        end = day_to + timedelta(days=1)
        with self._db.read() as conn:
            declared = quality.daily_counts(conn, scope, day_from, end)
            got_lab = report_queries.counts_by_day_dept(conn, "lab", scope, day_from, end)
            got_exam = report_queries.counts_by_day_dept(conn, "exam", scope, day_from, end)
            key_of, described = platform_groups.groups(conn, scope)
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
        orgs = figures.completeness_orgs(out, scope)
        return {
            "day_from": day_from.isoformat(),
            "day_to": day_to.isoformat(),
            "rows": out,
            "differences": [r for r in out if not r["complete"]],
            "orgs": orgs,
            "platforms": platform_groups.completeness(orgs, key_of, described),
            "days": figures.completeness_days(out, day_from, day_to),
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
        limits.check_day_range(day_from, day_to)
        limits.check_late_hours(late_hours)
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
                {"org_code": org, "date_t": day.isoformat()} | figures.delay_stats(d, late_hours)
                for (org, day), d in sorted(per_org.items())
            ],
            # every day of the range, a day without a report too (an outage shows as a day of 0)
            "days": [
                {"date_t": day.isoformat()} | figures.delay_stats(per_day.get(day, {"lab": [], "exam": []}), late_hours)
                for day in figures.each_day(day_from, day_to)
            ],
            "orgs": [
                {"org_code": org} | figures.delay_stats(d, late_hours)
                for org, d in sorted(figures.per_org(per_org, scope).items())
            ],
            "total": figures.delay_stats(everything, late_hours),
        }

    def rejected(
        self, principal: Principal, *, org_code: str | None = None, only_open: bool = False, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """One page of rejected submissions, newest first, each with ``fixed`` (XC-S2); see
        :meth:`rejected_page` for the rule and the counts."""
        return list(self.rejected_page(principal, org_code=org_code, only_open=only_open, limit=limit, offset=offset)["rows"])

    def rejected_page(
        self, principal: Principal, *, org_code: str | None = None, only_open: bool = False, limit: int = 100, offset: int = 0
    ) -> dict[str, Any]:
        """Rejected submissions, newest first, each with whether it has since been fixed (XC-S2),
        filtered (``only_open``) before paging, with the counts over every row in scope.

        Fixed means: a rejected report — a report with the same primary key was accepted
        (registered or replaced) after it; a rejected void — that report was voided after it; a
        rejected PDF — the report got a PDF after it; a rejected upload without a report key
        (daily counts, master data, accept / quote records) — a later upload of the same kind by
        the same institution succeeded. Nothing else fixes it (an upload of another report of
        the same kind does not). Computed when read, so every worker agrees.

        Each row also says, in words a user reads: the report form number and the masked patient
        (from the report key), the problems with Chinese field labels and rules
        (``problems_plain``, :mod:`huren.domain.labels`), the deadline (``rectify_days`` after
        the refusal) and whether it is overdue, and when the institution first saw it. An
        institution's own account (admin / hospital) opening its open items marks those on the
        page seen (``seen_at``), once.

        Returns ``rows`` (the page), ``total`` (rows matching the filter), ``open`` / ``fixed`` /
        ``overdue`` / ``unseen`` (over all rows in scope) and ``progress`` (per institution, see
        :meth:`rectification`).
        """
        scope = self._scope(principal, org_code)
        with self._db.read() as conn:
            index = quality.rejected_index(conn, scope)
            fixed = self._fixed_all(conn, index)
            chosen = [r for r in index if not (only_open and fixed[r["id"]])]
            page_ids = [r["id"] for r in chosen[offset : offset + min(limit, 1000)]]
            full = quality.rejected_by_ids(conn, page_ids)
        now = self._clock.now()
        if principal.role in SEEING_ROLES:
            mine = [i for i in page_ids if i in full and not fixed[i] and full[i]["org_code"] == principal.org_code
                    and full[i]["seen_at"] is None]
            if mine:
                with self._db.write() as conn:
                    quality.mark_seen(conn, principal.org_code, mine, now)
                for i in mine:
                    full[i]["seen_at"] = now
                for r in index:
                    if r["id"] in mine:
                        r["seen_at"] = now
        rows = [_rejected_out(full[i], self._refs) | self._workflow(full[i], fixed[i], now) for i in page_ids if i in full]
        self._audit.record(principal, "rejected_list", target=f"{len(rows)} rejected submissions", read=True)
        n_fixed = sum(1 for r in index if fixed[r["id"]])
        open_rows = [r for r in index if not fixed[r["id"]]]
        return {
            "rows": rows,
            "total": len(chosen),
            "open": len(index) - n_fixed,
            "fixed": n_fixed,
            "overdue": sum(1 for r in open_rows if self._deadline(r["received_at"]) < now),
            "unseen": sum(1 for r in open_rows if r["seen_at"] is None),
            "rectify_days": self._rectify_days,
            "progress": self._progress(index, fixed),
        }

    def _deadline(self, received_at: datetime) -> datetime:
        return received_at + timedelta(days=self._rectify_days)

    def _workflow(self, r: dict[str, Any], fixed: bool, now: datetime) -> dict[str, Any]:
        """The rectification state of one rejected submission, in words a user reads."""
        key = _parse_key(r["report_key"])
        deadline = self._deadline(r["received_at"])
        return {
            "fixed": fixed,
            "report_form_no": key[1][1] if key else None,
            "patient": idcard.mask(key[1][2]) if key else None,
            "problems_plain": [labels.problem(p) for p in r["problems"]],
            "deadline": format_value(deadline),
            "overdue": not fixed and deadline < now,
            "seen_at": format_value(r["seen_at"]) if r["seen_at"] else None,
        }

    def rectification(self, principal: Principal, *, org_code: str | None = None) -> list[dict[str, Any]]:
        """Rectification progress per institution in scope (XC-S2): rejected submissions in
        all, fixed, still open, the oldest open one's time and how many days it has been open."""
        scope = self._scope(principal, org_code)
        with self._db.read() as conn:
            index = quality.rejected_index(conn, scope)
            fixed = self._fixed_all(conn, index)
        return self._progress(index, fixed)

    def _progress(self, index: list[dict[str, Any]], fixed: dict[int, bool]) -> list[dict[str, Any]]:
        now = self._clock.now()
        today = now.date()
        per: dict[str, dict[str, Any]] = {}
        for r in index:
            p = per.setdefault(r["org_code"], {
                "org_code": r["org_code"], "total": 0, "fixed": 0, "open": 0, "overdue": 0, "unseen": 0, "oldest_open_at": None,
            })
            p["total"] += 1
            if fixed[r["id"]]:
                p["fixed"] += 1
            else:
                p["open"] += 1
                p["overdue"] += self._deadline(r["received_at"]) < now
                p["unseen"] += r.get("seen_at") is None
                if p["oldest_open_at"] is None or r["received_at"] < p["oldest_open_at"]:
                    p["oldest_open_at"] = r["received_at"]
        out = []
        for p in sorted(per.values(), key=lambda p: (-p["open"], p["org_code"])):
            oldest = p["oldest_open_at"]
            out.append(p | {
                "oldest_open_at": format_value(oldest) if oldest else None,
                "days_open": (today - oldest.date()).days if oldest else 0,
            })
        return out

    def _fixed_all(self, conn: Any, index: list[dict[str, Any]]) -> dict[int, bool]:
        """Whether each rejected submission of ``index`` was fixed since (the rule of :meth:`rejected_page`)."""
        fixed = dict.fromkeys((r["id"] for r in index), False)
        keyed: dict[str, list[tuple[dict[str, Any], tuple[str, str, str, int, str]]]] = {"lab": [], "exam": []}
        latest: dict[tuple[str, str], datetime | None] = {}
        for r in index:
            later = LATER_UPLOAD.get(r["kind"])
            if later is not None:  # no report key: a later upload of that kind
                table, when = later
                if (r["org_code"], r["kind"]) not in latest:
                    latest[(r["org_code"], r["kind"])] = quality.latest_upload(conn, table, when, r["org_code"])
                last = latest[(r["org_code"], r["kind"])]
                fixed[r["id"]] = last is not None and last > r["received_at"]
                continue
            key = _parse_key(r["report_key"])
            if key is not None:
                keyed[key[0]].append((r, key[1]))
        for kind, items in keyed.items():
            if not items:
                continue
            states = quality.report_states(conn, kind, {k for _, k in items})
            for r, k in items:
                st = states.get(k)
                if st is None:
                    continue
                since = r["received_at"]
                if r["kind"].startswith("void_"):
                    at = st["voided_at"]
                elif r["kind"] == "pdf":
                    at = st["pdf_at"]
                else:
                    at = st["registered_at"]
                fixed[r["id"]] = at is not None and at > since
        return fixed

    def rejected_payload(self, principal: Principal, ref: str) -> bytes:
        """The kept bytes of rejected submission ``ref`` (its ref from the list or the refusal);
        a ref that names none — a sequential id, a changed character, a report's ref — is the same
        ``NotFound`` as a submission that does not exist."""
        access.require(principal, "quality.read")
        rejected_id = self._refs.rejected_id(ref)
        with self._db.read() as conn:
            row = quality.get_rejected(conn, rejected_id)
            if row is None:
                raise NotFound(MISSING_REJECTED)
            access.check_org(conn, principal, "quality.read", row["org_code"])
        data = self._blobs.get(row["payload_sha256"]) if row["payload_sha256"] else None
        # the kept bytes are a patient's data as submitted: a read for the access log (§1.9)
        self._audit.record(
            principal, "rejected_payload", target=f"rejected:{rejected_id} {row['kind']} {row['report_key'] or ''}".rstrip(), read=True
        )
        return data or b""


def _parse_key(text: str | None) -> tuple[str, tuple[str, str, str, int, str]] | None:
    """``lab:org|form|patient|event_type|event_no`` (huren.domain.records.report_key_text)."""
    kind, _, rest = (text or "").partition(":")
    parts = rest.split("|")
    if kind not in ("lab", "exam") or len(parts) != 5 or not parts[3].isdigit():
        return None
    return kind, (parts[0], parts[1], parts[2], int(parts[3]), parts[4])


def _rejected_out(r: dict[str, Any], refs: Refs) -> dict[str, Any]:
    return {
        "id": refs.rejected(r["id"]),  # a ref, as in the refusal that kept it: no walking the store
        "org_code": r["org_code"],
        "username": r["username"],
        "kind": r["kind"],
        "channel": r["channel"],
        "report_key": r["report_key"],
        "problems": r["problems"],
        "payload_size": r["payload_size"],
        "received_at": format_value(r["received_at"]),
    }
