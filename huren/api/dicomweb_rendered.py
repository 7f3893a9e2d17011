"""WADO-RS rendered resources and thumbnails (PS3.18 §10.4, Retrieve Rendered Transaction) under
``/dicom-web``; the routes join :mod:`huren.api.dicomweb_wado`'s router (one flat route list).

* ``…/instances/{I}/rendered`` (first frame), ``…/instances/{I}/frames/{n}/rendered``: one image,
  ``image/jpeg`` or ``image/png`` as the Accept header asks; ``window=center,width``,
  ``viewport=w,h`` (maxima, aspect kept), ``quality`` (1-100, JPEG);
* ``/studies/{S}/rendered``, ``/studies/{S}/series/{E}/rendered``: the Rendered Study / Series
  resource — ``multipart/related; type="image/jpeg"`` (or ``image/png``), one part per frame of
  every image instance in the study or series (in the index's order: series, then instance
  number), each part with ``Content-Location`` naming the frame's (or single-frame instance's)
  rendered URL; same query parameters. A multi-frame instance is given frame by frame, as the
  platform offers no multi-frame rendered type (GIF, video). Instances without pixel data (SR,
  plans …) or whose pixel data cannot be decoded are left out; none at all is 406. At most
  :data:`MAX_RENDERED_FRAMES` frames per request (else 400: ask series by series). Streamed: one
  instance read and rendered at a time;
* ``/thumbnail`` at study, series, instance and frame level: the middle image (frame), within
  ``viewport`` (default 128).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response, StreamingResponse

from huren.api.dicomweb import MAX_FRAMES, PREFIX, NotAcceptable, accepts, bad, call, public_base, resolve_reader
from huren.api.openapi import op
from huren.domain.imaging import check_uid
from huren.errors import NotFound, Problem
from huren.services.container import Container
from huren.services.imaging import InstanceFile
from huren.wire import dicom_render as dr
from huren.wire.multipart import new_boundary, related_content_type, write_related

router = APIRouter(prefix=PREFIX, tags=["DICOMweb"], include_in_schema=False)

#: the most frames one study / series rendered request gives
MAX_RENDERED_FRAMES = 5000


def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


def refuse(what: str) -> NotAcceptable:
    return NotAcceptable(f"无法以请求的媒体类型提供{what}", [Problem("Accept", "media_type", f"Accept 头不含可提供的{what}类型")])


def frame_numbers(raw: str) -> list[int]:
    parts = raw.split(",")
    if len(parts) > MAX_FRAMES:
        raise bad("frames", "limit", f"一次最多请求 {MAX_FRAMES} 帧")
    out = []
    for p in parts:
        p = p.strip()
        if not p.isdigit() or int(p) < 1:
            raise bad("frames", "integer", "帧号应为从 1 开始的正整数，多个用逗号分隔")
        out.append(int(p))
    return out


def file_dataset(c: Container, request: Request, study: str, series: str, instance: str) -> Any:
    reader = resolve_reader(c, request)
    f = c.imaging.instance(reader, check_uid(study, "StudyInstanceUID"), check_uid(series, "SeriesInstanceUID"),
                           check_uid(instance, "SOPInstanceUID"))
    return dr.load(b"".join(f.chunks()))


def _render_format(request: Request) -> dr.Format:
    for media, _params in accepts(request):
        if media in ("image/jpeg", "image/*", "*/*"):
            return "jpeg"
        if media == "image/png":
            return "png"
    raise refuse("渲染图像（image/jpeg、image/png）")


def _render_options(request: Request, frame: int, fmt: dr.Format) -> dr.RenderOptions:
    params = request.query_params
    center = width = None
    if params.get("window"):
        parts = params["window"].split(",")
        try:
            center, width = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            raise bad("window", "format", "window 应为 center,width[,function]") from None
        if width < 1:
            raise bad("window", "range", "窗宽应不小于 1")
    rows = columns = None
    if params.get("viewport"):
        parts = params["viewport"].split(",")
        try:
            columns, rows = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            raise bad("viewport", "format", "viewport 应为 宽,高（像素）") from None
        if not (0 < rows <= dr.MAX_SIDE and 0 < columns <= dr.MAX_SIDE):
            raise bad("viewport", "range", f"viewport 的宽和高应在 1 到 {dr.MAX_SIDE} 之间")
    quality = 90
    if params.get("quality"):
        raw = params["quality"]
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise bad("quality", "range", "quality 应为 1 到 100 的整数")
        quality = int(raw)
    return dr.RenderOptions(frame=frame, window_center=center, window_width=width, rows=rows, columns=columns,
                            quality=quality, fmt=fmt)


def _image(data: bytes, fmt: dr.Format) -> Response:
    return Response(data, media_type="image/png" if fmt == "png" else "image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@router.get("/studies/{study}/series/{series}/instances/{instance}/rendered", **op(["XC-E12"], "WADO-RS 渲染图像（第 1 帧）"))
async def rendered_instance(study: str, series: str, instance: str, request: Request) -> Response:
    c, fmt = container(request), _render_format(request)
    opts = _render_options(request, 1, fmt)
    data = await call(lambda: dr.render(file_dataset(c, request, study, series, instance), opts))
    return _image(data, fmt)


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered", **op(["XC-E12"], "WADO-RS 渲染某一帧"))
async def rendered_frame(study: str, series: str, instance: str, frame: str, request: Request) -> Response:
    c, fmt = container(request), _render_format(request)
    numbers = frame_numbers(frame)
    if len(numbers) != 1:
        raise bad("frames", "single", "渲染时只能指定一帧")
    opts = _render_options(request, numbers[0], fmt)
    data = await call(lambda: dr.render(file_dataset(c, request, study, series, instance), opts))
    return _image(data, fmt)


def _thumbnail_size(request: Request) -> int:
    raw = request.query_params.get("viewport")
    if not raw:
        return dr.THUMBNAIL_SIDE
    try:
        side = max(int(v) for v in raw.split(","))
    except ValueError:
        raise bad("viewport", "format", "viewport 应为 宽,高（像素）") from None
    if not 0 < side <= 1024:
        raise bad("viewport", "range", "缩略图的宽和高应在 1 到 1024 之间")
    return side


#: instances tried, from the middle outwards, for a study / series thumbnail
THUMBNAIL_TRIES = 16


def _thumbnail_of(files: list[InstanceFile], side: int, fmt: dr.Format) -> bytes:
    """The thumbnail of the middle image of ``files``: the middle instance, else the nearest one
    to it that renders (a series may hold an SR or a plan among its images)."""
    if not files:
        raise NotFound("未找到影像", [Problem("StudyInstanceUID", "not_found", "该检查或序列没有可提供的影像")])
    mid = len(files) // 2
    order = sorted(range(len(files)), key=lambda k: (abs(k - mid), k))[:THUMBNAIL_TRIES]
    last: dr.NotRenderable | None = None
    for k in order:
        try:
            return dr.thumbnail(dr.load(b"".join(files[k].chunks())), side=side, fmt=fmt)
        except dr.NotRenderable as exc:
            last = exc
    assert last is not None
    raise last


@router.get("/studies/{study}/thumbnail", **op(["XC-E12"], "WADO-RS 检查缩略图"))
async def study_thumbnail(study: str, request: Request) -> Response:
    c, fmt, side = container(request), _render_format(request), _thumbnail_size(request)

    def run() -> bytes:
        files = c.imaging.instances_of(resolve_reader(c, request), check_uid(study, "StudyInstanceUID"))
        return _thumbnail_of(files, side, fmt)

    return _image(await call(run), fmt)


@router.get("/studies/{study}/series/{series}/thumbnail", **op(["XC-E12"], "WADO-RS 序列缩略图"))
async def series_thumbnail(study: str, series: str, request: Request) -> Response:
    c, fmt, side = container(request), _render_format(request), _thumbnail_size(request)

    def run() -> bytes:
        files = c.imaging.instances_of(resolve_reader(c, request), check_uid(study, "StudyInstanceUID"),
                                       check_uid(series, "SeriesInstanceUID"))
        return _thumbnail_of(files, side, fmt)

    return _image(await call(run), fmt)


@router.get("/studies/{study}/series/{series}/instances/{instance}/thumbnail", **op(["XC-E12"], "WADO-RS 图像缩略图"))
async def instance_thumbnail(study: str, series: str, instance: str, request: Request) -> Response:
    c, fmt, side = container(request), _render_format(request), _thumbnail_size(request)
    data = await call(lambda: dr.thumbnail(file_dataset(c, request, study, series, instance), side=side, fmt=fmt))
    return _image(data, fmt)


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/thumbnail", **op(["XC-E12"], "WADO-RS 某帧缩略图"))
async def frame_thumbnail(study: str, series: str, instance: str, frame: str, request: Request) -> Response:
    c, fmt, side = container(request), _render_format(request), _thumbnail_size(request)
    numbers = frame_numbers(frame)
    if len(numbers) != 1:
        raise bad("frames", "single", "缩略图只能指定一帧")
    opts = dr.RenderOptions(frame=numbers[0], rows=side, columns=side, quality=80, fmt=fmt)
    data = await call(lambda: dr.render(file_dataset(c, request, study, series, instance), opts))
    return _image(data, fmt)


# -- rendered study and series -----------------------------------------------------------------------
def _multipart_render_format(request: Request) -> dr.Format:
    """The rendered media type of a study / series answer: ``multipart/related; type=…`` (or the
    bare image type, or ``*/*``)."""
    for media, params in accepts(request):
        kind = params.get("type", "image/jpeg").lower() if media == "multipart/related" else media
        if kind in ("image/jpeg", "image/*", "*/*", "multipart/*"):
            return "jpeg"
        if kind == "image/png":
            return "png"
    raise refuse("渲染图像（multipart/related; type=image/jpeg 或 image/png）")


def _rendered_parts(c: Container, files: list[InstanceFile], opts: dr.RenderOptions) -> Iterator[tuple[dict[str, str], Iterator[bytes]]]:
    media = "image/png" if opts.fmt == "png" else "image/jpeg"
    base = public_base(c)
    for f in files:
        try:
            ds = dr.load(b"".join(f.chunks()))
            if "PixelData" not in ds:
                continue
            n = dr.number_of_frames(ds)
            for frame in range(1, n + 1):
                data = dr.render(ds, dr.RenderOptions(
                    frame=frame, window_center=opts.window_center, window_width=opts.window_width,
                    rows=opts.rows, columns=opts.columns, quality=opts.quality, fmt=opts.fmt))
                where = f"{base}/studies/{f.study_uid}/series/{f.series_uid}/instances/{f.sop_uid}"
                where += f"/frames/{frame}/rendered" if n > 1 else "/rendered"
                yield {"Content-Type": media, "Content-Location": where, "Content-Length": str(len(data))}, iter((data,))
        except (dr.NotRenderable, NotFound):
            continue  # not an image, no decoder, the file gone meanwhile: left out (module docstring)


async def _rendered_many(request: Request, study: str, series: str | None) -> Response:
    c, fmt = container(request), _multipart_render_format(request)
    opts = _render_options(request, 1, fmt)

    def run() -> tuple[tuple[dict[str, str], Iterator[bytes]], Iterator[tuple[dict[str, str], Iterator[bytes]]]]:
        files = c.imaging.instances_of(resolve_reader(c, request), check_uid(study, "StudyInstanceUID"),
                                       None if series is None else check_uid(series, "SeriesInstanceUID"))
        if sum(f.number_of_frames for f in files) > MAX_RENDERED_FRAMES:
            raise bad("StudyInstanceUID", "limit", f"一次最多渲染 {MAX_RENDERED_FRAMES} 帧：请按序列或图像分别请求")
        parts = _rendered_parts(c, files, opts)
        first = next(parts, None)  # rendered before answering: nothing renderable is a 406, not an empty body
        if first is None:
            raise dr.NotRenderable("该检查或序列中没有可渲染的图像",
                                   [Problem("StudyInstanceUID", "pixel_data", "没有含像素数据且可解码的图像")])
        return first, parts

    first, rest = await call(run)

    def body() -> Iterator[bytes]:
        yield from write_related(_chain(first, rest), boundary)

    boundary = new_boundary()
    media = "image/png" if fmt == "png" else "image/jpeg"
    return StreamingResponse(iterate_in_threadpool(body()), media_type=related_content_type(media, boundary),
                             headers={"Cache-Control": "private, max-age=300"})


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


@router.get("/studies/{study}/rendered", **op(["XC-E12"], "WADO-RS 渲染整个检查（每帧一部分的 multipart/related）"))
async def rendered_study(study: str, request: Request) -> Response:
    return await _rendered_many(request, study, None)


@router.get("/studies/{study}/series/{series}/rendered", **op(["XC-E12"], "WADO-RS 渲染一个序列（每帧一部分的 multipart/related）"))
async def rendered_series(study: str, series: str, request: Request) -> Response:
    return await _rendered_many(request, study, series)
