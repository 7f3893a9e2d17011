"""The imaging calls of :class:`huren.client.HurenClient` (issue 12; re-exported by
:mod:`huren.client`): STOW-RS ``POST /dicom-web/studies`` streamed from disk or from the gateway's
sealed spool (``stow``, its body ``multipart_parts``, its answer ``stow_result``), the study's
commit, the YB cloud-film URL, the image deletion notice and the patient's exams elsewhere.
``ImagingCalls`` is a mixin of ``HurenClient``: its methods use the client's token, HTTP client
and ``rest_call``."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx2

from huren.client_rest import API, PATHS, TRANSIENT_STATUS, _decode, _unreachable
from huren.errors import NotFound, PlatformRefused, PlatformUnavailable, Problem

#: a DICOM UID as it may appear in a path (PS3.5 §9.1: digits and dots, at most 64)
_UID = re.compile(r"[0-9][0-9.]{0,63}")


def imaging_commit_path(study_uid: str) -> str:
    """``/api/v1/imaging/studies/{study_uid}/commit``; a malformed UID names no study (NotFound)."""
    if not isinstance(study_uid, str) or not _UID.fullmatch(study_uid):
        raise NotFound("检查不存在")
    return f"{API}/imaging/studies/{study_uid}/commit"


@dataclass(frozen=True, slots=True)
class StowResult:
    """The platform's STOW-RS answer: HTTP ``status`` (200 all stored, 202 some refused, 409 none),
    the stored SOP Instance UIDs and the refused ones with their DICOM failure reason (hex)."""

    status: int
    stored: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _uids_of(body: Any, tag: str) -> list[dict[str, Any]]:
    seq = body.get(tag, {}).get("Value", []) if isinstance(body, dict) else []
    return [item for item in seq if isinstance(item, dict)]


def _first(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])


def stow_result(status: int, body: Any) -> StowResult:
    """A STOW-RS answer (PS3.18 §10.5.3: ReferencedSOPSequence 0008,1199 and FailedSOPSequence
    0008,1198 with FailureReason 0008,1197) as a :class:`StowResult`."""
    stored = [_first(i, "00081155") for i in _uids_of(body, "00081199")]
    failed = []
    for item in _uids_of(body, "00081198"):
        why = item.get("00081197", {}).get("Value") or [0]
        code = why[0] if isinstance(why[0], int) else 0
        failed.append((_first(item, "00081155"), f"{code:04X}"))
    return StowResult(status, [s for s in stored if s], failed)


#: one DICOM file of a STOW-RS request: a path, or (its size, a callable giving its bytes in chunks)
StowPart = Path | tuple[int, Callable[[], Iterable[bytes]]]


def _file_chunks(path: Path, chunk: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            yield block


def multipart_parts(files: Sequence[StowPart], boundary: str, chunk: int = 1 << 20) -> tuple[int, Callable[[], Iterator[bytes]]]:
    """(length, a factory of the chunks) of a ``multipart/related; type="application/dicom"``
    body of ``files``: streamed, never held whole in memory; the factory can be called again (a
    retry after a 401). A part that yields other than its announced size raises ValueError."""
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    tail = f"--{boundary}--\r\n".encode()
    parts: list[tuple[int, Callable[[], Iterable[bytes]]]] = []
    for f in files:
        if isinstance(f, Path):
            parts.append((f.stat().st_size, lambda f=f: _file_chunks(f, chunk)))  # type: ignore[misc]
        else:
            parts.append(f)
    length = sum(len(head) + n + 2 for n, _ in parts) + len(tail)

    def chunks() -> Iterator[bytes]:
        for size, source in parts:
            yield head
            sent = 0
            for block in source():
                sent += len(block)
                yield block
            if sent != size:
                raise ValueError(f"a STOW-RS part yielded {sent} bytes, not {size}")
            yield b"\r\n"
        yield tail

    return length, chunks



class _Rest(Protocol):
    """What the imaging calls use of the client (``HurenClient``)."""

    http: httpx2.Client

    def token(self) -> str: ...

    def reset_token(self) -> None: ...

    def rest_call(
        self, verb: str, path: str, *, json: Any = None, content: bytes | None = None, params: Any = None, timeout: float | None = None
    ) -> Any: ...


class ImagingCalls:
    """The platform's imaging operations (a mixin of ``HurenClient``)."""

    def stow(self: _Rest, files: Sequence[StowPart], *, timeout: float | None = None) -> StowResult:
        """Push DICOM Part-10 files with STOW-RS (``POST /dicom-web/studies``, one
        ``multipart/related; type="application/dicom"`` request, streamed). The
        platform stores identical bytes once (a re-send after a crash is a duplicate, not an
        error). 200 / 202 / 409 are answered as a :class:`StowResult`; another 4xx raises
        PlatformRefused, a 5xx / unreachable PlatformUnavailable."""
        boundary = f"huren-{secrets.token_hex(12)}"
        length, chunks = multipart_parts(files, boundary)
        headers = {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Content-Length": str(length),
            "Accept": "application/dicom+json",
        }
        for attempt in (1, 2):
            request = self.http.build_request(
                "POST", PATHS["stow"], content=chunks(), headers=headers | {"Authorization": f"Bearer {self.token()}"},
                timeout=timeout if timeout is not None else httpx2.USE_CLIENT_DEFAULT,
            )
            try:
                r = self.http.send(request)
            except httpx2.TransportError as exc:
                raise _unreachable(exc) from exc
            if r.status_code == 401 and attempt == 1:
                self.reset_token()
                continue
            body = _decode(r)
            if r.status_code >= 500 or r.status_code in TRANSIENT_STATUS:
                raise PlatformUnavailable(
                    f"STOW-RS HTTP {r.status_code}", [Problem("platform", "unavailable", f"平台应答 HTTP {r.status_code}")]
                )
            if r.status_code in (200, 202, 409):
                return stow_result(r.status_code, body)
            raise PlatformRefused(r.status_code, body)
        raise AssertionError("unreachable")

    def commit_study(self: _Rest, study_uid: str, instances: Sequence[tuple[str, str]]) -> Any:
        """Confirm a pushed study complete: ``instances`` = (SOP Instance UID, SHA-256 hex) of every
        instance it should hold. ``{"state": "complete" | "receiving", "committed", "failed"}``;
        committing again is harmless."""
        body = {"instances": [{"SOPInstanceUID": sop, "sha256": sha} for sop, sha in instances]}
        return self.rest_call("POST", imaging_commit_path(study_uid), json=body)

    def film_url(self: _Rest, accessNumber: str, modality: str, hospitalId: str) -> Any:
        """The patient's cloud-film URL for one of the institution's own studies (YB-4.3):
        ``{"url", "key", "expires_at"}``."""
        return self.rest_call(
            "POST", PATHS["film_url"], json={"accessNumber": accessNumber, "modality": modality, "hospitalId": hospitalId}
        )

    def image_deletion(self: _Rest, body: bytes) -> Any:
        """An image deletion notice (YB-4.5), the JSON ``{"patientName", "accessionNo", "hospitalId",
        "operateDoctorName", "operateDateTime"}``: ``{"hidden": n}``."""
        return self.rest_call("POST", PATHS["deletions"], content=body)

    def patient_exams(self: _Rest, id_type_code: str, id_no: str, *, timeout: float | None = None) -> Any:
        """The patient's exams with images at other institutions (YB-4.4.3.2): ``{"exams": [...]}``."""
        return self.rest_call("POST", PATHS["patient_exams"], json={"id_type_code": id_type_code, "id_no": id_no}, timeout=timeout)
