"""XC-E-note on the imaging pages: a study the platform does not hold, shown from the fallback
platform (``huren.services.imaging_forward``) in the same viewer, with the note
"影像来自备用影像平台…" instead of a 404.

The study, its series and instances are asked of the peer by QIDO-RS; the frames are rendered by
the peer (``…/frames/n/rendered``) and reach the browser through this platform's own page routes
(``/ui/imaging/{S}/relayed/…`` for the doctor, ``/film/{key}/relayed/…`` for the patient): the
caller is checked here, the peer is asked with the platform's credentials, every relay is in the
access log. Only the file's own window (默认) is offered: window presets need the peer's support of
the ``window`` parameter, which not every platform has (Orthanc 1.10's DICOMweb plugin refuses it).

Loaded only by the platform's routes (never by the gateway's pages): it imports the services.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from huren.domain import imaging as dom
from huren.errors import NotFound, Problem
from huren.services.imaging_forward import ImageForwarder, NotHeld, Relayed
from huren.web.routes_imaging import SEX, Preset, SeriesView, StudyView, _int, shown_date, shown_name, value, values

#: instances of one relayed series the page lists (the peer's QIDO pages)
PAGE, MAX_PAGES = 1000, 20


def relayable(fw: ImageForwarder | None, reader: Any, exc: BaseException) -> ImageForwarder | None:
    """The forwarder when the page's refusal ``exc`` is a study not held that it relays for ``reader``."""
    return fw if fw is not None and isinstance(exc, NotHeld) and fw.relays(reader, exc) else None


def _json(got: Relayed) -> list[dict[str, Any]]:
    try:
        doc = orjson.loads(got.body or b"[]")
    except orjson.JSONDecodeError:
        doc = None
    return [d for d in doc if isinstance(d, dict)] if isinstance(doc, list) else []


def _none(fw: ImageForwarder) -> NotFound:
    msg = f"本平台与备用影像平台“{fw.peer.name}”均未找到该检查的影像"
    return NotFound(msg, [Problem("StudyInstanceUID", "not_found", msg)])


def relayed_view(fw: ImageForwarder, reader: Any, study_uid: str) -> StudyView:
    """The study as the fallback platform describes it (NotFound when it does not hold it either)."""
    found = _json(fw.relay(reader, "/studies", {"StudyInstanceUID": study_uid}))
    found = [s for s in found if value(s, "SeriesInstanceUID") == "" and _study_of(s) == study_uid]
    if not found:
        raise _none(fw)
    st = found[0]
    series: list[SeriesView] = []
    for s in _json(fw.relay(reader, f"/studies/{study_uid}/series")):
        uid = value(s, "SeriesInstanceUID")
        if not dom.valid_uid(uid):
            continue
        rows = _instances(fw, reader, study_uid, uid)
        rows.sort(key=lambda r: (_int(value(r, "InstanceNumber"), 0), value(r, "SOPInstanceUID")))
        inst = [(value(r, "SOPInstanceUID"), max(1, _int(value(r, "NumberOfFrames"), 1))) for r in rows
                if dom.valid_uid(value(r, "SOPInstanceUID"))]
        if inst:
            series.append(SeriesView(uid, value(s, "SeriesNumber"), value(s, "Modality"), value(s, "SeriesDescription"),
                                     inst, [Preset("default", "默认", None, None)]))
    series.sort(key=lambda v: (_int(v.number, 1 << 30), v.uid))
    return StudyView(
        uid=study_uid, patient_name=shown_name(value(st, "PatientName")), patient_sex=SEX.get(value(st, "PatientSex"), ""),
        exam_date=shown_date(value(st, "StudyDate")), modality="/".join(values(st, "ModalitiesInStudy")),
        description=value(st, "StudyDescription"), source=fw.peer.name, series=series, exam=None, relayed=fw.peer.name,
    )


def _study_of(obj: dict[str, Any]) -> str:
    attr = obj.get("0020000D") or {}
    vals = attr.get("Value") if isinstance(attr, dict) else None
    return str(vals[0]) if isinstance(vals, list) and vals else ""


def _instances(fw: ImageForwarder, reader: Any, study_uid: str, series_uid: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n in range(MAX_PAGES):
        params = [("includefield", "00280008"), ("limit", str(PAGE)), ("offset", str(n * PAGE))]
        try:
            got = _json(fw.relay(reader, f"/studies/{study_uid}/series/{series_uid}/instances", params))
        except NotFound:  # an empty page
            break
        rows += got
        if len(got) < PAGE:
            break
    return rows


def frame_template(base: str) -> str:
    """The relayed-frame URL with ``{series}``, ``{instance}``, ``{frame}`` to fill; ``base`` the
    page's relay route (with its query, if any: the page token)."""
    path, _, query = base.partition("?")
    return f"{path}/series/{{series}}/instances/{{instance}}/frames/{{frame}}/rendered?{query}"


def thumbs(tpl: str, v: StudyView) -> list[str]:
    """Each series' first frame (the peer's thumbnails are not a resource every platform has)."""
    return [tpl.replace("{series}", s.uid).replace("{instance}", s.instances[0][0]).replace("{frame}", "1") for s in v.series]


def relayed_frame(fw: ImageForwarder, reader: Any, study_uid: str, series_uid: str, sop_uid: str, frame: str) -> Relayed:
    """One frame rendered by the peer (JPEG)."""
    if not frame.isdigit() or len(frame) > 6 or int(frame) < 1:
        msg = "帧号必须是正整数"
        raise NotFound(msg, [Problem("frame", "format", msg)])
    path = f"/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/{int(frame)}/rendered"
    return fw.relay(reader, path, accept="image/jpeg")


def image_response(got: Relayed) -> Response:
    """The peer's rendered frame as the browser gets it, marked with its origin."""
    headers = got.headers() | {"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"}
    media = got.media_type if got.media_type.split(";", 1)[0].strip().lower() in ("image/jpeg", "image/png") else "image/jpeg"

    def body() -> Iterator[bytes]:
        try:
            yield from got.iter_bytes()
        finally:
            got.close()

    return StreamingResponse(iterate_in_threadpool(body()), got.status, headers=headers, media_type=media)


__all__ = ["frame_template", "image_response", "relayable", "relayed_frame", "relayed_view", "thumbs"]
