"""Writes the access log: every read of a patient's data (who, what, when, from where)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from huren.context import Clock, Principal
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
        self.record_many(principal, action, [(id_type_code, id_no, target)])

    def record_many(
        self, principal: Principal, action: str, entries: Sequence[tuple[str | None, str | None, str | None]]
    ) -> None:
        """One access-log row per (id_type_code, id_no, target), in one transaction."""
        if not entries:
            return
        with self._db.write() as conn:
            audit.log_access_many(conn, self.rows(principal, action, entries))

    def rows(
        self, principal: Principal, action: str, entries: Sequence[tuple[str | None, str | None, str | None]]
    ) -> list[dict[str, Any]]:
        """Access-log rows, for a service that writes them in its own transaction."""
        now = self._clock.now()
        return [
            {
                "at": now,
                "org_code": principal.org_code,
                "username": principal.username,
                "action": action,
                "id_type_code": t,
                "id_no": n,
                "target": tg,
                "remote_addr": principal.remote_addr,
            }
            for t, n, tg in entries
        ]
