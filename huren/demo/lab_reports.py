"""Demo lab reports: a ``labmaster`` + ``lab_subitem`` payload (seed 002 §1.2.2) of one panel."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from huren.demo import pdf
from huren.demo.catalog import recognition
from huren.demo.institutions import DemoOrg
from huren.demo.lab_panels import PANELS, Analyte, Panel
from huren.demo.patients import DemoPatient
from huren.demo.profiles import LAB, profile_of
from huren.demo.values import pdf_b64, ts
from huren.demo.visits import order_priority, visit_on

_INTERPRET = {"N": "正常", "H": "高", "L": "低", "WP": "弱阳性", "P": "阳性"}
_SPECIMEN_SITES = (("", ""), ("LACF", "左肘窝"), ("RACF", "右肘窝"))


def _draw(rng: random.Random, a: Analyte, sex_code: str) -> float:
    low, high = a.limits(sex_code)
    abnormal = rng.random() < a.p_abnormal
    if low is not None and high is not None:
        width = high - low
        if abnormal:
            go_high = low <= 0 or rng.random() < 0.6
            if go_high:
                return high + width * rng.uniform(0.05, 0.6)
            return max(low - width * rng.uniform(0.05, 0.5), low * 0.3)
        return low + width * min(max(rng.gauss(0.5, 0.15), 0.03), 0.97)
    if high is not None:  # upper limit only
        return high * (rng.uniform(1.05, 1.8) if abnormal else rng.uniform(0.35, 0.95))
    assert low is not None
    return low * (rng.uniform(0.6, 0.95) if abnormal else rng.uniform(1.05, 1.7))


def _fmt(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return "0" if decimals == 0 and text == "-0" else text


def _fmt_limit(value: float | None, decimals: int) -> str:
    return "" if value is None else _fmt(value, decimals)


def _lab_items(rng: random.Random, panel: Panel, sex_code: str) -> list[dict[str, str]]:
    values: dict[str, float] = {}
    for item in panel.items:
        if isinstance(item, Analyte):
            values[item.key] = _draw(rng, item, sex_code)
    if panel.derive is not None:
        panel.derive(values)
    positives: frozenset[str] | None = None
    if panel.patterns:
        positives = rng.choices([p for p, _ in panel.patterns], weights=[w for _, w in panel.patterns])[0]

    rows: list[dict[str, str]] = []
    for item in panel.items:
        if isinstance(item, Analyte):
            raw = values[item.key]
            if item.step:
                raw = round(raw / item.step) * item.step
            text = _fmt(max(raw, 0.0), item.decimals)
            number = float(text)
            low, high = item.limits(sex_code)
            interp = "H" if high is not None and number > high else "L" if low is not None and number < low else "N"
            notes = ""
            if low is None and high is not None:
                notes = f"<{_fmt_limit(high, item.decimals)}"
            elif high is None and low is not None:
                notes = f">{_fmt_limit(low, item.decimals)}"
            rows.append({
                "class_code": item.code, "class_name": item.std_name, "class_local_name": item.local_name,
                "result_type": "PQ", "result_type_descr": "数值型", "result_value": text,
                "result_unit": item.unit, "norm_lower_limit": _fmt_limit(low, item.decimals),
                "norm_upper_limit": _fmt_limit(high, item.decimals), "norm_value_notes": notes,
                "result_interpre": interp, "result_interpre_descr": _INTERPRET[interp],
                "examine_way": item.method,
            })
        else:
            if positives is not None:
                value, interp = ("阳性", "P") if item.key in positives else ("阴性", "N")
            else:
                outcome = rng.choices(item.outcomes, weights=[w for _, _, w in item.outcomes])[0]
                value, interp = outcome[0], outcome[1]
            rows.append({
                "class_code": item.code, "class_name": item.std_name, "class_local_name": item.local_name,
                "result_type": "CD", "result_type_descr": "文本型", "result_value": value,
                "result_unit": "", "norm_lower_limit": "", "norm_upper_limit": "",
                "norm_value_notes": item.notes, "result_interpre": interp,
                "result_interpre_descr": _INTERPRET[interp], "examine_way": item.method,
            })
    return rows


def make_lab_report(
    rng: random.Random, org: DemoOrg, patient: DemoPatient, when: datetime, *, with_pdf: bool = True
) -> dict[str, Any]:
    """A ``labmaster`` + ``lab_subitem`` payload whose audit time (authenticator_dtime) is ``when``."""
    profile = profile_of(org)
    visit = visit_on(org, patient, when.date())
    panels = [p for p in PANELS if p.min_level <= org.level]
    panel = rng.choices(panels, weights=[p.weight for p in panels])[0]
    tech = profile.tech[LAB]

    authenticated = when.replace(microsecond=0)
    authored = authenticated - timedelta(seconds=rng.randrange(0, 15 * 60))
    performed = authored - timedelta(seconds=rng.randrange(10 * 60, 90 * 60))
    ordered_gap = (60 * 60, 12 * 3600) if visit.event_type == "2" else (20 * 60, 3 * 3600)
    ordered = performed - timedelta(seconds=rng.randrange(*ordered_gap))
    updated = authenticated + timedelta(seconds=rng.randrange(0, 180))

    report_form_no = f"1{authenticated:%y%m%d}{rng.randrange(10**12):012d}"
    priority, priority_name = order_priority(rng, visit, preop=panel.preop)
    site_code, site_name = ("", "") if panel.specimen == "UR" else rng.choice(_SPECIMEN_SITES)
    author = rng.choice(profile.authors[LAB])
    auditor = rng.choice(profile.auditors[LAB])
    performer = rng.choice(profile.performers[LAB])
    order_id = f"{rng.randrange(10**9):09d}"

    master: dict[str, str] = {
        "last_update_dtime": ts(updated),
        "org_code": org.code,
        "apply_form_no": "" if rng.random() < 0.3 else f"{rng.randrange(10**9):09d}",
        "report_form_no": report_form_no,
        "patient_id": visit.patient_id,
        "event_type": visit.event_type,
        "event_no": visit.event_no,
        "id_no": patient.id_no,
        "id_type_code": patient.id_type_code,
        "card_no": patient.card_no,
        "retrieve_date": f"{authenticated:%Y-%m-%d}",
        "class_code": panel.loinc_class,
        "class_name": panel.class_name,
        "class_local_name": panel.class_local_name,
        "report_title": panel.title,
        "effective_dtime": ts(authored),
        "name": patient.name,
        "sex_code": patient.sex_code,
        "sex_name": patient.sex_name,
        "author_id": author.id,
        "author_dtime": ts(authored),
        "author_name": author.name,
        "authenticator_id": auditor.id,
        "authenticator_dtime": ts(authenticated),
        "authenticator_name": auditor.name,
        "participant_id": visit.doctor.id,
        "participant_dtime": ts(ordered),
        "participant_name": visit.doctor.name,
        "participant_dept_code": visit.dept.code,
        "participant_dept_name": visit.dept.name,
        "participant_dept_std_code": visit.dept.std_code,
        "participant_dept_std_name": visit.dept.std_name,
        "order_id": order_id,
        "order_priority": priority,
        "order_priority_name": priority_name,
        "specimen_id": f"{rng.randrange(10**10):010d}",
        "specimen_class_code": panel.specimen,
        "specimen_determiner_code": site_code,
        "specimen_determiner_name": site_name,
        "performer_dept_code": tech.code,
        "performer_dept_name": tech.name,
        "performer_dept_std_code": tech.std_code,
        "performer_dept_std_name": tech.std_name,
        "performer_doctor": performer.name,
        "performer_dtime": ts(performed),
        "playing_device": profile.devices[panel.device],
        "data_status": "1",
    }
    items: list[dict[str, str]] = []
    for serial, row in enumerate(_lab_items(rng, panel, patient.sex_code), start=1):
        items.append({
            "last_update_dtime": master["last_update_dtime"],
            "org_code": org.code,
            "event_no": visit.event_no,
            "report_form_no": report_form_no,
            "serial_no": str(serial),
            **row,
            "effective_dtime": master["authenticator_dtime"],
            "recognition": recognition("lab", row["class_code"]),
        })
    # keep the table's column order: examine_way before effective_dtime
    items = [_order(item, _LAB_SUBITEM_FIELDS) for item in items]
    master["pdf"] = pdf_b64(pdf.render_lab_pdf(master, items, org_name=org.name)) if with_pdf else ""
    return {"labmaster": master, "lab_subitem": items}


_LAB_SUBITEM_FIELDS = (
    "last_update_dtime", "org_code", "event_no", "report_form_no", "serial_no", "class_code",
    "class_name", "class_local_name", "result_type", "result_type_descr", "result_value",
    "result_unit", "norm_lower_limit", "norm_upper_limit", "norm_value_notes", "result_interpre",
    "result_interpre_descr", "effective_dtime", "examine_way", "recognition",
)


def _order(row: dict[str, str], fields: tuple[str, ...]) -> dict[str, str]:
    return {name: row[name] for name in fields}
