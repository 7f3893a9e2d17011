"""The identifiers of Query/Retrieve (PS3.4 C.4): levels, unique and matching keys, and the values
of a dataset as text — shared by C-FIND (:mod:`huren.dimse.query`) and C-MOVE / C-GET
(:mod:`huren.dimse.retrieve`)."""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from huren.errors import InvalidInput, Problem

#: matching keys the service answers, per level (the rest are matched as universal)
MATCH_KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientID", "PatientName", "PatientBirthDate", "PatientSex"),
    "STUDY": (
        "PatientID", "PatientName", "StudyInstanceUID", "AccessionNumber", "StudyDate", "ModalitiesInStudy",
        "StudyDescription", "ReferringPhysicianName", "StudyID",
    ),
    "SERIES": ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription", "BodyPartExamined"),
    "IMAGE": ("SOPInstanceUID", "SOPClassUID", "InstanceNumber"),
}
UNIQUE_KEY = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}
#: keys the query carries for the levels above (used to place the query, not matched again)
PARENT_KEYS = {"PATIENT": (), "STUDY": (), "SERIES": ("StudyInstanceUID",), "IMAGE": ("StudyInstanceUID", "SeriesInstanceUID")}
SKIP = {"SpecificCharacterSet", "QueryRetrieveLevel", "TimezoneOffsetFromUTC"}


def bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, [Problem(field, "dicom", message)])


def text(value: Any) -> str:
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(text(v) for v in value)
    if isinstance(value, PersonName):
        groups = [g for g in str(value).split("=") if g]
        return groups[0] if groups else ""
    return "" if value is None else str(value)


def level_of(identifier: Dataset) -> str:
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if level not in UNIQUE_KEY:
        raise bad("QueryRetrieveLevel", f"查询级别“{level}”不是 PATIENT / STUDY / SERIES / IMAGE")
    return level


def matching(identifier: Dataset, level: str) -> tuple[dict[str, str], dict[str, str], bool]:
    """(query keys for the service, parent unique keys, whether some matching key was ignored)."""
    q: dict[str, str] = {}
    parents: dict[str, str] = {}
    ignored = False
    for elem in identifier:
        kw = elem.keyword
        if not kw or kw in SKIP or elem.VR == "SQ":
            continue
        value = text(elem.value).strip()
        if value in ("", "*"):
            continue
        if kw in PARENT_KEYS[level]:
            parents[kw] = value
        elif kw in MATCH_KEYS[level]:
            q[kw] = value
        else:
            ignored = True
    return q, parents, ignored

