"""Where the bytes of DICOM instances live (issue 12: "a regional platform that already runs Orthanc
can use it as the archive").

:class:`Archive` is what ``ImagingService`` asks of a backend: keep a stream (``put`` → SHA-256,
size, whether it is new, the backend's own id), stream it back byte-exact (``open``), make a
study's instances durable (``sync``), drop what the index refused (``remove``) and hear of a
YB-4.5 deletion notice (``hidden``, undone by ``shown``). huren's index (patients sealed, access
policy, metadata JSON built at ingest) stays the one truth of what is held and who may see it; an
archive only keeps bytes.

- :class:`LocalArchive` — the embedded default: ``huren.store.blobs.BlobStore`` (streamed, sealed
  in segments, content-addressed by SHA-256).
- :class:`~huren.services.imaging_archive_orthanc.OrthancArchive` — an existing Orthanc (REST API;
  tested with Debian's Orthanc 1.10): instances addressed by the ids Orthanc computes from their
  DICOM identifiers, deletion notices marked as study metadata. Studies already in it are brought
  into the index by ``huren.services.imaging_archive_adopt`` (``huren imaging adopt-orthanc``).

The shared types are in ``huren.services.imaging_archive_types``; they are re-exported here, with
:class:`OrthancArchive`, so callers import from this module. Errors are ``huren.errors`` with
Chinese messages; a ``put`` that fails leaves nothing to index (the caller indexes only after it
returned).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from huren.errors import NotConfigured, PlatformUnavailable, Problem
from huren.services.imaging_archive_orthanc import OrthancArchive
from huren.services.imaging_archive_types import (
    CHUNK,
    LOCAL,
    ORTHANC,
    Archive,
    Put,
    Ref,
    StudyRef,
    as_ref,
    instance_ref,
    keepalive_transport,
)
from huren.store.blobs import BlobStore


class LocalArchive:
    """The embedded archive: the blob store's streamed, sealed files (the default)."""

    name = LOCAL
    needs_patient_id = False  # files are named by their SHA-256

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def put(self, source: BinaryIO | Iterable[bytes], *, max_bytes: int | None = None) -> Put:
        digest, size, new = self.blobs.put_stream(source, max_bytes=max_bytes)
        return Put(digest, size, new)

    def open(self, ref: Ref | str) -> Iterator[bytes] | None:
        return self.blobs.open_stream(as_ref(ref).sha256)

    def exists(self, ref: Ref | str) -> bool:
        return self.blobs.exists(as_ref(ref).sha256)

    def sync(self, refs: Iterable[Ref | str]) -> None:
        self.blobs.sync(as_ref(r).sha256 for r in refs)

    def remove(self, put: Put) -> None:
        if put.new:
            self.blobs.remove(put.sha256)

    def hidden(self, studies: Iterable[StudyRef], note: str = "") -> int:
        # Nothing to tell: the blob store has no users of its own — only huren reads it, and huren's
        # index already hides the studies. The files stay (YB-4.5: marked, not erased).
        return 0

    def shown(self, studies: Iterable[StudyRef]) -> int:
        return 0  # as hidden: the index alone decides what is served

    def check(self) -> None:
        if not self.blobs.root.is_dir():
            msg = f"影像存储目录不可用：{self.blobs.root}"
            raise PlatformUnavailable(msg, [Problem("archive", "unavailable", msg)])


def open_archive(kind: str, blobs: BlobStore, *, url: str | None = None, username: str | None = None,
                 password: str | None = None, timeout: float = 30.0) -> Archive:
    """The archive a deployment configured (``HUREN_IMAGING_ARCHIVE`` = ``local`` | ``orthanc``)."""
    if kind == LOCAL:
        return LocalArchive(blobs)
    if kind == ORTHANC:
        if not url:
            msg = "HUREN_IMAGING_ARCHIVE=orthanc 需要 HUREN_ORTHANC_URL（Orthanc 的 HTTP 地址）"
            raise NotConfigured(msg, [Problem("orthanc_url", "required", msg)])
        return OrthancArchive(url, username=username, password=password, timeout=timeout)
    msg = f"未知的影像归档类型：{kind}（可选 local、orthanc）"
    raise NotConfigured(msg, [Problem("imaging_archive", "choice", msg)])


__all__ = [
    "CHUNK", "LOCAL", "ORTHANC", "Archive", "LocalArchive", "OrthancArchive", "Put", "Ref", "StudyRef", "as_ref", "instance_ref",
    "keepalive_transport", "open_archive",
]
