"""How a held study is reached (``huren.store.imaging`` holds the studies themselves): the exam
report behind it (by ``study_instance_uid``, else 检查号 as accession number), the AE titles that
push to or receive from the archive (``dicom_node``), and the image keys (``image_key``: only
their SHA-256)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from huren.store.tables import dicom_node, exam_item, exam_report, image_key, org
from huren.store.tables import image_study as st


# -- the exam report link -------------------------------------------------------------------------
def study_for_exam(conn: Connection, org_code: str, report_form_no: str) -> str | None:
    r = conn.execute(
        select(exam_report.c.study_instance_uid, exam_report.c.pacs_id)
        .where(exam_report.c.org_code == org_code, exam_report.c.report_form_no == report_form_no)
        .order_by(exam_report.c.voided, exam_report.c.id.desc()).limit(1)
    ).first()
    if r is None:
        return None
    if r.study_instance_uid:
        return str(r.study_instance_uid)
    if not r.pacs_id:
        return None
    uid = conn.execute(
        select(st.c.study_uid).where(st.c.org_code == org_code, st.c.accession_number == r.pacs_id, st.c.deleted_at.is_(None))
        .order_by(st.c.id.desc()).limit(1)
    ).scalar()
    return str(uid) if uid else None


def exam_for_study(conn: Connection, study: dict[str, Any]) -> dict[str, Any] | None:
    """The exam report behind a study: by ``study_instance_uid``, else by accession number (``pacs_id``)."""
    e = exam_report.c
    cols = (e.id, e.org_code, e.report_form_no, e.voided, e.report_title, e.class_name, e.image_descr, e.conclusion,
            e.is_abnormal, e.authenticator_dtime, e.performer_dtime)
    r = conn.execute(
        select(*cols).where(exam_report.c.study_instance_uid == study["study_uid"]).order_by(exam_report.c.voided).limit(1)
    ).first()
    if r is None and study.get("accession_number"):
        r = conn.execute(
            select(*cols).where(exam_report.c.org_code == study["org_code"], exam_report.c.pacs_id == study["accession_number"])
            .order_by(exam_report.c.voided, exam_report.c.id.desc()).limit(1)
        ).first()
    if r is None:
        return None
    items = conn.execute(select(exam_item.c.exam_item_name).where(exam_item.c.report_id == r.id)).scalars().all()
    org_name = conn.execute(select(org.c.name).where(org.c.code == r.org_code)).scalar()
    return {
        "report_id": int(r.id), "org_code": str(r.org_code), "report_form_no": str(r.report_form_no), "voided": bool(r.voided),
        "org_name": org_name, "report_title": r.report_title, "class_name": r.class_name, "image_descr": r.image_descr,
        "conclusion": r.conclusion, "is_abnormal": r.is_abnormal,
        "authenticator_dtime": r.authenticator_dtime.isoformat(sep=" ") if r.authenticator_dtime else None,
        "performer_dtime": r.performer_dtime.isoformat(sep=" ") if r.performer_dtime else None,
        "exam_items": [str(n) for n in items if n],
    }


# -- DICOM nodes ----------------------------------------------------------------------------------
def get_node(conn: Connection, ae_title: str) -> dict[str, Any] | None:
    r = conn.execute(select(dicom_node).where(dicom_node.c.ae_title == ae_title)).mappings().first()
    return dict(r) if r else None


def org_has_node(conn: Connection, org_code: str) -> bool:
    q = select(dicom_node.c.ae_title).where(dicom_node.c.org_code == org_code, dicom_node.c.purpose != "pacs").limit(1)
    return conn.execute(q).first() is not None


def put_node(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(delete(dicom_node).where(dicom_node.c.ae_title == row["ae_title"]))
    conn.execute(dicom_node.insert().values(row))


def list_nodes(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(dicom_node).order_by(dicom_node.c.org_code, dicom_node.c.ae_title)).mappings()]


def remove_node(conn: Connection, ae_title: str) -> bool:
    return bool(conn.execute(delete(dicom_node).where(dicom_node.c.ae_title == ae_title)).rowcount)


# -- image keys -----------------------------------------------------------------------------------
def add_key(conn: Connection, row: dict[str, Any]) -> int:
    return int(conn.execute(image_key.insert().values(row).returning(image_key.c.id)).scalar_one())


def key_by_hash(conn: Connection, key_sha256: str) -> dict[str, Any] | None:
    r = conn.execute(select(image_key).where(image_key.c.key_sha256 == key_sha256)).mappings().first()
    return dict(r) if r else None


def key_by_id(conn: Connection, key_id: int) -> dict[str, Any] | None:
    r = conn.execute(select(image_key).where(image_key.c.id == key_id)).mappings().first()
    return dict(r) if r else None


def keys_of(conn: Connection, study_uid: str, viewer_org: str | None = None) -> list[dict[str, Any]]:
    q = select(image_key).where(image_key.c.study_uid == study_uid)
    if viewer_org is not None:
        q = q.where(image_key.c.viewer_org == viewer_org)
    return [dict(r) for r in conn.execute(q.order_by(image_key.c.id.desc()).limit(1000)).mappings()]


def revoke_key(conn: Connection, key_id: int, *, by: str, now: datetime) -> None:
    conn.execute(update(image_key).where(image_key.c.id == key_id, image_key.c.revoked_at.is_(None)).values(revoked_at=now, revoked_by=by))


def used_key(conn: Connection, key_id: int, now: datetime) -> None:
    conn.execute(update(image_key).where(image_key.c.id == key_id).values(uses=image_key.c.uses + 1, last_used_at=now))


def exams_with_images(conn: Connection, id_type_code: str, id_no_bidx: str, *, exclude_org: str, limit: int = 200) -> list[dict[str, Any]]:
    """A patient's exam reports (by the ID number's blind index) at other institutions whose
    study the archive holds: each with the study's UID, date and modalities."""
    e = exam_report
    rows = conn.execute(
        select(e.c.id, e.c.org_code, e.c.report_form_no, e.c.study_instance_uid, e.c.pacs_id, e.c.class_name, e.c.report_title,
               e.c.performer_dtime)
        .where(e.c.id_type_code == id_type_code, e.c.id_no_bidx == id_no_bidx, e.c.org_code != exclude_org, e.c.voided.is_(False))
        .order_by(e.c.performer_dtime.desc()).limit(limit)
    ).mappings().all()
    out = []
    for r in rows:
        q = select(st.c.study_uid, st.c.study_date, st.c.modalities, st.c.instance_count).where(st.c.deleted_at.is_(None))
        if r["study_instance_uid"]:
            q = q.where(st.c.study_uid == r["study_instance_uid"])
        elif r["pacs_id"]:
            q = q.where(st.c.org_code == r["org_code"], st.c.accession_number == r["pacs_id"])
        else:
            continue
        s = conn.execute(q.limit(1)).mappings().first()
        if s is not None and s["instance_count"]:
            out.append(dict(r) | dict(s))
    return out
