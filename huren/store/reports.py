"""Report persistence: upsert by the seed's primary key with version history, void, reads by id or key
(queries across reports: :mod:`huren.store.report_queries`).

The patient's identity in a report (``id_no``, ``name``, ``card_no``) and the history's snapshots
are sealed at rest (huren.store.sealing): every write here seals, every read opens, and a lookup
by ID number compares ``id_no_bidx``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Row, Table, and_, delete, insert, select, text, tuple_, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from huren.domain import kinds
from huren.domain.records import format_value, to_text
from huren.domain.validation import Report
from huren.domain.versions import Verdict, verdict
from huren.store import bulk, changes, partitions, platforms, sealing
from huren.store.tables import REPORT_TABLES, report_history

KEY_COLUMNS = ("org_code", "report_form_no", "patient_id", "event_type", "event_no")


@dataclass(frozen=True, slots=True)
class Stored:
    """What became of one report: ``outcome`` created / replace / same (stored or unchanged), or
    stale / conflict (refused, nothing written; ``stored_time`` / ``voided_at`` say why)."""

    report_id: int
    version: int
    created: bool
    outcome: Verdict | Literal["created"] = "created"
    stored_time: datetime | None = None
    voided_at: datetime | None = None

    @property
    def refused(self) -> bool:
        return self.outcome in ("stale", "conflict")


#: the columns a resubmission is judged by (huren.domain.versions)
_STATE = ("id", "version", "last_update_dtime", "voided", "voided_at", "pdf_sha256")


def _key_of(row: Row[Any] | dict[str, Any]) -> tuple[Any, ...]:
    m = row._mapping if isinstance(row, Row) else row
    return tuple(m[c] for c in KEY_COLUMNS)


def _snapshot(conn: Connection, kind: str, report_id: int) -> tuple[dict[str, Any], str]:
    master_t, item_t = REPORT_TABLES[kind]
    k = kinds.BY_NAME[kind]
    mspec, ispec = k.master_fields, k.item_fields
    master = _opened(conn, master_t, conn.execute(select(master_t).where(master_t.c.id == report_id)).mappings().one())
    items = [dict(i) for i in conn.execute(select(item_t).where(item_t.c.report_id == report_id)).mappings()]
    doc = {
        "master": to_text(master, mspec) | {"pdf_sha256": master["pdf_sha256"] or "", "voided": bool(master["voided"])},
        "items": [to_text(i, ispec) for i in items],
    }
    return master, json.dumps(doc, ensure_ascii=False)


def upsert_many(
    conn: Connection,
    batch: Sequence[tuple[Report, str | None, int | None]],
    *,
    now: datetime,
    actor: str,
) -> list[Stored]:
    """Register reports of one kind: insert new keys, replace existing ones (history kept) when
    the resubmission is newer; an older one, or the same time with other content, is refused and
    nothing is written for it (``Stored.refused``; huren.domain.versions).

    ``batch`` holds (report, pdf_sha256, pdf_size); a ``None`` PDF keeps a stored one. The stored
    versions are read ``FOR UPDATE`` (PostgreSQL; SQLite has one writer), so two resubmissions
    of one key are judged one after the other.
    """
    if not batch:
        return []
    stored = _upsert_many(conn, batch, now=now, actor=actor)
    kind = batch[0][0].kind
    written = [(r.master["org_code"], s.report_id, None) for (r, _, _), s in zip(batch, stored, strict=True) if s.outcome in ("created", "replace")]
    if written:
        changes.record(conn, kind, written, now)
    return stored


def _upsert_many(
    conn: Connection,
    batch: Sequence[tuple[Report, str | None, int | None]],
    *,
    now: datetime,
    actor: str,
) -> list[Stored]:
    kind = batch[0][0].kind
    plats = platforms.platforms_of(conn, {r.master["org_code"] for r, _, _ in batch})
    master_t, item_t = REPORT_TABLES[kind]
    keys = [r.key for r, _, _ in batch]
    existing: dict[tuple[Any, ...], dict[str, Any]] = {}
    cols = (*[master_t.c[c] for c in _STATE], *[master_t.c[c] for c in KEY_COLUMNS])
    if len(batch) == 1:  # the common single-report call: insert, or learn that the key exists
        report, sha, size = batch[0]
        rid = _insert_new(conn, master_t, report, sha, size, now, plats)
        if rid is not None:
            bulk.insert_rows(conn, item_t, [item | {"report_id": rid, "received_at": now} for item in report.items])
            return [Stored(rid, 1, True)]
        cond = and_(*[master_t.c[c] == v for c, v in zip(KEY_COLUMNS, keys[0], strict=True)])
        row = conn.execute(select(*cols).where(cond).with_for_update()).mappings().one()
        return [_resubmit(conn, report, dict(row), sha, size, now=now, actor=actor)]
    else:
        # by the whole business key (a row-value IN): the unique key's index, whatever the
        # planner's statistics (on PostgreSQL a month's partition just filled has none, and the
        # institution + form number filter was planned on (org_code, authenticator_dtime),
        # scanning every report of the institution per chunk)
        key_cols = tuple_(*[master_t.c[c] for c in KEY_COLUMNS])
        for chunk in _chunks(sorted(set(keys)), 500):
            rows = conn.execute(select(*cols).where(key_cols.in_(list(chunk))).with_for_update()).mappings()
            for row in rows:
                existing[_key_of(dict(row))] = dict(row)

    results: dict[int, Stored] = {}
    new_rows: list[dict[str, Any]] = []
    new_index: list[int] = []
    seen_in_batch: dict[tuple[Any, ...], int] = {}
    for i, (report, sha, size) in enumerate(batch):
        key = report.key
        if key in seen_in_batch or key in existing:
            continue
        seen_in_batch[key] = i
        new_rows.append(_sealed(conn, master_t, _new_row(report, sha, size, now, plats)))
        new_index.append(i)
    if new_rows:
        ids = _insert_masters(conn, master_t, new_rows)
        item_rows: list[dict[str, Any]] = []
        for i, rid in zip(new_index, ids, strict=True):
            for item in batch[i][0].items:
                item_rows.append(item | {"report_id": rid, "received_at": now})
            results[i] = Stored(rid, 1, True)
        if item_rows:
            bulk.insert_rows(conn, item_t, item_rows)  # executemany / COPY (huren.store.bulk)
    for i, (report, sha, size) in enumerate(batch):
        if i in results:
            continue
        key = report.key
        if key not in existing:  # a duplicate key inside the batch, inserted above
            first, first_sha, _ = batch[seen_in_batch[key]]
            existing[key] = _state(results[seen_in_batch[key]].report_id, 1, first, first_sha)
        results[i] = _resubmit(conn, report, existing[key], sha, size, now=now, actor=actor)
        if not results[i].refused and results[i].outcome != "same":
            existing[key] = _state(results[i].report_id, results[i].version, report, sha or existing[key]["pdf_sha256"])
    return [results[i] for i in range(len(batch))]


def _state(rid: int, version: int, report: Report, sha: str | None) -> dict[str, Any]:
    return {
        "id": rid,
        "version": version,
        "last_update_dtime": report.master["last_update_dtime"],
        "voided": False,
        "voided_at": None,
        "pdf_sha256": sha,
    }


def _resubmit(
    conn: Connection,
    report: Report,
    state: dict[str, Any],
    sha: str | None,
    size: int | None,
    *,
    now: datetime,
    actor: str,
) -> Stored:
    """Judge a resubmission against the stored version ``state`` and replace it when newer."""
    new_time, stored_time = report.master["last_update_dtime"], state["last_update_dtime"]
    same = False
    if new_time == stored_time and not state["voided"]:
        same = _same_content(conn, report, state, sha)
    what = verdict(new_time, stored_time, stored_voided=bool(state["voided"]), same_content=same)
    if what == "replace":
        return _replace(conn, report, state["id"], state["version"], sha, size, now=now, actor=actor)
    voided_at = state["voided_at"] if state["voided"] else None
    return Stored(state["id"], state["version"], False, what, stored_time, voided_at)


def _same_content(conn: Connection, report: Report, state: dict[str, Any], sha: str | None) -> bool:
    """The fields, the items and (when one is sent) the PDF equal the stored version's."""
    if sha is not None and sha != state["pdf_sha256"]:
        return False
    master_t, item_t = REPORT_TABLES[report.kind]
    k = kinds.BY_NAME[report.kind]
    mspec, ispec = k.master_fields, k.item_fields
    stored = _opened(conn, master_t, conn.execute(select(master_t).where(master_t.c.id == state["id"])).mappings().one())
    if to_text(stored, mspec) != to_text(report.master, mspec):
        return False
    items = conn.execute(select(item_t).where(item_t.c.report_id == state["id"])).mappings()
    old = sorted(json.dumps(to_text(dict(i), ispec), ensure_ascii=False) for i in items)
    new = sorted(json.dumps(to_text(i, ispec), ensure_ascii=False) for i in report.items)
    return old == new


