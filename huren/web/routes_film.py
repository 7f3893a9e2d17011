"""The patient's cloud film (YB-4.3): ``/film/{key}``, a mobile page outside the login (the film key
in the URL is the credential), with the doctor viewer's renderer (``huren.web.routes_imaging``),
the exam report behind the study, and ``/film/{key}/download``: the original files, byte-exact,
with a DICOMDIR, as one zip. Refusals are pages for the patient, without links into the platform.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import IO, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from huren.domain import imaging as dom
from huren.errors import Forbidden, HurenError, LinkExpired, NotFound
from huren.web.render import container, page
from huren.web.routes_doctor import call
from huren.web.routes_imaging import _key_grant, _org_names, shown_name, study_view, value, viewer_context
from huren.wire import dicomdir

log = logging.getLogger("huren.web.imaging")

film_router = APIRouter(include_in_schema=False)  # /film/{key}: no login, the key is the credential
FILM_PREFIX = "/film"

# -- the patient's cloud film (YB-4.3) ---------------------------------------------------------------
FILM_ERRORS = {
    404: ("链接不存在", "该云胶片链接不存在，请核对二维码或链接是否完整。"),
    410: ("链接已过期", "该云胶片链接已过期。如需再次查看，请联系检查医院重新获取。"),
    403: ("链接已失效", "该云胶片链接已被撤销，不能再查看。如有疑问，请联系检查医院。"),
}


async def _film(request: Request, key: str) -> tuple[Any, Any]:
    c = container(request)
    return c, await call(_key_grant, c, key, dom.FILM)


def _refused(request: Request, exc: HurenError) -> Response:
    """The film's refusal as a page for the patient (no link into the platform's pages)."""
    status = 410 if isinstance(exc, LinkExpired) else 403 if isinstance(exc, Forbidden) else exc.status
    title, message = FILM_ERRORS.get(status, ("暂时无法查看", "云胶片暂时无法打开，请稍后重试。"))
    resp = page(request, None, "imaging/film_error.html", status, title=title, message=message, detail=exc.text())
    resp.headers["Referrer-Policy"] = "no-referrer"  # the key is in the URL: never sent on to anyone
    return resp


@film_router.get(FILM_PREFIX + "/{key}")
async def film(request: Request, key: str) -> Response:
    base = f"{FILM_PREFIX}/{key}"
    relay = ""
    try:
        c, grant = await _film(request, key)
        try:
            v = await call(study_view, c.imaging, grant, grant.study_uid, _org_names(c))
        except NotFound as exc:  # XC-E-note: the film's study no longer held here, shown from the fallback
            from huren.web import routes_imaging_relay as rr  # the services, for the platform's pages only

            fw = rr.relayable(c.imaging_forward, grant, exc)
            if fw is None:
                raise
            v = await call(rr.relayed_view, fw, grant, grant.study_uid)
            relay = f"{base}/relayed"
    except HurenError as exc:
        return _refused(request, exc)

    def link(**params: Any) -> str:
        q = {k: x for k, x in params.items() if x not in (None, "")}
        return f"{base}?{urlencode(q)}" if q else base

    resp = page(request, None, "imaging/film.html", title="数字影像", download_url="" if relay else f"{base}/download",
                expires_at=grant.expires_at, **viewer_context(request, v, key, link, relay=relay))
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@film_router.get(FILM_PREFIX + "/{key}/relayed/series/{series}/instances/{instance}/frames/{frame}/rendered")
async def film_relayed_frame(request: Request, key: str, series: str, instance: str, frame: str) -> Response:
    """A frame of the film's study from the fallback platform, while this platform no longer holds it."""
    from huren.web import routes_imaging_relay as rr

    try:
        c, grant = await _film(request, key)
        try:
            await call(c.imaging.study_state, grant, grant.study_uid)
        except NotFound as exc:
            fw = rr.relayable(c.imaging_forward, grant, exc)
            if fw is None:
                raise
            resp = rr.image_response(await call(rr.relayed_frame, fw, grant, grant.study_uid, series, instance, frame))
            resp.headers["Referrer-Policy"] = "no-referrer"
            return resp
        raise NotFound("该检查由本平台存储，请从云胶片页面打开")
    except HurenError as exc:
        return _refused(request, exc)


def _zip_to_file(c: Any, grant: Any, name: str) -> IO[bytes]:
    members = c.imaging.instances_of(grant, grant.study_uid)
    if not members:
        raise NotFound("该检查没有可下载的影像")
    # handed on to the streamed answer, whose background task closes (and so deletes) it
    fh = tempfile.TemporaryFile(prefix="huren-film-", dir=_tmp_dir(c))  # noqa: SIM115
    try:
        dicomdir.write_zip(members, fh, patient_name=name or None)
        fh.seek(0)
    except BaseException:
        fh.close()
        raise
    return fh


def _tmp_dir(c: Any) -> str:
    """Where the zip is written: the data directory (a study may be larger than a tmpfs /tmp)."""
    path = os.path.join(str(c.settings.data_dir), "tmp")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


@film_router.get(FILM_PREFIX + "/{key}/download")
async def film_download(request: Request, key: str) -> Response:
    """The original files, byte-exact, with a DICOMDIR, as one zip (written to a temporary file,
    then streamed; the file is gone when the answer is)."""
    try:
        c, grant = await _film(request, key)
        found = await call(c.imaging.find_studies, grant, {"StudyInstanceUID": grant.study_uid}, limit=1)
        name = shown_name(value(found[0], "PatientName")) if found else ""
        date = value(found[0], "StudyDate") if found else ""
        fh = await call(_zip_to_file, c, grant, name)
    except HurenError as exc:
        return _refused(request, exc)
    except dicomdir.DicomdirError:  # a stored file whose header no longer parses: said, and logged
        log.exception("cloud film download: DICOMDIR not written")
        return _refused(request, HurenError("影像文件无法打包下载，请联系检查医院"))
    size = os.fstat(fh.fileno()).st_size
    filename = f"DICOM-{date or 'study'}.zip"
    zh = quote(f"数字影像-{date}.zip" if date else "数字影像.zip")
    return StreamingResponse(
        iter(lambda: fh.read(1 << 20), b""), media_type="application/zip", background=BackgroundTask(fh.close),
        headers={
            "Content-Disposition": f"attachment; filename=\"{filename}\"; filename*=UTF-8''{zh}",
            "Content-Length": str(size), "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
