"""Frames of a stored DICOM instance as images and as bulk data (WADO-URI image/jpeg and
image/png, WADO-RS /frames, /rendered and /thumbnail), with pydicom + numpy + Pillow.

Rendering follows PS3.18 §9 / §10.4 and PS3.3 C.11.2.1.2 for monochrome images: the Modality
LUT (RescaleSlope / RescaleIntercept), then a linear VOI window — the request's
(windowCenter / windowWidth), else the file's first WindowCenter / WindowWidth value, else the
frame's own range — then MONOCHROME1 inverted; RGB / YBR (pydicom converts) / PALETTE COLOR become RGB. ``region``
(normalised x1,y1,x2,y2) crops, ``rows`` / ``columns`` are maxima within which the image is
scaled keeping its aspect ratio.

Bulk data: :func:`frame_bytes` gives a native frame in Explicit VR Little Endian byte order (big
endian words swapped) or, for an encapsulated transfer syntax, the compressed frame as stored with
its media type (PS3.18 Table 8.7.3-2); :func:`decoded_frame_bytes` decodes a compressed frame to
native little-endian bytes when a client asks for uncompressed bulk data.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.errors import InvalidDicomError
from pydicom.pixels.processing import apply_color_lut, apply_rescale
from pydicom.pixels.utils import get_expected_length, pack_bits, pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from huren.errors import HurenError, InvalidInput, Problem
from huren.wire import dicom_annotate as annotate

EXPLICIT_LE = str(ExplicitVRLittleEndian)
IMPLICIT_LE = str(ImplicitVRLittleEndian)
BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
#: transfer syntaxes whose pixel data is native (not encapsulated)
NATIVE = frozenset({IMPLICIT_LE, EXPLICIT_LE, BIG_ENDIAN, DEFLATED})
#: the media type of a compressed frame per transfer syntax (PS3.18 Table 8.7.3-2)
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.5": "image/x-dicom-rle",
    "1.2.840.10008.1.2.4.100": "video/mpeg",
    "1.2.840.10008.1.2.4.101": "video/mpeg",
    "1.2.840.10008.1.2.4.102": "video/mp4",
    "1.2.840.10008.1.2.4.103": "video/mp4",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
}
#: the largest rendered image side (rows / columns / viewport beyond this are refused)
MAX_SIDE = 4096
#: values larger than this are read from the file when used, not when the file is opened
DEFER_BYTES = 256 * 1024
PIXEL_DATA = 0x7FE00010
THUMBNAIL_SIDE = 128
Format = Literal["jpeg", "png"]


class NotRenderable(HurenError):
    """The instance cannot be given in the form asked (no pixel data, a codec not installed)."""

    code = "not_acceptable"
    status = 406


@dataclass(frozen=True, slots=True)
class RenderOptions:
    frame: int = 1  # 1-based, as frameNumber and /frames/{n}
    window_center: float | None = None
    window_width: float | None = None
    rows: int | None = None
    columns: int | None = None
    region: tuple[float, float, float, float] | None = None  # normalised x1, y1, x2, y2
    quality: int = 90
    fmt: Format = "jpeg"
    annotation: frozenset[str] = frozenset()  # "patient", "technique" (burned in, dicom_annotate)


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, [Problem(field, "range", message)])


def load(src: bytes | BinaryIO) -> Dataset:
    """The dataset of a stored Part-10 file (stored files were validated at ingest; a damaged
    one is refused, not a 500). Values over :data:`DEFER_BYTES` stay in ``src`` until used, so a
    frame of a large multi-frame file is read alone (:func:`frame_bytes`); a file object must
    stay open while the dataset is used."""
    try:
        return dcmread(io.BytesIO(src) if isinstance(src, bytes) else src, defer_size=DEFER_BYTES)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError) as exc:
        raise NotRenderable("影像文件无法解析", [Problem("objectUID", "dicom", "存储的影像文件无法解析")]) from exc


def _deferred_pixels(ds: Dataset) -> tuple[BinaryIO, int] | None:
    """(file, offset of the Pixel Data value) when the value was not read yet (and can be read
    in place: not from a deflated file, whose stream pydicom inflated)."""
    raw = ds.get_item(PIXEL_DATA, keep_deferred=True)
    buffer = getattr(ds, "buffer", None)
    if (isinstance(raw, RawDataElement) and raw.value is None and buffer is not None
            and _transfer_syntax(ds) != DEFLATED and raw.value_tell is not None):
        return buffer, int(raw.value_tell)
    return None


def number_of_frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", EXPLICIT_LE)) if meta is not None else EXPLICIT_LE


def _check_frame(ds: Dataset, frame: int, field: str) -> int:
    if "PixelData" not in ds:
        raise NotRenderable("该影像不含像素数据，无法生成图像", [Problem(field, "pixel_data", "该实例不含像素数据")])
    n = number_of_frames(ds)
    if not 1 <= frame <= n:
        raise _bad(field, f"帧号应在 1 到 {n} 之间")
    return n


def frame_media_type(transfer_syntax: str) -> str:
    """The media type of one frame's bulk data as stored."""
    return "application/octet-stream" if transfer_syntax in NATIVE else FRAME_MEDIA_TYPES.get(transfer_syntax, "application/octet-stream")


