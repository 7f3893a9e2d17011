"""REST: the platform tree, each local platform's change feed, and the applying of a child
platform's feed (issue 13, XJ-1.1). Decode, call ``FederationService``, encode."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from huren.api.deps import Caller, Services, parse_json, read_body
from huren.api.models import Body
from huren.api.openapi import op
from huren.services.federation import MAX_BATCH, MAX_WAIT

router = APIRouter(prefix="/api/v1")
IDS = ["XJ-1.1"]


class MissingRequest(Body):
    sha256: list[str] = Field(..., description="PDF 的 SHA-256 摘要（64位小写十六进制）", max_length=MAX_BATCH)


@router.get("/platforms", **op(IDS, "平台树：省级（自治区）平台、地州市平台（含虚拟平台）、跨省区域平台及其机构数"))
async def list_platforms(c: Services, who: Caller) -> dict[str, Any]:
    return {"code": "ok", "platforms": await run_in_threadpool(c.federation.list_platforms, who)}


@router.get("/platforms/{code}/changes", **op(IDS, "读取本部署承载的平台的变更订阅：since 之后的变更（按序号），最后序号与是否还有更多"))
async def read_changes(
    code: str,
    c: Services,
    who: Caller,
    since: int = Query(0, ge=0, description="已读到的序号（消费方自行保存的水位）"),
    limit: int = Query(1000, ge=1, le=MAX_BATCH, description="至多返回的变更数"),
    wait: float = Query(0.0, ge=0.0, le=MAX_WAIT, description="没有新变更时至多等待的秒数（长轮询）"),
) -> dict[str, Any]:
    out = await run_in_threadpool(c.federation.changes, who, code, since, limit, wait)
    return {"code": "ok"} | out


@router.post("/platforms/{code}/changes", **op(IDS, "在本平台应用下级平台的一批变更（按业务主键与版本幂等；序号不连续时返回 409 并给出应从哪个序号重读）"))
async def apply_changes(code: str, request: Request, c: Services, who: Caller) -> dict[str, Any]:
    batch = parse_json(await read_body(request, c.settings.max_request_bytes))
    out = await run_in_threadpool(c.federation.apply, who, code, batch)
    return {"code": "ok"} | out


@router.get("/platforms/{code}/watermark", **op(IDS, "下级平台的变更已在本平台应用到的序号、积压与最近一次应用时间"))
async def watermark(code: str, c: Services, who: Caller) -> dict[str, Any]:
    return {"code": "ok"} | await run_in_threadpool(c.federation.watermark, who, code)


@router.post("/platforms/{code}/files/missing", **op(IDS, "本平台尚未保存的 PDF（按 SHA-256）：同步时只发送缺少的文件，每个文件只发一次"))
async def missing_files(code: str, req: MissingRequest, c: Services, who: Caller) -> dict[str, Any]:
    return {"code": "ok", "missing": await run_in_threadpool(c.federation.missing_files, who, code, req.sha256)}


@router.get("/platforms/{code}/files/{sha256}", **op(IDS, "下载本平台变更中引用的 PDF（按 SHA-256）"), response_class=Response)
async def get_file(code: str, sha256: str, c: Services, who: Caller) -> Response:
    data = await run_in_threadpool(c.federation.file, who, code, sha256)
    return Response(data, media_type="application/pdf", headers={"Cache-Control": "private, no-store"})


@router.put("/platforms/{code}/files/{sha256}", **op(IDS, "向本平台上传下级平台变更引用的 PDF（内容须与摘要一致）"))
async def put_file(code: str, sha256: str, request: Request, c: Services, who: Caller) -> dict[str, Any]:
    data = await read_body(request, c.settings.max_pdf_bytes + 1)
    return {"code": "ok", "sha256": await run_in_threadpool(c.federation.put_file, who, code, sha256, data)}


@router.get("/federation/status", **op(IDS, "同步状态：本部署各平台变更订阅的最后序号；各下级平台的已应用序号、积压与延迟"))
async def status(c: Services, who: Caller) -> dict[str, Any]:
    return {"code": "ok"} | await run_in_threadpool(c.federation.status, who)
