"""Writes the access log: every read of a patient's data (who, what, when, from where)."""

from __future__ import annotations

from huren.services.context import Clock, Principal
from huren.store import audit
from huren.store.database import Database


class AuditService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def record(
        self,
        principal: Principal,
        action: str,
        *,
        id_type_code: str | None = None,
        id_no: str | None = None,
        target: str | None = None,
    ) -> None:
        with self._db.write() as conn:
            audit.log_access(
                conn,
                {
                    "at": self._clock.now(),
                    "org_code": principal.org_code,
                    "username": principal.username,
                    "action": action,
                    "id_type_code": id_type_code,
                    "id_no": id_no,
                    "target": target,
                    "remote_addr": principal.remote_addr,
                },
            )
