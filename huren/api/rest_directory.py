"""REST: access tokens, institutions by region, dictionaries."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from huren.api.deps import Caller, Services
from huren.api.models import Body
from huren.api.openapi import op
from huren.domain import dictionaries
from huren.errors import NotFound

router = APIRouter(prefix="/api/v1")


class TokenRequest(Body):
    org_code: str = Field(..., description="医疗机构编码", min_length=1, max_length=128)
    username: str = Field(..., description="用户名", min_length=1, max_length=128)
    password: str = Field(..., description="密码", min_length=1, max_length=256)


@router.post("/auth/token", **op(["XC-P1", "HZ-4", "HZ-8", "HZ-13"], "权限鉴定：用机构用户名密码获取访问令牌（有效期7200秒）"))
async def token(req: TokenRequest, c: Services) -> dict[str, Any]:
    t = await run_in_threadpool(c.auth.issue, req.org_code, req.username, req.password)
    return {
        "code": "ok",
        "access_token": t.access_token,
        "token_type": "Bearer",
        "expires_in": t.expires_in,
        "org_code": t.principal.org_code,
        "role": t.principal.role,
    }


@router.get("/orgs", **op(["XC-P7"], "机构编码查询：按行政区划查询医疗机构"))
async def orgs(c: Services, _: Caller, region: str | None = Query(None, description="行政区划代码，如 650000、650100、650102")) -> dict[str, Any]:
    rows = await run_in_threadpool(c.directory.list_orgs, region)
    return {"code": "ok", "count": len(rows), "orgs": rows}


@router.get("/dictionaries", **op(["XJ-3"], "字典列表"))
async def dict_list(_: Caller) -> dict[str, Any]:
    return {"code": "ok", "dictionaries": [{"name": n, "title": dictionaries.TITLES[n], "size": len(dictionaries.load(n))} for n in dictionaries.NAMES]}


@router.get("/dictionaries/{name}", **op(["XJ-3"], "查询一个字典的全部编码"))
async def dict_get(name: str, _: Caller) -> dict[str, Any]:
    if name not in dictionaries.NAMES:
        raise NotFound(f"字典“{name}”不存在")
    return {"code": "ok", "name": name, "title": dictionaries.TITLES[name], "items": [{"code": k, "name": v} for k, v in dictionaries.load(name).items()]}
