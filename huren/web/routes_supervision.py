"""The supervision pages (issue #6): data completeness (declared vs received), upload timeliness,
with their per-institution and per-day tables, and the helpers every supervision page shares;
rectification is in :mod:`huren.web.routes_rectification`, statistics in :mod:`huren.web.routes_stats`,
the catalog in :mod:`huren.web.routes_catalog`, the overview in :mod:`huren.web.routes_overview`.

Supervisors see every institution (and may pick one); hospital administrators and institution
accounts see their own only — the services enforce that scope, the pages just pass ``org_code``.
Doctors are refused. Charts are SVG drawn by :mod:`huren.web.charts`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from huren.domain import access, kinds, labels
from huren.domain.limits import check_day, excerpt
from huren.errors import InvalidInput
from huren.services.overview import Thresholds, overview_service
from huren.web import charts, platform_tables, tables
from huren.web.render import SUPERVISION_ROLES, Caller, caller, container, invalid, page

router = APIRouter(include_in_schema=False)

T = TypeVar("T")

#: what a rejected submission was (``rejected_submission.kind``)
SUBMISSION_NAMES = {
    **{k.name: k.report_name for k in kinds.ALL},
    "pdf": "报告PDF",
    **{f"void_{k.name}": f"{k.report_name}作废" for k in kinds.ALL},
    "daily": "检查检验日报",
    "dept": "科室信息",
    "staff": "人员信息",
    "patient": "患者信息",
    "device": "设备信息",
    "qc_record": "质控记录",
    "accept": "互认记录",
    "quote": "引用记录",
    "reminder_log": "提醒日志",
}
CHANNEL_NAMES = {"rest": "REST 接口", "soap": "WebService（SOAP）", "gateway": "前置机"}
GROUP_NAMES = {"org": "机构", "dept": "科室", "item": "项目", "day": "日期", "platform": "平台"}


async def call(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    return await run_in_threadpool(lambda: fn(*args, **kw))


def day_param(value: str, field: str, label: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise invalid(field, "date_format", f"{label}格式应为 YYYY-MM-DD，而不是“{excerpt(value)}”") from None
    return check_day(day, field, label)  # the domain's bounds, as on REST (huren.domain.limits)


def org_names(request: Request) -> dict[str, str]:
    return {str(o["code"]): str(o["name"]) for o in container(request).directory.list_orgs()}


def base_context(request: Request, who: Caller, what: str) -> dict[str, Any]:
    """Checks the role; the context every supervision page has."""
    who.require(SUPERVISION_ROLES, what)
    names = org_names(request)
    # an institution picker for whoever sees more than its own: the institutions within reach
    # (a supervisor's platform subtree and division, huren.domain.access)
    picks = access.scope(who.principal, "quality.read") not in (None, access.OWN)
    within = container(request).directory.orgs_within(who.principal, "quality.read") if picks else []
    return {
        "org_names": names,
        "orgs": sorted((str(o["code"]), str(o["name"])) for o in within),
        "picks_org": picks,
    }


def problem_dicts(exc: InvalidInput) -> list[dict[str, str]]:
    """The problems as a user reads them: Chinese field labels and rules (huren.domain.labels)."""
    return [labels.problem(p.as_dict()) for p in exc.problems]


# -- completeness -------------------------------------------------------------------------------


def _silence(request: Request, who: Caller, org_code: str, hours_text: str) -> tuple[float, dict[str, dict[str, Any]]]:
    """N (hours, ``silent_hours`` or the configured default) and the last receipt per institution."""
    svc = overview_service(container(request))
    try:
        hours = float(hours_text.strip()) if hours_text.strip() else svc.thresholds.silent_hours
    except ValueError:
        raise invalid("silent_hours", "number", f"静默阈值应为小时数，而不是“{excerpt(hours_text)}”") from None
    return hours, svc.silence(who.principal, org_code or None, hours)


def _with_silence(rows: list[dict[str, Any]], silent: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-institution rows with the last receipt; an institution in scope without a row too."""
    by = {r["org_code"]: r for r in rows}
    # the institutions of the overview's scope (a supervisor's own body left out), and any with data
    codes = sorted(set(silent) | {c for c, r in by.items() if r.get("reports") or r.get("received") or r.get("declared")})
    return [by.get(c, {"org_code": c}) | {k: v for k, v in silent.get(c, {}).items() if k != "org_code"} for c in codes]


