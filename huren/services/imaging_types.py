"""The values the image archive's callers pass and get back (``huren.services.imaging``): who
pushes (:class:`Sender`), who reads (a Principal or a :class:`KeyGrant`), what is stored, committed
and streamed, and the keys issued and checked."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from huren.context import Clock, Principal
from huren.domain import imaging
from huren.errors import InvalidInput, NotFound, Problem

MAX_LIMIT = 1000
#: the query keys matched at the study level (the others are the series' or instances' own)
STUDY_KEYS = frozenset({
    "PatientID", "PatientName", "StudyInstanceUID", "AccessionNumber", "StudyDate", "ModalitiesInStudy",
    "StudyDescription", "ReferringPhysicianName", "StudyID", "PatientSex", "PatientBirthDate",
})


@dataclass(frozen=True, slots=True)
class Sender:
    """Who pushes instances: the institution they are stored for, the actor, the channel."""

    org_code: str
    actor: str  # "dimse:<calling AE>@<ip>" / "stow:<org>/<user>" / "gateway:<org>"
    channel: str  # "dimse" | "stow" | "gateway"


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """A verified viewer / download / film key: read access to ONE study."""

    key_id: int
    kind: str
    study_uid: str
    viewer_org: str | None
    issued_by: str
    expires_at: datetime


Reader = Principal | KeyGrant


@dataclass(frozen=True, slots=True)
class StoredInstance:
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    size: int
    sha256: str
    duplicate: bool


@dataclass(slots=True)
class CommitResult:
    study_uid: str
    committed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (sop uid, "missing" | "sha256")
    state: str = imaging.RECEIVING  # the study's state after the commit ("" for instances not held)


@dataclass(frozen=True, slots=True)
class InstanceFile:
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    size: int
    sha256: str
    number_of_frames: int
    chunks: Callable[[], Iterator[bytes]]  # the stored bytes, byte-exact, streamed (each call anew)


def not_found(what: str = "检查") -> NotFound:
    msg = f"未找到该{what}的影像（不存在或无权查看）"
    return NotFound(msg, [Problem("StudyInstanceUID", "not_found", msg)])


class Once:
    """In-process memory of what was logged: (who, study, action) → when (bounded)."""

    def __init__(self, clock: Clock, seconds: float, cap: int = 50_000) -> None:
        self._clock, self._seconds, self._cap = clock, seconds, cap
        self._seen: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def first(self, key: tuple[str, str, str]) -> bool:
        now = self._clock.time()
        with self._lock:
            at = self._seen.get(key)
            if at is not None and now - at < self._seconds:
                return False
            if len(self._seen) >= self._cap:
                self._seen = {k: t for k, t in self._seen.items() if now - t < self._seconds}
                if len(self._seen) >= self._cap:
                    self._seen.clear()
            self._seen[key] = now
            return True

    def forget(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._seen.pop(key, None)

    def run(self, key: tuple[str, str, str], write: Callable[[], None]) -> None:
        """``write()`` (an access-log row) once per window for ``key``. A write that fails (the rate
        limit refused it, the database is down) leaves the key unmarked: the read it belongs to fails
        with it, and the next read of the window is checked and logged again."""
        if self.first(key):
            self.guard(key, write)

    def guard(self, key: tuple[str, str, str], write: Callable[[], None]) -> None:
        """``write()`` for a key :meth:`first` has just marked; unmarked again if it fails."""
        try:
            write()
        except BaseException:
            self.forget(key)
            raise



@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: str  # 22 characters (16 random bytes, base64url): shown once, only its SHA-256 is kept
    key_id: int
    kind: str
    study_uid: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class KeyCheck:
    valid: bool
    reason: str | None  # 不存在 / 已过期 / 已撤销 / 类型不符
    grant: KeyGrant | None
    study_uid: str | None
    viewer_org: str | None
    exam: dict[str, Any] | None


def bounds(limit: int, offset: int, cap: int = MAX_LIMIT) -> tuple[int, int]:
    if not 0 < limit <= cap or offset < 0 or offset > 10**7:
        msg = f"limit 必须在 1–{cap} 之间，offset 不能为负"
        raise InvalidInput(msg, [Problem("limit", "range", msg)])
    return limit, offset
