"""What the AE knows about one association: the institution behind the calling AE title, the
studies it pushed, the bytes of the C-STORE being received, the storage-commitment reports owed."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from huren.context import Principal

if TYPE_CHECKING:
    from pynetdicom.association import Association

    from huren.services.imaging import Sender


@dataclass
class Session:
    calling_ae: str
    host: str
    org_code: str
    sender: Sender
    reader: Principal
    #: studies that received an instance on this association (made durable at release)
    studies: set[str] = field(default_factory=set)
    #: P-DATA bytes received since the last C-STORE was handled (bounds one instance)
    receiving: int = 0
    #: storage-commitment reports to send once the N-ACTION response is out
    reports: list[object] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Sessions:
    """Sessions by association (weakly: a finished association takes its session with it)."""

    def __init__(self) -> None:
        self._by_assoc: weakref.WeakKeyDictionary[Association, Session] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def put(self, assoc: Association, session: Session) -> None:
        with self._lock:
            self._by_assoc[assoc] = session

    def get(self, assoc: Association) -> Session | None:
        with self._lock:
            return self._by_assoc.get(assoc)

    def pop(self, assoc: Association) -> Session | None:
        with self._lock:
            return self._by_assoc.pop(assoc, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_assoc)