def thresholds(request: Request) -> Thresholds:
    """The configured red / yellow levels and N of the silent hours (HUREN_OVERVIEW_*)."""
    return Thresholds.from_settings(container(request).settings)


def _completeness_tables(request: Request, res: dict[str, Any], names: dict[str, str], silent: dict[str, dict[str, Any]],
                         form: dict[str, str]) -> list[tables.Table]:
    th = thresholds(request)
    org = tables.org_text(names)

    def down(r: dict[str, Any]) -> str:  # the rows of one institution
        return "/ui/quality/completeness?" + urlencode(
            {"org_code": r["org_code"], "day_from": res["day_from"], "day_to": res["day_to"], "exc": "completeness"})

    orgs = tables.Table(
        "completeness_orgs", "各机构完整率",
        [tables.Column("org_code", "机构", text=org, link=down),
         tables.Column("declared", "申报报告数", num=True),
         tables.Column("received", "实收报告数", num=True),
         tables.Column("completeness", "完整率（%）", num=True, percent=True,
                       cls=tables.level_class(lambda r: th.rate(r.get("completeness")))),
         tables.Column("undeclared", "未申报而收到", num=True),
         tables.Column("differences", "差异条数", num=True),
         tables.silent_column(form["silent_hours"])],
        _with_silence(res["orgs"], silent),
        exception=lambda r: th.rate(r.get("completeness")) in ("red", "yellow") or bool(r.get("differences"))
        or bool(r.get("silent")) or not r.get("received"),
        exception_label=f"完整率低于 {th.rate_yellow:g}%、有差异、无上传或静默",
        row_class=lambda r: "silent" if r.get("silent") else "",
        row_data=(("org", "org_code"),), empty="查看范围内没有机构。",
    )
    days = tables.Table(
        "completeness_days", "每日完整率",
        [tables.Column("date_t", "日期", nowrap=True),
         tables.Column("declared", "申报报告数", num=True),
         tables.Column("received", "实收报告数", num=True,
                       tag=lambda r: "bad" if not r["received"] else ""),
         tables.Column("completeness", "完整率（%）", num=True, percent=True,
                       cls=tables.level_class(lambda r: th.rate(r.get("completeness"))))],
        res["days"],
        exception=lambda r: not r["received"] or th.rate(r.get("completeness")) in ("red", "yellow"),
        exception_label=f"当天无上传或完整率低于 {th.rate_yellow:g}%",
        row_class=lambda r: "zero" if not r["received"] else "",
        row_data=(("day", "date_t"),),
    )

    def diff_cls(key: str) -> Any:
        return lambda r: "diff" if r[key] else ""

    detail = tables.Table(
        "completeness", "完整性明细",
        [tables.Column("org_code", "机构", text=org),
         tables.Column("date_t", "日期", nowrap=True),
         tables.Column("dept_name", "科室", text=lambda r: f"{r['dept_name'] or '—'}（{r['dept_code'] or '未填写'}）"),
         tables.Column("lab_num", "申报检验", num=True),
         tables.Column("received_lab", "实收检验", num=True),
         tables.Column("lab_diff", "差异", num=True, cls=diff_cls("lab_diff")),
         tables.Column("exam_num", "申报检查", num=True),
         tables.Column("received_exam", "实收检查", num=True),
         tables.Column("exam_diff", "差异", num=True, cls=diff_cls("exam_diff")),
         tables.Column("status", "状态", value=lambda r: "未申报" if not r["declared"] else "一致" if r["complete"] else "不一致",
                       tag=lambda r: "warn" if not r["declared"] else "ok" if r["complete"] else "bad")],
        res["rows"],
        exception=lambda r: not r["complete"], exception_label="不一致或未申报",
        row_class=lambda r: "ok" if r["complete"] else "bad",
        row_data=(("org", "org_code"), ("day", "date_t")),
    )
    return [tables.view(request, t) for t in (orgs, days, detail)]


