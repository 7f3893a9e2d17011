"""The outbox's ``report_index``: every lab / exam report the gateway extracted, with its audit day,
ordering department and whether it was voided, for the daily counts (XJ-1.2.2.5).

A report is known by the blind index of its key (``report_key``; the key names the patient's
number at the hospital), so the table holds no patient identity; the department columns are the
hospital's own codes and names.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from huren.domain import kinds
from huren.gateway.model import Record
from huren.gateway.sealing import Sealer

_KEY_FIELDS = ("org_code", "report_form_no", "patient_id", "event_type", "event_no")
DOMAIN = "outbox.key"  # the blind-index domain of record keys (the outbox's and this table's)

SCHEMA = """
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
"""


def report_key(kind: str, fields: dict[str, Any]) -> str:
    """``lab:<org>|<report_form_no>|<patient_id>|<event_type>|<event_no>`` from a master or a void filter."""
    return f"{kind}:" + "|".join(str(fields.get(f, "")) for f in _KEY_FIELDS)


def index(c: sqlite3.Connection, sealer: Sealer, rec: Record, key_index: str = "") -> None:
    """Keep ``report_index`` up to date for the daily counts (``key_index``: the blind index of
    ``rec.key``, reused when the record's key is its report key, as the sources make it)."""
    if rec.kind in kinds.BY_NAME:
        master = rec.payload.get(kinds.BY_NAME[rec.kind].master_node)
        if not isinstance(master, dict):
            return
        key = report_key(rec.kind, master)
        c.execute(
            "INSERT OR REPLACE INTO report_index (key, kind, day, dept_code, dept_name, dept_std_code, dept_std_name, voided)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
            (
                key_index if key_index and key == rec.key else sealer.index(key, DOMAIN),
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
        c.execute("UPDATE report_index SET voided = 1 WHERE key = ?", (sealer.index(report_key(kind, rec.payload), DOMAIN),))


DAILY_SQL = (
    "SELECT dept_code, max(dept_name) AS dept_name, max(dept_std_code) AS dept_std_code,"
    " max(dept_std_name) AS dept_std_name, sum(kind = 'lab') AS lab_num, sum(kind = 'exam') AS exam_num"
    " FROM report_index WHERE day = ? AND voided = 0 GROUP BY dept_code ORDER BY dept_code"
)


def convert(c: sqlite3.Connection, sealer: Sealer, batch: int) -> int:
    """One batch of an older outbox's clear keys replaced by their blind index; how many."""
    rows = c.execute("SELECT key FROM report_index WHERE instr(key, ':') > 0 LIMIT ?", (batch,)).fetchall()
    c.executemany(
        "UPDATE OR REPLACE report_index SET key = ? WHERE key = ?", [(sealer.index(k, DOMAIN), k) for (k,) in rows]
    )
    return len(rows)
