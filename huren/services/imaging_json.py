"""Index rows as DICOM JSON model objects (PS3.18 F.2): the answers of QIDO-RS and C-FIND at the
patient, study, series and instance levels, and the instance metadata as served.

Values come from the index (text already Unicode, ``SpecificCharacterSet`` ``ISO_IR 192``);
attributes without a value are given with their VR only, as the model allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

UNICODE = "ISO_IR 192"


def el(vr: str, *values: Any) -> dict[str, Any]:
    vals = [v for v in values if v not in (None, "")]
    return {"vr": vr, "Value": vals} if vals else {"vr": vr}


def pn(value: str | None) -> dict[str, Any]:
    """A person name (``Alphabetic=Ideographic=Phonetic``) as a PN element."""
    if not value:
        return {"vr": "PN"}
    groups = dict(zip(("Alphabetic", "Ideographic", "Phonetic"), value.split("="), strict=False))
    return {"vr": "PN", "Value": [{k: v for k, v in groups.items() if v}]}


def patient_part(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "00100010": pn(row.get("patient_name")),
        "00100020": el("LO", row.get("patient_id")),
        "00100030": el("DA", row.get("patient_birth_date")),
        "00100040": el("CS", row.get("patient_sex")),
    }


def study(row: Mapping[str, Any]) -> dict[str, Any]:
    mods = [m for m in str(row.get("modalities") or "").split(",") if m]
    out = {
        "00080005": el("CS", UNICODE),
        "00080020": el("DA", row.get("study_date")),
        "00080030": el("TM", row.get("study_time")),
        "00080050": el("SH", row.get("accession_number")),
        "00080056": el("CS", "ONLINE"),
        "00080061": el("CS", *mods),
        "00080080": el("LO", row.get("institution_name")),
        "00080090": pn(row.get("referring_physician")),
        "00081030": el("LO", row.get("study_description")),
        **patient_part(row),
        "0020000D": el("UI", row["study_uid"]),
        "00200010": el("SH", row.get("study_id")),
        "00201206": el("IS", int(row.get("series_count") or 0)),
        "00201208": el("IS", int(row.get("instance_count") or 0)),
    }
    return out


def series(row: Mapping[str, Any], study_uid: str) -> dict[str, Any]:
    return {
        "00080005": el("CS", UNICODE),
        "00080021": el("DA", row.get("series_date")),
        "00080031": el("TM", row.get("series_time")),
        "00080060": el("CS", row.get("modality")),
        "0008103E": el("LO", row.get("series_description")),
        "00180015": el("CS", row.get("body_part")),
        "0020000D": el("UI", study_uid),
        "0020000E": el("UI", row["series_uid"]),
        "00200011": el("IS", row.get("series_number")),
        "00201209": el("IS", int(row.get("instance_count") or 0)),
    }


def instance(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "00080016": el("UI", row["sop_class_uid"]),
        "00080018": el("UI", row["sop_uid"]),
        "00080056": el("CS", "ONLINE"),
        "00083002": el("UI", row["transfer_syntax"]),
        "0020000D": el("UI", row["study_uid"]),
        "0020000E": el("UI", row["series_uid"]),
        "00200013": el("IS", row.get("instance_number")),
        "00280008": el("IS", row.get("frames")),
        "00280010": el("US", row.get("rows")),
        "00280011": el("US", row.get("columns")),
    }


def patients(rows: Iterable[Mapping[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Studies grouped by patient (institution, PatientID; else the name): PATIENT-level answers."""
    groups: dict[tuple[str, str], tuple[Mapping[str, Any], int]] = {}
    for r in rows:
        key = (str(r["org_code"]), str(r.get("patient_id") or "") or "name:" + str(r.get("patient_name") or ""))
        first, n = groups.get(key, (r, 0))
        groups[key] = (first, n + 1)
    out = []
    for first, n in list(groups.values())[:limit]:
        out.append({"00080005": el("CS", UNICODE), **patient_part(first), "00201200": el("IS", n)})
    return out


def metadata_array(patient_json: str | None, instances: Iterable[str]) -> bytes:
    """The JSON array of instance metadata: each instance's stored object with the study's
    (sealed, now opened) group 0010 merged in — by text, without parsing what is stored."""
    head = (patient_json or "{}").strip()
    inner = head[1:-1].strip()
    parts = []
    for meta in instances:
        body = meta.strip()
        if inner:
            parts.append("{" + inner + ("," + body[1:] if body != "{}" else "}"))
        else:
            parts.append(body)
    return ("[" + ",".join(parts) + "]").encode()