@router.get("/ui/quality/completeness")
async def completeness(
    request: Request,
    who: Annotated[Caller, Depends(caller)],
    org_code: str = "",
    day_from: str = "",
    day_to: str = "",
    silent_hours: str = "",
) -> Response:
    ctx = base_context(request, who, "数据完整性页面")
    form = {"org_code": org_code, "day_from": day_from, "day_to": day_to, "silent_hours": silent_hours}
    c = container(request)
    try:
        res = await call(
            c.quality.completeness, who.principal, org_code=org_code or None,
            day_from=day_param(day_from, "day_from", "开始日期"), day_to=day_param(day_to, "day_to", "结束日期"),
        )
        hours, silent = await call(_silence, request, who, org_code, silent_hours)
    except InvalidInput as exc:
        return page(request, who, "supervision/completeness.html", 422, **ctx, form=form, res=None,
                    error=exc.text(), problems=problem_dicts(exc))
    form["silent_hours"] = charts.number(hours)
    orgs_t, days_t, detail_t = _completeness_tables(request, res, ctx["org_names"], silent, form)
    # per city platform (issue 13 §4; huren.web.platform_tables), when a platform tree exists
    platforms_t = tables.view(request, platform_tables.completeness_table(res, thresholds(request)))
    if (file := tables.first_export(request, orgs_t, days_t, detail_t, platforms_t)) is not None:
        return file
    rows = res["rows"]
    days = res["days"]  # every day of the range: a day without uploads is on the axis, at 0
    chart = charts.bar_chart(
        [d["date_t"][5:] for d in days],
        [charts.Series("申报数量", [d["declared"] for d in days]),
         charts.Series("实收数量", [d["received"] for d in days])],
        title="每日申报数量与实收数量（检验+检查）", y_label="报告数",
    ) if rows else ""
    rate_chart = charts.line_chart(
        [d["date_t"][5:] for d in days], [charts.Series("完整率", [d["completeness"] for d in days])],
        title="每日完整率（%）", y_label="完整率（%）", max_value=100,
    ) if any(d["completeness"] is not None for d in days) else ""
    kpis = {
        "orgs": len({r["org_code"] for r in rows}),
        "declared_days": len({(r["org_code"], r["date_t"]) for r in rows if r["declared"]}),
        "differences": len(res["differences"]),
        "undeclared": sum(1 for r in rows if not r["declared"]),
        "silent": sum(1 for s in silent.values() if s["silent"]),
        "zero_days": sum(1 for d in days if not d["received"]),
    }
    return page(request, who, "supervision/completeness.html", **ctx, form=form, res=res, kpis=kpis, chart=chart,
                rate_chart=rate_chart, orgs_table=orgs_t, days_table=days_t, detail_table=detail_t,
                platforms_table=platforms_t if platform_tables.has_platforms(res["platforms"]) else None)


# -- timeliness ---------------------------------------------------------------------------------


def _timeliness_tables(request: Request, res: dict[str, Any], names: dict[str, str], silent: dict[str, dict[str, Any]],
                       form: dict[str, str], late_text: str) -> list[tables.Table]:
    th = thresholds(request)
    org = tables.org_text(names)
    late_label = f"超时（>{late_text} 小时）数"

    def down(r: dict[str, Any]) -> str:
        return "/ui/quality/timeliness?" + urlencode({
            "org_code": r["org_code"], "day_from": res["day_from"], "day_to": res["day_to"], "late_hours": form["late_hours"]})

    def hours(key: str, label: str) -> tables.Column:
        return tables.Column(key, label, num=True)

    late = tables.Column("late", late_label, num=True, tag=lambda r: "bad" if r.get("late") else "")
    orgs = tables.Table(
        "timeliness_orgs", "各机构及时率",
        [tables.Column("org_code", "机构", text=org, link=down),
         tables.Column("reports", "报告数", num=True),
         late,
         tables.Column("timeliness", "及时率（%）", num=True, percent=True,
                       cls=tables.level_class(lambda r: th.rate(r.get("timeliness")))),
         hours("avg_hours", "平均时延（小时）"),
         hours("max_hours", "最长时延（小时）"),
         tables.silent_column(form["silent_hours"])],
        _with_silence(res["orgs"], silent),
        exception=lambda r: th.rate(r.get("timeliness")) in ("red", "yellow") or bool(r.get("silent")) or not r.get("reports"),
        exception_label=f"及时率低于 {th.rate_yellow:g}%、无上传或静默",
        row_class=lambda r: "silent" if r.get("silent") else "",
        row_data=(("org", "org_code"),), empty="查看范围内没有机构。",
    )
    days = tables.Table(
        "timeliness_days", "每日及时率",
        [tables.Column("date_t", "审核日期", nowrap=True),
         tables.Column("reports", "报告数", num=True, tag=lambda r: "bad" if not r["reports"] else ""),
         late,
         tables.Column("timeliness", "及时率（%）", num=True, percent=True,
                       cls=tables.level_class(lambda r: th.rate(r.get("timeliness")))),
         hours("avg_hours", "平均时延（小时）"),
         hours("median_hours", "中位时延（小时）"),
         hours("max_hours", "最长时延（小时）")],
        res["days"],
        exception=lambda r: not r["reports"] or bool(r["late"]),
        exception_label="当天无上传或有超时",
        row_class=lambda r: "zero" if not r["reports"] else "",
        row_data=(("day", "date_t"),),
    )
    detail = tables.Table(
        "timeliness", "及时性明细",
        [tables.Column("org_code", "机构", text=org),
         tables.Column("date_t", "审核日期", nowrap=True),
         tables.Column("reports", "报告数", num=True),
         tables.Column("lab_reports", "检验", num=True),
         tables.Column("exam_reports", "检查", num=True),
         hours("avg_hours", "平均时延（小时）"),
         hours("median_hours", "中位时延（小时）"),
         hours("max_hours", "最长时延（小时）"),
         late],
        res["rows"],
        exception=lambda r: bool(r["late"]), exception_label="有超时上传",
        row_class=lambda r: "bad" if r["late"] else "",
        row_data=(("org", "org_code"), ("day", "date_t")),
    )
    return [tables.view(request, t) for t in (orgs, days, detail)]


