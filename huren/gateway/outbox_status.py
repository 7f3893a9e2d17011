"""The outbox read for ``huren gateway status`` and the daily counts: watermarks, queue depth per
source and state, the dead letters (their keys and reasons opened), the report index's day.
What :class:`huren.gateway.outbox.Outbox` answers besides queueing and draining."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from huren.gateway import report_index as rindex
from huren.gateway.outbox_seal import REC
from huren.gateway.sealing import Sealer

PENDING, DONE, DEAD = "pending", "done", "dead"


class QueueReads:
    """The read side of the outbox (a base of ``Outbox``, over its connection and lock)."""

    _conn: sqlite3.Connection
    _lock: threading.RLock
    sealer: Sealer

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._conn.execute(sql, params)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def watermark(self, source: str) -> str:
        with self._lock:
            row = self._conn.execute("SELECT watermark FROM source_state WHERE name = ?", (source,)).fetchone()
        return str(row[0]) if row else ""

    def meta(self, name: str, default: str = "") -> str:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else default

    def pending(self, kinds: Sequence[str] | None = None) -> int:
        sql = "SELECT count(*) FROM record WHERE state = 'pending'"
        params: tuple[str, ...] = ()
        if kinds is not None:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            params = tuple(kinds)
        with self._lock:
            return int(self._conn.execute(sql, params).fetchone()[0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute("SELECT state, count(*) FROM record GROUP BY state").fetchall()
        return {PENDING: 0, DONE: 0, DEAD: 0} | {str(s): int(n) for s, n in rows}

    def stats(self) -> dict[str, Any]:
        """Per source: watermark, queue depth, last success, failures, dead letters; and totals."""
        states = self._rows(
            "SELECT source, state, count(*) AS n, sum(attempts > 0) AS retried, min(created_at) AS oldest"
            " FROM record GROUP BY source, state"
        )
        sources: dict[str, dict[str, Any]] = {}
        for s in self._rows("SELECT * FROM source_state ORDER BY name"):
            sources[s["name"]] = {
                "watermark": s["watermark"],
                "extracted": s["extracted"],
                "last_poll": s["last_poll"],
                "last_success": s["last_success"],
                "poll_failures": s["failures"],
                "last_error": s["last_error"],
            }
        for r in states:
            entry = sources.setdefault(r["source"], {"watermark": "", "poll_failures": 0})
            entry.setdefault("pending", 0)
            entry.setdefault("done", 0)
            entry.setdefault("dead", 0)
            entry[r["state"]] = r["n"]
            if r["state"] == PENDING:
                entry["upload_failures"] = r["retried"] or 0
                entry["oldest_pending"] = r["oldest"]
        for entry in sources.values():
            for k in ("pending", "done", "dead", "upload_failures"):
                entry.setdefault(k, 0)
        meta = {r["name"]: r["value"] for r in self._rows("SELECT name, value FROM meta")}
        return {"totals": self.counts(), "sources": sources, "meta": meta}

    def dead(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT id, kind, payload AS key, source, attempts, error, updated_at FROM record WHERE state = 'dead'"
            " ORDER BY id LIMIT ?",
            (limit,),
        )
        for r in rows:
            row = str(r["id"])
            r["key"] = self.sealer.open_keyed(r["key"], REC, "payload", row)[0]
            r["error"] = self.sealer.open_text(r["error"], REC, "error", row)
        return rows

    def daily_rows(self, day: str) -> list[dict[str, Any]]:
        """Reports extracted whose audit day is ``day`` and not voided, per ordering department."""
        return self._rows(rindex.DAILY_SQL, (day,))

