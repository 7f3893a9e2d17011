"""The FastAPI application: REST API under /api/v1 (docs at /docs, schema at /openapi.json)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Receive, Scope, Send

from huren import __version__, web
from huren.api import (
    dicomweb_qido,
    dicomweb_relay,
    dicomweb_stow,
    dicomweb_wado,
    errors,
    rest_auth_pages,
    rest_catalog,
    rest_directory,
    rest_federation,
    rest_imaging,
    rest_masterdata,
    rest_org_reports,
    rest_quality,
    rest_query,
    rest_recognition,
    rest_reports,
    rest_transport,
    soap,
    wado,
)
from huren.api.dicomweb import PREFIX as DICOMWEB
from huren.api.dicomweb import DicomwebCors
from huren.api.headers import SecurityHeaders
from huren.api.responses import Json
from huren.api.signing import SignedTransport
from huren.services.container import Container
from huren.web import landing

DESCRIPTION = """
huren（互认）检查检验结果互认共享平台 REST 接口。

* 先调用 `POST /api/v1/auth/token` 获取访问令牌（7200 秒有效），之后每个请求带 `Authorization: Bearer <令牌>`。
* 报告体与新疆方案（种子文档 002）XML 节点一一对应：检验 `{"labmaster": {…}, "lab_subitem": […]}`，
  检查 `{"exammaster": {…}, "exam_subitem": […]}`，日报 `{"lab_exam_report": […]}`；字段名与文档一致。
* 错误统一为 `{"code", "message", "problems": [{"field", "rule", "message"}]}`；被拒的提交均被保存，错误中的
  `rejected_id` 是其不透明编号（22位字符，不是顺序号），可在 `GET /api/v1/quality/rejected` 查看。
* 每个接口的 `x-interface-ids` 列出其实现的接口编号（见 docs/conformance.md）。
"""


def create_app(container: Container) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        container.db.start_checkpointer()
        gc.collect()
        gc.freeze()  # long-lived startup objects leave the GC's scans (a full pass cost 40-70 ms)
        yield
        container.db.stop_checkpointer()

    # /docs and /redoc with their scripts served from the installed fastapi-offline package, not
    # a CDN: hospitals' and health commissions' networks often have no Internet access
    app = FastAPIOffline(
        lifespan=lifespan,
        title="huren 互认平台",
        version=__version__,
        description=DESCRIPTION,
        default_response_class=Json,
    )
    app.state.container = container
    errors.install(app)
    dicomweb_relay.install(app)  # XC-E-note: reads of studies not held here go to the fallback platform
    app.add_middleware(SignedTransport, container=container)  # signed / SM4 / gzip bodies under /api/v1 (inside BodyLimit)
    # STOW-RS (POST /dicom-web/studies) carries whole studies: its own, larger limit (dicomweb_stow)
    app.add_middleware(
        BodyLimit, limit=container.settings.max_request_bytes,
        prefixes={DICOMWEB + "/studies": dicomweb_stow.stow_limit(container.settings)},
    )
    # DICOMweb answers readable by a viewer of another origin: only the configured HIS origins
    app.add_middleware(DicomwebCors, origins=container.settings.his_origin_list)
    # outermost: nosniff, Content-Disposition on files and the pages' CSP on every answer, errors too
    app.add_middleware(SecurityHeaders, frame_ancestors=container.settings.frame_ancestors)
    # The routers' routes go straight into the app's one flat route list: FastAPI 0.163 walks
    # included routers lazily, one pass per router, which cost more per request than the
    # recognition query itself (bench/recognition.py). Starlette tries the routes in order, so
    # the busiest come first (doctors' questions, then hospitals' uploads and the SOAP profile);
    # no two modules share a path, so the order changes nothing but the time to find a route.
    # WADO-URI first, before even FastAPI's own /openapi.json and /docs routes (matched on every
    # request before it otherwise): the benchmark's lean path (one plain Starlette route)
    app.router.routes[:0] = wado.routes
    for routes in (
        rest_recognition.router.routes,
        rest_reports.router.routes,
        soap.router.routes,  # /Myhealth: the Xinjiang SOAP profile (WSDL at /Myhealth?wsdl)
        *(m.router.routes for m in (rest_directory, rest_query, rest_quality, rest_catalog, rest_masterdata, rest_transport, rest_org_reports, rest_auth_pages, rest_imaging, rest_federation)),
        # DICOMweb: QIDO-RS (/studies, /series, /instances searches) before the WADO-RS retrieves,
        # whose /studies/{study} would otherwise not be reached first for a search; STOW-RS is POST
        dicomweb_qido.router.routes,
        dicomweb_wado.router.routes,
        dicomweb_stow.router.routes,
    ):
        app.router.routes.extend(routes)

    web.install(app, container)  # the pages under /ui (login, doctor side, supervision side)
    app.router.routes.extend(landing.router.routes)  # "/": the way to the pages and the API docs

    @app.get("/healthz", summary="健康检查", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"code": "ok", "version": __version__}

    return app



class BodyLimit:
    """Refuse a request whose declared Content-Length is over the limit before reading it.
    ``prefixes``: paths with a limit of their own (STOW-RS), which their endpoint also enforces
    on the bytes actually received."""

    def __init__(self, app: ASGIApp, limit: int, prefixes: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.prefixes = tuple((prefixes or {}).items())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # the SOAP endpoint enforces the same limit itself and answers in its own form (error:…)
        if scope["type"] == "http" and not scope["path"].startswith("/Myhealth"):
            path: str = scope["path"]
            limit = next((n for p, n in self.prefixes if path.startswith(p)), self.limit)
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > limit:
                    body = errors.error_body(
                        "too_large",
                        f"请求体超过上限 {limit} 字节",
                        [{"field": "body", "rule": "max_size", "message": f"请求体不能超过 {limit} 字节"}],
                    )
                    await Json(body, 413)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
