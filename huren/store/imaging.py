"""The image index: studies, series, instances (``huren.store.tables`` image_*), their patient
identity sealed (``huren.store.sealing``, table ``image_study``).

Ingest (:func:`ingest`, in ``huren.store.imaging_ingest``) is one short transaction per instance,
not fsynced; the study's commit is the durable one. The counters are kept on the study and series
rows, so a QIDO answer reads one row per study. Every lookup is by a unique or indexed column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from huren.domain import imaging
from huren.store import sealing
from huren.store.imaging_ingest import Ingested as Ingested
from huren.store.imaging_ingest import Refusal as Refusal
from huren.store.imaging_ingest import ingest as ingest
from huren.store.tables import (
    image_deletion,
    image_instance,
    image_series,
    image_study,
)

STUDY = "image_study"
st, se, ins = image_study, image_series, image_instance

#: what a reader's answer needs of an instance (and to stream it), in one indexed query
INSTANCE_COLS = (
    ins.c.id, ins.c.sop_uid, ins.c.sop_class_uid, ins.c.transfer_syntax, ins.c.instance_number, ins.c.rows,
    ins.c.columns, ins.c.frames, ins.c.size, ins.c.sha256, se.c.series_uid, st.c.study_uid, st.c.org_code,
)


# -- commit ---------------------------------------------------------------------------------------
def study_row(conn: Connection, study_uid: str) -> dict[str, Any] | None:
    r = conn.execute(select(st).where(st.c.study_uid == study_uid)).mappings().first()
    return dict(r) if r else None


def instance_digests(conn: Connection, study_id: int) -> dict[str, str]:
    """SOP Instance UID → SHA-256 of every instance of a study not deleted."""
    q = select(ins.c.sop_uid, ins.c.sha256).where(ins.c.study_id == study_id, ins.c.deleted_at.is_(None))
    return {str(r.sop_uid): str(r.sha256) for r in conn.execute(q)}


def locate(conn: Connection, sop_uids: Sequence[str]) -> dict[str, tuple[str, str, str, str]]:
    """SOP Instance UID → (study UID, institution, SHA-256, SOP class UID) for the instances held (not deleted)."""
    out: dict[str, tuple[str, str, str, str]] = {}
    for i in range(0, len(sop_uids), 500):
        q = (
            select(ins.c.sop_uid, st.c.study_uid, st.c.org_code, ins.c.sha256, ins.c.sop_class_uid)
            .join(st, st.c.id == ins.c.study_id)
            .where(ins.c.sop_uid.in_(sop_uids[i : i + 500]), ins.c.deleted_at.is_(None), st.c.deleted_at.is_(None))
        )
        out |= {str(r.sop_uid): (str(r.study_uid), str(r.org_code), str(r.sha256), str(r.sop_class_uid)) for r in conn.execute(q)}
    return out


def mark_state(conn: Connection, study_id: int, state: str, now: datetime, *, instance_count: int | None = None) -> bool:
    """Set a study's state; with ``instance_count``, only if it still holds that many instances
    (an instance that arrived while its commit was running keeps it RECEIVING)."""
    values: dict[str, Any] = {"state": state, "updated_at": now}
    if state == imaging.COMPLETE:
        values["committed_at"] = now
    q = update(st).where(st.c.id == study_id)
    if instance_count is not None:
        q = q.where(st.c.instance_count == instance_count)
    return bool(conn.execute(q.values(values)).rowcount)


# -- reads ----------------------------------------------------------------------------------------
def opened(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    return sealing.open_row(sealing.cipher(conn), STUDY, row)


def _like(column: Any, pattern: str) -> ColumnElement[bool]:
    if not imaging.has_wildcard(pattern):
        return column == pattern  # type: ignore[no-any-return]
    esc = pattern.replace("!", "!!").replace("%", "!%").replace("_", "!_").replace("*", "%").replace("?", "_")
    return column.ilike(esc, escape="!")  # type: ignore[no-any-return]


Match = Callable[[dict[str, Any]], bool]


def _name_match(pattern: str) -> Match:
    rx = imaging.wildcard_regex(pattern)
    return lambda r: bool(rx.fullmatch(r.get("patient_name") or ""))


def _birth_match(lo: str | None, hi: str | None) -> Match:
    return lambda r: bool(r.get("patient_birth_date")) and (lo or "") <= str(r["patient_birth_date"]) <= (hi or "99999999")


def study_filters(conn: Connection, q: dict[str, str], orgs: list[str] | None) -> tuple[list[ColumnElement[bool]], Match | None]:
    """SQL conditions for a study query; the PatientName wildcard left to the caller (sealed names
    match in Python, after the other conditions)."""
    fields = sealing.cipher(conn)
    where: list[ColumnElement[bool]] = [st.c.deleted_at.is_(None), st.c.instance_count > 0]
    if orgs is not None:
        where.append(st.c.org_code.in_(orgs))
    post: list[Match] = []
    for key, value in q.items():
        v = value.strip()
        if not v or v == "*":
            continue
        if key == "PatientID":
            if imaging.has_wildcard(v):
                raise ValueError("PatientID")
            where.append(st.c.patient_id_bidx == fields.blind(v, "dicom_patient_id"))
        elif key == "PatientName":
            if imaging.has_wildcard(v):
                post.append(_name_match(v))
            else:
                where.append(st.c.patient_name_bidx == fields.blind(v, "dicom_patient_name"))
        elif key == "StudyInstanceUID":
            where.append(st.c.study_uid.in_(imaging.split_uids(v)))
        elif key == "StudyDate":
            lo, hi = imaging.date_range(v)
            if lo:
                where.append(st.c.study_date >= lo)
            if hi:
                where.append(st.c.study_date <= hi)
        elif key == "ModalitiesInStudy":
            mods = [m.strip().upper() for m in v.replace("\\", ",").split(",") if m.strip()]
            m = st.c.modalities
            where.append(or_(*[or_(m == x, m.like(f"{x},%"), m.like(f"%,{x}"), m.like(f"%,{x},%")) for x in mods]))
        elif key in _TEXT_KEYS:
            where.append(_like(_TEXT_KEYS[key], v))
        elif key == "PatientBirthDate":  # sealed: matched on the opened value
            post.append(_birth_match(*imaging.date_range(v, "PatientBirthDate")))
    return where, (lambda r: all(m(r) for m in post)) if post else None


_TEXT_KEYS: dict[str, Any] = {
    "AccessionNumber": st.c.accession_number, "StudyDescription": st.c.study_description,
    "ReferringPhysicianName": st.c.referring_physician, "StudyID": st.c.study_id, "PatientSex": st.c.patient_sex,
}


def find_studies(
    conn: Connection, where: Sequence[ColumnElement[bool]], *, limit: int, offset: int, match: Match | None = None,
    scan_cap: int = 20_000,
) -> list[dict[str, Any]]:
    """Studies (opened rows), newest first; with ``match`` (sealed values: a PatientName wildcard,
    PatientBirthDate), tested on the opened rows the SQL conditions select, at most ``scan_cap``."""
    base = select(st).where(and_(*where)).order_by(st.c.study_date.desc(), st.c.id.desc())
    if match is None:
        return [opened(conn, dict(r)) for r in conn.execute(base.limit(limit).offset(offset)).mappings()]
    out: list[dict[str, Any]] = []
    skipped = scanned = 0
    while scanned < scan_cap and len(out) < limit:
        page = [dict(r) for r in conn.execute(base.limit(500).offset(scanned)).mappings()]
        if not page:
            break
        scanned += len(page)
        for r in page:
            row = opened(conn, r)
            if match(row):
                if skipped < offset:
                    skipped += 1
                elif len(out) < limit:
                    out.append(row)
    return out


def series_of(conn: Connection, study_id: int, q: dict[str, str]) -> list[dict[str, Any]]:
    where: list[ColumnElement[bool]] = [se.c.study_id == study_id, se.c.instance_count > 0]
    for key, col in (("Modality", se.c.modality), ("SeriesDescription", se.c.series_description), ("BodyPartExamined", se.c.body_part)):
        if q.get(key, "").strip() not in ("", "*"):
            where.append(_like(col, q[key].strip()))
    if q.get("SeriesInstanceUID", "").strip():
        where.append(se.c.series_uid.in_(imaging.split_uids(q["SeriesInstanceUID"], "SeriesInstanceUID")))
    if q.get("SeriesNumber", "").strip().isdigit():
        where.append(se.c.series_number == int(q["SeriesNumber"].strip()))
    rows = conn.execute(select(se).where(*where).order_by(se.c.series_number, se.c.id)).mappings()
    return [dict(r) for r in rows]


def instances(
    conn: Connection, study_id: int, series_uid: str | None = None, *, sop_uids: Iterable[str] | None = None,
    with_metadata: bool = False,
) -> list[dict[str, Any]]:
    cols = [*INSTANCE_COLS, ins.c.metadata] if with_metadata else list(INSTANCE_COLS)
    q = (
        select(*cols).select_from(ins.join(se, se.c.id == ins.c.series_id).join(st, st.c.id == ins.c.study_id))
        .where(ins.c.study_id == study_id, ins.c.deleted_at.is_(None))
    )
    if series_uid is not None:
        q = q.where(se.c.series_uid == series_uid)
    if sop_uids is not None:
        q = q.where(ins.c.sop_uid.in_(list(sop_uids)))
    q = q.order_by(se.c.series_number, se.c.id, ins.c.instance_number, ins.c.id)
    return [dict(r) for r in conn.execute(q).mappings()]


def instance_by_uid(conn: Connection, sop_uid: str) -> dict[str, Any] | None:
    """One instance by its SOP Instance UID (one indexed query), with its study's state and
    PatientID (sealed: :func:`opened` opens it). The
    statement is built once (every WADO request runs it): only the UID is bound per call."""
    r = conn.execute(_INSTANCE_BY_UID, {"sop_uid": sop_uid}).mappings().first()
    return dict(r) if r and r["study_deleted"] is None else None


_INSTANCE_BY_UID = (
    select(*INSTANCE_COLS, st.c.deleted_at.label("study_deleted"), st.c.patient_id)
    .select_from(ins.join(se, se.c.id == ins.c.series_id).join(st, st.c.id == ins.c.study_id))
    .where(ins.c.sop_uid == bindparam("sop_uid"), ins.c.deleted_at.is_(None))
)


# -- deletion (YB-4.5) ----------------------------------------------------------------------------
def studies_by_accession(conn: Connection, org_code: str, accession: str) -> list[dict[str, Any]]:
    q = select(st).where(st.c.org_code == org_code, st.c.accession_number == accession, st.c.deleted_at.is_(None))
    return [opened(conn, dict(r)) for r in conn.execute(q).mappings()]


def hide_studies(conn: Connection, study_ids: Sequence[int], now: datetime) -> int:
    """Mark the studies and their instances deleted (kept, never served); how many instances."""
    if not study_ids:
        return 0
    n = conn.execute(update(ins).where(ins.c.study_id.in_(study_ids), ins.c.deleted_at.is_(None)).values(deleted_at=now)).rowcount
    conn.execute(update(se).where(se.c.study_id.in_(study_ids)).values(instance_count=0))
    conn.execute(update(st).where(st.c.id.in_(study_ids)).values(deleted_at=now, updated_at=now, instance_count=0, series_count=0))
    return int(n or 0)


def add_deletion(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(image_deletion.insert().values(sealing.seal_row(sealing.cipher(conn), "image_deletion", row)))


# -- durability of a push without storage commitment --------------------------------------------
def held_digests(conn: Connection, study_uids: Sequence[str], org_code: str) -> tuple[list[int], list[str]]:
    """The ids of the given studies held for ``org_code`` and the SHA-256 of their instances (not deleted)."""
    ids: list[int] = []
    digests: list[str] = []
    for i in range(0, len(study_uids), 500):
        part = study_uids[i : i + 500]
        q = (
            select(st.c.id, ins.c.sha256).select_from(st.outerjoin(ins, and_(ins.c.study_id == st.c.id, ins.c.deleted_at.is_(None))))
            .where(st.c.study_uid.in_(part), st.c.org_code == org_code)
        )
        for r in conn.execute(q):
            ids.append(int(r.id))
            if r.sha256 is not None:
                digests.append(str(r.sha256))
    return sorted(set(ids)), digests


def touch_studies(conn: Connection, study_ids: Sequence[int], now: datetime) -> None:
    """A write to the studies' rows (``updated_at``), their state unchanged: the transaction that
    carries it is a real commit (a transaction writing nothing flushes nothing)."""
    if study_ids:
        conn.execute(update(st).where(st.c.id.in_(list(study_ids))).values(updated_at=now))