def frame_bytes(ds: Dataset, frame: int) -> tuple[bytes, str, str]:
    """(bytes, media type, transfer syntax) of frame ``frame`` as stored: a native frame in
    little-endian byte order (transfer syntax Explicit VR LE), else the encapsulated frame."""
    n = _check_frame(ds, frame, "frame")
    ts = _transfer_syntax(ds)
    deferred = _deferred_pixels(ds)
    if ts not in NATIVE:
        try:
            if deferred is not None:
                deferred[0].seek(deferred[1])
                data = get_frame(deferred[0], frame - 1, number_of_frames=n)
            else:
                data = get_frame(ds.PixelData, frame - 1, number_of_frames=n)
        except (ValueError, IndexError, OSError) as exc:
            raise NotRenderable("压缩像素数据的帧无法读取", [Problem("frame", "pixel_data", "压缩帧无法读取")]) from exc
        return data, frame_media_type(ts), ts
    bits = int(ds.get("BitsAllocated", 8))
    if bits == 1:  # frames are packed bit after bit across the whole value: unpack and repack one
        arr = pixel_array(ds, index=frame - 1, raw=True)
        return pack_bits(arr), "application/octet-stream", EXPLICIT_LE
    try:
        size = get_expected_length(ds, "bytes") // n
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise NotRenderable("像素数据的行列属性无效", [Problem("frame", "pixel_data", "Rows / Columns 等属性无效")]) from exc
    if deferred is not None:
        deferred[0].seek(deferred[1] + (frame - 1) * size)
        data = deferred[0].read(size)
    else:
        data = bytes(ds.PixelData[(frame - 1) * size: frame * size])
    if len(data) != size:
        raise NotRenderable("像素数据不完整", [Problem("frame", "pixel_data", "像素数据短于行列所需")])
    if ts == BIG_ENDIAN and bits in (16, 32):
        data = np.frombuffer(data, dtype=f">u{bits // 8}").astype(f"<u{bits // 8}").tobytes()
    return data, "application/octet-stream", EXPLICIT_LE


def decoded_frame_bytes(ds: Dataset, frame: int) -> bytes:
    """Frame ``frame`` decoded to native little-endian bytes (for a compressed transfer syntax)."""
    _check_frame(ds, frame, "frame")
    arr = _decode(ds, frame, raw=True)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def _decode(ds: Dataset, frame: int, *, raw: bool = False) -> np.ndarray[Any, Any]:
    try:
        arr: np.ndarray[Any, Any] = pixel_array(ds, index=frame - 1, raw=raw)
    except (RuntimeError, NotImplementedError, ValueError, AttributeError, KeyError, TypeError) as exc:
        ts = UID(_transfer_syntax(ds))
        raise NotRenderable(
            f"无法解码该影像的像素数据（传输语法 {ts}）",
            [Problem("transferSyntax", "codec", "服务器未安装该压缩格式的解码器")],
        ) from exc
    return arr


def _window(ds: Dataset, opts: RenderOptions, arr: np.ndarray[Any, Any]) -> tuple[float, float]:
    if opts.window_center is not None and opts.window_width is not None:
        return opts.window_center, opts.window_width
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    try:
        if center is not None and width is not None:
            c = float(center[0] if _multi(center) else center)
            w = float(width[0] if _multi(width) else width)
            if w >= 1 and math.isfinite(c) and math.isfinite(w):
                return c, w
    except (TypeError, ValueError, IndexError):
        pass
    lo, hi = float(arr.min()), float(arr.max())
    return (lo + hi) / 2, max(hi - lo, 1.0)


def _multi(value: Any) -> bool:
    return isinstance(value, list | tuple) or type(value).__name__ == "MultiValue"


