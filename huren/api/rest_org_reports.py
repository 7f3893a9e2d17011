"""REST: an institution's reports listed by its code (BJ-1.2.1), a page at a time."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from huren.api.deps import Caller, Services
from huren.api.models import Moment
from huren.api.openapi import op
from huren.services.org_reports import MAX_PAGE, OrgReportsService

router = APIRouter(prefix="/api/v1")


@router.get("/org-reports", **op(["BJ-1.2.1"], "通过医疗机构编码查询报告列表（分页；本机构，或监管用户辖区内机构）"))
async def org_reports(
    c: Services,
    who: Caller,
    org_code: str = Query(..., description="医疗机构编码", min_length=1, max_length=128),
    kind: Literal["lab", "exam"] = Query("lab", description="报告类型：lab 检验 / exam 检查"),
    start: Moment | None = Query(None, description="审核时间不早于（含），默认结束时间前30天"),
    end: Moment | None = Query(None, description="审核时间早于（不含），默认当前时间"),
    offset: int = Query(0, ge=0, le=10_000_000, description="起始位置"),
    limit: int = Query(100, ge=1, le=MAX_PAGE, description="每页条数"),
    include_voided: bool = Query(False, description="是否包括已作废报告"),
) -> dict[str, Any]:
    svc = OrgReportsService(c.db, c.clock, c.audit, c.refs)  # stateless: built per call from the container's parts
    res = await run_in_threadpool(
        lambda: svc.list(who, kind, org_code, start=start, end=end, offset=offset, limit=limit, include_voided=include_voided)
    )
    return {"code": "ok"} | res
