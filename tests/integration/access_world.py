"""The world the access tests share: institutions A and B (within the supervisor's region 6501)
and C (outside it), the four accounts of A's side, reports of A (own) and of B (accepted by A),
a rejected submission of A and a viewing link."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from typing import Any

import pydicom
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file

from huren.context import Principal
from huren.crypto import sm2
from huren.services.container import Container
from huren.services.imaging import Sender
from tests import samples
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api, login

ORG_C = ("652301001", "昌吉州人民医院", "652301", "3甲", "his", "password-c")  # outside the supervisor's 6501
DOCTOR_A = (ORG_A[0], ORG_A[1], "", "", "doc", "doctor-password")
ADMIN_A = (ORG_A[0], ORG_A[1], "", "", "adm", "admin-password")
PLATFORM_A = (ORG_A[0], ORG_A[1], "", "", "sync", "platform-password")  # a platform's system account (issue 13)
ACCOUNTS = {"doctor": DOCTOR_A, "admin": ADMIN_A, "hospital": ORG_A, "supervisor": SUPERVISOR, "platform": PLATFORM_A}
LAB_CODE, EXAM_CODE = "250301002", "115"
PATIENT = {"id_type_code": "01", "id_no": samples.ID_NO}
VISIT = {"event_no": "5036612", "dept_code": "ZSBY-10", "dept_name": "急诊外科", "dept_std_code": "A50.16",
         "dept_std_name": "急诊科专业", "doc_code": "9050", "doc_name": "郑伟军"}


def moved(payload: dict[str, Any], org: str, days_ago: int, c: Container, form_no: str) -> dict[str, Any]:
    """A sample report of ``org``, authenticated ``days_ago`` days ago, under report number ``form_no``."""
    text = json.dumps(payload, ensure_ascii=False).replace(ORG_A[0], org)
    day = (c.clock.now() - timedelta(days=days_ago)).date().isoformat()
    text = re.sub(r"20\d\d-\d\d-\d\d", day, text)
    p = json.loads(text)
    master = "labmaster" if "labmaster" in p else "exammaster"
    old = p[master]["report_form_no"]
    out: dict[str, Any] = json.loads(json.dumps(p, ensure_ascii=False).replace(f'"{old}"', f'"{form_no}"'))
    return out


def decision(kind: str, form_no: str, code: str) -> dict[str, str]:
    return {"hr_org_code": ORG_B[0], "hr_report_form_no": form_no, "code": code, "id_no": samples.ID_NO,
            "id_type_code": "01", "record_time": "2026-11-20 13:19:04", "type": "2" if kind == "lab" else "1",
            "new_event_no": "5036612", "new_event_type": "1", "is_accept": "1", "reason": "", "new_event_time": ""} | VISIT


def build_world(client: TestClient, container: Container) -> dict[str, Any]:
    """Reports of A (own) and of B (accepted by A), a rejected submission of A, a viewing link, and
    the four accounts' clients."""
    container.directory.add_credential(ORG_A[0], DOCTOR_A[4], DOCTOR_A[5], role="doctor")
    container.directory.add_credential(ORG_A[0], ADMIN_A[4], ADMIN_A[5], role="admin")
    container.directory.add_credential(ORG_A[0], PLATFORM_A[4], PLATFORM_A[5], role="platform")
    container.directory.add_org(*ORG_C[:4], user=ORG_C[4], password=ORG_C[5])
    a, b = login(client, ORG_A), login(client, ORG_B)
    ids: dict[str, Any] = {}
    for kind, sample in (("lab", samples.lab()), ("exam", samples.exam())):
        r = a.post(f"/api/v1/{kind}-reports", moved(sample, ORG_A[0], 1, container, f"A-{kind}"))
        assert r.status_code == 200, r.text
        ids[f"a_{kind}"] = r.json()["report_id"]
        r = b.post(f"/api/v1/{kind}-reports", moved(sample, ORG_B[0], 2, container, f"B-{kind}"))
        assert r.status_code == 200, r.text
        ids[f"b_{kind}"] = r.json()["report_id"]
    accept = [decision("lab", "B-lab", LAB_CODE), decision("exam", "B-exam", EXAM_CODE)]
    r = a.post("/api/v1/recognition/accept", {"sehr_accept_record": accept})
    assert r.status_code == 200, r.text
    bad = a.post("/api/v1/lab-reports", {"labmaster": {"org_code": ORG_A[0]}})
    assert bad.status_code == 422
    ids["rejected"] = bad.json()["rejected_id"]
    link = a.post("/api/v1/links", {"kind": "lab", "report_id": ids["a_lab"]})
    assert link.status_code == 200, link.text
    ids["token"] = link.json()["url"].rsplit("/", 1)[1]
    ids["apis"] = {role: login(client, acct) for role, acct in ACCOUNTS.items()}
    ids["download_key"] = _image_study(container)
    return ids


