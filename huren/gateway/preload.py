"""The gateway's local API for the HIS and the doctor panel (XJ-1.3 预加载模式, XC-L-note).

Served by the gateway on the hospital's network (``[preload] listen``, default 127.0.0.1:8765):

============================  ===================================================================
``POST /swipe``               card swipe: fetch the patient's recent records and recognizable
                              detail from the platform into the cache; answer the recent list
``POST /recent``              the recent list (30 / 90 days), from the cache while fresh
``POST /detail``              the recognizable detail (full reports, ``expired_time`` per item)
``POST /exists``              exists-for-order, answered locally from the cached detail, in the
                              platform's answer shape (``/api/v1/recognition/exists``)
``POST /accept``              ``{"sehr_accept_record": [...]}``: validated here, kept, queued
``POST /quote``               ``{"sehr_quote_record": [...]}``: validated here, kept, queued
``GET  /decisions``           the decisions kept for a patient (and visit)
``GET  /healthz``             liveness, cache size, whether the platform answered last time
``GET  /ui/…``                the doctor's pages (widget, panel, decision dialog, report view),
                              when ``[preload] page_token`` is set: ``?token=<page_token>``
============================  ===================================================================

With ``[preload] api_token`` set, every call but ``/healthz`` must carry it, as
``Authorization: Bearer <api_token>`` or ``X-Access-Token: <api_token>`` (401 otherwise). It is
required when ``listen`` is not a loopback address: the answers are patients' results.

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
import ipaddress
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
import uvicorn
from fastapi import Depends, FastAPI, Query, Request
from fastapi_offline import FastAPIOffline
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from huren.api import models
from huren.api.errors import install
from huren.api.responses import Json
from huren.client import HurenClient
from huren.domain import decisions
from huren.domain.recognition import Visit
from huren.domain.records import format_value, to_text
from huren.errors import InvalidInput, MalformedBody, Problem, TooLarge, Unauthorized
from huren.gateway.model import Record
from huren.gateway.preload_cache import WINDOWS, Entry, PreloadCache, patient_key

if TYPE_CHECKING:
    from huren.gateway.config import GatewayConfig

log = logging.getLogger("huren.gateway.preload")

SOURCE = "preload"
MAX_BODY = 1 << 20


class Patient(models.Patient):
    days: Literal[30, 90] | None = Field(None, description="近期时间窗：30 或 90 天；默认为缓存的时间窗")  # type: ignore[assignment]


class Order(models.Order):
    days: Literal[30, 90] | None = Field(None, description="近期时间窗：30 或 90 天；默认为缓存的时间窗")  # type: ignore[assignment]


def _about(cache: PreloadCache, entry: Entry) -> dict[str, Any]:
    return {"stale": entry.stale, "source": entry.source, "fetched_at": entry.fetched_text(cache.clock)}


def check_decisions(
    cache: PreloadCache, table: str, payload: Any
) -> list[dict[str, str]]:
    """Validate accept (``table="accept"``) or quote rows as the platform does, as far as the
    hospital can know: the seed's field table, the ID number, a reason for a rejection (all in
    ``huren.domain.decisions``), and — when the cache holds the report — that the item is one of
    the report's. All or nothing: the rows in the seed's text form, or InvalidInput naming every
    problem."""
    _, spec = decisions.NODES[table]

    def locate(where: str, kind: str, rec: dict[str, Any]) -> Problem | None:
        codes = cache.report_items(cache.load(rec["id_type_code"], rec["id_no"]), kind, rec["hr_org_code"], rec["hr_report_form_no"])
        if codes is not None and rec["code"] not in codes:
            return Problem(f"{where}.code", "unknown_item", f"报告“{rec['hr_report_form_no']}”中没有项目编码“{rec['code']}”")
        return None

    records, problems = decisions.check_decisions(table, payload, locate)
    out = [to_text(rec, spec) for rec in records]
    if problems:
        what = "互认" if table == "accept" else "引用"
        raise InvalidInput(f"{what}记录未通过校验，未保存也未上传，请修改后重新提交", problems)
    return out


def decision_records(table: str, rows: list[dict[str, str]]) -> list[Record]:
    """One outbox record per decision; the key names the decision (report, item, patient, visit)."""
    node, _ = decisions.NODES[table]
    return [
        Record(
            kind=table,
            key=f"{table}:" + "|".join(r[k] for k in ("hr_org_code", "hr_report_form_no", "code", "id_type_code", "id_no", "new_event_no")),
            payload={node: [r]},
            source=SOURCE,
        )
        for r in rows
    ]


def reminder_record(entry: Entry, visit: Visit, answer: dict[str, Any], at: str) -> Record:
    """The reminder a doctor was shown by the gateway (exists-for-order answered from the cache),
    as the platform logs its own (XC-P4): the ordered and recognizable counts and the items."""
    items = sorted({f"exam:{m['item_code']}" for m in answer["exammaster"]} | {
        f"lab:{i['item_code']}" for m in answer["labmaster"] for i in m["item"]
    })
    row = {
        "action": "reminder", "at": at, "id_type_code": entry.id_type_code, "id_no": entry.id_no,
        "event_no": visit.event_no, "dept_code": visit.dept_code, "dept_std_code": visit.dept_std_code,
        "doc_code": visit.doc_code, "doc_name": visit.doc_name, "item_codes": ",".join(items),
        "ordered": str(answer["ordered"]), "recognizable": str(answer["recognizable"]),
    }
    return Record(kind="reminder", key=f"reminder:{uuid.uuid4().hex}", payload={"reminder_log": [row]}, source=SOURCE)


def view_record(kind: str, master: dict[str, Any], at: str) -> Record:
    """A report the gateway showed from its cache (the platform unreachable), for the
    platform's reminder log as a view (XC-P4)."""
    row = {
        "action": "view", "at": at, "id_type_code": str(master.get("id_type_code", "")), "id_no": str(master.get("id_no", "")),
        "hr_org_code": str(master.get("org_code", "")), "hr_report_form_no": str(master.get("report_form_no", "")),
        "type": decisions.TYPE_OF_KIND[kind],
    }
    return Record(kind="reminder", key=f"reminder:{uuid.uuid4().hex}", payload={"reminder_log": [row]}, source=SOURCE)


