"""The supervisor's overview (驾驶舱, issue 11 item 6): per institution in the caller's scope —
完整率 and 及时率 (:class:`huren.services.quality.QualityService`), 互认率
(:class:`huren.services.statistics.StatisticsService`), open rectifications, reports received
today and the last receipt — with a red / yellow level per figure from configurable thresholds
(``HUREN_OVERVIEW_*``, :class:`huren.settings.Settings`).

The figures are the other services' own (the same calls a page or REST read makes), so the
overview cannot disagree with the pages it links to. The scope is the access policy's
(``quality.read``): a supervisor's region, an administrator's own institution; doctors are refused.
A supervisor's own body (the health commission uploads no reports) is not ranked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from huren.context import Clock, Principal
from huren.domain import access as policy
from huren.domain import limits
from huren.errors import InvalidInput, Problem
from huren.services import access
from huren.services.quality import QualityService
from huren.services.statistics import StatisticsService
from huren.store import directory, uploads
from huren.store.database import Database

if TYPE_CHECKING:
    from huren.services.container import Container
    from huren.settings import Settings

RED, YELLOW, GREEN, NONE = "red", "yellow", "green", "none"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Red / yellow levels of the overview; per cent for the rates."""

    rate_red: float = 80
    rate_yellow: float = 95
    recognition_red: float = 30
    recognition_yellow: float = 60
    open_red: int = 10
    silent_hours: float = 24

    @classmethod
    def from_settings(cls, s: Settings) -> Thresholds:
        return cls(
            s.overview_rate_red, s.overview_rate_yellow, s.overview_recognition_red, s.overview_recognition_yellow,
            s.overview_open_red, s.overview_silent_hours,
        )

    def rate(self, value: float | None, red: float | None = None, yellow: float | None = None) -> str:
        if value is None:
            return NONE
        red, yellow = (self.rate_red if red is None else red), (self.rate_yellow if yellow is None else yellow)
        return RED if value < red else YELLOW if value < yellow else GREEN

    def recognition(self, value: float | None) -> str:
        return self.rate(value, self.recognition_red, self.recognition_yellow)

    def open(self, n: int) -> str:
        return RED if n >= self.open_red else YELLOW if n else GREEN


def overview_service(c: Container) -> OverviewService:
    """The overview over a container's services (it keeps no state of its own)."""
    return OverviewService(c.db, c.clock, c.quality, c.statistics, Thresholds.from_settings(c.settings))