@router.get("/ui/quality/timeliness")
async def timeliness(
    request: Request,
    who: Annotated[Caller, Depends(caller)],
    org_code: str = "",
    day_from: str = "",
    day_to: str = "",
    late_hours: str = "24",
    silent_hours: str = "",
) -> Response:
    ctx = base_context(request, who, "上传及时性页面")
    form = {"org_code": org_code, "day_from": day_from, "day_to": day_to, "late_hours": late_hours, "silent_hours": silent_hours}
    c = container(request)
    try:
        try:
            late = float(late_hours.strip() or "24")
        except ValueError:
            raise invalid("late_hours", "number", f"超时阈值应为小时数，而不是“{late_hours}”") from None
        res = await call(
            c.quality.timeliness, who.principal, org_code=org_code or None,
            day_from=day_param(day_from, "day_from", "开始日期"), day_to=day_param(day_to, "day_to", "结束日期"), late_hours=late,
        )
        hours, silent = await call(_silence, request, who, org_code, silent_hours)
    except InvalidInput as exc:
        return page(request, who, "supervision/timeliness.html", 422, **ctx, form=form, res=None,
                    error=exc.text(), problems=problem_dicts(exc))
    form["silent_hours"] = charts.number(hours)
    late_text = charts.number(res["late_hours"])
    orgs_t, days_t, detail_t = _timeliness_tables(request, res, ctx["org_names"], silent, form, late_text)
    if (file := tables.first_export(request, orgs_t, days_t, detail_t)) is not None:
        return file
    days = res["days"]  # every day of the range: a day without uploads is on the axis
    labels = [d["date_t"][5:] for d in days]
    delay_chart = charts.line_chart(
        labels,
        [charts.Series("平均时延", [d["avg_hours"] for d in days]),
         charts.Series("中位时延", [d["median_hours"] for d in days]),
         charts.Series("最长时延", [d["max_hours"] for d in days])],
        title="每日上传时延（小时，按报告审核日期）", y_label="小时",
    ) if res["rows"] else ""
    late_chart = charts.bar_chart(
        labels,
        [charts.Series("按时上传", [d["reports"] - d["late"] for d in days], charts.PALETTE[1]),
         charts.Series(f"超时（>{late_text} 小时）", [d["late"] for d in days], charts.PALETTE[2])],
        title="每日按时与超时上传的报告数", stacked=True, y_label="报告数",
    ) if res["rows"] else ""
    zero_days = sum(1 for d in days if not d["reports"])
    return page(request, who, "supervision/timeliness.html", **ctx, form=form, res=res, late_text=late_text,
                delay_chart=delay_chart, late_chart=late_chart, orgs_table=orgs_t, days_table=days_t,
                detail_table=detail_t, silent_count=sum(1 for s in silent.values() if s["silent"]), zero_days=zero_days)
