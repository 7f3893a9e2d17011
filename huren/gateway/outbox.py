"""The durable outbox: an SQLite file on the gateway (WAL, ``synchronous=FULL``).

Every record a source yields is written here — with its attachments, and with the source's new
watermark in the same transaction — before anything is uploaded, so a crash loses nothing and
re-reads nothing twice. Records are ``pending`` until the platform accepts them (``done``) or
refuses them (``dead``, with the platform's reason; ``retry_dead`` puts them back). A record is
handed out only when no earlier record with the same key is pending: a void never overtakes its
registration. The platform upserts by key, so sending a record again after a crash is harmless.

The ``report_index`` table remembers every lab / exam report extracted (its audit day, ordering
department and whether it was voided) for the daily counts (XJ-1.2.2.5).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from huren.domain import kinds
from huren.files import private_sqlite
from huren.gateway.model import Record

PENDING, DONE, DEAD = "pending", "done", "dead"
#: Kinds held back until the scheduled push (XJ-1.3.2.5-6).
PUSHED_KINDS = ("accept", "quote", "reminder")  # sent on the push schedule, not as they come
_KEY_FIELDS = ("org_code", "report_form_no", "patient_id", "event_type", "event_no")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS record (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    watermark TEXT NOT NULL DEFAULT '',
    payload BLOB NOT NULL,
    digest BLOB NOT NULL,
    has_att INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS record_key ON record (key, id);
CREATE INDEX IF NOT EXISTS record_pending ON record (id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS record_pending_key ON record (key, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS record_dead ON record (id) WHERE state = 'dead';
CREATE TABLE IF NOT EXISTS attachment (
    record_id INTEGER NOT NULL REFERENCES record (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (record_id, name)
);
CREATE TABLE IF NOT EXISTS source_state (
    name TEXT PRIMARY KEY,
    watermark TEXT NOT NULL DEFAULT '',
    extracted INTEGER NOT NULL DEFAULT 0,
    last_poll REAL,
    last_success REAL,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS report_index (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    day TEXT NOT NULL,
    dept_code TEXT NOT NULL,
    dept_name TEXT NOT NULL,
    dept_std_code TEXT NOT NULL,
    dept_std_name TEXT NOT NULL,
    voided INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS report_index_day ON report_index (day);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

Dedup = Literal["none", "latest", "pending"]


@dataclass(frozen=True, slots=True)
class Item:
    """A pending record handed to the uploader."""

    id: int
    kind: str
    key: str
    source: str
    watermark: str
    payload: bytes  # JSON
    attachments: dict[str, bytes]
    attempts: int

    def record(self) -> Record:
        """The record as the source made it (for a source's ``done`` callback)."""
        return Record(self.kind, self.key, orjson.loads(self.payload), self.source, self.watermark, self.attachments)


def digest(record: Record, payload: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(record.kind.encode())
    h.update(b"\0")
    h.update(payload)
    for name in sorted(record.attachments):
        h.update(b"\0" + name.encode() + b"\0")
        h.update(record.attachments[name])
    return h.digest()


def report_key(kind: str, fields: dict[str, Any]) -> str:
    """``lab:<org>|<report_form_no>|<patient_id>|<event_type>|<event_no>`` from a master or a void filter."""
    return f"{kind}:" + "|".join(str(fields.get(f, "")) for f in _KEY_FIELDS)


class Outbox:
    """One SQLite connection, shared by the gateway's threads under a lock."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        private_sqlite(self.path)  # patients' data: 0600 before SQLite opens it (its -wal/-shm follow)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._conn.execute(sql, params)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    # -- writing ---------------------------------------------------------------------------------
    def write(
        self,
        records: Iterable[Record],
        *,
        source: str | None = None,
        watermark: str | None = None,
        dedup: Dedup = "none",
        meta: dict[str, str] | None = None,
        settled: list[tuple[Record, bool, str]] | None = None,
    ) -> int:
        """Store ``records`` and, in the same transaction, ``source``'s new ``watermark`` and ``meta``.

        ``dedup="latest"`` skips a record identical to the latest one stored for its key (a source
        that yields a row again); ``"pending"`` only one identical to a pending one. A skipped
        record whose twin was already accepted or refused is appended to ``settled`` as (record,
        accepted, reason). Returns the number of records stored."""
        now = time.time()
        stored = 0
        with self._tx() as c:
            for rec in records:
                payload = orjson.dumps(rec.payload)
                dg = digest(rec, payload)
                if dedup != "none":
                    twin = self._duplicate(c, rec.key, rec.kind, dg, dedup)
                    if twin is not None:
                        if twin[0] != PENDING and settled is not None:
                            settled.append((rec, twin[0] == DONE, twin[1] or ""))
                        continue
                cur = c.execute(
                    "INSERT INTO record (kind, key, source, watermark, payload, digest, has_att, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (rec.kind, rec.key, rec.source, rec.watermark, payload, dg, 1 if rec.attachments else 0, now, now),
                )
                if rec.attachments:
                    c.executemany(
                        "INSERT INTO attachment (record_id, name, data) VALUES (?, ?, ?)",
                        [(cur.lastrowid, n, d) for n, d in rec.attachments.items()],
                    )
                _index(c, rec)
                stored += 1
            if source is not None:
                c.execute("INSERT OR IGNORE INTO source_state (name) VALUES (?)", (source,))
                c.execute(
                    "UPDATE source_state SET extracted = extracted + ?, last_poll = ? WHERE name = ?",
                    (stored, now, source),
                )
                if watermark:
                    c.execute("UPDATE source_state SET watermark = ? WHERE name = ?", (watermark, source))
            for name, value in (meta or {}).items():
                c.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))
        return stored

    def enqueue(self, records: Iterable[Record]) -> int:
        """Store records made on the gateway itself (accept / quote decisions taken locally, …)."""
        return self.write(records)

    @staticmethod
    def _duplicate(c: sqlite3.Connection, key: str, kind: str, dg: bytes, dedup: Dedup) -> tuple[str, str | None] | None:
        """(state, error) of the stored twin of a record, if there is one."""
        if dedup == "latest":
            row = c.execute(
                "SELECT kind, digest, state, error FROM record WHERE key = ? ORDER BY id DESC LIMIT 1", (key,)
            ).fetchone()
            return (row[2], row[3]) if row is not None and row[0] == kind and row[1] == dg else None
        row = c.execute(
            "SELECT 1 FROM record WHERE key = ? AND state = 'pending' AND kind = ? AND digest = ? LIMIT 1", (key, kind, dg)
        ).fetchone()
        return (PENDING, None) if row is not None else None

    def source_polled(self, source: str, *, ok: bool, error: str = "") -> None:
        """Note the end of a poll: success, or one more consecutive failure with its message."""
        now = time.time()
        with self._tx() as c:
            c.execute("INSERT OR IGNORE INTO source_state (name) VALUES (?)", (source,))
            if ok:
                c.execute(
                    "UPDATE source_state SET last_poll = ?, last_success = ?, failures = 0, last_error = NULL WHERE name = ?",
                    (now, now, source),
                )
            else:
                c.execute(
                    "UPDATE source_state SET last_poll = ?, failures = failures + 1, last_error = ? WHERE name = ?",
                    (now, error, source),
                )

    # -- draining --------------------------------------------------------------------------------
    def next_batch(self, kinds: Sequence[str], limit: int, exclude: Sequence[int] = ()) -> list[Item]:
        """Up to ``limit`` pending records of ``kinds``, oldest first, each the earliest pending
        record of its key (so at most one per key), leaving out the ids in ``exclude``."""
        marks = ",".join("?" * len(kinds))
        skip = f" AND r.id NOT IN ({','.join('?' * len(exclude))})" if exclude else ""
        sql = (
            "SELECT r.id, r.kind, r.key, r.source, r.watermark, r.payload, r.has_att, r.attempts FROM record r"
            f" WHERE r.state = 'pending' AND r.kind IN ({marks}){skip}"
            " AND NOT EXISTS (SELECT 1 FROM record p WHERE p.state = 'pending' AND p.key = r.key AND p.id < r.id)"
            " ORDER BY r.id LIMIT ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, (*kinds, *exclude, limit)).fetchall()
            atts: dict[int, dict[str, bytes]] = {}
            with_att = [r[0] for r in rows if r[6]]
            if with_att:
                q = f"SELECT record_id, name, data FROM attachment WHERE record_id IN ({','.join('?' * len(with_att))})"
                for rid, name, data in self._conn.execute(q, with_att):
                    atts.setdefault(rid, {})[name] = data
        return [Item(r[0], r[1], r[2], r[3], r[4], r[5], atts.get(r[0], {}), r[7]) for r in rows]

    def settle(
        self,
        done: Sequence[int] = (),
        dead: dict[int, str] | None = None,
        failed: dict[int, str] | None = None,
        meta: dict[str, str] | None = None,
    ) -> None:
        """Record an upload's outcome in one transaction: accepted, refused (with the reason),
        or not delivered (the attempt counted, the error kept; the record stays pending)."""
        now = time.time()
        with self._tx() as c:
            if done:
                c.executemany(
                    "UPDATE record SET state = 'done', error = NULL, attempts = attempts + 1, updated_at = ? WHERE id = ?",
                    [(now, i) for i in done],
                )
                # the platform has the attachments now: do not keep a second copy of every PDF
                c.executemany("DELETE FROM attachment WHERE record_id = ?", [(i,) for i in done])
            if dead:
                c.executemany(
                    "UPDATE record SET state = 'dead', error = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
                    [(why, now, i) for i, why in dead.items()],
                )
            if failed:
                c.executemany(
                    "UPDATE record SET error = ?, attempts = attempts + 1, updated_at = ? WHERE id = ? AND state = 'pending'",
                    [(why, now, i) for i, why in failed.items()],
                )
            for name, value in (meta or {}).items():
                c.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def retry_dead(self, ids: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
        """Put dead records (``ids``, or all when ``None``) back to pending; they keep their place.
        A dead record is not retried when a later record with the same key was already accepted
        (it would overwrite newer data): those are returned second."""
        with self._tx() as c:
            if ids is None:
                rows = c.execute("SELECT id, key FROM record WHERE state = 'dead' ORDER BY id").fetchall()
            else:
                marks = ",".join("?" * len(ids))
                rows = c.execute(
                    f"SELECT id, key FROM record WHERE state = 'dead' AND id IN ({marks}) ORDER BY id", list(ids)
                ).fetchall() if ids else []
            retried, superseded = [], []
            now = time.time()
            for rid, key in rows:
                later = c.execute(
                    "SELECT 1 FROM record WHERE key = ? AND id > ? AND state = 'done' LIMIT 1", (key, rid)
                ).fetchone()
                if later:
                    superseded.append(rid)
                    continue
                c.execute("UPDATE record SET state = 'pending', attempts = 0, updated_at = ? WHERE id = ?", (now, rid))
                retried.append(rid)
        return retried, superseded

    def prune(self, before: float, *, index_before_day: str = "") -> int:
        """Forget accepted records last touched before ``before`` (epoch seconds), except where a
        dead record of the same key still needs them; and report-index days before ``index_before_day``."""
        with self._tx() as c:
            n = c.execute(
                "DELETE FROM record WHERE state = 'done' AND updated_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM record d WHERE d.key = record.key AND d.state = 'dead')",
                (before,),
            ).rowcount
            if index_before_day:
                c.execute("DELETE FROM report_index WHERE day < ?", (index_before_day,))
        return int(n)

    # -- reading ---------------------------------------------------------------------------------
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
        return self._rows(
            "SELECT id, kind, key, source, attempts, error, updated_at FROM record WHERE state = 'dead' ORDER BY id LIMIT ?",
            (limit,),
        )

    def daily_rows(self, day: str) -> list[dict[str, Any]]:
        """Reports extracted whose audit day is ``day`` and not voided, per ordering department."""
        return self._rows(
            "SELECT dept_code, max(dept_name) AS dept_name, max(dept_std_code) AS dept_std_code,"
            " max(dept_std_name) AS dept_std_name, sum(kind = 'lab') AS lab_num, sum(kind = 'exam') AS exam_num"
            " FROM report_index WHERE day = ? AND voided = 0 GROUP BY dept_code ORDER BY dept_code",
            (day,),
        )


def _index(c: sqlite3.Connection, rec: Record) -> None:
    """Keep ``report_index`` up to date for the daily counts."""
    if rec.kind in kinds.BY_NAME:
        master = rec.payload.get(kinds.BY_NAME[rec.kind].master_node)
        if not isinstance(master, dict):
            return
        c.execute(
            "INSERT OR REPLACE INTO report_index (key, kind, day, dept_code, dept_name, dept_std_code, dept_std_name, voided)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
            (
                report_key(rec.kind, master),
                rec.kind,
                str(master.get("authenticator_dtime") or "")[:10],
                str(master.get("participant_dept_code") or ""),
                str(master.get("participant_dept_name") or ""),
                str(master.get("participant_dept_std_code") or ""),
                str(master.get("participant_dept_std_name") or ""),
            ),
        )
    elif rec.kind in ("void_lab", "void_exam"):
        kind = rec.kind.removeprefix("void_")
        c.execute("UPDATE report_index SET voided = 1 WHERE key = ?", (report_key(kind, rec.payload),))


def enqueue(path: str | Path, records: Iterable[Record]) -> int:
    """Store records in the outbox at ``path`` from another process (opens, writes, closes)."""
    with Outbox(path) as box:
        return box.enqueue(records)
