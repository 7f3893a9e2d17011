"""Quality figures over rows (pure): upload delays (average, median, longest, late share), every
day of a range, per cent, and completeness per institution and per day (XC-P5). The quality
service (``huren.services.quality``) reads the rows and hands them here."""

from __future__ import annotations

from datetime import date, timedelta
from statistics import median
from typing import Any


def delay_stats(d: dict[str, list[float]], late_hours: float) -> dict[str, Any]:
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
        # 及时率: the share uploaded within ``late_hours`` of approval, per cent
        "timeliness": percent(sum(1 for h in hours if h <= late_hours), len(hours)),
    }


def each_day(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def percent(part: int, whole: int) -> float | None:
    """``part`` of ``whole`` in per cent, one decimal; None when there is no whole."""
    return round(100 * part / whole, 1) if whole else None


def completeness_orgs(rows: list[dict[str, Any]], scope: list[str] | None) -> list[dict[str, Any]]:
    """Per institution: declared and received reports (lab + exam) and 完整率 — received over
    declared on the days and departments it declared, each row's received capped at its declared
    count (a surplus in one department does not hide a shortfall in another); None when it
    declared nothing. Every institution of an explicit scope has a row, one without any also."""
    per: dict[str, dict[str, Any]] = {o: _org_zero(o) for o in (scope or [])}
    for r in rows:
        p = per.setdefault(r["org_code"], _org_zero(r["org_code"]))
        got = r["received_lab"] + r["received_exam"]
        p["received"] += got
        if r["declared"]:
            want = (r["lab_num"] or 0) + (r["exam_num"] or 0)
            p["declared"] += want
            p["matched"] += min(got, want)
            p["declared_days"].add(r["date_t"])
        else:
            p["undeclared"] += got
        if not r["complete"]:
            p["differences"] += 1
    out = []
    for _, p in sorted(per.items()):
        days = p.pop("declared_days")
        out.append(p | {"declared_days": len(days), "completeness": percent(p["matched"], p["declared"])})
    return out


def _org_zero(org: str) -> dict[str, Any]:
    return {"org_code": org, "declared": 0, "received": 0, "matched": 0, "undeclared": 0, "differences": 0, "declared_days": set()}


def completeness_days(rows: list[dict[str, Any]], first: date, last: date) -> list[dict[str, Any]]:
    """Per day of the range (a day without a declaration or a report too): declared, received, 完整率."""
    per = {d.isoformat(): {"declared": 0, "received": 0, "matched": 0} for d in each_day(first, last)}
    for r in rows:
        p = per.get(r["date_t"])
        if p is None:
            continue
        got = r["received_lab"] + r["received_exam"]
        p["received"] += got
        if r["declared"]:
            want = (r["lab_num"] or 0) + (r["exam_num"] or 0)
            p["declared"] += want
            p["matched"] += min(got, want)
    return [{"date_t": d} | p | {"completeness": percent(p["matched"], p["declared"])} for d, p in per.items()]


def per_org(per_org_day: dict[tuple[str, date], dict[str, list[float]]], scope: list[str] | None) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {o: {"lab": [], "exam": []} for o in (scope or [])}
    for (org, _), d in per_org_day.items():
        acc = out.setdefault(org, {"lab": [], "exam": []})
        acc["lab"] += d["lab"]
        acc["exam"] += d["exam"]
    return out
