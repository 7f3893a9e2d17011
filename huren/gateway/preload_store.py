"""The preload cache's file (XJ-1.3 预加载模式): per patient identity (``id_type_code``,
``id_no``) the recent records and recognizable detail fetched from the platform, the code
reference (catalog codes, the institution's code map) and the decisions taken at the hospital,
in one SQLite file readable by the gateway's user only (0600).

Times: the platform's documents carry naive local times (Asia/Shanghai); the store's clock is the
same kind (``huren.context.Clock``), and its ``time()`` stamps the rows.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from huren.context import Clock
from huren.domain import kinds
from huren.domain.records import format_value
from huren.files import private_sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS patient (
    id_type_code TEXT NOT NULL,
    id_no TEXT NOT NULL,
    fetched_at REAL NOT NULL,
    days INTEGER NOT NULL,
    recent TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (id_type_code, id_no)
);
CREATE TABLE IF NOT EXISTS reference (
    name TEXT PRIMARY KEY,
    fetched_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decision (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    id_type_code TEXT NOT NULL,
    id_no TEXT NOT NULL,
    new_event_no TEXT NOT NULL,
    record TEXT NOT NULL,
    stored_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS decision_patient ON decision (id_type_code, id_no, new_event_no);
"""


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
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("[preload] ttl_seconds 应为正数（秒）")
        self.path = Path(path)
        self.ttl_seconds = float(ttl_seconds)
        self.keep_seconds = float(keep_seconds)
        self.decision_keep_seconds = float(decision_keep_seconds)
        self.clock: TimeSource = clock or Clock()
        private_sqlite(self.path)  # patients' data: the gateway's user only (0600, dir 0700; -wal/-shm follow)
        with self._connect() as conn:
            conn.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            with conn:
                yield conn
        finally:
            conn.close()

    def load(self, id_type_code: str, id_no: str) -> Entry | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT fetched_at, days, recent, detail FROM patient WHERE id_type_code = ? AND id_no = ?",
                (id_type_code, id_no),
            ).fetchone()
        if row is None:
            return None
        return Entry(id_type_code, id_no, float(row[0]), int(row[1]), json.loads(row[2]), json.loads(row[3]))

    def store(self, entry: Entry) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO patient (id_type_code, id_no, fetched_at, days, recent, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    entry.id_type_code,
                    entry.id_no,
                    entry.fetched_at,
                    entry.days,
                    json.dumps(entry.recent, ensure_ascii=False),
                    json.dumps(entry.detail, ensure_ascii=False),
                ),
            )

    def forget(self, id_type_code: str, id_no: str) -> bool:
        with self._connect() as conn:
            n = conn.execute("DELETE FROM patient WHERE id_type_code = ? AND id_no = ?", (id_type_code, id_no)).rowcount
        return n > 0

    def purge(self, older_than: float | None = None) -> int:
        """Delete entries fetched more than ``older_than`` seconds ago (default ``keep_seconds``)
        and decisions older than ``decision_keep_seconds``; the number of entries deleted."""
        now = self.clock.time()
        age = self.keep_seconds if older_than is None else older_than
        with self._connect() as conn:
            n = conn.execute("DELETE FROM patient WHERE fetched_at < ?", (now - age,)).rowcount
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

    def find_report(self, kind: str, report_id: int) -> dict[str, Any] | None:
        """A platform report held in any cached entry's detail (by the platform's report id)."""
        with self._connect() as conn:
            rows = conn.execute("SELECT detail FROM patient").fetchall()
        for (detail,) in rows:
            for m in json.loads(detail).get(f"{kind}master", []):
                if m.get("report_id") == report_id:
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
                cur = conn.execute(
                    "INSERT INTO decision (kind, id_type_code, id_no, new_event_no, record, stored_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (kind, row["id_type_code"], row["id_no"], row.get("new_event_no", ""), json.dumps(row, ensure_ascii=False), now),
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    def remove_decisions(self, ids: Sequence[int]) -> None:
        with self._connect() as conn:
            conn.executemany("DELETE FROM decision WHERE id = ?", [(i,) for i in ids])

    def decisions(self, id_type_code: str, id_no: str, event_no: str = "") -> list[dict[str, Any]]:
        q = "SELECT id, kind, record, stored_at FROM decision WHERE id_type_code = ? AND id_no = ?"
        args: list[Any] = [id_type_code, id_no]
        if event_no:
            q += " AND new_event_no = ?"
            args.append(event_no)
        with self._connect() as conn:
            rows = conn.execute(q + " ORDER BY id", args).fetchall()
        return [
            {"id": r[0], "kind": r[1], "stored_at": format_value(_local(float(r[3]), self.clock))} | json.loads(r[2])
            for r in rows
        ]
