"""Indexing one received instance (``huren.store.imaging``'s ingest), its hot statements run
straight on the driver (``huren.store.direct``: compiled once per dialect, the store's error
translation kept).

One short transaction per instance, not fsynced (SQLite: ``Database.write(durable=False)``;
PostgreSQL: ``SET LOCAL synchronous_commit TO OFF``) — the study's commit is the durable one, and
with it every commit before it. The study and series rows are created on first sight (``INSERT …
ON CONFLICT DO NOTHING``, so two associations pushing one study at once meet no unique
violation); for a study and series already known to this process (read, or created by it and
committed: :func:`learn`) an instance costs three statements: its insert and the two counter
updates (a QIDO answer reads one row per study). The statements of a new study or series are
compiled once too.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, DateTime, Engine, Integer, String, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from huren.domain import imaging
from huren.domain.imaging import InstanceRecord
from huren.store import sealing
from huren.store.database import translate_error
from huren.store.direct import _Compiled
from huren.store.tables import image_instance, image_series, image_study

STUDY = "image_study"
st, se, ins = image_study, image_series, image_instance


@dataclass(frozen=True, slots=True)
class Ingested:
    study_id: int
    duplicate: bool  # the same bytes were already held under this SOP Instance UID
    replaced: bool  # other bytes of a study still receiving were replaced
    #: the study / series rows this transaction created, for :func:`learn` once it has committed
    created: tuple[tuple[str, str, Any], ...] = ()


class Refusal(Exception):
    """Why an instance is not indexed: ``ownership`` (another institution's study), ``conflict``
    (other bytes under a UID of a complete study, or a UID held by another study / series)."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail


class _Run(_Compiled):
    """Any statement compiled once (an INSERT/UPDATE … RETURNING, a SELECT): its rows as tuples."""

    def rows(self, conn: Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        args = self.args(values)
        try:
            cur.execute(self.sql, args)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
        except Exception as exc:  # past SQLAlchemy's hook: translated here, the same way
            err = translate_error(exc, args, self.order or ())
            if err is None:
                raise
            raise err from exc
        finally:
            cur.close()


class _Hot:
    """The per-instance statements of one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        d: Any = postgresql if dialect.name == "postgresql" else sqlite
        cols = [c for c in ins.columns if c.key != "id"]
        insert = d.insert(ins).values({c.key: bindparam(c.key, type_=c.type) for c in cols})
        self.insert = _Run(insert.on_conflict_do_nothing(index_elements=["sop_uid"]).returning(ins.c.id), dialect)
        series_count: Any = (  # an UPDATE … RETURNING compiles like the others
            update(se).where(se.c.id == bindparam("b_id", type_=Integer))
            .values(instance_count=se.c.instance_count + 1).returning(se.c.instance_count)
        )
        self.series_count = _Run(series_count, dialect)
        study_count: Any = update(st).where(st.c.id == bindparam("b_id", type_=Integer)).values(
            instance_count=st.c.instance_count + 1, series_count=st.c.series_count + bindparam("b_new", type_=Integer),
            state=bindparam("b_state", type_=String), updated_at=bindparam("b_now", type_=DateTime), deleted_at=None,
        )
        self.study_count = _Run(study_count, dialect)
        uid = bindparam("b_uid", type_=String)
        self.study = _Run(select(st.c.id, st.c.org_code, st.c.modalities).where(st.c.study_uid == uid), dialect)
        self.series = _Run(select(se.c.id, se.c.study_id).where(se.c.series_uid == uid), dialect)
        self.async_commit = dialect.name == "postgresql"
        self.modalities = _Run(select(st.c.modalities).where(st.c.id == bindparam("b_id", type_=Integer)), dialect)
        set_mods: Any = update(st).where(st.c.id == bindparam("b_id", type_=Integer)).values(modalities=bindparam("b_mods", type_=String))
        self.set_modalities = _Run(set_mods, dialect)
        self._dialect, self._d = dialect, d
        self._inserts: dict[tuple[str, tuple[str, ...]], _Run] = {}
        self._lock = threading.Lock()

    def insert_new(self, table: Any, values: Mapping[str, Any], key: str) -> _Run:
        """``INSERT … ON CONFLICT (key) DO NOTHING`` of a row with these columns, compiled once per
        column set (a study row's sealed columns are those its values carry)."""
        shape = (str(table.name), tuple(values))
        run = self._inserts.get(shape)
        if run is None:
            stmt = self._d.insert(table).values({k: bindparam(k, type_=table.c[k].type) for k in values})
            run = _Run(stmt.on_conflict_do_nothing(index_elements=[key]), self._dialect)
            with self._lock:
                self._inserts[shape] = run
        return run


class _Known:
    """Facts of committed rows that never change, per engine (process-local): a study's id and
    institution (and the modalities seen), a series' id and study — study and series rows are
    never deleted (a deletion notice only marks them). A row this process has just inserted is
    remembered only once its transaction has committed (:func:`learn`; it may roll back)."""

    def __init__(self, dialect: Dialect, cap: int = 20_000) -> None:
        self.cap = cap
        self.studies: dict[str, tuple[int, str, set[str]]] = {}
        self.series: dict[str, tuple[int, int]] = {}
        self.lock = threading.Lock()
        self.hot = _Hot(dialect)

    def remember(self, table: dict[str, Any], key: str, value: Any) -> None:
        with self.lock:
            if len(table) >= self.cap:
                table.clear()
            table[key] = value


_KNOWN: weakref.WeakKeyDictionary[Engine, _Known] = weakref.WeakKeyDictionary()


def _known(conn: Connection) -> _Known:
    k = _KNOWN.get(conn.engine)
    if k is None:
        k = _KNOWN.setdefault(conn.engine, _Known(conn.dialect))
    return k


def _mods(text: Any) -> set[str]:
    return {m for m in str(text).split(",") if m}


def learn(engine: Engine, done: Ingested) -> None:
    """Remember the rows an ingest created, once its transaction has committed (call it after the
    ``Database.write`` block): the next instance of that study or series skips their SELECTs."""
    known = _KNOWN.get(engine)
    if known is None:
        return
    for kind, uid, value in done.created:
        known.remember(known.studies if kind == "study" else known.series, uid, value)


def _study(
    conn: Connection, known: _Known, rec: InstanceRecord, org_code: str, sender: str, now: datetime,
    created: list[tuple[str, str, Any]],
) -> tuple[int, str, set[str]]:
    hit = known.studies.get(rec.study_uid)
    if hit is not None:
        return hit
    rows = known.hot.study.rows(conn, {"b_uid": rec.study_uid})
    if rows:
        found = (int(rows[0][0]), str(rows[0][1]), _mods(rows[0][2]))
        known.remember(known.studies, rec.study_uid, found)
        return found
    values = sealing.seal_row(sealing.cipher(conn), STUDY, _study_values(rec, org_code, sender, now))
    known.hot.insert_new(st, values, "study_uid").rows(conn, values)
    r = known.hot.study.rows(conn, {"b_uid": rec.study_uid})[0]
    found = (int(r[0]), str(r[1]), _mods(r[2]))
    created.append(("study", rec.study_uid, found))
    return found


def _series(
    conn: Connection, known: _Known, study_id: int, rec: InstanceRecord, created: list[tuple[str, str, Any]]
) -> tuple[int, int]:
    """(series id, its study id)."""
    hit = known.series.get(rec.series_uid)
    if hit is not None:
        return hit
    rows = known.hot.series.rows(conn, {"b_uid": rec.series_uid})
    if rows:
        found = (int(rows[0][0]), int(rows[0][1]))
        known.remember(known.series, rec.series_uid, found)
        return found
    values = _series_values(study_id, rec)
    known.hot.insert_new(se, values, "series_uid").rows(conn, values)
    r = known.hot.series.rows(conn, {"b_uid": rec.series_uid})[0]
    found = (int(r[0]), int(r[1]))
    created.append(("series", rec.series_uid, found))
    return found


def ingest(
    conn: Connection, rec: InstanceRecord, *, org_code: str, sender: str, sha256: str, size: int, now: datetime
) -> Ingested:
    """Index one stored instance (its bytes already in the blob store as ``sha256``). An instance
    pushed again after a deletion notice is shown again, with its study."""
    known = _known(conn)
    hot = known.hot
    if hot.async_commit:  # durable at the study's commit (a synchronous commit flushes every one before it)
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.execute("SET LOCAL synchronous_commit TO OFF")
        finally:
            cur.close()
    created: list[tuple[str, str, Any]] = []
    study_id, owner, mods = _study(conn, known, rec, org_code, sender, now, created)
    if owner != org_code:
        raise Refusal("ownership", owner)
    series_id, series_study = _series(conn, known, study_id, rec, created)
    if series_study != study_id:
        raise Refusal("conflict", "series_uid")
    values = _instance_values(study_id, series_id, rec, sha256, size, now)
    if not hot.insert.rows(conn, values):  # held already: the same bytes, others, or deleted (YB-4.5)
        old = conn.execute(
            select(ins.c.id, ins.c.study_id, ins.c.sha256, ins.c.deleted_at).where(ins.c.sop_uid == rec.sop_uid)
        ).one()
        if int(old.study_id) != study_id:
            raise Refusal("conflict", "sop_uid")
        if old.deleted_at is None:
            if old.sha256 == sha256:
                return Ingested(study_id, True, False, tuple(created))
            if conn.execute(select(st.c.state).where(st.c.id == study_id)).scalar_one() == imaging.COMPLETE:
                raise Refusal("conflict", "sha256")
            conn.execute(update(ins).where(ins.c.id == old.id).values(values))  # still receiving: the newer file wins
            return Ingested(study_id, False, True, tuple(created))
        conn.execute(update(ins).where(ins.c.id == old.id).values(values))  # pushed again after a deletion notice
    in_series = int(hot.series_count.rows(conn, {"b_id": series_id})[0][0])
    # a series new, or shown again: one more in the study
    hot.study_count.rows(conn, {"b_id": study_id, "b_new": 1 if in_series == 1 else 0, "b_state": imaging.RECEIVING, "b_now": now})
    if rec.modality and rec.modality not in mods:
        current = hot.modalities.rows(conn, {"b_id": study_id})[0][0]
        merged = ",".join(sorted(_mods(current) | {rec.modality}))[:128]
        hot.set_modalities.rows(conn, {"b_id": study_id, "b_mods": merged})
        mods.add(rec.modality)  # (a rollback leaves only ModalitiesInStudy short of it)
    return Ingested(study_id, False, False, tuple(created))


def _study_values(rec: InstanceRecord, org_code: str, sender: str, now: datetime) -> dict[str, Any]:
    return {
        "study_uid": rec.study_uid, "org_code": org_code, "state": imaging.RECEIVING,
        "patient_name": rec.patient_name or None, "patient_id": rec.patient_id or None,
        "patient_birth_date": rec.patient_birth_date or None,
        "patient_json": orjson.dumps(rec.patient_json).decode(),
        "patient_sex": rec.patient_sex, "study_date": rec.study_date, "study_time": rec.study_time,
        "accession_number": rec.accession_number, "study_id": rec.study_id,
        "study_description": rec.study_description, "referring_physician": rec.referring_physician,
        "institution_name": rec.institution_name, "modalities": "", "series_count": 0, "instance_count": 0,
        "charset": rec.charset_in[:64], "sender": sender[:256], "created_at": now, "updated_at": now,
    }


def _series_values(study_id: int, rec: InstanceRecord) -> dict[str, Any]:
    return {
        "study_id": study_id, "series_uid": rec.series_uid, "modality": rec.modality,
        "series_number": rec.series_number, "series_description": rec.series_description, "body_part": rec.body_part,
        "series_date": rec.series_date, "series_time": rec.series_time, "instance_count": 0,
    }


def _instance_values(study_id: int, series_id: int, rec: InstanceRecord, sha256: str, size: int, now: datetime) -> dict[str, Any]:
    return {
        "study_id": study_id, "series_id": series_id, "sop_uid": rec.sop_uid, "sop_class_uid": rec.sop_class_uid,
        "transfer_syntax": rec.transfer_syntax, "instance_number": rec.instance_number, "rows": rec.rows,
        "columns": rec.columns, "frames": rec.frames, "size": size, "sha256": sha256,
        "metadata": orjson.dumps(rec.metadata).decode(), "received_at": now,
        "deleted_at": None,
    }
