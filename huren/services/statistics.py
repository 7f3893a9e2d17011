"""Recognition statistics (BJ-1.3 / BJ-1.4): per institution, department, item or day —
reminders shown, recognizable results found, accepted, rejected by reason, cited, the
recognition rate (accepted / decided), the tests avoided (one per accepted item) and their cost
(the catalog's optional fee per item); rejections also by the six situations of the national rules
(huren.domain.dictionaries.REPEAT_SITUATIONS). The totals (the KPI cards) count over everything in
scope whatever the grouping. Grouped by platform (issue 13 §4), a row per city platform within the
caller's reach (``huren.services.platform_groups``), its institutions' counts added up."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from huren.context import Clock, Principal
from huren.domain import dictionaries, limits
from huren.errors import InvalidInput, Problem
from huren.services import access, platform_groups
from huren.store import recognition as rstore
from huren.store.database import Database

GROUPS = ("org", "dept", "item", "day", "all", "platform")
#: the counts a row holds (added up when institutions are grouped by platform)
COUNTED = ("reminders", "recognizable", "views", "accepted", "rejected", "cited")


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
            if by == "platform":
                groups, names = _by_platform(conn, scope, rstore.statistics(conn, "org", scope, start, end))
            else:
                groups = rstore.statistics(conn, by, scope, start, end)
                names = self._names(conn, by)
            # the KPI cards count over everything in scope, whatever the grouping (grouped by item,
            # reminders carry no item: summing the rows would drop them to 0)
            overall = rstore.statistics(conn, "all", scope, start, end).get("", _empty())
            per_item = groups if by == "item" else rstore.statistics(conn, "item", scope, start, end)
            fees = {(str(c["kind"]), str(c["code"])): c.get("fee") for c in rstore.catalog(conn)}
        reasons = dictionaries.load("REJECT_REASON")
        rows = []
        order = list(groups) if by == "platform" else sorted(groups)
        for key in order:
            r = groups[key]
            r["name"] = names.get(key, key) if key else "（未填写）"
            r["rejected_by_situation"] = _situations(r["rejected_by_reason"])
            r["rejected_by_reason"] = _reasons(r["rejected_by_reason"], reasons)
            rows.append(r)
        counted = COUNTED
        total: dict[str, Any] = {k: overall[k] for k in counted}
        # 检查 / 检验 split (reminders, decisions and citations each carry their kind)
        total["by_kind"] = {kind: {k: overall["by_kind"][kind][k] for k in counted} for kind in ("exam", "lab")}
        decided = total["accepted"] + total["rejected"]
        total["recognition_rate"] = round(total["accepted"] / decided, 4) if decided else None
        total["tests_avoided"] = total["accepted"]
        total["rejected_by_reason"] = _reasons(overall["rejected_by_reason"], reasons)
        total["rejected_by_situation"] = _situations(overall["rejected_by_reason"])
        total |= _cost(per_item, fees)
        return {"by": by, "day_from": day_from.isoformat(), "day_to": day_to.isoformat(), "rows": rows, "total": total}

    def _names(self, conn: Any, by: str) -> dict[str, str]:
        if by == "org":
            return {code: str(o["name"]) for code, o in rstore.orgs(conn).items()}
        if by == "dept":
            return dict(dictionaries.load("STD_DEPT"))
        if by == "item":
            return {str(c["code"]): str(c["name"]) for c in rstore.catalog(conn)}
        return {}


def _by_platform(conn: Any, scope: list[str] | None, per_org: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The per-institution rows added up per platform row (every row of the scope, 0 included),
    in the order of ``platform_groups.ordered``; and each row's name."""
    key_of, described = platform_groups.groups(conn, scope)
    for code in per_org:
        if code not in key_of:  # not an institution of the directory (cannot be, but never dropped)
            key_of[code] = platform_groups.NONE
            described.setdefault(platform_groups.NONE, platform_groups.NO_PLATFORM)
    out: dict[str, dict[str, Any]] = {}
    for key in platform_groups.ordered(key_of.values(), described):
        g = described[key]
        members = sorted(c for c, k in key_of.items() if k == key)
        out[key] = {"key": key, **_empty(), "level": g.level, "virtual": g.virtual, "direct": g.direct, "institutions": len(members)}
    for code, r in per_org.items():
        _add(out[key_of[code]], r)
    for r in out.values():
        decided = r["accepted"] + r["rejected"]
        r["recognition_rate"] = round(r["accepted"] / decided, 4) if decided else None
        r["tests_avoided"] = r["accepted"]
    return out, {k: g.name for k, g in described.items()}


def _add(into: dict[str, Any], r: dict[str, Any]) -> None:
    for k in COUNTED:
        into[k] += r[k]
        for kind in ("exam", "lab"):
            into["by_kind"][kind][k] += r["by_kind"][kind][k]
    for reason, n in r["rejected_by_reason"].items():
        into["rejected_by_reason"][reason] = into["rejected_by_reason"].get(reason, 0) + n


def _empty() -> dict[str, Any]:
    zero = {"reminders": 0, "recognizable": 0, "views": 0, "accepted": 0, "rejected": 0, "cited": 0}
    return {**zero, "rejected_by_reason": {}, "by_kind": {"exam": dict(zero), "lab": dict(zero)}}


def _reasons(counts: dict[str, int], names: Any) -> list[dict[str, Any]]:
    return [
        {"reason": code, "name": names.get(code, "未填写理由"), "count": n}
        for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _situations(counts: dict[str, int]) -> list[dict[str, Any]]:
    """Rejections per situation of the national rules (huren.domain.dictionaries.REPEAT_SITUATIONS),
    all six in their order, 0 included: they add up to the rejected decisions."""
    per = dict.fromkeys(dictionaries.REPEAT_SITUATIONS, 0)
    for code, n in counts.items():
        per[dictionaries.repeat_situation(code)] += n
    return [{"name": name, "count": n} for name, n in per.items()]


def _cost(per_item: dict[str, dict[str, Any]], fees: dict[tuple[str, str], Any]) -> dict[str, Any]:
    """The cost avoided: the catalog's fee of each accepted item (an accepted item is a test not
    repeated), summed; accepted items whose catalog row gives no fee are counted apart."""
    cost = Decimal(0)
    priced = unpriced = 0
    for code, r in per_item.items():
        for kind in ("exam", "lab"):
            n = int(r["by_kind"][kind]["accepted"])
            if not n:
                continue
            fee = fees.get((kind, code))
            if fee is None:
                unpriced += n
            else:
                cost += Decimal(str(fee)) * n
                priced += n
    return {
        "cost_avoided": float(cost.quantize(Decimal("0.01"))) if priced else None,
        "cost_items_priced": priced,
        "cost_items_unpriced": unpriced,
    }
