"""REST: daily counts upload, completeness check, upload timeliness, rejected submissions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from huren.api.deps import Caller, Services
from huren.api.models import Day, Offset, RejectedRef
from huren.api.openapi import op
from huren.api.rest_reports import json_body
from huren.domain import limits
from huren.services.overview import overview_service
from huren.wire.json_schema import body, daily_schema

router = APIRouter(prefix="/api/v1")


@router.post("/daily-counts", **op(["XJ-1.2.2.5", "XC-P3"], "上传检查检验日报（按科室的每日报告数量）", body(daily_schema())))
async def upload_daily(request: Request, c: Services, who: Caller) -> dict[str, Any]:
    payload, raw = await json_body(request, c, who, "daily")
    n = await run_in_threadpool(c.registry.upload_daily, payload, who, channel="rest", raw=raw)
    return {"code": "ok", "message": "ok", "rows": n}


@router.get("/quality/completeness", **op(["XC-P5", "XC-P3"], "数据校验：日报申报数量与实际上传数量比对"))
async def completeness(
    c: Services,
    who: Caller,
    org_code: str | None = Query(None, description="机构编码（监管用户可查任意机构）"),
    day_from: Day | None = Query(None, description="开始日期 YYYY-MM-DD，默认结束日期前6天"),
    day_to: Day | None = Query(None, description="结束日期（含）YYYY-MM-DD，默认昨天"),
) -> dict[str, Any]:
    res = await run_in_threadpool(lambda: c.quality.completeness(who, org_code=org_code, day_from=day_from, day_to=day_to))
    return {"code": "ok"} | res


@router.get("/quality/timeliness", **op(["XC-P5"], "上传及时性：报告审核到上传平台的时延"))
async def timeliness(
    c: Services,
    who: Caller,
    org_code: str | None = Query(None, description="机构编码（监管用户可查任意机构）"),
    day_from: Day | None = Query(None, description="开始日期（报告审核日期）YYYY-MM-DD，默认结束日期前6天"),
    day_to: Day | None = Query(None, description="结束日期（含）YYYY-MM-DD，默认昨天"),
    late_hours: float = Query(24, gt=0, le=limits.MAX_LATE_HOURS, description="超时阈值（小时）：审核后超过该时长才上传的报告计为超时"),
) -> dict[str, Any]:
    res = await run_in_threadpool(
        lambda: c.quality.timeliness(who, org_code=org_code, day_from=day_from, day_to=day_to, late_hours=late_hours)
    )
    return {"code": "ok"} | res


@router.get("/quality/rejected", **op(
    ["XC-S2", "BJ-4"], "被拒绝的提交及其问题（整改进度）",
    description="每行含报告单号、脱敏患者标识、problems_plain（中文字段名与规则）、整改期限 deadline、是否超期 overdue、"
                "机构首次查看时间 seen_at；机构自己的账号读取其未整改的提交即记为已查看。",
))
async def rejected(
    c: Services,
    who: Caller,
    org_code: str | None = Query(None, description="机构编码（监管用户可查任意机构）"),
    only_open: bool = Query(False, description="只看尚未整改的"),
    limit: int = Query(100, ge=1, le=1000),
    offset: Offset = 0,
) -> dict[str, Any]:
    page = await run_in_threadpool(
        lambda: c.quality.rejected_page(who, org_code=org_code, only_open=only_open, limit=limit, offset=offset)
    )
    return {
        "code": "ok",
        "count": len(page["rows"]),
        "total": page["total"],
        "open": page["open"],
        "fixed": page["fixed"],
        "overdue": page["overdue"],  # open past the deadline (rectify_days after the refusal)
        "unseen": page["unseen"],  # open, not yet opened by the institution's own account
        "rectify_days": page["rectify_days"],
        "rejected": page["rows"],
    }


@router.get("/quality/rectification", **op(["XC-S2", "BJ-4"], "整改进度：各机构被拒提交的未整改数量、最早未整改时间与已持续天数"))
async def rectification(
    c: Services,
    who: Caller,
    org_code: str | None = Query(None, description="机构编码（监管用户可查辖区内任意机构）"),
) -> dict[str, Any]:
    orgs = await run_in_threadpool(lambda: c.quality.rectification(who, org_code=org_code))
    return {"code": "ok", "orgs": orgs}


@router.get(
    "/quality/overview",
    **op(["XC-S2", "XC-P5", "BJ-1.3", "BJ-1.4"],
         "监管驾驶舱：辖区各机构的完整率、及时率、互认率、未整改数、今日上传与静默机构，按阈值标红/黄"),
)
async def overview(
    c: Services,
    who: Caller,
    org_code: str | None = Query(None, description="机构编码（监管用户可查辖区内任意机构）"),
    day_from: Day | None = Query(None, description="开始日期 YYYY-MM-DD，默认结束日期前6天"),
    day_to: Day | None = Query(None, description="结束日期（含）YYYY-MM-DD，默认昨天"),
    late_hours: float = Query(24, gt=0, le=limits.MAX_LATE_HOURS, description="超时阈值（小时），用于及时率"),
    silent_hours: float | None = Query(
        None, gt=0, le=limits.MAX_LATE_HOURS, description="静默阈值（小时）：超过该时长没有收到报告的机构标为静默；默认 HUREN_OVERVIEW_SILENT_HOURS"
    ),
) -> dict[str, Any]:
    svc = overview_service(c)
    res = await run_in_threadpool(
        lambda: svc.overview(who, org_code=org_code, day_from=day_from, day_to=day_to, late_hours=late_hours, silent_hours=silent_hours)
    )
    return {"code": "ok"} | res


@router.get("/quality/rejected/{rejected_id}/payload", **op(["XC-S2"], "下载被拒提交的原始内容"), response_class=Response)
async def rejected_payload(rejected_id: RejectedRef, c: Services, who: Caller) -> Response:
    data = await run_in_threadpool(c.quality.rejected_payload, who, rejected_id)
    return Response(
        data, media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="rejected-{rejected_id}.bin"', "Cache-Control": "no-store"},
    )
