"""REST: an institution's transport key and policy, and signed, expiring report-viewing links
(BJ-1.3/1.4). The wire format of signed requests is in docs/signed-transport.md."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from huren.api.deps import Caller, Services, write
from huren.api.models import REPORT_REF_DESCRIPTION, Body
from huren.api.openapi import op
from huren.services.links import LINK_TTL_DEFAULT, LINK_TTL_MAX

router = APIRouter(prefix="/api/v1")
IDS = ["BJ-1.3", "BJ-1.4"]


class KeyRequest(Body):
    public_key: str = Field(..., description="机构SM2公钥：十六进制 04‖x‖y（130位）或 PEM（SubjectPublicKeyInfo）", min_length=64, max_length=4096)
    require_signature: bool = Field(False, description="是否要求本机构的每个请求都带 SM3withSM2 签名")
    require_encryption: bool = Field(False, description="是否要求本机构的每个请求体都用 SM4 加密")
    org_code: str | None = Field(None, description="机构编码；默认为调用方本机构，仅监管机构可设置其他机构", max_length=128)


class LinkRequest(Body):
    kind: Literal["lab", "exam"] = Field(..., description="报告类型：lab 检验，exam 检查")
    # no length rule: a ref of any other shape names no report and is answered 404 like one
    report_id: str = Field(..., description=REPORT_REF_DESCRIPTION)
    ttl_seconds: int = Field(LINK_TTL_DEFAULT, description=f"有效期（秒），最长 {LINK_TTL_MAX}", ge=1, le=LINK_TTL_MAX)


@router.put("/transport/key", **op(IDS, "登记（或更换）机构的SM2签名公钥，并设置是否强制签名、加密"))
async def put_key(req: KeyRequest, c: Services, who: Caller) -> dict[str, Any]:
    key = await write(
        c, c.transport.put_key, who, req.public_key,
        require_signature=req.require_signature, require_encryption=req.require_encryption, org_code=req.org_code,
    )
    return {"code": "ok", "key": key}


@router.get("/transport/key", **op(IDS, "查询机构登记的SM2公钥、签名与加密要求，以及平台SM2公钥"))
async def get_key(c: Services, who: Caller, org_code: str | None = None) -> dict[str, Any]:
    key = await run_in_threadpool(c.transport.get_key, who, org_code)
    return {"code": "ok", "key": key}


@router.post("/links", **op(IDS, "生成报告PDF的签名查看链接（限时有效，无需令牌即可打开）"))
async def create_link(req: LinkRequest, request: Request, c: Services, who: Caller) -> dict[str, Any]:
    link = await run_in_threadpool(c.links.create_link, who, req.kind, req.report_id, req.ttl_seconds)
    url = c.settings.public_base + request.app.url_path_for("open_link", token=link.token)  # never the Host header
    return {"code": "ok", "url": url, "expires_at": link.expires_at.strftime("%Y-%m-%d %H:%M:%S"), "kind": link.kind, "report_id": link.report_id}


@router.get(
    "/links/{token}",
    **op(IDS, "通过签名查看链接打开报告PDF（无需令牌；过期返回410，被篡改返回403）"),
    response_class=Response,
    name="open_link",
)
async def open_link(token: str, request: Request, c: Services) -> Response:
    remote = request.client.host if request.client else None
    kind, report_id, data = await run_in_threadpool(c.links.open_link, token, remote)
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{kind}-{report_id}.pdf"',
            "Cache-Control": "private, no-store",
            "Referrer-Policy": "no-referrer",
        },
    )
