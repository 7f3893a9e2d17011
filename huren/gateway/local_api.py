"""The gateway's local API for the HIS and the doctor panel (XJ-1.3 预加载模式, XC-L-note).

Served by the gateway on the hospital's network (``[preload] listen``, default 127.0.0.1:8765):

============================  ===================================================================
``POST /swipe``               card swipe: fetch the patient's recent records and recognizable
                              detail from the platform into the cache; answer the recent list
``POST /recent``              the recent list (30 / 90 days), from the cache while fresh
``POST /detail``              the recognizable detail (full reports, ``expired_time`` per item)
``POST /exists``              exists-for-order, answered locally from the cached detail, in the
                              platform's answer shape (its ``recognition/exists``)
``POST /accept``              ``{"sehr_accept_record": [...]}``: validated here, kept, queued
``POST /quote``               ``{"sehr_quote_record": [...]}``: validated here, kept, queued
``GET  /decisions``           the decisions kept for a patient (and visit)
``GET  /healthz``             liveness, cache size, whether the platform answered last time
``GET  /ui/…``                the doctor's pages (widget, panel, decision dialog, report view),
                              when ``[preload] page_token`` is set: ``?token=<page_token>``
============================  ===================================================================

The API is locked on every door, whatever ``listen`` is (the answers are patients' results, and
any web page the doctor opens can send requests to 127.0.0.1):

* every call but ``/healthz`` carries ``[preload] api_token`` (always required), as
  ``Authorization: Bearer <api_token>`` or ``X-Access-Token: <api_token>`` — 401 otherwise;
* a POST body is taken only as ``Content-Type: application/json`` — 415 otherwise (a page can
  send ``text/plain`` or a typeless body without asking the browser; never JSON);
* a request whose ``Host`` is not the listen address, a loopback name (127.0.0.1, localhost,
  [::1]) with the listen port, or a name of ``[preload] hosts`` is refused (403) — a page whose
  DNS name is rebound to 127.0.0.1 cannot read the answers;
* no CORS headers: a browser never lets another origin read an answer.

Every answer drawn from the cache says ``"stale": true`` when it is past its freshness because the
platform could not be reached (the hospital keeps working while the platform is down, XC-E-note),
with ``fetched_at``; ``"source"`` is ``"platform"`` when the platform was asked for this answer,
``"cache"`` otherwise. Errors are the platform's form, in Chinese: ``{code, message, problems}``.

Decisions are validated as the platform validates them (``huren.domain.decisions``)
so a bad decision is refused at the hospital, before it is queued; a good one becomes one
``Record`` of kind ``accept`` / ``quote`` handed to ``enqueue`` (the outbox, which uploads it on
the gateway's schedule).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi_offline import FastAPIOffline
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from huren.api import models
from huren.api.errors import huren_error_body, install
from huren.api.headers import SecurityHeaders
from huren.api.responses import Json
from huren.errors import (
    Forbidden,
    HurenError,
    InvalidInput,
    MalformedBody,
    Problem,
    TooLarge,
    Unauthorized,
    UnsupportedEncoding,
)
from huren.gateway.desk import DecisionDesk
from huren.gateway.model import Record
from huren.gateway.pages import GatewayBackend
from huren.gateway.preload_cache import PreloadCache, patient_key
from huren.gateway.preload_conf import MIN_TOKEN, allowed_hosts
from huren.gateway.preload_store import Entry

MAX_BODY = 1 << 20
#: methods whose body the API reads: taken as application/json only
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Patient(models.Patient):
    days: Literal[30, 90] | None = Field(None, description="近期时间窗：30 或 90 天；默认为缓存的时间窗")  # type: ignore[assignment]


class Order(models.Order):
    days: Literal[30, 90] | None = Field(None, description="近期时间窗：30 或 90 天；默认为缓存的时间窗")  # type: ignore[assignment]


def _about(cache: PreloadCache, entry: Entry) -> dict[str, Any]:
    return {"stale": entry.stale, "source": entry.source, "fetched_at": entry.fetched_text(cache.clock)}


async def _json(request: Request) -> Any:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        raise TooLarge(f"请求体超过上限 {MAX_BODY} 字节")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise TooLarge(f"请求体超过上限 {MAX_BODY} 字节")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody("请求体不是合法的JSON", [Problem("body", "json", f"JSON解析失败：第{exc.lineno}行第{exc.colno}列")]) from exc


def token_guard(api_token: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing a call without ``api_token`` (``Authorization: Bearer …`` or
    ``X-Access-Token``)."""
    want = api_token.encode()

    async def check(request: Request) -> None:
        header = request.headers.get("authorization", "")
        got = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-access-token", "")
        if not got:
            raise Unauthorized(
                "缺少前置机接口令牌", [Problem("Authorization", "required", "请在 Authorization: Bearer 头中带上前置机接口令牌（api_token）")]
            )
        if not hmac.compare_digest(got.encode(), want):
            raise Unauthorized("前置机接口令牌无效", [Problem("Authorization", "token", "令牌与前置机配置的 api_token 不符")])

    return check


