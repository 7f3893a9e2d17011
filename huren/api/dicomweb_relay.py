"""XC-E-note on the web services: a GET of ``/dicom-web/…`` or ``/wado`` for a study the platform
does not hold is relayed to the configured imaging platform (``HUREN_IMAGING_FALLBACK_URL``,
``huren.services.imaging_forward``), its answer marked with where the images came from
(``X-Image-Source``, a ``Warning``).

One place for every route: the service raises ``NotHeld`` (a ``NotFound``: the same 404 when no
peer is configured) — or ``PlatformUnavailable`` while the archive is down, when failover is on —
and this exception handler decides, with the forwarder's rules (``ImageForwarder.relays``: a
token whose image reads cover every institution, or a key for its own study no longer held;
never a supervisor), whether the request goes to the peer (the key itself never does). Everything else answers in the project's error form, as before.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from huren.api.dicomweb import PREFIX, resolve_reader
from huren.api.errors import huren_error_body
from huren.api.responses import Json
from huren.errors import HurenError, PlatformUnavailable
from huren.services.container import Container
from huren.services.imaging_forward import NotHeld, Relayed

log = logging.getLogger("huren.api")


def _relayable(request: Request) -> bool:
    path = request.url.path
    return request.method == "GET" and (path == "/wado" or path.startswith(PREFIX + "/"))


def _response(r: Relayed) -> Response:
    headers = r.headers()
    if r.body is not None:
        return Response(r.body, r.status, headers=headers, media_type=r.media_type)
    return StreamingResponse(iterate_in_threadpool(r.iter_bytes()), r.status, headers=headers, media_type=r.media_type,
                             background=None)


def _error(exc: HurenError) -> Response:
    return Json(huren_error_body(exc), exc.status)


async def relay_or_refuse(request: Request, exc: Exception) -> Response:
    """The peer's answer for a relayable read of a study not held here; otherwise the refusal."""
    assert isinstance(exc, HurenError)
    c: Container = request.app.state.container
    fw = c.imaging_forward
    if fw is None or not _relayable(request):
        return _error(exc)
    try:
        reader = await run_in_threadpool(resolve_reader, c, request)
    except HurenError:
        return _error(exc)
    if not fw.relays(reader, exc):
        return _error(exc)
    params = list(request.query_params.multi_items())
    try:
        if request.url.path == "/wado":
            got = await run_in_threadpool(fw.relay_wado_uri, reader, params)
        else:
            path = request.url.path.removeprefix(PREFIX)
            got = await run_in_threadpool(lambda: fw.relay(reader, path, params, accept=request.headers.get("accept")))
    except HurenError as refused:  # the peer's refusal or absence, in our error form
        return _error(refused)
    return _response(got)


def install(app: FastAPI) -> None:
    """Handle the two exceptions a read of a study not held here raises (after ``errors.install``)."""
    app.add_exception_handler(NotHeld, relay_or_refuse)
    app.add_exception_handler(PlatformUnavailable, relay_or_refuse)