def _image_study(container: Container) -> str:
    """B's study IMAGE_STUDY (one instance of pydicom's bundled CT) and a downloadKey A's doctor got for it."""
    ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    ds.StudyInstanceUID, ds.AccessionNumber = IMAGE_STUDY, "ACC1"
    ds.SeriesInstanceUID, ds.SOPInstanceUID = IMAGE_STUDY + ".1", IMAGE_STUDY + ".1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf)
    buf.seek(0)
    container.imaging.store_instance(Sender(ORG_B[0], "gateway:test", "gateway"), buf)
    return container.imaging.issue_key(Principal(ORG_A[0], DOCTOR_A[4], "doctor"), "download", IMAGE_STUDY).key


#: the study of B that the imaging operations name (held: B's front-end machine pushed it)
IMAGE_STUDY = "1.2.826.0.1.3680043.8.498.1"

#: every operation of /openapi.json → the action of huren.domain.access it is (None: no token)

OPERATIONS: dict[tuple[str, str], str | None] = {
    ("POST", "/api/v1/auth/token"): None,
    ("GET", "/api/v1/links/{token}"): None,  # the signed link is the credential
    ("POST", "/api/v1/recognition/recent"): "recognition.read",
    ("POST", "/api/v1/recognition/detail"): "recognition.read",
    ("POST", "/api/v1/recognition/exists"): "recognition.read",
    ("POST", "/api/v1/recognition/lab-reports"): "recognition.read",
    ("POST", "/api/v1/recognition/exam-reports"): "recognition.read",
    ("GET", "/api/v1/recognition/lab-reports/{report_id}/pdf"): "recognition.read",
    ("GET", "/api/v1/recognition/exam-reports/{report_id}/pdf"): "recognition.read",
    ("POST", "/api/v1/recognition/accept"): "decision.write",
    ("POST", "/api/v1/recognition/quote"): "decision.write",
    ("POST", "/api/v1/reminder-logs"): "decision.write",
    ("GET", "/api/v1/recognition/accept"): "records.read",
    ("GET", "/api/v1/recognition/quote"): "records.read",
    ("GET", "/api/v1/statistics/recognition"): "statistics.read",
    ("POST", "/api/v1/daily-counts"): "report.write",
    ("GET", "/api/v1/quality/completeness"): "quality.read",
    ("GET", "/api/v1/quality/timeliness"): "quality.read",
    ("GET", "/api/v1/quality/rejected"): "quality.read",
    ("GET", "/api/v1/quality/rejected/{rejected_id}/payload"): "quality.read",
    ("GET", "/api/v1/orgs"): "reference.read",
    ("GET", "/api/v1/dictionaries"): "reference.read",
    ("GET", "/api/v1/dictionaries/{name}"): "reference.read",
    ("POST", "/api/v1/query/lab-reports"): "report.read",
    ("POST", "/api/v1/query/exam-reports"): "report.read",
    ("POST", "/api/v1/query/lab-abnormal"): "report.read",
    ("POST", "/api/v1/query/exam-abnormal"): "report.read",
    ("GET", "/api/v1/catalog"): "reference.read",
    ("POST", "/api/v1/catalog"): "catalog.write",
    ("PUT", "/api/v1/catalog/file"): "catalog.write",
    ("POST", "/api/v1/code-map"): "directory.write",
    ("PUT", "/api/v1/code-map/file"): "directory.write",
    ("GET", "/api/v1/code-map"): "codemap.read",
    ("GET", "/api/v1/code-map/unmapped"): "codemap.read",
    ("PATCH", "/api/v1/catalog/items/{kind}/{code}"): "catalog.write",
    ("PUT", "/api/v1/transport/key"): "transport.write",
    # federation (issue 13)
    ("GET", "/api/v1/platforms"): "reference.read",
    ("GET", "/api/v1/platforms/{code}/changes"): "feed.read",
    ("POST", "/api/v1/platforms/{code}/changes"): "feed.write",
    ("GET", "/api/v1/platforms/{code}/watermark"): "feed.write",
    ("POST", "/api/v1/platforms/{code}/files/missing"): "feed.write",
    ("GET", "/api/v1/platforms/{code}/files/{sha256}"): "feed.read",
    ("PUT", "/api/v1/platforms/{code}/files/{sha256}"): "feed.write",
    ("GET", "/api/v1/federation/status"): "federation.read",
    ("GET", "/api/v1/transport/key"): "transport.read",
    ("POST", "/api/v1/links"): "report.read",
    ("POST", "/api/v1/auth/password"): "account.write",
    ("POST", "/api/v1/auth/page-token"): "page_token.issue",
    ("POST", "/api/v1/recognition/visit-decisions"): "records.read",
    ("GET", "/api/v1/org-reports"): "report.list",
    ("GET", "/api/v1/statistics/recognized-elsewhere"): "statistics.read",
    ("GET", "/api/v1/quality/rectification"): "quality.read",
    ("GET", "/api/v1/quality/overview"): "quality.read",
    # imaging (issue 12)
    ("POST", "/api/v1/imaging/viewer-key"): "image_key.issue",
    ("POST", "/api/v1/imaging/viewer-key/verify"): "image_key.verify",
    ("POST", "/api/v1/imaging/download-address"): "image_key.issue",
    ("GET", "/api/v1/imaging/uids"): None,  # the downloadKey is the credential
    ("POST", "/api/v1/imaging/download-key/verify"): "image_key.verify",
    ("POST", "/api/v1/imaging/keys/revoke"): "image_key.issue",
    ("GET", "/api/v1/imaging/studies/{study_uid}/keys"): "image_key.issue",
    ("POST", "/api/v1/imaging/studies/{study_uid}/commit"): "image.write",
    ("POST", "/api/v1/imaging/film-url"): "image_key.issue",
    ("POST", "/api/v1/imaging/deletions"): "image.write",
    ("POST", "/api/v1/imaging/patient-exams"): "image.read",
}
for _kind in ("lab", "exam"):
    OPERATIONS |= {
        ("POST", f"/api/v1/{_kind}-reports"): "report.write",
        ("POST", f"/api/v1/{_kind}-reports/batch"): "report.write",
        ("POST", f"/api/v1/{_kind}-reports/void"): "report.write",
        ("PUT", f"/api/v1/{_kind}-reports/{{report_id}}/pdf"): "report.write",
        ("GET", f"/api/v1/{_kind}-reports/{{report_id}}/pdf"): "report.read",
        ("GET", f"/api/v1/{_kind}-reports/{{report_id}}"): "report.read",
        ("GET", f"/api/v1/{_kind}-reports/{{report_id}}/history"): "history.read",
    }
