"""Demo exam reports: an ``exammaster`` + ``exam_subitem`` payload (seed 002 §1.2.2) of one template."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from huren.demo import pdf
from huren.demo.catalog import load_catalog, recognition
from huren.demo.exam_templates import EXAMS
from huren.demo.institutions import DemoOrg
from huren.demo.patients import DemoPatient, age_on
from huren.demo.profiles import profile_of
from huren.demo.values import pdf_b64, ts
from huren.demo.visits import order_priority, visit_on

_NON_CATALOG_EXAM_NAMES = {"210200001": "磁共振平扫"}


def _exam_item_name(code: str) -> str:
    item = load_catalog().get(code)
    return item.name if item is not None else _NON_CATALOG_EXAM_NAMES.get(code, code)


def make_exam_report(
    rng: random.Random, org: DemoOrg, patient: DemoPatient, when: datetime, *, with_pdf: bool = True
) -> dict[str, Any]:
    """An ``exammaster`` + ``exam_subitem`` payload whose audit time (authenticator_dtime) is ``when``."""
    profile = profile_of(org)
    visit = visit_on(org, patient, when.date())
    age = age_on(patient.birth_date, when.date())
    offered = [t for t in EXAMS if t.modality in profile.modalities]
    templates = [t for t in offered if t.min_age <= age] or offered
    tpl = rng.choices(templates, weights=[t.weight for t in templates])[0]
    side = rng.choice(("左", "右"))

    def fill(text: str) -> str:
        return text.replace("{side}", side)

    diagnosis, condition = rng.choice(tpl.cases)
    abnormal = rng.random() < tpl.p_abnormal
    findings, conclusion = rng.choice(tpl.abnormal) if abnormal else tpl.normal
    tech = profile.tech[tpl.modality]

    authenticated = when.replace(microsecond=0)
    authored = authenticated - timedelta(seconds=rng.randrange(60, 20 * 60))
    quick = tpl.modality in ("US", "ECG")
    performed = authored - timedelta(seconds=rng.randrange(5 * 60, (60 if quick else 240) * 60))
    arrived = performed - timedelta(seconds=rng.randrange(5 * 60, 60 * 60))
    ordered_gap = (60 * 60, 20 * 3600) if visit.event_type == "2" else (5 * 60, 2 * 3600)
    ordered = arrived - timedelta(seconds=rng.randrange(*ordered_gap))
    updated = authenticated + timedelta(seconds=rng.randrange(0, 180))

    report_form_no = f"2{authenticated:%y%m%d}{rng.randrange(10**12):012d}"
    uid = f"2.25.{rng.getrandbits(127) | (1 << 126)}"  # UUID-derived UID (DICOM PS3.5 B.2)
    priority, priority_name = order_priority(rng, visit)
    performer = rng.choice(profile.performers[tpl.modality])
    author = rng.choice(profile.authors[tpl.modality])
    auditor = rng.choice(profile.auditors[tpl.modality])

    master: dict[str, str] = {
        "last_update_dtime": ts(updated),
        "org_code": org.code,
        "apply_form_no": f"{rng.randrange(10**9):09d}",
        "state": "3",
        "report_form_no": report_form_no,
        "patient_id": visit.patient_id,
        "event_type": visit.event_type,
        "event_no": visit.event_no,
        "performer_dtime": ts(performed),
        "pacs_id": f"{rng.randrange(10**10):010d}",
        "study_instance_uid": uid,
        "id_no": patient.id_no,
        "id_type_code": patient.id_type_code,
        "card_no": patient.card_no,
        "checked_status": "1",
        "class_code": tpl.modality,
        "class_name": tpl.modality,
        "retrieve_date": f"{authenticated:%Y-%m-%d}",
        "report_title": fill(tpl.title),
        "effective_dtime": ts(authored),
        "confidentiality": "",
        "name": patient.name,
        "sex_code": patient.sex_code,
        "sex_name": patient.sex_name,
        "birth_date": patient.birth_date.isoformat(),
        "author_id": author.id,
        "author_dtime": ts(authored),
        "author_name": author.name,
        "authenticator_id": auditor.id,
        "authenticator_dtime": ts(authenticated),
        "authenticator_name": auditor.name,
        "authenticator_dept_code": tech.code,
        "authenticator_dept_name": tech.name,
        "authenticator_dept_std_code": tech.std_code,
        "authenticator_dept_std_name": tech.std_name,
        "participant_dept_code": visit.dept.code,
        "participant_dept_name": visit.dept.name,
        "participant_dept_std_code": visit.dept.std_code,
        "participant_dept_std_name": visit.dept.std_name,
        "participant_id": visit.doctor.id,
        "participant_dtime": ts(ordered),
        "participant_name": visit.doctor.name,
        "order_id": f"{rng.randrange(10**9):09d}",
        "order_priority": priority,
        "order_priority_name": priority_name,
        "performer_dept_code": tech.code,
        "performer_dept_name": tech.name,
        "performer_dept_std_code": tech.std_code,
        "performer_dept_std_name": tech.std_name,
        "performer_doctor": performer.name,
        "playing_device": profile.devices[tpl.modality],
        "outpat_diag_name": diagnosis,
        "patient_condition_desc": fill(condition),
        "exam_purpose": rng.choice(tpl.purposes),
        "image_descr": fill(findings),
        "is_abnormal": "0" if abnormal else "1",  # seed: 1 = 正常, 0 = 异常
        "conclusion": fill(conclusion),
        "arrive_dtime": ts(arrived),
        "data_status": "1",
        "pacs_url": f"https://pacs.example.invalid/viewer?study={uid}",
    }
    items = [
        {
            "last_update_dtime": master["last_update_dtime"],
            "org_code": org.code,
            "event_no": visit.event_no,
            "report_form_no": report_form_no,
            "exam_site_code": site_code,
            "body_part_name": fill(body_part),
            "exam_item_code": code,
            "exam_item_name": _exam_item_name(code),
            "effective_dtime": master["authenticator_dtime"],
            "recognition": recognition("exam", code),
        }
        for code, site_code, body_part in tpl.parts
    ]
    master["pdf"] = pdf_b64(pdf.render_exam_pdf(master, items, org_name=org.name)) if with_pdf else ""
    return {"exammaster": master, "exam_subitem": items}
