"""REST: register / resubmit / void lab and exam reports, PDFs (upload, download), history."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from fastapi.telemetry import get_telemetry_data
from starlette.concurrency import run_in_threadpool

from huren.api.deps import Caller, Services, parse_json, principal, read_body, write
from huren.api.models import ReportRef
from huren.api.openapi import op
from huren.context import Principal
from huren.domain import kinds
from huren.errors import HurenError, InvalidInput
from huren.services.container import Container
from huren.wire.json_schema import body, report_schema, void_schema

router = APIRouter(prefix="/api/v1")

IDS = {
    "lab": {
        "register": ["XJ-1.2.2.1", "XC-L2", "XC-L3", "XC-L5", "HZ-5", "HZ-7", "HZ-20"],
        "void": ["XJ-1.2.2.2", "HZ-6"],
        "pdf_put": ["XC-L5", "HZ-7"],
        "pdf_get": ["XC-L8"],
        "get": ["XC-L7"],
    },
    "exam": {
        "register": ["XJ-1.2.2.3", "XC-E1", "XC-E2", "HZ-9", "HZ-10", "HZ-21"],
        "void": ["XJ-1.2.2.4", "HZ-11"],
        "pdf_put": ["XC-E2", "HZ-10"],
        "pdf_get": ["XC-E5"],
        "get": ["XC-E4"],
    },
}


async def json_body(request: Request, c: Container, who: Principal, kind: str) -> tuple[Any, bytes]:
    """The parsed JSON body and its bytes; malformed JSON is kept as a rejected submission."""
    raw = await read_body(request, c.settings.max_request_bytes)
    try:
        return parse_json(raw), raw
    except InvalidInput as exc:
        rid = await run_in_threadpool(c.registry.reject, who, kind, "rest", exc.problems, raw)
        exc.kept(rid)
        raise


async def _register(request: Request, c: Container, who: Principal, kind: str) -> dict[str, Any]:
    payload, raw = await json_body(request, c, who, kind)
    # in the threadpool even on SQLite: concurrent registrations share synced commits
    # (huren.services.group_commit) and overlap their PDF fsyncs, where inline each paid its own
    r = await run_in_threadpool(lambda: c.registry.register(kind, payload, who, channel="rest", raw=raw))
    return {"code": "ok", "message": "ok", "report_id": r.report_id, "version": r.version, "created": r.created, "unchanged": r.unchanged}


class _RegisterRoute(APIRoute):
    """The single-report registration (the busiest write): answered without FastAPI's
    per-request dependency solving and response encoding (bench/ingest.py: about a tenth of the
    server's CPU per report) — the same caller (:func:`principal`: the same 401s), the same body
    handling and service call, the same JSON. An active telemetry hook takes FastAPI's own handler;
    OpenAPI is FastAPI's, from the endpoint's signature."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()
        kind = str(self.name).removeprefix("register_")

        async def handler(request: Request) -> Response:
            if get_telemetry_data() is not None:
                return await standard(request)
            who = await principal(request)
            answer = await _register(request, request.app.state.container, who, kind)
            return Response(orjson.dumps(answer), media_type="application/json")

        return handler


def _routes(kind: str) -> None:
    path = f"/{kind}-reports"
    ids = IDS[kind]
    zh = kinds.BY_NAME[kind].zh

    async def register(request: Request, c: Services, who: Caller) -> dict[str, Any]:
        return await _register(request, c, who, kind)

    router.add_api_route(
        path, register, methods=["POST"], route_class_override=_RegisterRoute, name=f"register_{kind}",
        **op(ids["register"], f"注册（或重新提交）{zh}报告", body(report_schema(kind))),
    )

    batch_schema = {"type": "object", "properties": {"reports": {"type": "array", "items": report_schema(kind)}}}

    @router.post(f"{path}/batch", **op(ids["register"], f"批量注册{zh}报告（单个事务，逐份返回结果）", body(batch_schema)), name=f"register_{kind}_batch")
    async def register_batch(request: Request, c: Services, who: Caller) -> dict[str, Any]:
        payload, _ = await json_body(request, c, who, kind)
        items = payload.get("reports") if isinstance(payload, dict) else None
        reports = items if isinstance(items, list) else []
        outcomes = await run_in_threadpool(lambda: c.registry.register_many(kind, reports, who, channel="rest"))
        results = []
        for o in outcomes:
            if o.registered:
                r = o.registered
                results.append({"code": "ok", "report_id": r.report_id, "version": r.version, "created": r.created, "unchanged": r.unchanged})
            else:  # forbidden (403), conflict (409: not newer than the stored version) or invalid_input (422)
                results.append({"code": o.code, "rejected_id": o.rejected_id, "problems": [p.as_dict() for p in o.problems]})
        return {"code": "ok", "accepted": sum(1 for o in outcomes if o.registered), "rejected": sum(1 for o in outcomes if not o.registered), "results": results}

    @router.post(f"{path}/void", **op(ids["void"], f"作废{zh}报告（保留记录并标记）", body(void_schema())), name=f"void_{kind}")
    async def void(request: Request, c: Services, who: Caller) -> dict[str, Any]:
        payload, raw = await json_body(request, c, who, f"void_{kind}")
        v = await write(c, c.registry.void, kind, payload, who, channel="rest", raw=raw)
        return {"code": "ok", "message": "ok", "report_id": v.report_id, "citations": v.citations}

    @router.put(
        f"{path}/{{report_id}}/pdf",
        **op(ids["pdf_put"], f"单独上传{zh}报告PDF", {"requestBody": {"required": True, "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}}),
        name=f"put_{kind}_pdf",
    )
    async def put_pdf(report_id: ReportRef, request: Request, c: Services, who: Caller) -> dict[str, Any]:
        data = await read_body(request, c.settings.max_pdf_bytes + 1)
        sha = await run_in_threadpool(c.registry.put_pdf, kind, report_id, data, who)
        return {"code": "ok", "message": "ok", "report_id": report_id, "pdf_sha256": sha}

    @router.get(f"{path}/{{report_id}}/pdf", **op(ids["pdf_get"], f"下载{zh}报告PDF"), response_class=Response, name=f"get_{kind}_pdf")
    async def get_pdf(report_id: ReportRef, c: Services, who: Caller) -> Response:
        data = await run_in_threadpool(c.query.pdf, kind, report_id, who)
        return Response(data, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{kind}-{report_id}.pdf"'})

    @router.get(f"{path}/{{report_id}}", **op(ids["get"], f"查看一份{zh}报告（主节点与子项）"), name=f"get_{kind}")
    async def get_report(report_id: ReportRef, c: Services, who: Caller) -> dict[str, Any]:
        return {"code": "ok", "report": await run_in_threadpool(c.query.report, kind, report_id, who)}

    @router.get(f"{path}/{{report_id}}/history", **op(ids["register"], f"{zh}报告的历史版本（本机构）"), name=f"history_{kind}")
    async def history(report_id: ReportRef, c: Services, who: Caller) -> dict[str, Any]:
        return {"code": "ok", "versions": await run_in_threadpool(c.query.history, kind, report_id, who)}


for _kind in ("lab", "exam"):
    _routes(_kind)

__all__ = ["HurenError", "router"]
