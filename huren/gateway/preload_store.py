"""The preload cache's file (XJ-1.3 预加载模式): per patient identity (``id_type_code``,
``id_no``) the recent records and recognizable detail fetched from the platform, the code
reference (catalog codes, the institution's code map) and the decisions taken at the hospital,
in one SQLite file readable by the gateway's user only (0600).

Sealed at rest (``huren.gateway.sealing``): a patient's entry is found by the blind index of
their identity (``patient.pix``) and its answers are one sealed document (the identity, the
recent list, the detail) bound to that index; a kept decision's row is sealed likewise and found
by the patient's and the visit's blind indexes; ``report`` maps a platform report id (an opaque
text) to the entry holding it. The code reference (catalog codes, code maps) holds no patient
data and stays clear. A cache written by an older version is converted when opened
(``preload_seal``): the cache can be refetched, but it also answers while the platform is down
and holds the decisions, so nothing is dropped.

Times: the platform's documents carry naive local times (Asia/Shanghai); the store's clock is the
same kind (``huren.context.Clock``), and its ``time()`` stamps the rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from huren.context import Clock
from huren.crypto.aead import FieldCipher
from huren.domain import kinds
from huren.domain.records import format_value
from huren.files import private_sqlite, sqlite_transaction
from huren.gateway import preload_seal
from huren.gateway.preload_seal import DECISION, PATIENT, SCHEMA
from huren.gateway.sealing import Sealer, cipher_beside


class TimeSource(Protocol):
    def time(self) -> float: ...

    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """One patient's cached answers."""

    id_type_code: str
    id_no: str
    fetched_at: float  # the clock's time() when fetched
    days: int
    recent: list[dict[str, Any]]
    detail: dict[str, list[dict[str, Any]]]
    stale: bool = False  # answered past its freshness because the platform could not be reached
    source: str = "cache"  # "platform" when fetched for this question

    def fetched_text(self, clock: TimeSource) -> str:
        return format_value(_local(self.fetched_at, clock))


def _local(ts: float, clock: TimeSource) -> datetime:
    """A timestamp of the clock's time() as the clock's naive local time."""
    return clock.now() - timedelta(seconds=round(clock.time() - ts))



