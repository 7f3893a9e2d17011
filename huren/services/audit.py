"""Writes the access log: every read of a patient's data (who, what, when, from where), and
holds each account to a read rate (reads of patient data per minute, XC-P1 / issue 10 §1.11).

A read counts once per operation (a list of 100 patients is one read), when it names a patient
(or says it is a patient read); at the limit the read is refused (``TooMany``, 429) instead of
logged, and the refusal is logged once per window (action ``read_rate_limited``). The counts are
per process: with N workers an account may read up to N × the limit.

The patient's ID number is sealed in every row written (``huren.store.audit``: an SM4-GCM
envelope and a blind index), with the field cipher of the keyring; :meth:`AuditService.history`
reads the log by patient.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from huren.context import Clock, Principal
from huren.crypto.aead import FieldCipher
from huren.errors import Problem, TooMany
from huren.store import audit
from huren.store.database import Database

WINDOW = 60.0  # seconds
RATE_LIMITED = "read_rate_limited"
#: the system account of a hospital (HIS, gateway) reads for many doctors at once; a platform's
#: account (federation) reads its platform's feed and files for a whole city, a round every few
#: hundred milliseconds under a steady load — never a person's 120 reads a minute
SYSTEM_ROLES = ("hospital", "platform")

Entry = tuple[str | None, str | None, str | None]


class ReadLimiter:
    """Reads of patient data per account in the last minute (a sliding window, per process)."""

    def __init__(self, clock: Clock, per_minute: int, system_per_minute: int = 0) -> None:
        self._clock = clock
        self.per_minute = per_minute
        self.system_per_minute = system_per_minute
        self._reads: dict[tuple[str, str], deque[float]] = {}
        self._logged: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def limit(self, principal: Principal) -> int:
        return self.system_per_minute if principal.role in SYSTEM_ROLES else self.per_minute

    def take(self, principal: Principal) -> tuple[bool, int, bool]:
        """Count one read: (allowed, seconds until one is free, log this refusal)."""
        limit = self.limit(principal)
        if limit <= 0:
            return True, 0, False
        now = self._clock.time()
        key = (principal.org_code, principal.username)
        with self._lock:
            q = self._reads.setdefault(key, deque())
            while q and q[0] <= now - WINDOW:
                q.popleft()
            if len(q) < limit:
                q.append(now)
                return True, 0, False
            wait = max(1, int(q[0] + WINDOW - now + 0.999))
            first = self._logged.get(key, -1e18) <= now - WINDOW
            if first:
                self._logged[key] = now
            return False, wait, first


class AuditService:
    def __init__(
        self, db: Database, clock: Clock, *, read_per_minute: int = 0, system_read_per_minute: int = 0,
        fields: FieldCipher | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._fields = fields
        self.limiter = ReadLimiter(clock, read_per_minute, system_read_per_minute)

    def record(
        self,
        principal: Principal,
        action: str,
        *,
        id_type_code: str | None = None,
        id_no: str | None = None,
        target: str | None = None,
        read: bool | None = None,
    ) -> None:
        self.record_many(principal, action, [(id_type_code, id_no, target)], read=read)

    def record_many(self, principal: Principal, action: str, entries: Sequence[Entry], *, read: bool | None = None) -> None:
        """One access-log row per (id_type_code, id_no, target), in one transaction.

        ``read``: whether this is a read of patient data (held to the read rate); by default,
        when an entry names a patient. TooMany when the account is over its rate."""
        if not entries:
            return
        if read is None:
            read = any(n for _, n, _ in entries)
        if read:
            self.check_rate(principal, action)
        with self._db.write(durable=False) as conn:  # a log row: synced with the next durable commit
            audit.log_access_many(conn, self.rows(principal, action, entries, read=False))

    def rows(
        self, principal: Principal, action: str, entries: Sequence[Entry], *, read: bool | None = None
    ) -> list[dict[str, Any]]:
        """Access-log rows, for a service that writes them in its own transaction (held to the
        read rate as :meth:`record_many`; a refusal is then logged once that transaction is over)."""
        if read is None:
            read = any(n for _, n, _ in entries)
        if read:
            self.check_rate(principal, action, in_transaction=True)
        now = self._clock.now()
        out = []
        for t, n, tg in entries:
            sealed, bidx = audit.sealed_id(self.fields, n) if n is not None else (None, None)
            out.append(
                {
                    "at": now,
                    "org_code": principal.org_code,
                    "username": principal.username,
                    "action": action,
                    "id_type_code": t,
                    "id_no": sealed,
                    "id_no_bidx": bidx,
                    "target": tg,
                    "remote_addr": principal.remote_addr,
                }
            )
        return out

    @property
    def fields(self) -> FieldCipher:
        """The field cipher sealing ID numbers (an AuditService without one writes no patient)."""
        if self._fields is None:
            raise RuntimeError("this AuditService has no field cipher: it cannot log a read of patient data")
        return self._fields

    def history(
        self, *, id_type_code: str | None = None, id_no: str | None = None, since: datetime | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Access-log rows, newest first, ID numbers opened (by patient: through the blind index)."""
        with self._db.read() as conn:
            return audit.list_access(conn, self.fields, id_type_code=id_type_code, id_no=id_no, since=since, limit=limit)

    def check_rate(self, principal: Principal, action: str, *, in_transaction: bool = False) -> None:
        """Count one read of patient data by ``principal``; TooMany (logged) over the limit.

        ``in_transaction``: the caller holds a write transaction (on SQLite, the one write lock),
        so the refusal is logged from another thread once it is released."""
        ok, wait, log = self.limiter.take(principal)
        if ok:
            return
        limit = self.limiter.limit(principal)
        if log:
            row = {
                "at": self._clock.now(),
                "org_code": principal.org_code,
                "username": principal.username,
                "action": RATE_LIMITED,
                "id_type_code": None,
                "id_no": None,
                "id_no_bidx": None,
                "target": f"{action}: over {limit} reads/min",
                "remote_addr": principal.remote_addr,
            }
            if in_transaction:
                threading.Thread(target=self._write, args=([row],), name="huren-audit", daemon=True).start()
            else:
                self._write([row])
        raise TooMany(
            f"查询过于频繁：每个账号每分钟最多读取 {limit} 次患者数据，请 {wait} 秒后再试",
            [Problem("account", "read_rate", f"账号 {principal.actor} 已超过每分钟 {limit} 次的患者数据读取上限")],
            retry_after=wait,
        )

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self._db.write(durable=False) as conn:
            audit.log_access_many(conn, rows)
