"""A stored Part-10 file re-encoded in another transfer syntax (WADO-URI ``transferSyntax``,
WADO-RS ``transfer-syntax``): Explicit or Implicit VR Little Endian, made from either of them, from
deflated, or from a compressed syntax whose pydicom decoder is installed (pylibjpeg-libjpeg for
JPEG baseline / extended / lossless and JPEG-LS, pylibjpeg-openjpeg for JPEG 2000 and HTJ2K,
pylibjpeg-rle / pydicom for RLE). Done in memory, so decoded pixel data over
:data:`MAX_DECODED_BYTES` is refused. Never the other way (no compression on the fly)."""

from __future__ import annotations

import io

from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID

from huren.errors import Problem
from huren.wire.dicom_render import BIG_ENDIAN, EXPLICIT_LE, IMPLICIT_LE, NATIVE, NotRenderable, load

#: transfer syntaxes :func:`transcode` produces
TARGETS = frozenset({EXPLICIT_LE, IMPLICIT_LE})
#: the largest decoded pixel data :func:`transcode` makes (in memory)
MAX_DECODED_BYTES = 1024 * 1024 * 1024


def to_explicit_le(data: bytes) -> bytes:
    """An Implicit VR Little Endian Part-10 file re-encoded as Explicit VR Little Endian (the
    same elements and values; only the VR encoding and the meta's TransferSyntaxUID change)."""
    return transcode(data, EXPLICIT_LE)


def can_transcode(stored: str, target: str) -> bool:
    """Whether :func:`transcode` makes ``target`` from a file stored in ``stored``: Explicit or
    Implicit VR Little Endian from either of them, from deflated, and from a compressed syntax
    whose decoder is installed (the pixel data decompressed). Big endian is not converted."""
    if target not in TARGETS or stored == BIG_ENDIAN:
        return False
    if stored in NATIVE:
        return True
    try:
        return bool(get_decoder(UID(stored)).is_available)
    except NotImplementedError:
        return False


def transcode(data: bytes, target: str) -> bytes:
    """The Part-10 file re-encoded in ``target`` (Explicit or Implicit VR Little Endian): the same
    elements and values; compressed pixel data decoded (YBR colour becomes RGB, with its
    PhotometricInterpretation; PS3.5 8.2), the meta's TransferSyntaxUID changed. Decoded pixel data
    over :data:`MAX_DECODED_BYTES` is refused (406), as is a syntax without decoder."""
    ds = load(data)
    stored = str(ds.file_meta.get("TransferSyntaxUID", EXPLICIT_LE))
    if not can_transcode(stored, target):
        raise NotRenderable(f"无法将传输语法 {stored} 转换为 {target}",
                            [Problem("transferSyntax", "unsupported", "服务器无法转换到该传输语法")])
    if stored not in NATIVE and "PixelData" in ds:
        try:
            size = get_expected_length(ds, "bytes")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise NotRenderable("像素数据的行列属性无效", [Problem("transferSyntax", "pixel_data", "Rows / Columns 等属性无效")]) from exc
        if size > MAX_DECODED_BYTES:
            raise NotRenderable("解压后的影像过大，无法转换传输语法", [Problem("transferSyntax", "size", "请按存储时的传输语法获取")])
        try:
            ds.decompress(generate_instance_uid=False)  # the same instance: only its encoding changes
        except (RuntimeError, NotImplementedError, ValueError, AttributeError, KeyError, TypeError) as exc:
            raise NotRenderable(f"无法解码该影像的像素数据（传输语法 {stored}）",
                                [Problem("transferSyntax", "codec", "像素数据无法解码")]) from exc
    ds.file_meta.TransferSyntaxUID = UID(target)
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=target == IMPLICIT_LE, little_endian=True, enforce_file_format=True)
    return out.getvalue()
