"""The supervision pages (issue #6): data completeness (declared vs received), upload timeliness,
rectification of rejected submissions and recognition statistics with charts; the item catalog and
each institution's code mapping are in :mod:`huren.web.routes_catalog`.

Supervisors see every institution (and may pick one); hospital administrators and institution
accounts see their own only — the services enforce that scope, the pages just pass ``org_code``.
Doctors are refused. Charts are SVG drawn by :mod:`huren.web.charts`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from huren.domain import access, kinds, labels
from huren.domain.limits import check_day, excerpt
from huren.errors import InvalidInput
from huren.services.overview import Thresholds, overview_service
from huren.web import charts, tables
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
GROUP_NAMES = {"org": "机构", "dept": "科室", "item": "项目", "day": "日期"}


async def call(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    return await run_in_threadpool(lambda: fn(*args, **kw))


def _day(value: str, field: str, label: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise invalid(field, "date_format", f"{label}格式应为 YYYY-MM-DD，而不是“{excerpt(value)}”") from None
    return check_day(day, field, label)  # the domain's bounds, as on REST (huren.domain.limits)


def _org_names(request: Request) -> dict[str, str]:
    return {str(o["code"]): str(o["name"]) for o in container(request).directory.list_orgs()}


def base_context(request: Request, who: Caller, what: str) -> dict[str, Any]:
    """Checks the role; the context every supervision page has."""
    who.require(SUPERVISION_ROLES, what)
    names = _org_names(request)
    # an institution picker for whoever sees more than its own: the institutions within reach
    # (a supervisor's region, huren.domain.access)
    picks = access.scope(who.principal, "quality.read") not in (None, access.OWN)
    region = container(request).directory.get_org(who.principal.org_code)["region_code"] if picks else None
    return {
        "org_names": names,
        "orgs": sorted((str(o["code"]), str(o["name"])) for o in container(request).directory.list_orgs(region)) if picks else [],
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
            day_from=_day(day_from, "day_from", "开始日期"), day_to=_day(day_to, "day_to", "结束日期"),
        )
        hours, silent = await call(_silence, request, who, org_code, silent_hours)
    except InvalidInput as exc:
        return page(request, who, "supervision/completeness.html", 422, **ctx, form=form, res=None,
                    error=exc.text(), problems=problem_dicts(exc))
    form["silent_hours"] = charts.number(hours)
    orgs_t, days_t, detail_t = _completeness_tables(request, res, ctx["org_names"], silent, form)
    if (file := tables.first_export(request, orgs_t, days_t, detail_t)) is not None:
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
                rate_chart=rate_chart, orgs_table=orgs_t, days_table=days_t, detail_table=detail_t)


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
            day_from=_day(day_from, "day_from", "开始日期"), day_to=_day(day_to, "day_to", "结束日期"), late_hours=late,
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


# -- rectification (rejected submissions) --------------------------------------------------------


REJECTED_PAGE = 50


def _progress_table(request: Request, progress: list[dict[str, Any]], names: dict[str, str]) -> tables.Table:
    """Rectification per institution."""
    return tables.view(request, tables.Table(
        "progress", "各机构整改进度",
        [tables.Column("org_code", "机构", text=tables.org_text(names),
                       link=lambda r: "/ui/quality/rejected?" + urlencode({"org_code": r["org_code"], "only_open": "1"})),
         tables.Column("total", "被拒提交", num=True),
         tables.Column("fixed", "已整改", num=True),
         tables.Column("open", "未整改", num=True, tag=lambda r: "bad" if r["open"] else ""),
         tables.Column("overdue", "已超期", num=True, tag=lambda r: "bad" if r["overdue"] else ""),
         tables.Column("unseen", "机构未查看", num=True, tag=lambda r: "warn" if r["unseen"] else ""),
         tables.Column("oldest_open_at", "最早未整改", nowrap=True),
         tables.Column("days_open", "已持续（天）", num=True, value=lambda r: r["days_open"] if r["open"] else None)],
        progress,
        exception=lambda r: bool(r["open"] or r["overdue"]), exception_label="有未整改或已超期的被拒提交",
        row_class=lambda r: "bad" if r["open"] else "ok",
        row_data=(("org", "org_code"), ("open", "open"), ("overdue", "overdue"), ("unseen", "unseen")),
    ))


def _rejected_table(request: Request, who: Caller, rows: list[dict[str, Any]], names: dict[str, str],
                    total: int | None) -> tables.Table:
    """The rejected submissions, in plain words (huren.domain.labels via the service's ``problems_plain``)."""
    for r in rows:
        r["seen"], r["late"] = ("1" if r.get("seen_at") else "0"), ("1" if r.get("overdue") else "0")

    def problems(r: dict[str, Any]) -> list[str]:
        return [f"{p['field']}：{p['rule']}。{p['message']}" for p in r.get("problems_plain") or []]

    def content(r: dict[str, Any]) -> list[str]:
        return [x for x in (f"报告单号：{r['report_form_no']}" if r.get("report_form_no") else "",
                            f"患者：{r['patient']}" if r.get("patient") else "") if x]

    return tables.view(request, tables.Table(
        "rejected", "被拒提交",
        [tables.Column("received_at", "被拒时间", nowrap=True, lines=lambda r: [CHANNEL_NAMES.get(r["channel"], "其他渠道")]),
         tables.Column("org_code", "机构", text=tables.org_text(names), lines=lambda r: [f"提交账号：{r['username']}"]),
         tables.Column("kind", "提交内容", text=lambda r: SUBMISSION_NAMES.get(r["kind"], "其他数据"), lines=content),
         tables.Column("problems", "问题", value=lambda r: len(r.get("problems_plain") or []),
                       text=lambda r: f"{len(r['problems_plain'])} 处问题" if r.get("problems_plain") else "（未记录问题）",
                       lines=problems),
         tables.Column("deadline", "整改期限", nowrap=True,
                       value=lambda r: None if r["fixed"] else r["deadline"][:10],
                       lines=lambda r: ["已超期"] if r.get("overdue") and not r["fixed"] else [],
                       cls=lambda r: "overdue" if r.get("overdue") and not r["fixed"] else "",
                       data=lambda r: [] if r["fixed"] else [("deadline", r["deadline"])]),
         tables.Column("seen_at", "机构查看", nowrap=True, value=lambda r: r.get("seen_at") or "",
                       text=lambda r: "已查看" if r.get("seen_at") else "未查看",
                       tag=lambda r: "ok" if r.get("seen_at") else "warn", lines=lambda r: [r["seen_at"]] if r.get("seen_at") else []),
         tables.Column("fixed", "整改状态", text=lambda r: "已整改" if r["fixed"] else "未整改",
                       tag=lambda r: "ok" if r["fixed"] else "bad"),
         tables.Column("payload_size", "原始提交", nowrap=True,
                       text=lambda r: f"下载（{r['payload_size']} 字节）" if r.get("payload_size") else "无",
                       link=lambda r: who.url(f"/ui/quality/rejected/{r['id']}/payload") if r.get("payload_size") else "",
                       export=False)],
        rows,
        exception=lambda r: not r["fixed"], exception_label="未整改（含已超期、机构未查看）",
        row_class=lambda r: "ok" if r["fixed"] else "bad",
        row_data=(("id", "id"), ("seen", "seen"), ("overdue", "late")),
        total=total, empty="没有被拒绝的提交。",
    ))


@router.get("/ui/quality/rejected")
async def rejected(
    request: Request,
    who: Annotated[Caller, Depends(caller)],
    org_code: str = "",
    only_open: str = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    ctx = base_context(request, who, "整改进度页面")
    size = REJECTED_PAGE
    q = request.query_params
    # 只看异常 of the list is its open rows (overdue and unseen ones are open): filtered by the
    # service before paging, as 只看未整改 is
    open_only = only_open in ("1", "on", "true") or "rejected" in q.getlist("exc")
    # sorted or exported: every row that matches, not one page (a sorted list is shown whole, so
    # what an institution's account is shown is what the service marks seen)
    whole = q.get("export") == "rejected" or q.get("sort", "").startswith("rejected.")
    c = container(request)
    # filtered before paging; the counts and the per-institution progress cover every row in scope
    res = await call(
        c.quality.rejected_page, who.principal, org_code=org_code or None, only_open=open_only,
        limit=1000 if whole else size, offset=0 if whole else (page_no - 1) * size,
    )
    rows = res["rows"]
    while whole and len(rows) < res["total"]:
        more_rows = (await call(c.quality.rejected_page, who.principal, org_code=org_code or None, only_open=open_only,
                                limit=1000, offset=len(rows)))["rows"]
        if not more_rows:
            break
        rows += more_rows
    names = ctx["org_names"]
    progress_t = _progress_table(request, res["progress"], names)
    list_t = _rejected_table(request, who, rows, names, None if whole else res["total"])
    if (file := tables.first_export(request, progress_t, list_t)) is not None:
        return file
    more = not whole and page_no * size < res["total"]
    form = {"org_code": org_code, "only_open": "1" if only_open in ("1", "on", "true") else ""}
    pager = {k: v for k, v in q.multi_items() if k not in ("page", "export", "format", "token")}
    return page(
        request, who, "supervision/rejected.html", **ctx, form=form, page_no=1 if whole else page_no, more=more,
        total=res["total"], open_count=res["open"], fixed_count=res["fixed"], progress=res["progress"],
        overdue_count=res["overdue"], unseen_count=res["unseen"], rectify_days=res["rectify_days"],
        progress_table=progress_t, rejected_table=list_t, pager=pager, open_only=open_only,
    )


@router.get("/ui/quality/rejected/{rejected_id}/payload")
async def rejected_payload(request: Request, rejected_id: str, who: Annotated[Caller, Depends(caller)]) -> Response:
    who.require(SUPERVISION_ROLES, "被拒提交的原始内容")
    data = await call(container(request).quality.rejected_payload, who.principal, rejected_id)
    head = data.lstrip()[:1]
    ext, media = (("xml", "application/xml") if head == b"<" else ("json", "application/json") if head in (b"{", b"[")
                  else ("pdf", "application/pdf") if data.startswith(b"%PDF") else ("bin", "application/octet-stream"))
    return Response(data, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="rejected-{rejected_id}.{ext}"',
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
    })


# -- recognition statistics -------------------------------------------------------------------


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
        d_from, d_to = _day(day_from, "day_from", "开始日期"), _day(day_to, "day_to", "结束日期")
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
