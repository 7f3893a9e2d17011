"""The REST vocabulary of :mod:`huren.client` (re-exported there): the platform's REST paths
(``PATHS``, ``report_path``), the answers that mean "not now" (``TRANSIENT_STATUS``), how an
answer is decoded and the error a transport failure becomes. Nobody outside the client spells
``/api/v1``."""

from __future__ import annotations

import re
from typing import Any

import httpx2
import orjson

from huren.errors import NotFound, PlatformUnavailable, Problem

API = "/api/v1"
#: the shape of a platform report ref (URL-safe Base64; huren.crypto.opaque)
_REF = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: the platform's REST operations by name (the report paths: ``report_path``)
PATHS = {
    "token": f"{API}/auth/token",
    "catalog": f"{API}/catalog",
    "code_map": f"{API}/code-map",
    "recent": f"{API}/recognition/recent",
    "detail": f"{API}/recognition/detail",
    "exists": f"{API}/recognition/exists",
    "accept": f"{API}/recognition/accept",
    "quote": f"{API}/recognition/quote",
    "reminder": f"{API}/reminder-logs",
    "daily": f"{API}/daily-counts",
    "dept": f"{API}/directory/depts",
    "staff": f"{API}/directory/staff",
    "patient": f"{API}/directory/patients",
    "void_lab": f"{API}/lab-reports/void",
    "void_exam": f"{API}/exam-reports/void",
    "stow": "/dicom-web/studies",
    "film_url": f"{API}/imaging/film-url",
    "deletions": f"{API}/imaging/deletions",
    "patient_exams": f"{API}/imaging/patient-exams",
}
#: answers that say "not now" rather than "no": the call is tried again later
TRANSIENT_STATUS = frozenset({401, 408, 425, 429})
REPORT_KINDS = ("lab", "exam")


def report_path(kind: str, report_id: str | None = None, what: str = "") -> str:
    """``/api/v1/{kind}-reports`` [``/{report_id}``] [``/{what}``] (``what``: pdf, batch, void).

    ``report_id`` is the platform's opaque ref of the report (base64url, as its answers give it);
    anything else (a path separator, ``..``, a query) names no report: NotFound, never another path."""
    if kind not in REPORT_KINDS:
        raise ValueError(f"unknown report kind {kind!r}")
    path = f"{API}/{kind}-reports"
    if report_id is not None:
        if not isinstance(report_id, str) or not _REF.fullmatch(report_id):
            raise NotFound("报告不存在")
        path += f"/{report_id}"
    return f"{path}/{what}" if what else path



def _decode(r: httpx2.Response) -> Any:
    try:
        return orjson.loads(r.content)
    except orjson.JSONDecodeError:
        return r.text



def _unreachable(exc: Exception) -> PlatformUnavailable:
    return PlatformUnavailable(
        f"{exc.__class__.__name__}: {exc}", [Problem("platform", "unreachable", "互认平台无法连接")]
    )

