"""WADO-RS (PS3.18 §10.4) under ``/dicom-web``: instances, metadata, frames, rendered, thumbnail.

* ``/studies/{S}[/series/{E}[/instances/{I}]]``: ``multipart/related; type="application/dicom"``,
  each part a stored file byte for byte, streamed. Without ``transfer-syntax`` (or with ``*``) the
  stored syntax is sent (as Orthanc does); a named one is the stored one, or Explicit / Implicit VR
  Little Endian made from a native or deflated file or from a compressed one whose decoder is
  installed (``dicom_transcode``: decompressed in memory, one instance at a time), else 406.
* ``…/metadata`` (study, series, instance): the DICOM JSON built at ingest (``ImagingService.metadata``;
  files are not read), PixelData as a ``BulkDataURI`` to the instance's ``frames`` URL; gzip when
  the client accepts it.
* ``…/instances/{I}/frames/{n[,m…]}``: ``multipart/related`` of the frames: native pixel data as
  ``application/octet-stream`` (little endian); a compressed frame as stored with its media type
  (``image/jpeg``, ``image/jp2``, ``image/jls``, ``image/x-dicom-rle`` …) when the client accepts it
  (``transfer-syntax=*``, OHIF's Accept) or the type, else decoded to native bytes when the codec is
  installed, else 406.
* rendered resources (instance, frame, study, series) and thumbnails: :mod:`huren.api.dicomweb_rendered`,
  whose routes are appended to this router.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator

from fastapi import APIRouter, Request
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response, StreamingResponse

from huren.api.dicomweb import (
    PREFIX,
    NotAcceptable,
    Reader,
    accepts,
    call,
    dicom_json,
    public_base,
    resolve_reader,
    with_bulk_data,
)
from huren.api.dicomweb_rendered import container as _c
from huren.api.dicomweb_rendered import file_dataset, frame_numbers
from huren.api.dicomweb_rendered import refuse as _refuse
from huren.api.dicomweb_rendered import router as rendered_router
from huren.api.openapi import op
from huren.domain.imaging import check_uid
from huren.errors import NotFound, Problem
from huren.services.imaging import InstanceFile
from huren.wire import dicom_render as dr
from huren.wire import dicom_transcode
from huren.wire.multipart import new_boundary, related_content_type, write_related

# DICOMweb is specified by PS3.18, not by this OpenAPI document (docs/imaging.md lists it): out of the schema
router = APIRouter(prefix=PREFIX, tags=["DICOMweb"], include_in_schema=False)

DICOM = "application/dicom"
OCTET = "application/octet-stream"
#: metadata at least this large is gzipped for a client that accepts it
GZIP_FROM = 1024


# -- instances -------------------------------------------------------------------------------------
def _dicom_syntax(request: Request, one: bool) -> tuple[str | None, bool]:
    """(transfer syntax asked for the files — None: as stored —, single part?). A single-part
    ``application/dicom`` is taken for one instance only (PS3.18 §10.4.4: ignored for a study or
    series); 406 when no acceptable representation remains."""
    for media, params in accepts(request):
        if media in ("*/*", "multipart/*"):
            return None, False
        if media == "multipart/related" and params.get("type", DICOM).lower() in (DICOM, "application/*", "*/*"):
            ts = params.get("transfer-syntax", "*")
            return (None if ts == "*" else ts), False
        if media == DICOM and one:
            ts = params.get("transfer-syntax", "*")
            return (None if ts == "*" else ts), True
    raise _refuse("DICOM 文件")


def _check_syntax(files: list[InstanceFile], ts: str | None) -> None:
    if ts is None:
        return
    for f in files:
        if f.transfer_syntax != ts and not dicom_transcode.can_transcode(f.transfer_syntax, ts):
            raise NotAcceptable(
                f"无法以传输语法 {ts[:64]} 提供影像 {f.sop_uid}（存储的传输语法为 {f.transfer_syntax}）",
                [Problem("transfer-syntax", "unsupported",
                         "只能提供存储时的传输语法，或显式 / 隐式 VR 小端（1.2.840.10008.1.2.1 / 1.2.840.10008.1.2）")],
            )


def _parts(files: list[InstanceFile], ts: str | None) -> Iterator[tuple[dict[str, str], Iterator[bytes]]]:
    for f in files:
        if ts is not None and ts != f.transfer_syntax:  # re-encoded (checked possible before)
            data = dicom_transcode.transcode(b"".join(f.chunks()), ts)
            yield {"Content-Type": f"{DICOM}; transfer-syntax={ts}", "Content-Length": str(len(data))}, iter((data,))
        else:
            yield {"Content-Type": f"{DICOM}; transfer-syntax={f.transfer_syntax}", "Content-Length": str(f.size)}, f.chunks()


async def _retrieve(request: Request, load: Callable[[Reader], list[InstanceFile]], *, one: bool = False) -> Response:
    c = _c(request)
    ts, single = _dicom_syntax(request, one)

    def run() -> list[InstanceFile]:
        files = load(resolve_reader(c, request))
        if not files:
            raise NotFound("未找到影像", [Problem("StudyInstanceUID", "not_found", "该检查或序列没有可提供的影像")])
        _check_syntax(files, ts)
        return files

    files = await call(run)
    if single:
        [(headers, chunks)] = list(_parts(files, ts))
        return StreamingResponse(iterate_in_threadpool(chunks), media_type=headers["Content-Type"],
                                 headers={"Content-Length": headers["Content-Length"]})
    boundary = new_boundary()
    body = write_related(_parts(files, ts), boundary)
    return StreamingResponse(iterate_in_threadpool(body), media_type=related_content_type(DICOM, boundary))


@router.get("/studies/{study}", **op(["XC-E12"], "WADO-RS 获取整个检查的 DICOM 文件（multipart/related）"))
async def retrieve_study(study: str, request: Request) -> Response:
    c = _c(request)
    return await _retrieve(request, lambda r: c.imaging.instances_of(r, check_uid(study, "StudyInstanceUID")))


@router.get("/studies/{study}/series/{series}", **op(["XC-E12"], "WADO-RS 获取一个序列的 DICOM 文件"))
async def retrieve_series(study: str, series: str, request: Request) -> Response:
    c = _c(request)
    return await _retrieve(request, lambda r: c.imaging.instances_of(
        r, check_uid(study, "StudyInstanceUID"), check_uid(series, "SeriesInstanceUID")))


@router.get("/studies/{study}/series/{series}/instances/{instance}", **op(["XC-E12"], "WADO-RS 获取一个 DICOM 实例"))
async def retrieve_instance(study: str, series: str, instance: str, request: Request) -> Response:
    c = _c(request)
    return await _retrieve(request, lambda r: [c.imaging.instance(
        r, check_uid(study, "StudyInstanceUID"), check_uid(series, "SeriesInstanceUID"), check_uid(instance, "SOPInstanceUID"))],
        one=True)


# -- metadata --------------------------------------------------------------------------------------
def _metadata_ok(request: Request) -> None:
    for media, _params in accepts(request):
        if media in ("*/*", "application/*", "application/dicom+json", "application/json"):
            return
        if media == "multipart/related":
            continue  # application/dicom+xml: not offered
    raise _refuse("元数据（application/dicom+json）")


def _metadata_answer(request: Request, body: bytes) -> Response:
    if len(body) >= GZIP_FROM and "gzip" in request.headers.get("accept-encoding", "").lower():
        return dicom_json(gzip.compress(body, compresslevel=5), headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    return dicom_json(body, headers={"Vary": "Accept-Encoding"})


@router.get("/studies/{study}/metadata", **op(["XC-E12"], "WADO-RS 检查元数据（入库时生成，不读取影像文件）"))
async def study_metadata(study: str, request: Request) -> Response:
    c = _c(request)
    _metadata_ok(request)
    raw = await call(lambda: c.imaging.metadata(resolve_reader(c, request), check_uid(study, "StudyInstanceUID")))
    return _metadata_answer(request, with_bulk_data(raw, public_base(c)))


@router.get("/studies/{study}/series/{series}/metadata", **op(["XC-E12"], "WADO-RS 序列元数据（OHIF 按序列并发请求）"))
async def series_metadata(study: str, series: str, request: Request) -> Response:
    c = _c(request)
    _metadata_ok(request)
    raw = await call(lambda: c.imaging.metadata(
        resolve_reader(c, request), check_uid(study, "StudyInstanceUID"), check_uid(series, "SeriesInstanceUID")))
    return _metadata_answer(request, with_bulk_data(raw, public_base(c)))


@router.get("/studies/{study}/series/{series}/instances/{instance}/metadata", **op(["XC-E12"], "WADO-RS 图像元数据"))
async def instance_metadata(study: str, series: str, instance: str, request: Request) -> Response:
    c = _c(request)
    _metadata_ok(request)
    sop = check_uid(instance, "SOPInstanceUID")
    raw = await call(lambda: c.imaging.metadata(
        resolve_reader(c, request), check_uid(study, "StudyInstanceUID"), check_uid(series, "SeriesInstanceUID")))
    body = with_bulk_data(raw, public_base(c), only_sop=sop)
    if body == b"[]":
        raise NotFound("未找到该图像", [Problem("SOPInstanceUID", "not_found", "该序列中没有这个图像")])
    return _metadata_answer(request, body)


# -- frames, rendered, thumbnail -------------------------------------------------------------------
def _frame_plan(request: Request, stored_media: str, stored_ts: str, count: int) -> tuple[str, bool]:
    """How frames are sent: ("stored" as stored | "native" decoded to uncompressed, single part?).
    A single-part media type (``application/octet-stream``, ``image/jpeg`` …) is answered single
    part when one frame is asked (PS3.18 §8.7.3, OHIF's ``singlepart``)."""
    for media, params in accepts(request):
        if media in ("*/*", "multipart/*"):
            return "stored", False
        single = media != "multipart/related"
        if single:
            if count != 1:
                continue
            kind, ts = media, params.get("transfer-syntax")
        else:
            kind, ts = params.get("type", OCTET).lower(), params.get("transfer-syntax")
        if kind in ("*/*", "*") or (kind == stored_media and ts in (None, "*", stored_ts)):
            return "stored", single
        if kind == OCTET:
            return ("stored" if stored_media == OCTET or ts == "*" else "native"), single
        if kind.endswith("/*") and stored_media.startswith(kind[:-1]):
            return "stored", single
    raise _refuse("像素帧")


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", **op(["XC-E12"], "WADO-RS 像素帧（批量数据）"))
async def retrieve_frames(study: str, series: str, instance: str, frames: str, request: Request) -> Response:
    c = _c(request)
    numbers = frame_numbers(frames)

    def run() -> tuple[list[tuple[bytes, str, str]], str, bool]:
        ds = file_dataset(c, request, study, series, instance)
        stored = [dr.frame_bytes(ds, n) for n in numbers]
        plan, single = _frame_plan(request, stored[0][1], stored[0][2], len(numbers))
        if plan == "native" and stored[0][1] != OCTET:
            return [(dr.decoded_frame_bytes(ds, n), OCTET, dr.EXPLICIT_LE) for n in numbers], OCTET, single
        return stored, stored[0][1], single

    got, media, single = await call(run)
    if single:
        data, m, ts = got[0]
        return Response(data, media_type=f"{m}; transfer-syntax={ts}")
    boundary = new_boundary()
    parts = (
        ({"Content-Type": f"{m}; transfer-syntax={ts}", "Content-Length": str(len(data))}, iter((data,)))
        for data, m, ts in got
    )
    return Response(b"".join(write_related(parts, boundary)), media_type=related_content_type(media, boundary))


# the rendered resources and thumbnails (their own module): the same flat route list
router.routes.extend(rendered_router.routes)