class LocalGuard:
    """ASGI middleware in front of everything the listener serves (the JSON API, its /docs, the
    pages): a request whose ``Host`` is not one of ``hosts`` is refused (403, DNS rebinding); a
    body sent to the JSON API other than as ``application/json`` is refused (415: a web page can
    POST ``text/plain`` or a typeless body to 127.0.0.1 without asking the browser). The pages'
    forms (under /ui) carry their own page token and are left to them."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused = self._refusal(scope, headers)
        if refused is None:
            await self.app(scope, receive, send)
            return
        response = Json(huren_error_body(refused), refused.status)
        await response(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> HurenError | None:
        host = headers.get("host", "").strip().lower()
        if host not in self.hosts:
            return Forbidden(
                "请求的主机名不是前置机的地址，已拒绝",
                [Problem("Host", "host", f"Host“{host[:64]}”不在允许之列：只接受 {', '.join(sorted(self.hosts))}")],
            )
        path = str(scope.get("path", ""))
        if scope.get("method") in BODY_METHODS and not path.startswith("/ui"):
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                return UnsupportedEncoding(
                    "请求体必须是 JSON（Content-Type: application/json）",
                    [Problem("Content-Type", "media_type", f"不接受的 Content-Type“{media[:64] or '（缺失）'}”：只接受 application/json")],
                )
        return None


def create_preload_app(
    cache: PreloadCache,
    *,
    enqueue: Callable[[list[Record]], None],
    api_token: str,
    listen: str = "127.0.0.1:8765",
    hosts: Iterable[str] = (),
    pages: tuple[str, str] | None = None,
    his_origins: Iterable[str] = (),
) -> FastAPI:
    """The local API over ``cache``; accepted decisions are handed to ``enqueue`` as Records.
    ``api_token`` (at least 24 characters) is required on every call of the JSON API but
    /healthz; only requests whose Host is ``listen``, a loopback name with its port or one of
    ``hosts`` are answered. ``pages`` = (institution code, page token) also serves the doctor's
    pages under /ui."""
    if len(api_token) < MIN_TOKEN:
        raise ValueError(f"[preload] api_token 过短：至少 {MIN_TOKEN} 个字符")
    app = FastAPIOffline(  # its /docs works without Internet access, as on the platform
        title="huren 前置机本地接口（预加载缓存）",
        description=__doc__,
        version="1",
        docs_url="/docs",
        redoc_url=None,
        default_response_class=Json,
    )
    install(app)
    app.state.cache = cache
    desk = DecisionDesk(cache, enqueue)
    app.add_middleware(LocalGuard, hosts=allowed_hosts(listen, tuple(hosts)))
    # nosniff, Content-Disposition on files, the pages' CSP (framing left open: a HIS frames them)
    app.add_middleware(SecurityHeaders, frame_ancestors=None)
    guard = [Depends(token_guard(api_token))]
    if pages is not None:
        from huren.web import install_doctor_pages

        install_doctor_pages(app, GatewayBackend(cache, desk, *pages), his_origins=tuple(his_origins))

    @app.post("/swipe", summary="刷卡预加载：从平台获取患者近期记录与可互认明细到本地缓存", dependencies=guard)
    def swipe(q: Patient) -> dict[str, Any]:
        cache.purge()
        entry = cache.get(q.id_type_code, q.id_no, visit=q.visit(), refresh=True)
        items = cache.recent(entry, q.days)
        reports = sum(len(v) for v in cache.detail(entry).values())
        return {"code": "ok", "count": len(items), "item": items, "reports": reports} | _about(cache, entry)

    @app.post("/recent", summary="患者近期检查检验记录（★可互认），缓存有效期内本地应答", dependencies=guard)
    def recent(q: Patient) -> dict[str, Any]:
        entry = cache.get(q.id_type_code, q.id_no, visit=q.visit())
        items = cache.recent(entry, q.days)
        return {"code": "ok", "count": len(items), "item": items} | _about(cache, entry)

    @app.post("/detail", summary="患者近期可互认报告明细，缓存有效期内本地应答", dependencies=guard)
    def detail(q: Patient) -> dict[str, Any]:
        entry = cache.get(q.id_type_code, q.id_no, visit=q.visit())
        return {"code": "ok"} | cache.detail(entry, q.days) | _about(cache, entry)

    @app.post("/exists", summary="开单互认校验：由本地缓存应答（与平台开单互认校验接口 recognition/exists 同形）", dependencies=guard)
    def exists(q: Order) -> dict[str, Any]:
        patient_key(q.id_type_code, q.id_no)
        if not q.check and not q.lab:
            raise InvalidInput("没有所开项目", [Problem("check", "required", "检查项目（check）与检验子项（lab）不能同时为空")])
        visit = q.visit()
        entry = cache.get(q.id_type_code, q.id_no, visit=visit)
        res = desk.exists(entry, visit, check=q.check, lab=q.lab, days=q.days, org_code=q.org_code, since=q.since, until=q.until)
        return {"code": "ok"} | res | _about(cache, entry)

    submit = desk.submit

    @app.post("/accept", summary="提交互认结果（采纳 1 / 不采纳 2，须填理由）：本地校验、保存，按计划上传", dependencies=guard)
    async def accept(request: Request) -> dict[str, Any]:
        payload = await _json(request)
        return await run_in_threadpool(submit, "accept", payload)

    @app.post("/quote", summary="提交引用结果：本地校验、保存，按计划上传", dependencies=guard)
    async def quote(request: Request) -> dict[str, Any]:
        payload = await _json(request)
        return await run_in_threadpool(submit, "quote", payload)

    @app.get("/decisions", summary="本地保存的互认与引用记录（按患者，可按就诊事件号）", dependencies=guard)
    def decisions(
        id_no: str = Query(..., description="身份证件号码"),
        id_type_code: str = Query("01", description="身份证件类别代码"),
        event_no: str = Query("", description="本次就诊事件号"),
    ) -> dict[str, Any]:
        key = patient_key(id_type_code, id_no)
        rows = cache.decisions(*key, event_no)
        return {"code": "ok", "count": len(rows), "records": rows}

    @app.get("/healthz", summary="健康检查")
    def healthz() -> dict[str, Any]:
        return {
            "code": "ok",
            "platform": "down" if cache.last_platform_error else "ok",
            "last_platform_error": cache.last_platform_error,
            "ttl_seconds": cache.ttl_seconds,
            "days": cache.days,
        } | cache.stats()

    return app
