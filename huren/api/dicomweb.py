"""DICOMweb plumbing shared by WADO-URI (``/wado``) and QIDO-RS / WADO-RS / STOW-RS
(``/dicom-web``): who reads, the error form, DICOM JSON answers, CORS for configured origins.

Who reads. Every request carries either an image key — query parameter ``key=`` or header
``X-Image-Key`` (a viewerKey, downloadKey or cloud-film key: ``ImagingService.grant``, scoped to one
study; unknown → 401, expired → 410, revoked or of another kind → 403, another study → 404) — or an
institution's token (``Authorization: Bearer …``, the access policy decides). A key wins when both
are given (it is the narrower authority, and it is what the link was made for).

Errors are the project's one REST error form ``{"code", "message", "problems": [{"field", "rule",
"message"}]}`` (messages in Chinese) with the DICOMweb status: a bad parameter or UID is 400 (not
the REST API's 422), an answer that cannot be given in the form asked 406.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from huren.context import Principal
from huren.errors import HurenError, InvalidInput, MalformedBody, Problem, Unauthorized
from huren.services.container import Container
from huren.services.imaging import KeyGrant
from huren.wire.multipart import parse_content_type

#: kinds of image key accepted for reading: a viewing hospital's viewerKey, a downloadKey (XC-E11:
#: the UIDs, then WADO-URI), a patient's cloud-film link (pages and the DICOM download)
READ_KINDS = ("viewer", "download", "film")
DICOM_JSON = "application/dicom+json"
KEY_MAX = 64
PREFIX = "/dicom-web"
#: frames in one /frames request (and in a multi-frame PixelData BulkDataURI)
MAX_FRAMES = 1000

Reader = Principal | KeyGrant
T = TypeVar("T")


class BadRequest(InvalidInput):
    """A DICOMweb parameter, UID or body the standard answers with 400."""

    status = 400


class NotAcceptable(HurenError):
    """No representation of the resource in the media types the client accepts (406)."""

    code = "not_acceptable"
    status = 406


def bad(field: str, rule: str, message: str) -> BadRequest:
    return BadRequest(message, [Problem(field, rule, message)])


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-access-token", "")


def _key(request: Request) -> str:
    return request.query_params.get("key") or request.headers.get("x-image-key", "")


def resolve_reader(c: Container, request: Request) -> Reader:
    """The reader of a request (a verified key's grant, else the token's principal); 401 without
    either. Synchronous: run it with the service call it precedes."""
    key = _key(request).strip()
    if key:
        if len(key) > KEY_MAX:
            raise Unauthorized("影像密钥无效", [Problem("key", "format", "影像密钥格式无效")])
        grant: KeyGrant = c.imaging.grant(key, READ_KINDS)
        return grant
    token = _token(request)
    if not token:
        raise Unauthorized(
            "缺少影像密钥或访问令牌：请在 key 参数（或 X-Image-Key 头）中给出调阅/下载密钥，"
            "或在 Authorization: Bearer 头中给出访问令牌",
            [Problem("key", "required", "缺少影像密钥或访问令牌")],
        )
    p = c.auth.verify(token)
    client = request.client.host if request.client else None
    return Principal(p.org_code, p.username, p.role, client)


def _as_400(exc: InvalidInput) -> BadRequest:
    return BadRequest(exc.message, exc.problems)


def translate(fn: Callable[[], T]) -> T:
    """Run ``fn``, a refused input becoming the DICOMweb 400 (never the REST API's 422)."""
    try:
        return fn()
    except BadRequest:
        raise
    except MalformedBody as exc:
        raise _as_400(exc) from exc
    except InvalidInput as exc:
        raise _as_400(exc) from exc


async def call(fn: Callable[[], T]) -> T:
    """``translate(fn)`` in the threadpool (service calls read the database and files)."""
    return await run_in_threadpool(translate, fn)


def dicom_json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A DICOM JSON answer (PS3.18 F.2), exactly ``application/dicom+json`` (no charset: the model
    is UTF-8 by definition, and clients compare the type literally)."""
    body = content if isinstance(content, bytes) else orjson.dumps(content)
    return Response(body, status, headers=headers, media_type=DICOM_JSON)


def public_base(c: Container) -> str:
    """The DICOMweb root as users reach it (``public_base_url`` + ``/dicom-web``, never the Host header)."""
    return c.settings.public_base + PREFIX


def accepts(request: Request) -> list[tuple[str, dict[str, str]]]:
    """The Accept header's media ranges in the client's order of preference (q=0 dropped)."""
    raw = request.headers.get("accept", "")
    items: list[tuple[float, int, str, dict[str, str]]] = []
    for i, part in enumerate(_split(raw)):
        media, params = parse_content_type(part)
        if not media:
            continue
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            items.append((-q, i, media, params))
    return [(m, p) for _, _, m, p in sorted(items)] or [("*/*", {})]


def _split(raw: str) -> Iterator[str]:
    """Split an Accept header at commas outside quotes."""
    buf: list[str] = []
    quoted = False
    for ch in raw:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            yield "".join(buf)
            buf = []
        else:
            buf.append(ch)
    if buf:
        yield "".join(buf)


# -- metadata ----------------------------------------------------------------------------------------
def with_bulk_data(raw: bytes, base: str, only_sop: str | None = None) -> bytes:
    """The stored metadata with each instance's PixelData pointing at its ``frames`` URL (and, for
    instance-level metadata, only that instance)."""
    items: list[dict[str, Any]] = orjson.loads(raw)
    out = []
    for item in items:
        sop = _first(item, "00080018")
        if only_sop is not None and sop != only_sop:
            continue
        for tag in ("7FE00010", "7FE00008", "7FE00009"):
            element = item.get(tag)
            if isinstance(element, dict) and "InlineBinary" not in element:
                study, series = _first(item, "0020000D"), _first(item, "0020000E")
                element.pop("Value", None)
                element["BulkDataURI"] = f"{base}/studies/{study}/series/{series}/instances/{sop}/frames/1"
                frames = _first(item, "00280008")
                if frames:
                    try:
                        n = int(frames)
                    except ValueError:
                        n = 1
                    if 1 < n <= MAX_FRAMES:
                        element["BulkDataURI"] = element["BulkDataURI"][: -len("/1")] + "/" + ",".join(str(i) for i in range(1, n + 1))
        out.append(item)
    return orjson.dumps(out)


def _first(item: dict[str, Any], tag: str) -> str | None:
    element = item.get(tag)
    if isinstance(element, dict):
        values = element.get("Value")
        if isinstance(values, list) and values:
            return str(values[0])
    return None


# -- CORS ------------------------------------------------------------------------------------------
ALLOW_METHODS = b"GET, POST, OPTIONS"
ALLOW_HEADERS = b"Authorization, Accept, Content-Type, X-Image-Key, X-Access-Token"
EXPOSE_HEADERS = b"Content-Type, Content-Length, Content-Encoding, Content-Location, Warning"


class DicomwebCors:
    """CORS for a DICOMweb viewer served from another origin (OHIF #1315): only on ``/wado`` and
    ``/dicom-web``, only for the exact origins configured (``HUREN_HIS_ORIGINS``, else the
    explicit origins of ``HUREN_FRAME_ANCESTORS``: the hospital systems that embed the platform),
    never ``*`` and never with credentials (the token travels in a header the browser only sends
    when the page's script adds it). Pages keep their CSP; nothing else is touched."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self.origins = frozenset(o.encode() for o in origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.origins:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not (path == "/wado" or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        if origin is None or origin not in self.origins:
            await self.app(scope, receive, send)
            return
        cors = [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
        if scope["method"] == "OPTIONS" and any(k == b"access-control-request-method" for k, _ in scope["headers"]):
            headers = [*cors, (b"access-control-allow-methods", ALLOW_METHODS),
                       (b"access-control-allow-headers", ALLOW_HEADERS), (b"access-control-max-age", b"600")]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *cors, (b"access-control-expose-headers", EXPOSE_HEADERS)]
            await send(message)

        await self.app(scope, receive, sending)
