"""The recognition statistics page (BJ-1.3 / 1.4, XC-P4): KPI cards over the whole scope, the table by
institution, department, item or day, 检查 / 检验, the six situations of the national rules and the
cost avoided, with SVG charts.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from huren.domain import access
from huren.errors import InvalidInput
from huren.web import charts, tables
from huren.web.render import Caller, caller, container, invalid, page
from huren.web.routes_supervision import (
    GROUP_NAMES,
    base_context,
    call,
    day_param,
    problem_dicts,
    thresholds,
)

router = APIRouter(include_in_schema=False)


def _rate_note(r: dict[str, Any]) -> str:
    return f"接受 {r['accepted']} / 决定 {r['accepted'] + r['rejected']}"


@router.get("/ui/stats")
async def stats(
    request: Request,
    who: Annotated[Caller, Depends(caller)],
    by: str = "org",
    org_code: str = "",
    day_from: str = "",
    day_to: str = "",
) -> Response:
    ctx = base_context(request, who, "互认统计页面")
    form = {"by": by, "org_code": org_code, "day_from": day_from, "day_to": day_to}
    c = container(request)
    try:
        if by not in GROUP_NAMES:
            raise invalid("by", "dictionary", "分组方式应为 机构、科室、项目 或 日期")
        d_from, d_to = day_param(day_from, "day_from", "开始日期"), day_param(day_to, "day_to", "结束日期")
        res = await call(c.statistics.recognition, who.principal, by=by, day_from=d_from, day_to=d_to,
                          org_code=org_code or None)
        trend = res if by == "day" else await call(
            c.statistics.recognition, who.principal, by="day", day_from=d_from, day_to=d_to, org_code=org_code or None
        )
        # a hospital's own results recognized by other institutions (a supervisor: of the one it picked)
        # within the caller's own institution by default; one reaching several asks for one by name
        own_only = access.scope(who.principal, "statistics.read") == access.OWN
        elsewhere = None if not own_only and not org_code else await call(
            c.recognition.recognized_elsewhere, who.principal, org_code=org_code or None, day_from=d_from, day_to=d_to
        )
    except InvalidInput as exc:
        return page(request, who, "supervision/stats.html", 422, **ctx, form=form, res=None, group_names=GROUP_NAMES,
                    error=exc.text(), problems=problem_dicts(exc))
    rows = res["rows"]
    group = GROUP_NAMES[by]
    t = res["total"]
    charts_out: list[str] = []
    # over time: every day of the range, a gap where nothing was decided; n (decisions) by each point
    by_day = {r["key"][:10]: r for r in trend["rows"]}
    first, last = date.fromisoformat(res["day_from"]), date.fromisoformat(res["day_to"])
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    labels_ = [d[5:] for d in days]
    decided_n = [by_day[d]["accepted"] + by_day[d]["rejected"] if d in by_day else 0 for d in days]
    if by_day:
        charts_out.append(charts.line_chart(
            labels_, [charts.Series("互认率", [by_day[d]["recognition_rate"] if d in by_day else None for d in days])],
            title="互认率趋势（按日；点旁 n 为当日决定项次）", fmt=charts.percent, max_value=1.0, y_label="互认率（%）",
            x_label="日期（月-日）", notes=[f"n={n}" if n else None for n in decided_n],
        ))
        charts_out.append(charts.bar_chart(
            labels_,
            [charts.Series("接受互认", [by_day[d]["accepted"] if d in by_day else 0 for d in days], charts.PALETTE[1]),
             charts.Series("不予互认", [by_day[d]["rejected"] if d in by_day else 0 for d in days], charts.PALETTE[2])],
            title="每日互认决定数", stacked=True, y_label="项次", x_label="日期（月-日）",
        ))
    bk = t["by_kind"]
    if any(bk[k]["accepted"] + bk[k]["rejected"] for k in ("exam", "lab")):
        charts_out.append(charts.bar_chart(
            ["检查", "检验"],
            [charts.Series("接受互认", [bk["exam"]["accepted"], bk["lab"]["accepted"]], charts.PALETTE[1]),
             charts.Series("不予互认", [bk["exam"]["rejected"], bk["lab"]["rejected"]], charts.PALETTE[2])],
            title="检查与检验的互认决定", y_label="项次", x_label="类别", height=240,
        ))
    if by != "day":
        decided = [r for r in rows if r["accepted"] + r["rejected"]]
        decided.sort(key=lambda r: (-(r["recognition_rate"] or 0), -(r["accepted"] + r["rejected"]), r["key"]))
        shown = decided[:30]
        charts_out.append(charts.hbar_chart(
            [(_row_label(r, by), r["recognition_rate"]) for r in shown], title=f"各{group}互认率",
            fmt=charts.percent, max_value=1.0, notes=[_rate_note(r) for r in shown],
            empty=f"所选期间没有按{group}统计的互认决定", x_label="互认率（%）",
        ))
    reason_items = [(x["name"], x["count"]) for x in t["rejected_by_reason"]]
    charts_out.append(charts.hbar_chart(
        reason_items, title="不予互认的理由", color=charts.PALETTE[2], empty="所选期间没有不予互认的决定",
        x_label="项次", label_width=320,
    ))
    situations = [(x["name"], x["count"]) for x in t["rejected_by_situation"]]
    if t["rejected"]:
        charts_out.append(charts.hbar_chart(
            situations, title="不予互认按国家规定可复查的情形归类", color=charts.PALETTE[2], x_label="项次",
        ))
    stats_t, kinds_t, situations_t = _stats_tables(request, res, by, situations)
    if (file := tables.first_export(request, stats_t, kinds_t, situations_t)) is not None:
        return file
    return page(
        request, who, "supervision/stats.html", **ctx, form=form, res=res, group=group, group_names=GROUP_NAMES,
        charts=charts_out, reasons=reason_items, situations=situations, row_label=lambda r: _row_label(r, by),
        elsewhere=elsewhere, stats_table=stats_t, kinds_table=kinds_t, situations_table=situations_t,
    )


def _rate_pct(r: dict[str, Any]) -> float | None:
    rate = r.get("recognition_rate")
    return round(100 * rate, 1) if rate is not None else None


def _stats_tables(request: Request, res: dict[str, Any], by: str,
                  situations: list[tuple[str, int]]) -> list[tables.Table]:
    """The statistics' tables: by the chosen grouping, 检查 / 检验, the six situations."""
    th = thresholds(request)
    group = GROUP_NAMES[by]

    def low(r: dict[str, Any]) -> bool:  # an exception: recognition below the overview's yellow level, or more refused than accepted
        rate = _rate_pct(r)
        return (rate is not None and rate < th.recognition_yellow) or r["rejected"] > r["accepted"]

    def counts() -> list[tables.Column]:
        return [tables.Column("reminders", "提醒次数", num=True),
                tables.Column("recognizable", "可互认结果", num=True),
                tables.Column("views", "查看次数", num=True),
                tables.Column("accepted", "接受互认", num=True, data=lambda r: [("col", "accepted")]),
                tables.Column("rejected", "不予互认", num=True, data=lambda r: [("col", "rejected")]),
                tables.Column("cited", "引用", num=True)]

    rate = tables.Column("recognition_rate", "互认率（%）", num=True, percent=True, value=_rate_pct,
                         cls=tables.level_class(lambda r: th.recognition(_rate_pct(r))))
    label = f"互认率低于 {th.recognition_yellow:g}% 或不予互认多于接受"
    t = res["total"]
    reasons = "；".join(f"{x['name']} × {x['count']}" for x in t["rejected_by_reason"]) or "—"
    total_rate = _rate_pct(t)
    detail = tables.Table(
        "stats", f"按{group}互认统计",
        [tables.Column("key", group, text=lambda r: _row_label(r, by), nowrap=by == "day"),
         *counts(), rate,
         tables.Column("tests_avoided", "避免重复检查检验", num=True),
         tables.Column("reasons", "不予互认理由", cls=lambda r: "reasons",
                       value=lambda r: "；".join(f"{x['name']} × {x['count']}" for x in r["rejected_by_reason"]))],
        res["rows"], exception=low, exception_label=label,
        row_class=lambda r: "bad" if low(r) else "", row_data=(("key", "key"),),
        foot=["合计（查看范围内全部）", *(str(t[k]) for k in ("reminders", "recognizable", "views", "accepted", "rejected", "cited")),
              f"{total_rate:.1f}%" if total_rate is not None else "—", str(t["tests_avoided"]), reasons],
    )
    kind_rows = [{"kind": k, "name": name, **t["by_kind"][k]} for k, name in (("exam", "检查"), ("lab", "检验"))]
    kinds_t = tables.Table(
        "stats_kinds", "检查与检验",
        [tables.Column("name", "类别"), *counts(), rate],
        [r | {"recognition_rate": (r["accepted"] / (r["accepted"] + r["rejected"])) if r["accepted"] + r["rejected"] else None}
         for r in kind_rows],
        exception=low, exception_label=label, row_class=lambda r: "bad" if low(r) else "", row_data=(("kind", "kind"),),
    )
    situations_t = tables.Table(
        "stats_situations", "不予互认按情形归类",
        [tables.Column("name", "可复查的情形"),
         tables.Column("count", "不予互认项次", num=True, data=lambda r: [("situation", r["name"])])],
        [{"name": name, "count": n} for name, n in situations],
        foot=["合计", str(sum(n for _, n in situations))],
    )
    return [tables.view(request, x) for x in (detail, kinds_t, situations_t)]


def _row_label(r: dict[str, Any], by: str) -> str:
    key, name = str(r.get("key") or ""), str(r.get("name") or "")
    if by == "day":
        return key[:10]
    if not key or name == key:
        return name or "（未填写）"
    return f"{name}（{key}）"
