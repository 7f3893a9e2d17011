"""The supervisor's home overview (驾驶舱, issue 11 item 6): the institutions in the caller's scope
ranked by 完整率, 及时率, 互认率 and open rectifications, each figure coloured by the configured
thresholds, each linking down to the rows behind it (the completeness, timeliness, statistics and
rectification pages filtered to that institution). It is the landing page (``/ui/``) of
supervisors and hospital administrators; ``/ui/overview`` is the same page by name.

The figures come from :mod:`huren.services.overview`; the table is one of :mod:`huren.web.tables`
(sortable, 只看异常, .xlsx / CSV export).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from huren.domain.limits import excerpt
from huren.errors import InvalidInput
from huren.services.overview import RED, YELLOW, overview_service
from huren.web import charts, tables
from huren.web.render import SUPERVISION_ROLES, Caller, caller, container, invalid, menu_for, page
from huren.web.routes_supervision import base_context, call, day_param, problem_dicts

router = APIRouter(include_in_schema=False)

LEVEL_NAMES = {RED: "红", YELLOW: "黄", "green": "正常", "none": "无数据"}


def _link(path: str, **params: str) -> str:
    return f"{path}?{urlencode({k: v for k, v in params.items() if v})}"


FIGURE_NAMES = {"completeness": "完整率", "timeliness": "及时率", "recognition": "互认率", "open": "未整改", "silent": "静默"}


def _status(r: tables.Row) -> str:
    """红 / 黄 / 正常, with the figures that make it so: 红（静默、完整率）."""
    why = [FIGURE_NAMES[k] for k, v in r["levels"].items() if v == r["level"] and r["level"] in (RED, YELLOW)]
    return LEVEL_NAMES[r["level"]] + (f"（{'、'.join(why)}）" if why else "")


def ranking(request: Request, res: dict[str, Any], names: dict[str, str]) -> tables.Table:
    """The ranking as one table of huren.web.tables."""
    span = {"day_from": res["day_from"], "day_to": res["day_to"]}

    def lv(key: str) -> Callable[[tables.Row], str]:
        return tables.level_class(lambda r: str(r["levels"][key]))

    def down(path: str, **extra: str) -> Callable[[tables.Row], str]:
        return lambda r: _link(path, org_code=r["org_code"], **span, **extra)

    return tables.Table(
        "overview", "机构排名",
        [tables.Column("org_code", "机构", text=tables.org_text(names), link=down("/ui/quality/completeness")),
         tables.Column("level", "状态", value=_status,
                       tag=lambda r: {"red": "bad", "yellow": "warn", "green": "ok"}.get(r["level"], "")),
         tables.Column("completeness", "完整率（%）", num=True, percent=True, cls=lv("completeness"),
                       link=down("/ui/quality/completeness", exc="completeness")),
         tables.Column("timeliness", "及时率（%）", num=True, percent=True, cls=lv("timeliness"),
                       link=down("/ui/quality/timeliness", late_hours=charts.number(res["late_hours"]), exc="timeliness")),
         tables.Column("recognition", "互认率（%）", num=True, percent=True, cls=lv("recognition"), link=down("/ui/stats")),
         tables.Column("decided", "互认决定数", num=True),
         tables.Column("open", "未整改", num=True, cls=lv("open"),
                       link=lambda r: _link("/ui/quality/rejected", org_code=r["org_code"], only_open="1")),
         tables.Column("today", "今日上传报告", num=True),
         tables.silent_column(charts.number(res["silent_hours"]))],
        res["rows"],
        exception=lambda r: r["level"] in (RED, YELLOW),
        exception_label="任一指标为红或黄（含静默机构）",
        row_class=lambda r: f"level-{r['level']}" + (" silent" if r["silent"] else ""),
        row_data=(("org", "org_code"), ("level", "level")),
        empty="查看范围内没有机构。",
    )


async def overview_page(request: Request, who: Caller, status_home: bool = False) -> Response:
    ctx = base_context(request, who, "监管驾驶舱")
    q = request.query_params
    form = {k: q.get(k, "") for k in ("org_code", "day_from", "day_to", "silent_hours")}
    svc = overview_service(container(request))
    try:
        try:
            silent = float(form["silent_hours"]) if form["silent_hours"].strip() else None
        except ValueError:
            raise invalid("silent_hours", "number", f"静默阈值应为小时数，而不是“{excerpt(form['silent_hours'])}”") from None
        res = await call(
            svc.overview, who.principal, org_code=form["org_code"] or None,
            day_from=day_param(form["day_from"], "day_from", "开始日期"), day_to=day_param(form["day_to"], "day_to", "结束日期"),
            silent_hours=silent,
        )
    except InvalidInput as exc:
        return page(request, who, "supervision/overview.html", 422, **ctx, form=form, res=None, groups=menu_for(who.role),
                    error=exc.text(), problems=problem_dicts(exc))
    form["silent_hours"] = charts.number(res["silent_hours"])
    t = tables.view(request, ranking(request, res, ctx["org_names"]))
    if (file := tables.export(request, t)) is not None:
        return file
    return page(request, who, "supervision/overview.html", **ctx, form=form, res=res, table=t, th=res["thresholds"],
                groups=menu_for(who.role), home=status_home)


@router.get("/ui/overview")
async def overview(request: Request, who: Annotated[Caller, Depends(caller)]) -> Response:
    who.require(SUPERVISION_ROLES, "监管驾驶舱")
    return await overview_page(request, who)
