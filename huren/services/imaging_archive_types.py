"""What every image archive backend shares (``huren.services.imaging_archive``): the
:class:`Archive` protocol, what a ``put`` answers (:class:`Put`), how the index names an instance
(:class:`Ref`) and a study (:class:`StudyRef`) to a backend, and the pooled HTTP transport of the
remote ones."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, runtime_checkable

import httpx2

CHUNK = 256 * 1024
LOCAL, ORTHANC = "local", "orthanc"


@dataclass(frozen=True, slots=True)
class Put:
    """What an archive kept: the SHA-256 and size of the bytes as received, whether they are new
    there (a refused instance removes only what was new), and the backend's own id (None: local)."""

    sha256: str
    size: int
    new: bool
    archive_id: str | None = None


@dataclass(frozen=True, slots=True)
class Ref:
    """How the index names a stored instance: its SHA-256, and what lets a remote archive address it
    without asking: the SOP Instance UID, the backend's own id when known, and the study / series
    UIDs and PatientID (an Orthanc computes its instance id from those four — see
    ``huren.services.imaging_archive_orthanc``). PatientID ``None``: not known (``""`` is an empty one)."""

    sha256: str
    sop_uid: str | None = None
    archive_id: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    patient_id: str | None = None


@dataclass(frozen=True, slots=True)
class StudyRef:
    """A study as the index names it to an archive (a YB-4.5 deletion notice): its Study Instance
    UID and the PatientID of its index row (``None``: not known)."""

    study_uid: str
    patient_id: str | None = None


def as_ref(ref: Ref | str) -> Ref:
    return ref if isinstance(ref, Ref) else Ref(ref)


def instance_ref(row: Mapping[str, Any], patient_id: str | None = None) -> Ref:
    """The :class:`Ref` of an index row (``sha256``, ``sop_uid``, ``series_uid``, ``study_uid`` as
    ``huren.store.imaging.INSTANCE_COLS`` has them) and its study's PatientID (the opened study row's
    ``patient_id``; ``None`` stored means an empty one)."""
    return Ref(
        str(row["sha256"]), str(row["sop_uid"]), study_uid=str(row["study_uid"]), series_uid=str(row["series_uid"]),
        patient_id=patient_id,
    )


@runtime_checkable
class Archive(Protocol):
    name: str
    #: whether the archive names an instance with its study's PatientID (Orthanc's identifiers do):
    #: readers open the study's sealed identity for it only then
    needs_patient_id: bool

    def put(self, source: BinaryIO | Iterable[bytes], *, max_bytes: int | None = None) -> Put: ...

    def open(self, ref: Ref | str) -> Iterator[bytes] | None:
        """The bytes, byte-exact, in chunks; None when the archive does not hold them."""
        ...

    def exists(self, ref: Ref | str) -> bool: ...

    def sync(self, refs: Iterable[Ref | str]) -> None:
        """Make the instances durable before a study's commit answers that they are kept."""
        ...

    def remove(self, put: Put) -> None:
        """Drop what :meth:`put` just kept and the index then refused (nothing refers to it)."""
        ...

    def hidden(self, studies: Iterable[StudyRef], note: str = "") -> int:
        """A YB-4.5 deletion notice hid these studies in the index (kept, never erased): tell the
        archive's own users, reversibly (:meth:`shown`); ``note`` says which notice. How many studies
        the archive marked."""
        ...

    def shown(self, studies: Iterable[StudyRef]) -> int:
        """Undo :meth:`hidden` (the studies are served again); how many marks were removed."""
        ...

    def check(self) -> None:
        """Raise PlatformUnavailable (Chinese message) when the archive cannot be used now."""
        ...


def keepalive_transport(retries: int = 1, max_connections: int = 32) -> httpx2.HTTPTransport:
    """A pooled HTTP transport whose sockets have TCP keep-alive (a half-dead peer is noticed) and
    TCP_NODELAY (no Nagle stall between a request's headers and its first body chunk)."""
    opts: list[tuple[int, int, int]] = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1), (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            opts.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=30.0)
    return httpx2.HTTPTransport(retries=retries, socket_options=opts, limits=limits)


__all__ = ["CHUNK", "LOCAL", "ORTHANC", "Archive", "Put", "Ref", "StudyRef", "as_ref", "instance_ref", "keepalive_transport"]
