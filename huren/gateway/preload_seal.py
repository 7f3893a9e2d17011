"""The preload cache's file at rest: its schema of sealed rows, the conversion of a cache written
by an older version (clear identities and answers), and re-sealing after a data-key rotation.

Sealed (associated data: table, column, the patient's blind index): ``patient.body`` (zlib JSON
of the identity, the recent list and the detail) and ``decision.record``. ``patient.pix`` is the
exact blind index of ``<id_type_code>|<id_no>``, ``decision.eix`` that of the visit number.

**Conversion** (at open): the old ``patient`` / ``decision`` tables are renamed ``*_clear``, then
moved into the sealed tables in batches of :data:`BATCH`, each batch one transaction that inserts
the sealed rows and deletes the clear ones (an interruption leaves each row in exactly one of the
two; the next open goes on). The emptied tables are dropped and the file rewritten (``VACUUM``,
WAL emptied) so no clear byte is left in it. Entries are converted rather than dropped although
the platform could refill them: a stale entry is what answers while the platform is down, and the
kept decisions cannot be fetched again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Final

from huren.domain import kinds
from huren.gateway.sealing import Sealer

log = logging.getLogger("huren.gateway.preload")

PATIENT: Final = "preload.patient"
DECISION: Final = "preload.decision"
PATIENT_DOMAIN: Final = "preload.patient"
EVENT_DOMAIN: Final = "preload.event_no"
BATCH: Final = 500
Connect = Callable[[], AbstractContextManager[sqlite3.Connection]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS patient (
    pix TEXT PRIMARY KEY,       -- blind index of id_type_code|id_no
    fetched_at REAL NOT NULL,
    days INTEGER NOT NULL,
    body BLOB NOT NULL          -- sealed: {id_type_code, id_no, recent, detail}
);
CREATE TABLE IF NOT EXISTS report (
    kind TEXT NOT NULL,
    report_id TEXT NOT NULL,    -- the platform's report id, an opaque text
    pix TEXT NOT NULL,
    PRIMARY KEY (kind, report_id)
);
CREATE INDEX IF NOT EXISTS report_pix ON report (pix);
CREATE TABLE IF NOT EXISTS reference (
    name TEXT PRIMARY KEY,
    fetched_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decision (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    pix TEXT NOT NULL,
    eix TEXT NOT NULL,          -- blind index of new_event_no
    record BLOB NOT NULL,       -- sealed: the decision's seed text form
    stored_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS decision_pix ON decision (pix, eix);
"""


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}


def rename_clear(conn: sqlite3.Connection) -> None:
    """Set the clear tables of an older cache aside (``patient_clear``, ``decision_clear``)."""
    for table in ("patient", "decision"):
        if "id_no" in _columns(conn, table):
            conn.execute(f"ALTER TABLE {table} RENAME TO {table}_clear")


def put_entry(conn: sqlite3.Connection, pix: str, fetched_at: float, days: int, body: bytes, detail: dict[str, Any]) -> None:
    """Store a patient's sealed entry and the report ids it holds."""
    conn.execute(
        "INSERT OR REPLACE INTO patient (pix, fetched_at, days, body) VALUES (?, ?, ?, ?)", (pix, fetched_at, days, body)
    )
    conn.execute("DELETE FROM report WHERE pix = ?", (pix,))
    conn.executemany(
        "INSERT OR REPLACE INTO report (kind, report_id, pix) VALUES (?, ?, ?)",
        [
            (k.name, str(m["report_id"]), pix)
            for k in kinds.ALL
            for m in detail.get(k.master_node, [])
            if isinstance(m, dict) and m.get("report_id") not in (None, "")
        ],
    )


