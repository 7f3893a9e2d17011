"""The pieces of ``huren.services.imaging_archive_orthanc`` that are not its REST calls: Orthanc's
id formula (:func:`orthanc_id`), a request body hashed and bounded on its way to Orthanc
(:class:`Body`), an instance's bytes hashed on their way back and checked against the SHA-256 the
index holds (:class:`Stream`), and the archive's "unavailable" error."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Generator, Iterable, Iterator
from typing import BinaryIO

import httpx2

from huren.errors import PlatformUnavailable, Problem, TooLarge
from huren.services.imaging_archive_types import CHUNK

log = logging.getLogger("huren.services.imaging_archive_orthanc")


#: the user metadata a YB-4.5 deletion notice sets on a study, and its number when undeclared
WITHDRAWN, WITHDRAWN_INDEX = "HurenWithdrawn", 4770


def orthanc_id(*identifiers: str) -> str:
    """Orthanc's id of a resource from its DICOM identifiers (``DicomInstanceHasher``): patient
    (PatientID), study (+ StudyInstanceUID), series (+ SeriesInstanceUID), instance (+ SOPInstanceUID)."""
    h = hashlib.sha1("|".join(identifiers).encode("utf-8"), usedforsecurity=False).hexdigest()
    return "-".join(h[i : i + 8] for i in range(0, 40, 8))


def unavailable(what: str, exc: BaseException | None = None) -> PlatformUnavailable:
    detail = f"（{type(exc).__name__}）" if exc is not None else ""
    msg = f"影像归档服务（Orthanc）暂不可用：{what}{detail}，请稍后重试"
    return PlatformUnavailable(msg, [Problem("archive", "unavailable", msg)])


class Stream:
    """An instance's bytes as Orthanc sends them, hashed on the way and checked at the end; the
    response is closed when the stream ends, is closed, or is dropped unread."""

    def __init__(self, resp: httpx2.Response, oid: str, sha256: str, url: str) -> None:
        self._resp, self._oid, self._sha256, self._url = resp, oid, sha256, url
        self._it: Generator[bytes, None, None] = self._chunks()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._it)

    def _chunks(self) -> Generator[bytes, None, None]:
        h = hashlib.sha256()
        try:
            for chunk in self._resp.iter_bytes(CHUNK):
                h.update(chunk)
                yield chunk
        except httpx2.TimeoutException as exc:
            raise unavailable("读取实例超时", exc) from None
        except httpx2.TransportError as exc:
            raise unavailable(f"读取实例时与 {self._url} 的连接中断", exc) from None
        finally:
            self._resp.close()
        if h.hexdigest() != self._sha256:
            log.error("Orthanc instance %s: SHA-256 %s, the index holds %s", self._oid, h.hexdigest(), self._sha256)
            raise unavailable(f"实例 {self._oid} 的内容与登记的 SHA-256 不符")

    def close(self) -> None:
        self._it.close()
        self._resp.close()

    def __del__(self) -> None:
        self._resp.close()


def position(source: BinaryIO | Iterable[bytes]) -> int | None:
    """Where a seekable file source starts (a retry seeks back there), else None."""
    seekable, tell = getattr(source, "seekable", None), getattr(source, "tell", None)
    try:
        return int(tell()) if seekable is not None and tell is not None and seekable() else None
    except (OSError, ValueError):
        return None


class Body:
    """A request body read from ``source`` in chunks, hashed (SHA-256, MD5) and bounded on the way."""

    def __init__(self, source: BinaryIO | Iterable[bytes], max_bytes: int | None) -> None:
        self.source, self.max_bytes = source, max_bytes
        self.sha, self.md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in chunks_of(self.source):
            self.size += len(chunk)
            if self.max_bytes is not None and self.size > self.max_bytes:
                msg = f"文件超过允许的大小（最大 {self.max_bytes} 字节）"
                raise TooLarge(msg, [Problem("file", "size", msg)])
            self.sha.update(chunk)
            self.md5.update(chunk)
            yield chunk


def chunks_of(source: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(source, "read", None)
    if read is None:
        yield from source
        return
    while chunk := read(CHUNK):
        yield chunk


__all__ = ["WITHDRAWN", "WITHDRAWN_INDEX", "Body", "Stream", "chunks_of", "orthanc_id", "position", "unavailable"]