def window_linear(arr: np.ndarray[Any, Any], center: float, width: float) -> np.ndarray[Any, Any]:
    """PS3.3 C.11.2.1.2.1 linear VOI to 0..255 (width ≥ 1)."""
    width = max(width, 1.0)
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    out = ((arr.astype(np.float64) - (center - 0.5)) / max(width - 1, 1e-9) + 0.5) * 255.0
    out = np.where(arr <= low, 0.0, np.where(arr > high, 255.0, out))
    return np.clip(out, 0, 255).astype(np.uint8)


def _to_8bit(arr: np.ndarray[Any, Any], ds: Dataset) -> np.ndarray[Any, Any]:
    if arr.dtype == np.uint8:
        return arr
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8)
    top = float(2**bits - 1) if bits > 0 else float(arr.max() or 1)
    return np.clip(arr.astype(np.float64) * 255.0 / top, 0, 255).astype(np.uint8)


def frame_image(ds: Dataset, opts: RenderOptions) -> Image.Image:
    """Frame ``opts.frame`` as an 8-bit Pillow image, windowed, before cropping and scaling."""
    return _frame_image(ds, opts)[0]


def _frame_image(ds: Dataset, opts: RenderOptions) -> tuple[Image.Image, tuple[float, float] | None]:
    """The frame's image and the VOI window applied (None for colour)."""
    _check_frame(ds, opts.frame, "frameNumber")
    arr = _decode(ds, opts.frame)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        if arr.ndim != 2:
            raise NotRenderable("像素数据的维度与灰度图像不符", [Problem("frameNumber", "pixel_data", "像素数据无效")])
        values = apply_rescale(arr, ds) if "RescaleSlope" in ds or "RescaleIntercept" in ds else arr
        center, width = _window(ds, opts, values)
        out = window_linear(values, center, width)
        if photometric == "MONOCHROME1":
            out = 255 - out
        return Image.fromarray(out, mode="L"), (center, width)
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise NotRenderable("不支持该光度解释的图像", [Problem("frameNumber", "photometric", f"不支持 {photometric}")])
    return Image.fromarray(_to_8bit(arr, ds), mode="RGB"), None


def render(ds: Dataset, opts: RenderOptions) -> bytes:
    """The frame as JPEG or PNG bytes with the options applied (annotation drawn last, on the
    image at its final size, so that the text stays legible)."""
    img, window = _frame_image(ds, opts)
    if opts.region is not None:
        x1, y1, x2, y2 = opts.region
        w, h = img.size
        box = (int(x1 * w), int(y1 * h), max(int(x1 * w) + 1, math.ceil(x2 * w)), max(int(y1 * h) + 1, math.ceil(y2 * h)))
        img = img.crop(box)
    img = _fit(img, opts.rows, opts.columns)
    if opts.annotation:
        img = annotate.burn(
            img,
            annotate.patient_lines(ds) if "patient" in opts.annotation else [],
            annotate.technique_lines(ds, opts.frame, number_of_frames(ds), window) if "technique" in opts.annotation else [],
        )
    buf = io.BytesIO()
    if opts.fmt == "png":
        img.save(buf, format="PNG")
    else:
        img.save(buf, format="JPEG", quality=opts.quality)
    return buf.getvalue()


def _fit(img: Image.Image, rows: int | None, columns: int | None) -> Image.Image:
    """Scale to the given height and / or width as maxima, keeping the aspect ratio."""
    if rows is None and columns is None:
        return img
    w, h = img.size
    scale = min(columns / w if columns else math.inf, rows / h if rows else math.inf)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img if size == (w, h) else img.resize(size, Image.Resampling.LANCZOS)


def thumbnail(ds: Dataset, *, side: int = THUMBNAIL_SIDE, fmt: Format = "jpeg") -> bytes:
    """A small image of the instance's middle frame (within ``side`` × ``side``)."""
    n = number_of_frames(ds) if "PixelData" in ds else 1
    return render(ds, RenderOptions(frame=(n + 1) // 2, rows=side, columns=side, quality=80, fmt=fmt))


def header_uids(path: str) -> tuple[str | None, str | None, str | None]:
    """(StudyInstanceUID, SOPClassUID, SOPInstanceUID) of a received file, read from its header
    only (None each when the file cannot be read: the store refuses it with its own reason)."""
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "SOPClassUID", "SOPInstanceUID"])
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError, AttributeError):
        return None, None, None

    def text(keyword: str) -> str | None:
        value = ds.get(keyword)
        return str(value).strip("\0 ") or None if value is not None else None

    return text("StudyInstanceUID"), text("SOPClassUID"), text("SOPInstanceUID")
