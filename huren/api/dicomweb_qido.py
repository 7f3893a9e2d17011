"""QIDO-RS (PS3.18 §10.6) under ``/dicom-web``: studies, series, instances.

Matching keys are given by keyword or by tag (``PatientID`` or ``00100020``), the ones a web viewer
sends (OHIF's ``qido.js``): PatientID, PatientName (``*`` / ``?`` wildcards), StudyDate (a date or
a range ``20240101-20241231``), ModalitiesInStudy, AccessionNumber, StudyInstanceUID (a list with
``\\`` or ``,``), StudyDescription, ReferringPhysicianName, StudyID; series: Modality,
SeriesInstanceUID, SeriesNumber, SeriesDescription, BodyPartExamined, SeriesDate; instances:
SOPInstanceUID, SOPClassUID, InstanceNumber. ``limit`` (default 100, at most 1000), ``offset``,
``fuzzymatching`` (true: PatientName matches word prefixes). ``includefield`` is accepted and
ignored: every answer carries the level's full attribute set (a superset of what OHIF asks for).
Unknown keys are ignored and named in a ``Warning: 299`` header (PS3.18 §8.3.4.5). PatientID is
matched exactly (patient IDs are sealed in the index); OHIF's ``*id*`` is matched as ``id``.

Nothing found: 200 with an empty array (as Orthanc does; dcm4chee answers 204 — a 200 with ``[]``
is what every client parses without a special case).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from huren.api.dicomweb import PREFIX, bad, call, dicom_json, resolve_reader
from huren.api.openapi import op
from huren.domain.imaging import check_uid
from huren.services.container import Container

# DICOMweb is specified by PS3.18, not by this OpenAPI document (docs/imaging.md lists it): out of the schema
router = APIRouter(prefix=PREFIX, tags=["DICOMweb"], include_in_schema=False)

STUDY_KEYS = {
    "00100020": "PatientID", "00100010": "PatientName", "0020000D": "StudyInstanceUID",
    "00080050": "AccessionNumber", "00080020": "StudyDate", "00080061": "ModalitiesInStudy",
    "00081030": "StudyDescription", "00080090": "ReferringPhysicianName", "00200010": "StudyID",
}
SERIES_KEYS = {
    "00080060": "Modality", "0020000E": "SeriesInstanceUID", "00200011": "SeriesNumber",
    "0008103E": "SeriesDescription", "00180015": "BodyPartExamined", "00080021": "SeriesDate",
}
INSTANCE_KEYS = {"00080018": "SOPInstanceUID", "00080016": "SOPClassUID", "00200013": "InstanceNumber"}
CONTROL = ("limit", "offset", "includefield", "fuzzymatching", "key")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_VALUE = 256


def _keywords(table: dict[str, str]) -> dict[str, str]:
    """Tag (upper case) or keyword → keyword."""
    return {**{k.upper(): v for k, v in table.items()}, **{v.upper(): v for v in table.values()}}


STUDY = _keywords(STUDY_KEYS)
SERIES = _keywords(SERIES_KEYS)
INSTANCE = _keywords(INSTANCE_KEYS)


class Query:
    """A QIDO request's matching keys (by keyword), paging and the unknown keys it named."""

    def __init__(self, request: Request, *levels: dict[str, str]) -> None:
        self.q: dict[str, str] = {}
        self.unknown: list[str] = []
        self.warnings: list[str] = []
        params = request.query_params
        for name, value in params.multi_items():
            if name in CONTROL:
                continue
            keyword = next((lv[name.upper()] for lv in levels if name.upper() in lv), None)
            if keyword is None:
                self.unknown.append("".join(ch if " " < ch < "\x7f" and ch != "\"" else "?" for ch in name[:40]))  # header-safe
                continue
            if len(value) > MAX_VALUE:
                raise bad(keyword, "max_length", f"{keyword} 的匹配值不能超过 {MAX_VALUE} 个字符")
            if value != "" and value != "*":  # an empty value or a lone * asks for the attribute, matches all
                self.q[keyword] = self._patient_id(value) if keyword == "PatientID" else value
        self.limit = _int(params.get("limit"), "limit", DEFAULT_LIMIT, MAX_LIMIT)
        self.offset = _int(params.get("offset"), "offset", 0, 10_000_000)
        fuzzy = (params.get("fuzzymatching") or "false").lower()
        if fuzzy not in ("true", "false"):
            raise bad("fuzzymatching", "enum", "fuzzymatching 应为 true 或 false")
        self.fuzzy = fuzzy == "true"

    def _patient_id(self, value: str) -> str:
        """Patient IDs are kept sealed and matched exactly. OHIF wraps its MRN filter in ``*…*``
        (``supportsWildcard``, meant for names): such a value is matched exactly on what is
        inside, and the answer says so in a Warning; any other wildcard is refused (400)."""
        inner = value[1:-1] if len(value) > 2 and value.startswith("*") and value.endswith("*") else None
        if inner is not None and "*" not in inner and "?" not in inner:
            self.warnings.append("PatientID wildcards are not supported: matched exactly")
            return inner
        return value

    def answer(self, rows: list[dict[str, Any]]) -> Response:
        warnings = list(self.warnings)
        if self.unknown:
            names = ", ".join(sorted(set(self.unknown)))[:400]
            warnings.append(f"The following query parameters are not supported and were ignored: {names}")
        headers = {"Warning": ", ".join(f'299 huren "{w}"' for w in warnings)} if warnings else None
        return dicom_json(rows, headers=headers)


