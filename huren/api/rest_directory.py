"""REST: access tokens, institutions by region, dictionaries."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from huren.api.deps import Caller, Services
from huren.api.models import Body
from huren.api.openapi import op
from huren.context import Principal
from huren.domain import dictionaries
from huren.errors import NotFound, Problem, Unauthorized
from huren.services.auth import Token
from huren.services.container import Container

router = APIRouter(prefix="/api/v1")


class TokenRequest(Body):
    org_code: str = Field(..., description="医疗机构编码", min_length=1, max_length=128)
    username: str = Field(..., description="用户名", min_length=1, max_length=128)
    password: str = Field(..., description="密码", min_length=1, max_length=256)


@router.post("/auth/token", **op(["XC-P1", "HZ-4", "HZ-8", "HZ-13"], "权限鉴定：用机构用户名密码获取访问令牌（有效期7200秒）"))
async def token(req: TokenRequest, c: Services, request: Request) -> dict[str, Any]:
    remote = request.client.host if request.client else None
    # wrong passwords are throttled per account and address (429 with Retry-After), and logged
    t = await run_in_threadpool(c.auth.issue, req.org_code, req.username, req.password, remote=remote)
    return {
        "code": "ok",
        "access_token": t.access_token,
        "token_type": "Bearer",
        "expires_in": t.expires_in,
        "org_code": t.principal.org_code,
        "role": t.principal.role,
    }


class PasswordChange(Body):
    old_password: str = Field(..., description="原密码", min_length=1, max_length=256)
    new_password: str = Field(..., description="新密码（至少8个字符）", min_length=8, max_length=256)


@router.post("/auth/password", **op(["XC-P1"], "修改当前账号的密码：此前签发的令牌和会话全部失效，返回新的访问令牌"))
async def change_password(req: PasswordChange, c: Services, who: Caller) -> dict[str, Any]:
    t = await run_in_threadpool(_change_password, c, who, req.old_password, req.new_password)
    return {"code": "ok", "access_token": t.access_token, "token_type": "Bearer", "expires_in": t.expires_in}


def _change_password(c: Container, who: Principal, old: str, new: str) -> Token:
    try:
        c.auth.login(who.org_code, who.username, old, channel="rest", remote=who.remote_addr)
    except Unauthorized as exc:
        raise Unauthorized("原密码错误", [Problem("old_password", "match", "原密码（old_password）不正确")]) from exc
    c.directory.set_password(who.org_code, who.username, new)
    c.audit.record(who, "password_changed", target="rest")
    account = c.auth.account(who.org_code, who.username)
    return Token(c.auth.sign(account), c.auth.ttl, account.principal)


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