class OverviewService:
    def __init__(
        self, db: Database, clock: Clock, quality: QualityService, statistics: StatisticsService, thresholds: Thresholds
    ) -> None:
        self._db = db
        self._clock = clock
        self._quality = quality
        self._statistics = statistics
        self.thresholds = thresholds

    def institutions(self, principal: Principal, org_code: str | None = None) -> list[dict[str, Any]]:
        """The institutions of the caller's ``quality.read`` scope (code, name), its own supervising
        body left out."""
        with self._db.read() as conn:
            scope = access.org_scope(conn, principal, "quality.read", org_code)
            rows = [o for o in directory.list_orgs(conn, None) if scope is None or str(o["code"]) in scope]
        ranked = policy.scope(principal, "quality.read") is not policy.OWN and not org_code
        return sorted(
            ({"org_code": str(o["code"]), "org_name": str(o["name"])} for o in rows
             if not (ranked and str(o["code"]) == principal.org_code)),
            key=lambda o: o["org_code"],
        )

    def silence(self, principal: Principal, org_code: str | None = None, hours: float | None = None) -> dict[str, dict[str, Any]]:
        """Per institution in scope: reports received today, the last receipt, the hours since and
        whether it has been silent (nothing received) for more than ``hours``."""
        hours = self.thresholds.silent_hours if hours is None else hours
        if not 0 < hours <= limits.MAX_LATE_HOURS:  # NaN fails both comparisons
            msg = f"静默阈值应在 0 到 {limits.MAX_LATE_HOURS} 小时之间"
            raise InvalidInput("静默阈值无效", [Problem("silent_hours", "range", msg)])
        now = self._clock.now()
        orgs = self.institutions(principal, org_code)
        today = datetime.combine(now.date(), datetime.min.time())
        with self._db.read() as conn:
            got = uploads.received(conn, [o["org_code"] for o in orgs], today)
        out = {}
        for o in orgs:
            n, last = got.get(o["org_code"], (0, None))
            # a receipt a moment "after" now (the store's clock and this one) is 0 hours ago
            since = max(0.0, round((now - last).total_seconds() / 3600, 1)) if last else None
            out[o["org_code"]] = o | {
                "today": n,
                "last_received_at": last.isoformat(sep=" ", timespec="seconds") if last else None,
                "silent_hours": since,
                "silent": since is None or since > hours,
            }
        return out

    def overview(
        self,
        principal: Principal,
        *,
        org_code: str | None = None,
        day_from: date | None = None,
        day_to: date | None = None,
        late_hours: float = 24,
        silent_hours: float | None = None,
    ) -> dict[str, Any]:
        """The ranking: one row per institution with its figures and their levels, and the totals."""
        today = self._clock.now().date()
        day_to = day_to or today - timedelta(days=1)
        day_from = day_from or day_to - timedelta(days=6)
        limits.check_day_range(day_from, day_to)
        t = self.thresholds
        silent = self.silence(principal, org_code, silent_hours)  # checks the role and the scope first
        comp = self._quality.completeness(principal, org_code=org_code, day_from=day_from, day_to=day_to)
        tim = self._quality.timeliness(principal, org_code=org_code, day_from=day_from, day_to=day_to, late_hours=late_hours)
        rect = self._quality.rectification(principal, org_code=org_code)
        stats = self._statistics.recognition(principal, by="org", day_from=day_from, day_to=day_to, org_code=org_code)
        c_by = {r["org_code"]: r for r in comp["orgs"]}
        t_by = {r["org_code"]: r for r in tim["orgs"]}
        r_by = {r["org_code"]: r for r in rect}
        s_by = {r["key"]: r for r in stats["rows"]}
        rows = []
        for org, s in silent.items():
            c, tm, rc, st = c_by.get(org, {}), t_by.get(org, {}), r_by.get(org, {}), s_by.get(org, {})
            rate = st.get("recognition_rate")
            row = s | {
                "declared": c.get("declared", 0),
                "received": c.get("received", 0),
                "completeness": c.get("completeness"),
                "reports": tm.get("reports", 0),
                "late": tm.get("late", 0),
                "timeliness": tm.get("timeliness"),
                "accepted": st.get("accepted", 0),
                "decided": st.get("accepted", 0) + st.get("rejected", 0),
                "recognition": round(100 * rate, 1) if rate is not None else None,
                "open": rc.get("open", 0),
                "days_open": rc.get("days_open", 0),
            }
            row["levels"] = {
                "completeness": t.rate(row["completeness"]),
                "timeliness": t.rate(row["timeliness"]),
                "recognition": t.recognition(row["recognition"]),
                "open": t.open(row["open"]),
                "silent": RED if row["silent"] else GREEN,
            }
            row["level"] = RED if RED in row["levels"].values() else YELLOW if YELLOW in row["levels"].values() else GREEN
            rows.append(row)
        order = {RED: 0, YELLOW: 1, GREEN: 2}
        rows.sort(key=lambda r: (order[r["level"]], r["completeness"] if r["completeness"] is not None else -1, r["org_code"]))
        return {
            "day_from": day_from.isoformat(),
            "day_to": day_to.isoformat(),
            "late_hours": late_hours,
            "silent_hours": self.thresholds.silent_hours if silent_hours is None else silent_hours,
            "thresholds": asdict(t),
            "rows": rows,
            "total": {
                "institutions": len(rows),
                "connected": sum(1 for r in rows if r["last_received_at"]),
                "silent": sum(1 for r in rows if r["silent"]),
                "today": sum(r["today"] for r in rows),
                "open": sum(r["open"] for r in rows),
                "red": sum(1 for r in rows if r["level"] == RED),
                "yellow": sum(1 for r in rows if r["level"] == YELLOW),
            },
        }