def convert(connect: Connect, sealer: Sealer, batch: int = BATCH) -> int:
    """Move an older cache's clear rows into the sealed tables; the number of rows converted."""
    done = 0
    with connect() as conn:
        tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "patient_clear" in tables:
        done += _drain(connect, "patient_clear", batch, lambda conn, rows: _patients(conn, sealer, rows),
                       "SELECT rowid, id_type_code, id_no, fetched_at, days, recent, detail FROM patient_clear")
    if "decision_clear" in tables:
        done += _drain(connect, "decision_clear", batch, lambda conn, rows: _decisions(conn, sealer, rows),
                       "SELECT rowid, id, kind, id_type_code, id_no, new_event_no, record, stored_at FROM decision_clear")
    if "patient_clear" in tables or "decision_clear" in tables:
        with connect() as conn:
            conn.commit()
            conn.execute("VACUUM")  # the clear bytes out of the file and its WAL
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log.warning("预加载缓存：已加密 %d 行原为明文的数据", done)
    return done


def _drain(
    connect: Connect, table: str, batch: int, put: Callable[[sqlite3.Connection, list[Any]], None], select: str
) -> int:
    n = 0
    while True:
        with connect() as conn:
            rows = conn.execute(f"{select} ORDER BY rowid LIMIT ?", (batch,)).fetchall()
            if not rows:
                conn.execute(f"DROP TABLE {table}")
                return n
            put(conn, rows)
            conn.executemany(f"DELETE FROM {table} WHERE rowid = ?", [(r[0],) for r in rows])
        n += len(rows)


def _pix(sealer: Sealer, id_type_code: str, id_no: str) -> str:
    return sealer.index(f"{id_type_code}|{id_no}", PATIENT_DOMAIN)


def _patients(conn: sqlite3.Connection, sealer: Sealer, rows: list[Any]) -> None:
    for _, id_type_code, id_no, fetched_at, days, recent, detail in rows:
        pix = _pix(sealer, id_type_code, id_no)
        held = conn.execute("SELECT fetched_at FROM patient WHERE pix = ?", (pix,)).fetchone()
        if held is not None and float(held[0]) >= float(fetched_at):
            continue  # a newer entry already sealed
        doc = {"id_type_code": id_type_code, "id_no": id_no, "recent": json.loads(recent), "detail": json.loads(detail)}
        body = sealer.seal_json(json.dumps(doc, ensure_ascii=False).encode(), PATIENT, "body", pix)
        put_entry(conn, pix, float(fetched_at), int(days), body, doc["detail"])


def _decisions(conn: sqlite3.Connection, sealer: Sealer, rows: list[Any]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO decision (id, kind, pix, eix, record, stored_at) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                did, kind, (pix := _pix(sealer, itc, ino)), sealer.index(event_no, EVENT_DOMAIN),
                sealer.seal(str(record).encode(), DECISION, "record", pix), stored_at,
            )
            for _, did, kind, itc, ino, event_no, record, stored_at in rows
        ],
    )


def reseal(connect: Connect, sealer: Sealer, progress: Callable[[int], None] | None = None, batch: int = BATCH) -> tuple[int, int]:
    """Seal again under the active key what an older key sealed; (rows re-sealed, rows seen)."""
    resealed = seen = 0
    for table, column, order in (("patient", "body", "pix"), ("decision", "record", "id")):
        last: Any = "" if order == "pix" else 0
        while True:
            with connect() as conn:
                rows = conn.execute(
                    f"SELECT {order}, pix, {column} FROM {table} WHERE {order} > ? ORDER BY {order} LIMIT ?", (last, batch)
                ).fetchall()
                if not rows:
                    break
                name = PATIENT if table == "patient" else DECISION
                fresh = [(sealer.reseal(v, name, column, pix), key) for key, pix, v in rows]
                todo = [f for f in fresh if f[0] is not None]
                conn.executemany(f"UPDATE {table} SET {column} = ? WHERE {order} = ?", todo)
            resealed += len(todo)
            seen += len(rows)
            last = rows[-1][0]
            if progress is not None:
                progress(seen)
    return resealed, seen
