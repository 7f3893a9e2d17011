"""Request plumbing shared by the routers: the container, the caller, JSON bodies."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from huren.context import Principal
from huren.errors import MalformedBody, Problem, TooLarge, Unauthorized
from huren.services.container import Container

#: request-state key under which ``api.signing`` leaves the (token, principal) it verified
VERIFIED_TOKEN = "huren.verified_token"


async def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


async def principal(request: Request) -> Principal:
    """The caller of a token (``Authorization: Bearer …`` or ``X-Access-Token``); 401 otherwise."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-access-token", "")
    if not token:
        raise Unauthorized("缺少访问令牌：请先调用 /api/v1/auth/token 获取，并放在 Authorization: Bearer 头中")
    state = request.scope.get("state")
    verified = state.get(VERIFIED_TOKEN) if state else None
    if verified is not None and verified[0] == token:  # already verified by the transport middleware
        p = verified[1]
    else:
        c: Container = request.app.state.container
        p = c.auth.verify(token)
    client = request.client.host if request.client else None
    return Principal(p.org_code, p.username, p.role, client)


Caller = Annotated[Principal, Depends(principal)]
Services = Annotated[Container, Depends(container)]


async def read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise TooLarge(f"请求体超过上限 {limit} 字节", [Problem("body", "max_size", f"请求体不能超过 {limit} 字节")])
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"请求体超过上限 {limit} 字节", [Problem("body", "max_size", f"请求体不能超过 {limit} 字节")])
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(
            "请求体不是合法的JSON", [Problem("body", "json", f"JSON解析失败：第{exc.lineno}行第{exc.colno}列")]
        ) from exc


T = TypeVar("T")


async def write(c: Container, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run a service write. On SQLite every write is serialised behind one lock anyway, and the
    hop to a worker thread cost a third of the ingest rate (docs/performance.md): run it inline.
    On PostgreSQL writes run concurrently in the threadpool."""
    if c.db.is_sqlite:
        return fn(*args, **kw)
    return await run_in_threadpool(partial(fn, *args, **kw))