for _node in ("depts", "staff", "patients", "devices", "qc-records"):
    OPERATIONS |= {("POST", f"/api/v1/directory/{_node}"): "directory.write", ("GET", f"/api/v1/directory/{_node}"): "directory.read"}


def request_op(api: Api, role: str, method: str, path: str, w: dict[str, Any]) -> Any:
    """Call one operation as ``api`` with a request its models accept (the service decides)."""
    kind = "lab" if "/lab-" in path else "exam"
    url = path.replace("{token}", w["token"]).replace("{rejected_id}", str(w["rejected"])).replace("{name}", "STD_ID_TYPE")
    url = url.replace("{report_id}", str(w[("b_" if "/recognition/" in path else "a_") + kind]))
    url = url.replace("{kind}", "lab").replace("{code}", LAB_CODE).replace("{study_uid}", IMAGE_STUDY)
    bodies: dict[str, Any] = {
        "/api/v1/auth/token": {"org_code": ACCOUNTS[role][0], "username": ACCOUNTS[role][4], "password": ACCOUNTS[role][5]},
        "/api/v1/recognition/exists": PATIENT | VISIT | {"check": [EXAM_CODE], "lab": [LAB_CODE]},
        "/api/v1/transport/key": {"public_key": sm2.generate_key().public_hex},
        "/api/v1/platforms/{code}/files/missing": {"sha256": ["0" * 64]},
        "/api/v1/platforms/{code}/changes": {"changes": []},
        "/api/v1/links": {"kind": "lab", "report_id": w["a_lab"]},
        "/api/v1/auth/page-token": {"doc_code": "9050", "doc_name": "郑伟军"},
        "/api/v1/recognition/visit-decisions": PATIENT | {"event_no": VISIT["event_no"]},
        "/api/v1/imaging/viewer-key": {"study_instance_uid": IMAGE_STUDY},
        "/api/v1/imaging/download-address": {"study_instance_uid": IMAGE_STUDY},
        "/api/v1/imaging/viewer-key/verify": {"viewerKey": "A" * 22},
        "/api/v1/imaging/download-key/verify": {"downloadKey": "A" * 22},
        "/api/v1/imaging/keys/revoke": {"key": "A" * 22},
        "/api/v1/imaging/studies/{study_uid}/commit": {"instances": [{"SOPInstanceUID": IMAGE_STUDY + ".1"}]},
        "/api/v1/imaging/film-url": {"accessNumber": "ACC1", "modality": "CT", "hospitalId": ACCOUNTS[role][0]},
        "/api/v1/imaging/deletions": {
            "patientName": "张三", "accessionNo": "ACC1", "hospitalId": ACCOUNTS[role][0], "operateDoctorName": "李医生",
            "operateDateTime": "2024-05-12T10:00:00",
        },
        "/api/v1/imaging/patient-exams": {"id_type_code": PATIENT["id_type_code"], "id_no": PATIENT["id_no"]},
    }
    if path.startswith(("/api/v1/query/", "/api/v1/recognition/")) and method == "POST" and path not in bodies:
        bodies[path] = PATIENT | VISIT
    if method == "GET":
        params: dict[str, str] | None = {"org_code": ACCOUNTS[role][0]} if path == "/api/v1/org-reports" else None
        if path == "/api/v1/imaging/uids":
            params = {"downloadKey": w["download_key"]}
        return api.get(url, params=params)
    if method == "PATCH":
        return api.client.patch(url, json={"validity_days": 30}, headers=api.headers)
    if method == "PUT" and path in bodies:
        return api.put(url, json=bodies[path])
    if method == "PUT":
        return api.put(url, content=b"x", headers={"Content-Type": "application/octet-stream"})
    if path in bodies:
        return api.post(url, bodies[path])
    return api.post(url, content=b"{}", headers={"Content-Type": "application/json"})
