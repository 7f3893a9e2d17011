"""The workstations logged in through the viewing plugin (seed 003 YB-4.4.3.1 ``/hrball/`` type 1),
kept in the gateway's own SQLite file beside its outbox (``yb_sessions.db``, 0600) so that a
restarted gateway still knows them: a doctor's ``swipingIdCardNo`` keeps working after the
gateway's restart, until the login's ``[imaging] session_hours`` are over or the workstation logs
out (type 2).

Sealed at rest like the rest of the gateway's files (``huren.gateway.sealing``): a row is found by
the blind index of its ``hisUserId`` and holds the login (the workstation's address, the doctor's
name, department, codes, the masked ID number, the phone) as one sealed document bound to that
index. The doctor's full ID number is never kept: it is checked at login and only its masked form
(``6501************12``) is logged and stored. Expiry is on the wall clock (``time.time()``; a
monotonic clock does not survive a restart): an expired row answers as logged out and is deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from huren.crypto.aead import FieldCipher, SealError
from huren.files import private_sqlite, sqlite_transaction
from huren.gateway.sealing import Sealer
from huren.gateway.yb_params import Login

FILE_NAME: Final = "yb_sessions.db"
TABLE: Final = "yb_session"
DOMAIN: Final = "yb-session/his-user-id"
SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    uix TEXT PRIMARY KEY,          -- blind index of hisUserId
    expires_at REAL NOT NULL,      -- time.time() when the login is over
    body BLOB NOT NULL             -- the Login, sealed (JSON), bound to uix
);
CREATE INDEX IF NOT EXISTS {TABLE}_expires ON {TABLE} (expires_at);
"""
_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Login))
log = logging.getLogger("huren.gateway.yb_sessions")


class YbSessions:
    """The logged-in workstations (hisUserId → :class:`Login`) in the SQLite file at ``path``,
    sealed with ``cipher`` (the gateway's data keys). ``clock`` is the wall clock (tests move it)."""

    def __init__(self, path: str | os.PathLike[str], cipher: FieldCipher, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.sealer = Sealer(cipher)
        self.clock = clock
        self._lock = threading.Lock()
        private_sqlite(self.path)  # doctors' names and logins: the gateway's user only
        with self._connect() as conn:
            conn.executescript(SCHEMA)

    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return sqlite_transaction(self.path)

    def _uix(self, his_user_id: str) -> str:
        return self.sealer.index(his_user_id, DOMAIN)

    def _seal(self, login: Login, uix: str) -> bytes:
        doc = json.dumps(dataclasses.asdict(login), ensure_ascii=False).encode()
        return self.sealer.seal_json(doc, TABLE, "body", uix)

    def _open(self, body: bytes, uix: str) -> Login:
        doc = json.loads(self.sealer.open_json(body, TABLE, "body", uix))
        return Login(**{name: doc[name] for name in _FIELDS})

    def put(self, login: Login) -> None:
        """Keep the workstation's login (a login again replaces the earlier one); expired rows go."""
        uix = self._uix(login.his_user_id)
        body = self._seal(login, uix)
        with self._lock, self._connect() as conn:
            conn.execute(f"DELETE FROM {TABLE} WHERE expires_at <= ?", (self.clock(),))
            conn.execute(
                f"INSERT INTO {TABLE} (uix, expires_at, body) VALUES (?, ?, ?) "
                "ON CONFLICT (uix) DO UPDATE SET expires_at = excluded.expires_at, body = excluded.body",
                (uix, login.expires, body),
            )

    def _row(self, conn: sqlite3.Connection, his_user_id: str) -> tuple[str, Login] | None:
        uix = self._uix(his_user_id)
        row = conn.execute(f"SELECT expires_at, body FROM {TABLE} WHERE uix = ?", (uix,)).fetchone()
        if row is None:
            return None
        if float(row[0]) <= self.clock():
            conn.execute(f"DELETE FROM {TABLE} WHERE uix = ?", (uix,))
            return None
        try:
            return uix, self._open(row[1], uix)
        except (SealError, ValueError, KeyError, TypeError):
            # not sealed by this gateway's keys for this row (keys replaced, the row moved or damaged):
            # the workstation logs in again
            log.error("工作站登录记录无法打开（数据密钥不匹配或记录已被改动），已删除，需重新登录")
            conn.execute(f"DELETE FROM {TABLE} WHERE uix = ?", (uix,))
            return None

    def get(self, his_user_id: str, client: str) -> Login | None:
        """The workstation's login while it lasts, only for the machine that logged in."""
        with self._lock, self._connect() as conn:
            found = self._row(conn, his_user_id)
        if found is None:
            return None
        login = found[1]
        return login if login.client == client else None

    def end(self, his_user_id: str, client: str) -> bool:
        """End the workstation's login (only from the machine that logged in); whether it was on."""
        with self._lock, self._connect() as conn:
            found = self._row(conn, his_user_id)
            if found is None or found[1].client != client:
                return False
            conn.execute(f"DELETE FROM {TABLE} WHERE uix = ?", (found[0],))
            return True

    def count(self) -> int:
        """The logins not yet over."""
        with self._connect() as conn:
            return int(conn.execute(f"SELECT count(*) FROM {TABLE} WHERE expires_at > ?", (self.clock(),)).fetchone()[0])

    def purge(self) -> int:
        """Delete the logins that are over; how many."""
        with self._lock, self._connect() as conn:
            return int(conn.execute(f"DELETE FROM {TABLE} WHERE expires_at <= ?", (self.clock(),)).rowcount)

    # -- data-key rotation (``huren gateway keys rotate-data``) ---------------------------------
    def reseal_total(self) -> int:
        with self._connect() as conn:
            return int(conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])

    def reseal(self, cipher: FieldCipher, progress: Callable[[int], None] | None = None) -> tuple[int, int]:
        """Seal again under ``cipher``'s active key what an older key sealed; (re-sealed, seen)."""
        self.sealer = Sealer(cipher)
        resealed = seen = 0
        with self._lock, self._connect() as conn:
            for uix, body in conn.execute(f"SELECT uix, body FROM {TABLE}").fetchall():
                seen += 1
                new = self.sealer.reseal(body, TABLE, "body", uix)
                if new is not None:
                    conn.execute(f"UPDATE {TABLE} SET body = ? WHERE uix = ?", (new, uix))
                    resealed += 1
                if progress is not None:
                    progress(seen)
        return resealed, seen


def sessions_path(outbox_path: str | os.PathLike[str]) -> Path:
    """Where the gateway keeps the logins: ``yb_sessions.db`` beside its outbox."""
    return Path(outbox_path).parent / FILE_NAME
