"""XC-E-note for DIMSE retrieves: the instances of a study not held here, asked of the fallback
platform over DICOMweb, for a C-MOVE / C-GET served by ``huren.dimse.query``.

* :func:`remote_instances`: QIDO-RS ``/studies/{S}[/series/{E}]/instances`` (paged), each match's
  UIDs, SOP class and — when the peer says it (``AvailableTransferSyntaxUID`` 0008,3002, as huren
  answers) — its transfer syntax, so that the sub-association can be negotiated before any file.
* :func:`spool`: WADO-RS of one instance (``multipart/related; type="application/dicom";
  transfer-syntax=*``: the file as the peer stores it), its one part streamed into a temporary file
  of the forwarder's spool directory (the data directory's ``tmp``): never a whole study, never
  a whole instance, in memory.

Every request goes through :meth:`ImageForwarder.relay` (UIDs checked, the pause after failures,
``image.forward`` in the access log).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from huren.context import Principal
from huren.errors import NotFound, PlatformUnavailable, Problem
from huren.services.imaging_forward import ImageForwarder

#: QIDO page size, and the most instances one retrieve takes from the peer
PAGE = 1000
MAX_INSTANCES = 100_000
ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
#: part headers of a WADO-RS answer larger than this are not a DICOM part
MAX_HEAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class RemoteInstance:
    """One instance the fallback platform holds (its transfer syntax when the peer said it)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str | None = None


def _first(obj: Any, tag: str) -> str:
    attr = obj.get(tag) if isinstance(obj, dict) else None
    values = attr.get("Value") if isinstance(attr, dict) else None
    return str(values[0]) if isinstance(values, list) and values and isinstance(values[0], str) else ""


def remote_instances(
    fw: ImageForwarder, reader: Principal, study_uid: str, series_uid: str | None = None, sops: Sequence[str] = ()
) -> list[RemoteInstance]:
    """The peer's instances of a study (or one series; or those of ``sops``). NotFound when the peer
    does not hold it; PlatformUnavailable when it cannot be asked now."""
    path = f"/studies/{study_uid}" + (f"/series/{series_uid}" if series_uid else "") + "/instances"
    out: list[RemoteInstance] = []
    wanted = set(sops)
    while len(out) < MAX_INSTANCES:
        params = [("includefield", "00083002"), ("limit", str(PAGE)), ("offset", str(len(out)))]
        try:
            got = fw.relay(reader, path, params, accept="application/dicom+json")
        except NotFound:  # an empty page: none (first page), or no more
            if not out:
                raise
            break
        try:
            rows = orjson.loads(got.body or b"[]")
        except orjson.JSONDecodeError:
            rows = None
        if not isinstance(rows, list):
            msg = f"备用影像平台“{fw.peer.name}”的查询应答不是 DICOM JSON 数组"
            raise PlatformUnavailable(msg, [Problem("imaging_fallback_url", "answer", msg)])
        for r in rows:
            sop, cls = _first(r, "00080018"), _first(r, "00080016")
            if sop and cls:
                out.append(RemoteInstance(study_uid, _first(r, "0020000E") or series_uid or "", sop, cls,
                                          _first(r, "00083002") or None))
        if len(rows) < PAGE:
            break
    return [i for i in out if not wanted or i.sop_uid in wanted]


def spool(fw: ImageForwarder, reader: Principal, item: RemoteInstance) -> Path:
    """The instance's file as the peer keeps it, written to a new temporary file (the caller removes
    it). PlatformUnavailable when the peer's answer is not one DICOM file."""
    path = f"/studies/{item.study_uid}/series/{item.series_uid}/instances/{item.sop_uid}"
    got = fw.relay(reader, path, accept=ACCEPT)
    directory = fw.spool_dir
    if directory is not None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="huren-relay-", suffix=".dcm", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            chunks = got.iter_bytes()
            boundary = _boundary(got.media_type)
            size = _copy_part(chunks, boundary, fh) if boundary else _copy(chunks, fh)
        if size < 132:
            raise _bad(fw, "应答中没有 DICOM 文件")
    except BaseException:
        got.close()
        os.unlink(name)
        raise
    got.close()
    return Path(name)


def _bad(fw: ImageForwarder, what: str) -> PlatformUnavailable:
    msg = f"备用影像平台“{fw.peer.name}”{what}"
    return PlatformUnavailable(msg, [Problem("imaging_fallback_url", "answer", msg)])


def _boundary(media_type: str) -> bytes | None:
    """The multipart boundary of a ``multipart/related`` media type (None for a bare file)."""
    base, _, rest = media_type.partition(";")
    if base.strip().lower() != "multipart/related":
        return None
    for param in rest.split(";"):
        k, _, v = param.strip().partition("=")
        if k.strip().lower() == "boundary" and v.strip():
            return v.strip().strip('"').encode("ascii", "replace")
    return None


def _copy(chunks: Iterator[bytes], fh: Any) -> int:
    n = 0
    for chunk in chunks:
        fh.write(chunk)
        n += len(chunk)
    return n


def _copy_part(chunks: Iterator[bytes], boundary: bytes, fh: Any) -> int:
    """The body of the first part of a multipart stream written to ``fh`` (its length). The part
    ends at the next ``CRLF--boundary``; the bytes are kept back only as long as the delimiter."""
    start, delim = b"--" + boundary, b"\r\n--" + boundary
    buf = b""
    in_body = False
    n = 0
    for chunk in chunks:
        buf += chunk
        if not in_body:
            at = buf.find(start)
            end = buf.find(b"\r\n\r\n", at + len(start)) if at >= 0 else -1
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise PlatformUnavailable("备用影像平台的应答不是 multipart/related（找不到分段）")
                continue
            buf, in_body = buf[end + 4:], True
        at = buf.find(delim)
        if at >= 0:
            fh.write(buf[:at])
            return n + at
        keep = len(delim) - 1
        if len(buf) > keep:
            fh.write(buf[:-keep])
            n += len(buf) - keep
            buf = buf[-keep:]
    raise PlatformUnavailable("备用影像平台的应答在文件结束前中断")


__all__ = ["RemoteInstance", "remote_instances", "spool"]