class PreloadStore:
    """The cache's SQLite file: patients' entries, the code reference, kept decisions. Entries
    older than ``keep_seconds`` and decisions older than ``decision_keep_seconds`` are purged."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl_seconds: float = 600.0,
        keep_seconds: float = 86400.0,
        decision_keep_seconds: float = 30 * 86400.0,
        clock: TimeSource | None = None,
        cipher: FieldCipher | None = None,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("[preload] ttl_seconds 应为正数（秒）")
        self.path = Path(path)
        self.ttl_seconds = float(ttl_seconds)
        self.keep_seconds = float(keep_seconds)
        self.decision_keep_seconds = float(decision_keep_seconds)
        self.clock: TimeSource = clock or Clock()
        private_sqlite(self.path)  # patients' data: the gateway's user only (0600, dir 0700; -wal/-shm follow)
        # the data keys: the gateway's (beside the outbox) when handed in, else beside this file
        self.sealer = Sealer(cipher if cipher is not None else cipher_beside(self.path))
        with self._connect() as conn:
            preload_seal.rename_clear(conn)
            conn.executescript(SCHEMA)
        self.converted = preload_seal.convert(self._connect, self.sealer)

    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return sqlite_transaction(self.path)

    def _pix(self, id_type_code: str, id_no: str) -> str:
        return self.sealer.index(f"{id_type_code}|{id_no}", preload_seal.PATIENT_DOMAIN)

    def load(self, id_type_code: str, id_no: str) -> Entry | None:
        pix = self._pix(id_type_code, id_no)
        with self._connect() as conn:
            row = conn.execute("SELECT fetched_at, days, body FROM patient WHERE pix = ?", (pix,)).fetchone()
        if row is None:
            return None
        doc = json.loads(self.sealer.open_json(row[2], PATIENT, "body", pix))
        return Entry(id_type_code, id_no, float(row[0]), int(row[1]), doc["recent"], doc["detail"])

    def store(self, entry: Entry) -> None:
        pix = self._pix(entry.id_type_code, entry.id_no)
        doc = {"id_type_code": entry.id_type_code, "id_no": entry.id_no, "recent": entry.recent, "detail": entry.detail}
        body = self.sealer.seal_json(json.dumps(doc, ensure_ascii=False).encode(), PATIENT, "body", pix)
        with self._connect() as conn:
            preload_seal.put_entry(conn, pix, entry.fetched_at, entry.days, body, entry.detail)

    def forget(self, id_type_code: str, id_no: str) -> bool:
        pix = self._pix(id_type_code, id_no)
        with self._connect() as conn:
            n = conn.execute("DELETE FROM patient WHERE pix = ?", (pix,)).rowcount
            conn.execute("DELETE FROM report WHERE pix = ?", (pix,))
        return n > 0

    def purge(self, older_than: float | None = None) -> int:
        """Delete entries fetched more than ``older_than`` seconds ago (default ``keep_seconds``)
        and decisions older than ``decision_keep_seconds``; the number of entries deleted."""
        now = self.clock.time()
        age = self.keep_seconds if older_than is None else older_than
        with self._connect() as conn:
            n = conn.execute("DELETE FROM patient WHERE fetched_at < ?", (now - age,)).rowcount
            conn.execute("DELETE FROM report WHERE pix NOT IN (SELECT pix FROM patient)")
            conn.execute("DELETE FROM decision WHERE stored_at < ?", (now - self.decision_keep_seconds,))
        return int(n)

    def stats(self) -> dict[str, Any]:
        now = self.clock.time()
        with self._connect() as conn:
            total, fresh = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(fetched_at >= ?), 0) FROM patient", (now - self.ttl_seconds,)
            ).fetchone()
            decisions = conn.execute("SELECT COUNT(*) FROM decision").fetchone()[0]
        return {"patients": int(total), "fresh": int(fresh), "decisions": int(decisions)}

    def is_fresh(self, entry: Entry) -> bool:
        return self.clock.time() - entry.fetched_at < self.ttl_seconds

    def find_report(self, kind: str, report_id: str) -> dict[str, Any] | None:
        """A platform report held in any cached entry's detail (by the platform's report id, an
        opaque text: compared as text, never as a number)."""
        rid = str(report_id)
        with self._connect() as conn:
            row = conn.execute(
                "SELECT p.pix, p.body FROM report r JOIN patient p ON p.pix = r.pix WHERE r.kind = ? AND r.report_id = ?",
                (kind, rid),
            ).fetchone()
        if row is None:
            return None
        doc = json.loads(self.sealer.open_json(row[1], PATIENT, "body", row[0]))
        for m in doc["detail"].get(kinds.BY_NAME[kind].master_node, []) if kind in kinds.BY_NAME else []:
            if str(m.get("report_id")) == rid:
                return dict(m)
        return None

    def report_items(self, entry: Entry | None, kind: str, org_code: str, report_form_no: str) -> set[str] | None:
        """The item codes of a cached report (by institution and form number), or None when the
        entry does not hold it (then nothing is known locally about it)."""
        if entry is None:
            return None
        k = kinds.BY_NAME[kind]
        code_key = k.item_code_field
        for m in entry.detail.get(k.master_node, []):
            if m.get("org_code") == org_code and m.get("report_form_no") == report_form_no:
                return {str(i.get(code_key, "")) for i in m.get("item", [])}
        return None

    # -- the code reference ------------------------------------------------------------------
    def _ref_load(self, name: str) -> tuple[float, Any] | None:
        with self._connect() as conn:
            row = conn.execute("SELECT fetched_at, body FROM reference WHERE name = ?", (name,)).fetchone()
        return (float(row[0]), json.loads(row[1])) if row else None

    def _ref_save(self, name: str, body: Any) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO reference (name, fetched_at, body) VALUES (?, ?, ?)",
                (name, self.clock.time(), json.dumps(body, ensure_ascii=False)),
            )

    # -- decisions taken at the hospital -----------------------------------------------------
    def add_decisions(self, kind: str, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Keep validated accept / quote rows (their seed text form); their ids."""
        now = self.clock.time()
        ids = []
        with self._connect() as conn:
            for row in rows:
                pix, eix = self._pix(row["id_type_code"], row["id_no"]), self._eix(row.get("new_event_no", ""))
                record = self.sealer.seal(json.dumps(row, ensure_ascii=False).encode(), DECISION, "record", pix)
                cur = conn.execute(
                    "INSERT INTO decision (kind, pix, eix, record, stored_at) VALUES (?, ?, ?, ?, ?)", (kind, pix, eix, record, now)
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    def _eix(self, event_no: str) -> str:
        return self.sealer.index(event_no, preload_seal.EVENT_DOMAIN)

    def remove_decisions(self, ids: Sequence[int]) -> None:
        with self._connect() as conn:
            conn.executemany("DELETE FROM decision WHERE id = ?", [(i,) for i in ids])

    def decisions(self, id_type_code: str, id_no: str, event_no: str = "") -> list[dict[str, Any]]:
        pix = self._pix(id_type_code, id_no)
        q = "SELECT id, kind, record, stored_at FROM decision WHERE pix = ?"
        args: list[Any] = [pix]
        if event_no:
            q += " AND eix = ?"
            args.append(self._eix(event_no))
        with self._connect() as conn:
            rows = conn.execute(q + " ORDER BY id", args).fetchall()
        return [
            {"id": r[0], "kind": r[1], "stored_at": format_value(_local(float(r[3]), self.clock))}
            | json.loads(self.sealer.open(r[2], DECISION, "record", pix))
            for r in rows
        ]

    # -- keys --------------------------------------------------------------------------------
    def reseal_total(self) -> int:
        """The rows :meth:`reseal` walks (for its progress bar)."""
        with self._connect() as conn:
            return int(conn.execute("SELECT (SELECT count(*) FROM patient) + (SELECT count(*) FROM decision)").fetchone()[0])

    def reseal(self, cipher: FieldCipher, progress: Callable[[int], None] | None = None) -> tuple[int, int]:
        """Seal again under ``cipher``'s active key what an older key sealed (after a rotation),
        in batches; (rows re-sealed, rows seen). Run again after an interruption."""
        self.sealer = Sealer(cipher)
        return preload_seal.reseal(self._connect, self.sealer, progress)
