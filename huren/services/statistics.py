"""Recognition statistics (BJ-1.3 / BJ-1.4): per institution, department, item or day —
reminders shown, recognizable results found, accepted, rejected by reason, cited, the
recognition rate (accepted / decided) and the tests avoided (one per accepted item)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from huren.context import Clock, Principal
from huren.domain import dictionaries, limits
from huren.errors import InvalidInput, Problem
from huren.services import access
from huren.store import recognition as rstore
from huren.store.database import Database

GROUPS = ("org", "dept", "item", "day", "all")


class StatisticsService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def recognition(
        self,
        principal: Principal,
        *,
        by: str = "org",
        day_from: date | None = None,
        day_to: date | None = None,
        org_code: str | None = None,
    ) -> dict[str, Any]:
        access.require(principal, "statistics.read")
        if by not in GROUPS:
            raise InvalidInput("分组方式无效", [Problem("by", "dictionary", f"分组方式应为 {', '.join(GROUPS)} 之一")])
        day_to = day_to or self._clock.now().date()
        day_from = day_from or day_to - timedelta(days=29)
        limits.check_day_range(day_from, day_to)
        start = datetime.combine(day_from, datetime.min.time())
        end = datetime.combine(day_to + timedelta(days=1), datetime.min.time())
        with self._db.read() as conn:
            scope = access.org_scope(conn, principal, "statistics.read", org_code)
            groups = rstore.statistics(conn, by, scope, start, end)
            names = self._names(conn, by)
        reasons = dictionaries.load("REJECT_REASON")
        rows = []
        for key, r in sorted(groups.items()):
            r["name"] = names.get(key, key) if key else "（未填写）"
            r["rejected_by_reason"] = [
                {"reason": code, "name": reasons.get(code, "未填写理由"), "count": n}
                for code, n in sorted(r["rejected_by_reason"].items(), key=lambda kv: (-kv[1], kv[0]))
            ]
            rows.append(r)
        counted = ("reminders", "recognizable", "views", "accepted", "rejected", "cited")
        total: dict[str, Any] = {k: sum(r[k] for r in rows) for k in counted}
        # 检查 / 检验 split (reminders, decisions and citations each carry their kind)
        total["by_kind"] = {kind: {k: sum(r["by_kind"][kind][k] for r in rows) for k in counted} for kind in ("exam", "lab")}
        decided = total["accepted"] + total["rejected"]
        total["recognition_rate"] = round(total["accepted"] / decided, 4) if decided else None
        total["tests_avoided"] = total["accepted"]
        return {"by": by, "day_from": day_from.isoformat(), "day_to": day_to.isoformat(), "rows": rows, "total": total}

    def _names(self, conn: Any, by: str) -> dict[str, str]:
        if by == "org":
            return {code: str(o["name"]) for code, o in rstore.orgs(conn).items()}
        if by == "dept":
            return dict(dictionaries.load("STD_DEPT"))
        if by == "item":
            return {str(c["code"]): str(c["name"]) for c in rstore.catalog(conn)}
        return {}
