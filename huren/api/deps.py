"""Request plumbing shared by the routers: the container, the caller, JSON bodies."""

from __future__ import annotations

import typing
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.telemetry import get_telemetry_data
from pydantic import BaseModel, ValidationError
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


class LeanRoute(APIRoute):
    """A route for the busiest JSON operations (exists-for-order): an endpoint
    ``(body: SomeModel, c: Services, who: Caller) -> Response``. A well-formed request — declared
    ``application/json``, a JSON object that validates — is answered without FastAPI's
    per-request dependency solving and content-type parsing (a quarter of the HTTP stack's CPU
    for that operation, bench/recognition.py): the same caller (:func:`principal`, so the same
    401s, raised before the body is validated as FastAPI does), the same model validation.
    Anything else — another or no content type, a body that is no JSON object, a validation
    error, an active telemetry hook — is handed to FastAPI's own handler, so every refusal
    answers exactly as on any other route. OpenAPI is FastAPI's, from the endpoint's signature."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()
        plan = _lean_plan(self.endpoint)
        if plan is None:
            raise TypeError(f"LeanRoute: {self.endpoint.__qualname__} is not (body model, Services, Caller) -> Response")
        names, model = plan
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            if get_telemetry_data() is not None:
                return await standard(request)
            ctype = request.headers.get("content-type", "")
            if ctype.partition(";")[0].strip().lower() != "application/json":
                return await standard(request)
            raw = await request.body()  # kept by the request: the standard handler reads it again
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return await standard(request)
            if type(data) is not dict:
                return await standard(request)
            who = await principal(request)
            try:
                body = model.model_validate(data)
            except ValidationError:
                return await standard(request)  # FastAPI's 422, field by field
            response: Response = await endpoint(**{names[0]: body, names[1]: request.app.state.container, names[2]: who})
            return response

        return handler


def _lean_plan(endpoint: Callable[..., Any]) -> tuple[tuple[str, str, str], type[BaseModel]] | None:
    """(body, container, caller) parameter names and the body model of a LeanRoute endpoint."""
    hints = typing.get_type_hints(endpoint, include_extras=True)
    ret = hints.pop("return", None)
    if not (isinstance(ret, type) and issubclass(ret, Response)):
        return None
    body = [(n, h) for n, h in hints.items() if isinstance(h, type) and issubclass(h, BaseModel)]
    c = [n for n, h in hints.items() if h == Services]
    who = [n for n, h in hints.items() if h == Caller]
    if len(hints) != 3 or len(body) != 1 or len(c) != 1 or len(who) != 1:
        return None
    return (body[0][0], c[0], who[0]), body[0][1]