def _insert_masters(conn: Connection, master_t: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert master rows, returning their ids in order.

    On PostgreSQL the ids are drawn from the table's sequence first and the rows copied in
    (huren.store.bulk: one COPY; a multi-row ``INSERT … VALUES … RETURNING`` of 100 wide rows
    makes psycopg parse a 4,500-placeholder query per batch, which halved the ingest rate).
    """
    if conn.dialect.name == "postgresql":
        seq = text(f"SELECT nextval(pg_get_serial_sequence('{master_t.name}', 'id')) FROM generate_series(1, :n)")
        ids = [int(i) for i in conn.execute(seq, {"n": len(rows)}).scalars()]
        bulk.insert_rows(conn, master_t, [r | {"id": i} for r, i in zip(rows, ids, strict=True)])
        return ids
    stmt = insert(master_t).returning(master_t.c.id, sort_by_parameter_order=True)
    return [int(i) for i in conn.execute(stmt, rows).scalars()]


def _new_row(report: Report, sha: str | None, size: int | None, now: datetime, plats: dict[str, str]) -> dict[str, Any]:
    return report.master | {
        "platform": plats.get(report.master["org_code"], ""),
        "pdf_sha256": sha,
        "pdf_size": size,
        "version": 1,
        "voided": False,
        "voided_at": None,
        "voided_by": None,
        "received_at": now,
        "updated_at": now,
    }


def _insert_new(
    conn: Connection, master_t: Table, report: Report, sha: str | None, size: int | None, now: datetime, plats: dict[str, str]
) -> int | None:
    """INSERT … ON CONFLICT (primary key of the seed) DO NOTHING RETURNING id: the new id, or None
    when a report with that key exists (one statement instead of a lookup and an insert; on
    PostgreSQL the same on the key table, then the report's insert)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        # one statement per table, its parameters per call: SQLAlchemy's compiled cache then
        # serves it (``.values(row)`` built a new statement and a new cache key every call)
        stmt = _SQLITE_INSERT.get(master_t.name)
        if stmt is None:
            stmt = _SQLITE_INSERT[master_t.name] = (
                sqlite_insert(master_t).on_conflict_do_nothing(index_elements=list(KEY_COLUMNS)).returning(master_t.c.id)
            )
        rid = conn.execute(stmt, _sealed(conn, master_t, _new_row(report, sha, size, now, plats))).scalar()
        return None if rid is None else int(rid)
    if dialect == "postgresql":
        # the business key lives in the unpartitioned <table>_key (migration 0011): claim it first
        rid = partitions.claim_key(conn, master_t.name, report.key, now)
        if rid is not None:
            conn.execute(insert(master_t), _sealed(conn, master_t, _new_row(report, sha, size, now, plats)) | {"id": rid})
        return rid
    else:  # pragma: no cover - other databases: look first
        cond = and_(*[master_t.c[c] == v for c, v in zip(KEY_COLUMNS, report.key, strict=True)])
        if conn.execute(select(master_t.c.id).where(cond)).first() is not None:
            return None
        return int(conn.execute(insert(master_t), _sealed(conn, master_t, _new_row(report, sha, size, now, plats))).inserted_primary_key[0])  # type: ignore[index]


_SQLITE_INSERT: dict[str, Any] = {}


def _replace(
    conn: Connection,
    report: Report,
    rid: int,
    version: int,
    sha: str | None,
    size: int | None,
    *,
    now: datetime,
    actor: str,
) -> Stored:
    master_t, item_t = REPORT_TABLES[report.kind]
    old, snapshot = _snapshot(conn, report.kind, rid)
    fields = sealing.cipher(conn)
    hist = {"kind": report.kind, "report_id": rid, "version": old["version"], "snapshot": snapshot}
    conn.execute(
        insert(report_history).values(sealing.seal_row(fields, "report_history", hist) | {"replaced_at": now, "replaced_by": actor})
    )
    values = report.master | {
        "version": old["version"] + 1,
        "voided": False,
        "voided_at": None,
        "voided_by": None,
        "updated_at": now,
    }
    if sha is not None:
        values |= {"pdf_sha256": sha, "pdf_size": size}
    values = sealing.seal_row(fields, master_t.name, values)
    conn.execute(update(master_t).where(master_t.c.id == rid).values(values))
    conn.execute(delete(item_t).where(item_t.c.report_id == rid))
    conn.execute(insert(item_t), [item | {"report_id": rid, "received_at": old["received_at"]} for item in report.items])
    return Stored(rid, old["version"] + 1, False, "replace")


def find_by_key(conn: Connection, kind: str, key: Sequence[Any]) -> dict[str, Any] | None:
    master_t, _ = REPORT_TABLES[kind]
    cond = and_(*[master_t.c[c] == v for c, v in zip(KEY_COLUMNS, key, strict=True)])
    row = conn.execute(select(master_t).where(cond)).mappings().first()
    return _opened(conn, master_t, row) if row else None


def get_master(conn: Connection, kind: str, report_id: int) -> dict[str, Any] | None:
    master_t, _ = REPORT_TABLES[kind]
    row = conn.execute(select(master_t).where(master_t.c.id == report_id)).mappings().first()
    return _opened(conn, master_t, row) if row else None


def get_items(conn: Connection, kind: str, report_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    _, item_t = REPORT_TABLES[kind]
    ids = list(report_ids)
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    order = item_t.c[kinds.BY_NAME[kind].item_key]
    for chunk in _chunks(ids, 500):
        for row in conn.execute(select(item_t).where(item_t.c.report_id.in_(chunk)).order_by(item_t.c.report_id, order)):
            out[row.report_id].append(dict(row._mapping))
    return out


def void(conn: Connection, kind: str, report_id: int, *, now: datetime, actor: str) -> None:
    master_t, _ = REPORT_TABLES[kind]
    org_code = conn.execute(
        update(master_t)
        .where(master_t.c.id == report_id)
        .values(voided=True, voided_at=now, voided_by=actor, updated_at=now)
        .returning(master_t.c.org_code)
    ).scalar()
    if org_code is not None:
        changes.record(conn, f"void_{kind}", [(org_code, report_id, None)], now)


def set_pdf(conn: Connection, kind: str, report_id: int, sha: str, size: int, *, now: datetime) -> None:
    master_t, _ = REPORT_TABLES[kind]
    org_code = conn.execute(
        update(master_t).where(master_t.c.id == report_id).values(pdf_sha256=sha, pdf_size=size, updated_at=now).returning(master_t.c.org_code)
    ).scalar()
    if org_code is not None:
        changes.record(conn, kind, [(org_code, report_id, None)], now)  # a report change: its state names the new PDF


def history(conn: Connection, kind: str, report_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(report_history)
        .where(report_history.c.kind == kind, report_history.c.report_id == report_id)
        .order_by(report_history.c.version)
    ).mappings()
    fields = sealing.cipher(conn)
    return [
        {
            "version": r["version"],
            "replaced_at": format_value(r["replaced_at"]),
            "replaced_by": r["replaced_by"],
            "snapshot": json.loads(sealing.open_row(fields, "report_history", r)["snapshot"]),
        }
        for r in rows
    ]


def _sealed(conn: Connection, master_t: Table, row: dict[str, Any]) -> dict[str, Any]:
    return sealing.seal_row(sealing.cipher(conn), master_t.name, row)


def _opened(conn: Connection, master_t: Table, row: Any) -> dict[str, Any]:
    return sealing.open_row(sealing.cipher(conn), master_t.name, row)


def _chunks(seq: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def ids_of_orgs(conn: Connection, kind: str, org_codes: Sequence[str]) -> list[tuple[str, int, None]]:
    """(org_code, report id, None) of every report of these institutions, oldest first (a feed backfill)."""
    master_t, _ = REPORT_TABLES[kind]
    out: list[tuple[str, int, None]] = []
    for chunk in _chunks(sorted(set(org_codes)), 500):
        q = select(master_t.c.org_code, master_t.c.id).where(master_t.c.org_code.in_(chunk)).order_by(master_t.c.id)
        out += [(str(o), int(i), None) for o, i in conn.execute(q)]
    return sorted(out, key=lambda t: t[1])


def pdf_owner(conn: Connection, sha: str) -> tuple[str, str] | None:
    """(org_code, platform) of a report whose PDF has this SHA-256; None when none has."""
    for master_t, _ in REPORT_TABLES.values():
        r = conn.execute(select(master_t.c.org_code, master_t.c.platform).where(master_t.c.pdf_sha256 == sha).limit(1)).first()
        if r is not None:
            return str(r[0]), str(r[1] or "")
    return None
