"""REST: page tokens — a hospital's system account opens the doctor pages for one doctor without
the doctor's password (issue 11 item 3). A page token opens only the pages (``/ui/...``), never a
REST operation: it is signed for a purpose of its own (``page-token``, ``huren.crypto.tokens``)."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from huren.api.deps import Caller, Services
from huren.api.models import Body
from huren.api.openapi import op
from huren.domain.recognition import VISIT_MAX
from huren.errors import Forbidden, Problem
from huren.services.auth import PAGE_TTL

router = APIRouter(prefix="/api/v1")


class PageTokenRequest(Body):
    doc_code: str = Field(..., description="医生编码（本机构人员编码）", min_length=1, max_length=VISIT_MAX)
    doc_name: str = Field(..., description="医生姓名", min_length=1, max_length=VISIT_MAX)
    event_no: str = Field("", description="只用于这一次就诊（就诊流水号），可空", max_length=VISIT_MAX)
    expires_in: int = Field(PAGE_TTL, description="有效期（秒），默认600，不超过平台配置的上限（默认3600）")
    org_code: str | None = Field(None, description="医生所属机构编码：只能是本机构（可省略）", max_length=128)
    callback: str = Field(
        "", description="可选：保存或引用后，浏览器把同一消息也以 POST（JSON，CORS）发到此地址；须在平台配置的 HIS 地址（HUREN_HIS_ORIGINS）之下",
        max_length=1000,
    )


@router.post(
    "/auth/page-token",
    **op(
        ["HZ-18", "HZ-19", "XJ-1.3.2.3", "HZ-13"],
        "机构接入账号为本机构一名医生签发短期页面令牌（只能打开医生页面，不能调用任何接口）；签发账号停用或改密后失效",
        description=(
            "只有机构接入账号（hospital）可以签发，且只为本机构医生（page_token.issue）。返回的 `page_token` 作为医生页面"
            "（/ui/widget、/ui/panel、/ui/decide、/ui/report/…）的 `token` 参数；页面上的医生编码、姓名（及写明的就诊流水号）以令牌为准。"
            "令牌以独立用途签名，任何 /api/v1 接口都不接受它（401）。默认 600 秒有效，最长为平台配置 HUREN_PAGE_TOKEN_MAX_SECONDS（默认 3600 秒）。"
        ),
    ),
)
async def page_token(req: PageTokenRequest, c: Services, who: Caller) -> dict[str, Any]:
    if req.org_code and req.org_code != who.org_code:
        raise Forbidden(
            "只能为本机构的医生签发页面令牌",
            [Problem("org_code", "ownership", f"机构编码“{req.org_code}”不是当前登录机构“{who.org_code}”")],
        )
    token, ttl = await run_in_threadpool(
        partial(c.auth.page_token, callback=req.callback, callback_origins=c.settings.his_origin_list),
        who, req.doc_code, req.doc_name, req.event_no, req.expires_in,
    )
    return {"code": "ok", "page_token": token, "expires_in": ttl, "org_code": who.org_code, "doc_code": req.doc_code.strip()}