class DecisionDesk:
    """Decisions taken at the hospital: validated, kept in the cache and queued for upload
    together; and the reminders shown from the cache, queued for the platform's reminder log."""

    def __init__(self, cache: PreloadCache, enqueue: Callable[[list[Record]], None]) -> None:
        self.cache = cache
        self.enqueue = enqueue
        self._lock = threading.Lock()  # kept and queued together, one batch at a time

    def submit(self, table: str, payload: Any) -> dict[str, Any]:
        rows = check_decisions(self.cache, table, payload)
        records = decision_records(table, rows)
        with self._lock:
            ids = self.cache.add_decisions(table, rows)
            try:
                self.enqueue(records)
            except BaseException:
                self.cache.remove_decisions(ids)
                raise
        return {"code": "ok", "message": "ok", "rows": len(rows), "queued": len(records)}

    def exists(self, entry: Entry, visit: Visit, **order: Any) -> dict[str, Any]:
        """Exists-for-order answered from ``entry``; the reminder it shows is queued for the
        platform (a failing outbox fails the question: no reminder goes unrecorded)."""
        answer = self.cache.exists(entry, **order)
        self.enqueue([reminder_record(entry, visit, answer, format_value(self.cache.clock.now()))])
        return answer

    def viewed(self, kind: str, master: dict[str, Any]) -> None:
        """A report shown from the cache: queued as a view for the platform's log."""
        self.enqueue([view_record(kind, master, format_value(self.cache.clock.now()))])


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


def token_guard(api_token: str | None) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing a call without ``api_token`` (``Authorization: Bearer …`` or
    ``X-Access-Token``); with no token configured, every call passes (loopback only, see
    ``preload_conf``)."""
    want = api_token.encode() if api_token else None

    async def check(request: Request) -> None:
        if want is None:
            return
        header = request.headers.get("authorization", "")
        got = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-access-token", "")
        if not got:
            raise Unauthorized(
                "缺少前置机接口令牌", [Problem("Authorization", "required", "请在 Authorization: Bearer 头中带上前置机接口令牌（api_token）")]
            )
        if not hmac.compare_digest(got.encode(), want):
            raise Unauthorized("前置机接口令牌无效", [Problem("Authorization", "token", "令牌与前置机配置的 api_token 不符")])

    return check


def create_preload_app(
    cache: PreloadCache,
    *,
    enqueue: Callable[[list[Record]], None],
    pages: tuple[str, str] | None = None,
    api_token: str | None = None,
) -> FastAPI:
    """The local API over ``cache``; accepted decisions are handed to ``enqueue`` as Records.
    ``pages`` = (institution code, page token) also serves the doctor's pages under /ui;
    ``api_token``, when given, is required on every call of the JSON API but /healthz."""
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
    guard = [Depends(token_guard(api_token))]
    if pages is not None:
        from huren.gateway.pages import GatewayBackend
        from huren.web import install_doctor_pages

        install_doctor_pages(app, GatewayBackend(cache, desk, *pages))

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

    @app.post("/exists", summary="开单互认校验：由本地缓存应答（与平台 /api/v1/recognition/exists 同形）", dependencies=guard)
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


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8765"`` → (host, port); ``"[::1]:8765"`` for IPv6."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"preload listen must be host:port, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def preload_server(app: FastAPI, listen: str = "127.0.0.1:8765") -> uvicorn.Server:
    """A uvicorn server for the local API; the runner calls ``serve()`` / ``run()`` (in a thread
    or its event loop) and sets ``should_exit`` to stop it."""
    host, port = parse_listen(listen)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"))


@dataclass(frozen=True, slots=True)
class PreloadConf:
    """``[preload]`` of the gateway's TOML file."""

    listen: str = "127.0.0.1:8765"
    path: Path = Path("preload.db")
    ttl_seconds: float = 600.0
    days: int = 90
    keep_seconds: float = 86400.0
    retry_seconds: float = 30.0
    timeout_seconds: float = 10.0
    page_token: str = ""
    api_token: str = ""


