"""The outbox's rows at rest: converting an older outbox that holds clear rows, and re-sealing
after a data-key rotation (``huren gateway keys rotate-data``).

Sealed columns (associated data: table, column, the row's id): ``record.payload`` (the record's
key and its JSON in one envelope, ``Sealer.seal_keyed``; ``record.key`` holds the key's blind
index), ``record.error`` (the platform's reason) and ``attachment.data`` (``<record id>/<name>``).
``record.digest`` is keyed by the index secret; ``record.sealed`` is 0 only on a clear row of an
older outbox.

**Conversion** happens when an outbox written by an older version is opened: its clear rows
(``sealed = 0``) are sealed in place in batches of :data:`BATCH`, each batch one transaction
(records with their attachments), so an interruption leaves every row either clear or sealed and
the next open goes on; nothing is added or removed, ids and states stay. Then the report index's
keys are replaced by their blind index, the file is rewritten (``VACUUM``) and the WAL emptied,
so the clear bytes of the old rows are gone from the file; ``meta.at_rest = sealed`` marks it done.

**Re-sealing** walks the rows in id order in batches, each one transaction, sealing again under
the active key what an older key sealed; interrupted, it is simply run again.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from huren.gateway import report_index
from huren.gateway.sealing import Sealer

if TYPE_CHECKING:
    from huren.gateway.outbox import Outbox

log = logging.getLogger("huren.gateway.outbox")

REC: Final = "outbox.record"
ATT: Final = "outbox.attachment"
BATCH: Final = 500
SEALED: Final = "sealed"
Progress = Callable[[int], None]  # rows handled so far


def add_columns(conn: sqlite3.Connection) -> None:
    """Give an older outbox's ``record`` table the ``sealed`` column (0: the row is clear)."""
    cols = {r[1] for r in conn.execute("PRAGMA table_info(record)")}
    if cols and "sealed" not in cols:
        conn.execute("ALTER TABLE record ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0")


def _at_rest(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE name = 'at_rest'").fetchone()
    return str(row[0]) if row else ""


def convert(box: Outbox, sealer: Sealer, batch: int = BATCH) -> int:
    """Seal the clear rows of an outbox written by an older version; the number of records
    converted (0 for an outbox already sealed)."""
    conn = box._conn
    with box._lock:
        if _at_rest(conn) == SEALED:
            return 0
    converted = last = 0
    while True:
        with box._tx() as c:
            rows = c.execute(
                "SELECT id, key, payload, digest, error FROM record WHERE sealed = 0 AND id > ? ORDER BY id LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                break
            _convert_rows(c, sealer, rows)
        converted += len(rows)
        last = rows[-1][0]
        log.warning("待上传队列：已加密 %d 条原为明文的记录", converted)
    keys = 0
    while True:
        with box._tx() as c:
            n = report_index.convert(c, sealer, batch)
        keys += n
        if n < batch:
            break
    with box._tx() as c:
        c.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('at_rest', ?)", (SEALED,))
    if converted or keys:
        with box._lock:  # the clear bytes of the old rows out of the file and its WAL
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log.warning("待上传队列 %s：已加密 %d 条记录和 %d 个报告索引键", box.path, converted, keys)
    return converted


def _convert_rows(c: sqlite3.Connection, sealer: Sealer, rows: list[tuple[int, str, bytes, bytes, str | None]]) -> None:
    updates = []
    for rid, key, payload, digest, error in rows:
        row = str(rid)
        updates.append((
            sealer.index(key, report_index.DOMAIN),
            sealer.seal_keyed(key, bytes(payload), REC, "payload", row),
            sealer.digest(bytes(digest)),  # the keyed digest of the same digest: deduplication still matches
            sealer.seal_text(error, REC, "error", row),
            rid,
        ))
    c.executemany("UPDATE record SET key = ?, payload = ?, digest = ?, error = ?, sealed = 1 WHERE id = ?", updates)
    first, last = rows[0][0], rows[-1][0]
    atts = c.execute(
        "SELECT record_id, name, data FROM attachment WHERE record_id BETWEEN ? AND ?", (first, last)
    ).fetchall()
    ids = {r[0] for r in rows}
    c.executemany(
        "UPDATE attachment SET data = ? WHERE record_id = ? AND name = ?",
        [(sealer.seal(bytes(d), ATT, "data", f"{rid}/{n}"), rid, n) for rid, n, d in atts if rid in ids],
    )


def reseal(box: Outbox, sealer: Sealer, progress: Progress | None = None, batch: int = BATCH) -> tuple[int, int]:
    """Seal again under the active key what an older key sealed; (records re-sealed, records seen)."""
    resealed = seen = last = 0
    while True:
        with box._tx() as c:
            rows = c.execute(
                "SELECT id, payload, error FROM record WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                break
            updates = []
            for rid, payload, error in rows:
                row = str(rid)
                new = (
                    sealer.reseal(payload, REC, "payload", row),
                    sealer.reseal(error, REC, "error", row) if isinstance(error, bytes) else None,
                )
                if any(v is not None for v in new):
                    updates.append((new[0] or payload, new[1] or error, rid))
            c.executemany("UPDATE record SET payload = ?, error = ? WHERE id = ?", updates)
            atts = c.execute(
                "SELECT record_id, name, data FROM attachment WHERE record_id BETWEEN ? AND ?", (rows[0][0], rows[-1][0])
            ).fetchall()
            fresh = [(sealer.reseal(d, ATT, "data", f"{rid}/{n}"), rid, n) for rid, n, d in atts]
            c.executemany("UPDATE attachment SET data = ? WHERE record_id = ? AND name = ?", [f for f in fresh if f[0] is not None])
        resealed += len(updates)
        seen += len(rows)
        last = rows[-1][0]
        if progress is not None:
            progress(seen)
    return resealed, seen
