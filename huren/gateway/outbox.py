"""The durable outbox: an SQLite file on the gateway (WAL, ``synchronous=FULL``).

Every record a source yields is written here — with its attachments, and with the source's new
watermark in the same transaction — before anything is uploaded, so a crash loses nothing and
re-reads nothing twice. Records are ``pending`` until the platform accepts them (``done``) or
refuses them (``dead``, with the platform's reason; ``retry_dead`` puts them back). A record is
handed out only when no earlier record with the same key is pending: a void never overtakes its
registration. The platform upserts by key, so sending a record again after a crash is harmless.

Patients' data is sealed at rest (``huren.gateway.sealing``; the conversion of an older clear
outbox and the re-sealing after a key rotation are ``outbox_seal``'s): a record's key and payload
(one envelope), the platform's reason and the attachments are envelopes bound to their table,
column and row id; the ``key`` column, by which records are ordered and deduplicated, holds the
key's blind index, and the digest is keyed. The ``report_index`` table (``report_index``)
remembers every lab / exam report extracted for the daily counts.
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
from typing import Literal

import orjson

from huren.crypto.aead import FieldCipher
from huren.files import private_sqlite
from huren.gateway import outbox_seal
from huren.gateway import report_index as rindex
from huren.gateway.model import Record
from huren.gateway.outbox_seal import ATT, REC
from huren.gateway.outbox_status import DEAD, DONE, PENDING, QueueReads
from huren.gateway.report_index import report_key
from huren.gateway.sealing import Sealer, cipher_beside

#: Kinds held back until the scheduled push (XJ-1.3.2.5-6).
PUSHED_KINDS = ("accept", "quote", "reminder")  # sent on the push schedule, not as they come
__all__ = ["DEAD", "DONE", "PENDING", "PUSHED_KINDS", "Dedup", "Item", "Outbox", "digest", "enqueue", "report_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS record (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,          -- blind index of the record's key
    source TEXT NOT NULL,
    watermark TEXT NOT NULL DEFAULT '',
    payload BLOB NOT NULL,      -- sealed: the record's key and its JSON
    digest BLOB NOT NULL,       -- keyed
    has_att INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    error BLOB,                 -- sealed
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    sealed INTEGER NOT NULL DEFAULT 0  -- 0: a clear row of an older outbox
);
CREATE INDEX IF NOT EXISTS record_key ON record (key, id);
CREATE INDEX IF NOT EXISTS record_pending ON record (id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS record_pending_key ON record (key, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS record_dead ON record (id) WHERE state = 'dead';
CREATE TABLE IF NOT EXISTS attachment (
    record_id INTEGER NOT NULL REFERENCES record (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data BLOB NOT NULL,  -- sealed
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


class Outbox(QueueReads):
    """One SQLite connection, shared by the gateway's threads under a lock. ``cipher`` seals the
    rows (default: the gateway's data keys in ``keys/`` beside the outbox, created on first use);
    an older outbox holding clear rows is converted when opened."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0, cipher: FieldCipher | None = None) -> None:
        self.path = Path(path)
        private_sqlite(self.path)  # patients' data: 0600 before SQLite opens it (its -wal/-shm follow)
        self.sealer = Sealer(cipher if cipher is not None else cipher_beside(self.path))
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        outbox_seal.add_columns(self._conn)
        self._conn.executescript(_SCHEMA + rindex.SCHEMA)
        self.converted = outbox_seal.convert(self, self.sealer)

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
        sealer = self.sealer
        with self._tx() as c:
            rid = int(c.execute("SELECT coalesce(max(id), 0) FROM record").fetchone()[0])
            for rec in records:
                payload = orjson.dumps(rec.payload)
                dg = sealer.digest(digest(rec, payload))
                kix = sealer.index(rec.key, rindex.DOMAIN)
                if dedup != "none":
                    twin = self._duplicate(c, kix, rec.kind, dg, dedup)
                    if twin is not None:
                        if twin[0] != PENDING and settled is not None:
                            settled.append((rec, twin[0] == DONE, twin[1] or ""))
                        continue
                rid += 1  # the id is the row's associated data: chosen before the row is written
                row = str(rid)
                c.execute(
                    "INSERT INTO record (id, kind, key, sealed, source, watermark, payload, digest, has_att, created_at,"
                    " updated_at) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rid, rec.kind, kix, rec.source, rec.watermark, sealer.seal_keyed(rec.key, payload, REC, "payload", row),
                        dg, 1 if rec.attachments else 0, now, now,
                    ),
                )
                if rec.attachments:
                    c.executemany(
                        "INSERT INTO attachment (record_id, name, data) VALUES (?, ?, ?)",
                        [(rid, n, sealer.seal(d, ATT, "data", f"{rid}/{n}")) for n, d in rec.attachments.items()],
                    )
                rindex.index(c, sealer, rec, kix)
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

    def _duplicate(self, c: sqlite3.Connection, key: str, kind: str, dg: bytes, dedup: Dedup) -> tuple[str, str | None] | None:
        """(state, error) of the stored twin of a record (``key``: its blind index), if there is one."""
        if dedup == "latest":
            row = c.execute(
                "SELECT kind, digest, state, error, id FROM record WHERE key = ? ORDER BY id DESC LIMIT 1", (key,)
            ).fetchone()
            if row is None or row[0] != kind or row[1] != dg:
                return None
            return row[2], self.sealer.open_text(row[3], REC, "error", str(row[4]))
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
            "SELECT r.id, r.kind, r.source, r.watermark, r.payload, r.has_att, r.attempts FROM record r"
            f" WHERE r.state = 'pending' AND r.kind IN ({marks}){skip}"
            " AND NOT EXISTS (SELECT 1 FROM record p WHERE p.state = 'pending' AND p.key = r.key AND p.id < r.id)"
            " ORDER BY r.id LIMIT ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, (*kinds, *exclude, limit)).fetchall()
            atts: dict[int, dict[str, bytes]] = {}
            with_att = [r[0] for r in rows if r[5]]
            if with_att:
                q = f"SELECT record_id, name, data FROM attachment WHERE record_id IN ({','.join('?' * len(with_att))})"
                for rid, name, data in self._conn.execute(q, with_att):
                    atts.setdefault(rid, {})[name] = self.sealer.open(data, ATT, "data", f"{rid}/{name}")
        items = []
        for rid, kind, source, watermark, sealed, _, attempts in rows:
            key, payload = self.sealer.open_keyed(sealed, REC, "payload", str(rid))
            items.append(Item(rid, kind, key, source, watermark, payload, atts.get(rid, {}), attempts))
        return items

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
                    [(self._seal_error(i, why), now, i) for i, why in dead.items()],
                )
            if failed:
                c.executemany(
                    "UPDATE record SET error = ?, attempts = attempts + 1, updated_at = ? WHERE id = ? AND state = 'pending'",
                    [(self._seal_error(i, why), now, i) for i, why in failed.items()],
                )
            for name, value in (meta or {}).items():
                c.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def _seal_error(self, rid: int, why: str) -> bytes | None:
        return self.sealer.seal_text(why, REC, "error", str(rid))

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

    # -- keys --------------------------------------------------------------------------------------
    def reseal_total(self) -> int:
        """The rows :meth:`reseal` walks (for its progress bar)."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM record").fetchone()[0])

    def reseal(self, cipher: FieldCipher, progress: outbox_seal.Progress | None = None) -> tuple[int, int]:
        """Seal again under ``cipher``'s active key every value sealed under an older one (after a
        rotation), in batches; (rows re-sealed, rows seen). Run again after an interruption."""
        self.sealer = Sealer(cipher)
        return outbox_seal.reseal(self, self.sealer, progress)


def enqueue(path: str | Path, records: Iterable[Record]) -> int:
    """Store records in the outbox at ``path`` from another process (opens, writes, closes)."""
    with Outbox(path) as box:
        return box.enqueue(records)