def _int(raw: str | None, name: str, default: int, hi: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise bad(name, "integer", f"{name} 应为非负整数")
    value = int(raw)
    if value > hi:
        if name == "limit":
            return hi  # a larger limit is clipped, as the standard allows (the Warning is implicit in the count)
        raise bad(name, "range", f"{name} 不能大于 {hi}")
    return value


def _c(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


@router.get("/studies", **op(["XC-E10", "XJ-2.3.1"], "QIDO-RS 检索检查（PatientID、PatientName、StudyDate、ModalitiesInStudy、AccessionNumber…）"))
async def search_studies(request: Request) -> Response:
    c, q = _c(request), Query(request, STUDY)
    rows = await call(lambda: c.imaging.find_studies(resolve_reader(c, request), q.q, limit=q.limit, offset=q.offset, fuzzy=q.fuzzy))
    return q.answer(rows)


@router.get("/studies/{study}/series", **op(["XC-E10"], "QIDO-RS 检索某检查的序列"))
async def search_study_series(study: str, request: Request) -> Response:
    c, q = _c(request), Query(request, SERIES)
    rows = await call(lambda: c.imaging.find_series(
        resolve_reader(c, request), check_uid(study, "StudyInstanceUID"), q.q, limit=q.limit, offset=q.offset))
    return q.answer(rows)


@router.get("/series", **op(["XC-E10"], "QIDO-RS 检索序列（可按检查属性与序列属性匹配）"))
async def search_series(request: Request) -> Response:
    c, q = _c(request), Query(request, SERIES, STUDY)
    rows = await call(lambda: c.imaging.find_series(resolve_reader(c, request), None, q.q, limit=q.limit, offset=q.offset))
    return q.answer(rows)


@router.get("/studies/{study}/series/{series}/instances", **op(["XC-E10"], "QIDO-RS 检索某序列的图像"))
async def search_series_instances(study: str, series: str, request: Request) -> Response:
    c, q = _c(request), Query(request, INSTANCE)
    rows = await call(lambda: c.imaging.find_instances(
        resolve_reader(c, request), check_uid(study, "StudyInstanceUID"), check_uid(series, "SeriesInstanceUID"),
        q.q, limit=q.limit, offset=q.offset))
    return q.answer(rows)


@router.get("/studies/{study}/instances", **op(["XC-E10"], "QIDO-RS 检索某检查的图像"))
async def search_study_instances(study: str, request: Request) -> Response:
    c, q = _c(request), Query(request, INSTANCE, SERIES)
    rows = await call(lambda: c.imaging.find_instances(
        resolve_reader(c, request), check_uid(study, "StudyInstanceUID"), None, q.q, limit=q.limit, offset=q.offset))
    return q.answer(rows)


@router.get("/instances", **op(["XC-E10"], "QIDO-RS 检索图像（可按检查、序列与图像属性匹配）"))
async def search_instances(request: Request) -> Response:
    c, q = _c(request), Query(request, INSTANCE, SERIES, STUDY)
    rows = await call(lambda: c.imaging.find_instances(resolve_reader(c, request), None, None, q.q, limit=q.limit, offset=q.offset))
    return q.answer(rows)