def preload_conf(table: dict[str, Any], outbox_path: Path, base_dir: Path) -> PreloadConf:
    """Check ``[preload]``: ``listen`` (host:port), ``path`` (default ``preload.db`` beside the
    outbox; relative to the config file), ``ttl_seconds``, ``days`` (30 / 90), ``keep_seconds``,
    ``retry_seconds``, ``timeout_seconds``, ``page_token`` (serves the doctor's pages under /ui),
    ``api_token`` (required on the JSON API; must be set unless ``listen`` is a loopback address).
    ValueError naming the key."""
    from huren.gateway.config import ConfigError

    def num(key: str, default: float, minimum: float) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ConfigError(f"[preload] {key} must be a number ≥ {minimum}")
        return float(value)

    listen = table.get("listen", "127.0.0.1:8765")
    try:
        parse_listen(str(listen))
    except ValueError:
        raise ConfigError('[preload] listen must be "host:port", e.g. "127.0.0.1:8765"') from None
    days = table.get("days", 90)
    if days not in WINDOWS:
        raise ConfigError("[preload] days must be 30 or 90")
    raw = table.get("path")
    if raw is not None and (not isinstance(raw, str) or not raw):
        raise ConfigError("[preload] path must be a file path")
    path = Path(raw) if raw else outbox_path.parent / "preload.db"
    page_token = table.get("page_token", "")
    if not isinstance(page_token, str) or (page_token and len(page_token) < 24):
        raise ConfigError("[preload] page_token must be a string of at least 24 characters (it opens the doctor's pages)")
    api_token = table.get("api_token", "")
    if not isinstance(api_token, str) or (api_token and len(api_token) < 24):
        raise ConfigError("[preload] api_token must be a string of at least 24 characters (the HIS sends it with every call)")
    if not api_token and not _loopback(parse_listen(str(listen))[0]):
        raise ConfigError(
            f"[preload] api_token is required when listen ({listen}) is not a loopback address: "
            "the local API answers with patients' results"
        )
    return PreloadConf(
        listen=str(listen),
        path=path if path.is_absolute() else base_dir / path,
        ttl_seconds=num("ttl_seconds", 600.0, 1.0),
        days=int(days),
        keep_seconds=num("keep_seconds", 86400.0, 0.0),
        retry_seconds=num("retry_seconds", 30.0, 0.0),
        timeout_seconds=num("timeout_seconds", 10.0, 0.5),
        page_token=page_token,
        api_token=api_token,
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: reachable from elsewhere as far as we know
        return False


class PreloadService:
    """The local API served by uvicorn in a thread; ``stop()`` ends it and closes its client."""

    def __init__(self, server: uvicorn.Server, client: HurenClient) -> None:
        self.server = server
        self.client = client
        self.thread = threading.Thread(target=server.run, name="preload-api", daemon=True)

    def start(self, wait: float = 10.0) -> PreloadService:
        self.thread.start()
        deadline = time.monotonic() + wait
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("预加载本地接口未能启动（端口被占用或地址无效？）")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(10.0)
        self.client.close()


def start(config: GatewayConfig, enqueue: Callable[[Iterable[Record]], None]) -> PreloadService:
    """Start the local API for ``config`` (its ``[preload]`` table), handing decisions to
    ``enqueue`` (the outbox); what the gateway runner calls."""
    conf = preload_conf(config.preload, config.outbox.path, config.base_dir)
    p = config.platform
    client = HurenClient(p.base_url, p.org_code, p.username, p.password, timeout=p.timeout_seconds)
    cache = PreloadCache(
        conf.path, client, ttl_seconds=conf.ttl_seconds, days=conf.days, keep_seconds=conf.keep_seconds,
        retry_seconds=conf.retry_seconds, timeout=conf.timeout_seconds,
    )
    cache.purge()
    pages = (p.org_code, conf.page_token) if conf.page_token else None
    app = create_preload_app(cache, enqueue=enqueue, pages=pages, api_token=conf.api_token or None)
    service = PreloadService(preload_server(app, conf.listen), client).start()
    log.info("preload API started", extra={"listen": conf.listen, "cache": str(conf.path)})
    return service
