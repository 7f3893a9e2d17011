"""The one access policy (huren.domain.access) on every channel (issue 10 §1.4).

Every operation of the platform's /openapi.json and every SOAP method of huren/api/soap.py is
called with each role (doctor, admin, hospital system account, supervisor) and the outcome —
refused for the role (403 naming it) or not — is compared with the policy's table. The requests
touch the caller's own institution (or one within the supervisor's region), so a refusal can only
come from the role. Then the scopes: own institution, a supervisor's region, everybody's reports.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from huren.client import HurenClient
from huren.context import ROLES, Principal
from huren.crypto import gm
from huren.domain import access
from huren.errors import Forbidden
from huren.services.container import Container
from huren.wire.soap import METHODS
from tests import samples
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api, login

ORG_C = ("652301001", "昌吉州人民医院", "652301", "3甲", "his", "password-c")  # outside the supervisor's 6501
DOCTOR_A = (ORG_A[0], ORG_A[1], "", "", "doc", "doctor-password")
ADMIN_A = (ORG_A[0], ORG_A[1], "", "", "adm", "admin-password")
ACCOUNTS = {"doctor": DOCTOR_A, "admin": ADMIN_A, "hospital": ORG_A, "supervisor": SUPERVISOR}
LAB_CODE, EXAM_CODE = "250301002", "115"
PATIENT = {"id_type_code": "01", "id_no": samples.ID_NO}
VISIT = {"event_no": "5036612", "dept_code": "ZSBY-10", "dept_name": "急诊外科", "dept_std_code": "A50.16",
         "dept_std_name": "急诊科专业", "doc_code": "9050", "doc_name": "郑伟军"}

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
    ("PUT", "/api/v1/transport/key"): "transport.write",
    ("GET", "/api/v1/transport/key"): "transport.read",
    ("POST", "/api/v1/links"): "report.read",
    ("POST", "/api/v1/auth/password"): "account.write",
    ("GET", "/api/v1/org-reports"): "report.list",
    ("GET", "/api/v1/statistics/recognized-elsewhere"): "statistics.read",
    ("GET", "/api/v1/quality/rectification"): "quality.read",
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

#: every SOAP method → its action
SOAP_METHODS = {
    "ArchiveAutoReport": "report.write",
    "DeleteLabInfo": "report.write",
    "DeleteExamInfo": "report.write",
    "GetCheckLabList": "recognition.read",
    "GetCheckLabInfo": "recognition.read",
    "ExistsReCureInfo": "recognition.read",
    "SubmitAccept": "decision.write",
    "SubmitQuote": "decision.write",
    "GetLabInfo": "recognition.read",
    "GetExamInfo": "recognition.read",
}


def _moved(payload: dict[str, Any], org: str, days_ago: int, c: Container, form_no: str) -> dict[str, Any]:
    """A sample report of ``org``, authenticated ``days_ago`` days ago, under report number ``form_no``."""
    text = json.dumps(payload, ensure_ascii=False).replace(ORG_A[0], org)
    day = (c.clock.now() - timedelta(days=days_ago)).date().isoformat()
    text = re.sub(r"20\d\d-\d\d-\d\d", day, text)
    p = json.loads(text)
    master = "labmaster" if "labmaster" in p else "exammaster"
    old = p[master]["report_form_no"]
    return json.loads(json.dumps(p, ensure_ascii=False).replace(f'"{old}"', f'"{form_no}"'))


def _decision(kind: str, form_no: str, code: str) -> dict[str, str]:
    return {"hr_org_code": ORG_B[0], "hr_report_form_no": form_no, "code": code, "id_no": samples.ID_NO,
            "id_type_code": "01", "record_time": "2026-11-20 13:19:04", "type": "2" if kind == "lab" else "1",
            "new_event_no": "5036612", "new_event_type": "1", "is_accept": "1", "reason": "", "new_event_time": ""} | VISIT


@pytest.fixture
def world(client: TestClient, container: Container) -> dict[str, Any]:
    """Reports of A (own) and of B (accepted by A), a rejected submission of A, a viewing link, and
    the four accounts' clients."""
    container.directory.add_credential(ORG_A[0], DOCTOR_A[4], DOCTOR_A[5], role="doctor")
    container.directory.add_credential(ORG_A[0], ADMIN_A[4], ADMIN_A[5], role="admin")
    container.directory.add_org(*ORG_C[:4], user=ORG_C[4], password=ORG_C[5])
    a, b = login(client, ORG_A), login(client, ORG_B)
    ids: dict[str, Any] = {}
    for kind, sample in (("lab", samples.lab()), ("exam", samples.exam())):
        r = a.post(f"/api/v1/{kind}-reports", _moved(sample, ORG_A[0], 1, container, f"A-{kind}"))
        assert r.status_code == 200, r.text
        ids[f"a_{kind}"] = r.json()["report_id"]
        r = b.post(f"/api/v1/{kind}-reports", _moved(sample, ORG_B[0], 2, container, f"B-{kind}"))
        assert r.status_code == 200, r.text
        ids[f"b_{kind}"] = r.json()["report_id"]
    accept = [_decision("lab", "B-lab", LAB_CODE), _decision("exam", "B-exam", EXAM_CODE)]
    r = a.post("/api/v1/recognition/accept", {"sehr_accept_record": accept})
    assert r.status_code == 200, r.text
    bad = a.post("/api/v1/lab-reports", {"labmaster": {"org_code": ORG_A[0]}})
    assert bad.status_code == 422
    ids["rejected"] = bad.json()["rejected_id"]
    link = a.post("/api/v1/links", {"kind": "lab", "report_id": ids["a_lab"]})
    assert link.status_code == 200, link.text
    ids["token"] = link.json()["url"].rsplit("/", 1)[1]
    ids["apis"] = {role: login(client, acct) for role, acct in ACCOUNTS.items()}
    return ids


def _request(api: Api, role: str, method: str, path: str, w: dict[str, Any]) -> Any:
    """Call one operation as ``api`` with a request its models accept (the service decides)."""
    kind = "lab" if "/lab-" in path else "exam"
    url = path.replace("{token}", w["token"]).replace("{rejected_id}", str(w["rejected"])).replace("{name}", "STD_ID_TYPE")
    url = url.replace("{report_id}", str(w[("b_" if "/recognition/" in path else "a_") + kind]))
    bodies: dict[str, Any] = {
        "/api/v1/auth/token": {"org_code": ACCOUNTS[role][0], "username": ACCOUNTS[role][4], "password": ACCOUNTS[role][5]},
        "/api/v1/recognition/exists": PATIENT | VISIT | {"check": [EXAM_CODE], "lab": [LAB_CODE]},
        "/api/v1/transport/key": {"public_key": gm.generate_key().public_hex},
        "/api/v1/links": {"kind": "lab", "report_id": w["a_lab"]},
    }
    if path.startswith(("/api/v1/query/", "/api/v1/recognition/")) and method == "POST" and path not in bodies:
        bodies[path] = PATIENT | VISIT
    if method == "GET":
        params = {"org_code": ACCOUNTS[role][0]} if path == "/api/v1/org-reports" else None
        return api.get(url, params=params)
    if method == "PUT" and path in bodies:
        return api.put(url, json=bodies[path])
    if method == "PUT":
        return api.put(url, content=b"x", headers={"Content-Type": "application/octet-stream"})
    if path in bodies:
        return api.post(url, bodies[path])
    return api.post(url, content=b"{}", headers={"Content-Type": "application/json"})


def _role_refused(r: Any) -> bool:
    if r.status_code != 403:
        return False
    return ("role", "access") in {(p["field"], p["rule"]) for p in r.json().get("problems", [])}


def test_every_rest_operation_follows_the_table(client: TestClient, world: dict[str, Any]) -> None:
    schema = client.get("/openapi.json").json()
    ops = {(m.upper(), p) for p, item in schema["paths"].items() for m in item}
    assert ops - set(OPERATIONS) == set(), "operations without an entry in the access table of this test"
    assert set(OPERATIONS) - ops == set(), "operations of the table gone from /openapi.json"
    wrong = []
    for method, path in sorted(ops):
        name = OPERATIONS[(method, path)]
        for role in ROLES:
            r = _request(world["apis"][role], role, method, path, world)
            assert r.status_code != 500, (method, path, role, r.text)
            allowed = name is None or role in access.roles_for(name)
            if allowed == _role_refused(r) or (allowed and r.status_code in (401, 403)):
                wrong.append((method, path, role, "allowed" if allowed else "refused", r.status_code, r.text[:200]))
    assert wrong == [], "\n".join(map(str, wrong))


def test_every_soap_method_follows_the_table(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    platform = gm.init_platform_key(container.settings.key_dir)
    assert set(SOAP_METHODS) == set(METHODS)
    data = {
        "ArchiveAutoReport": "<root/>",
        "DeleteLabInfo": "<root/>",
        "DeleteExamInfo": "<root/>",
        "GetCheckLabList": f"<root><id_no>{samples.ID_NO}</id_no><id_type>01</id_type></root>",
        "GetCheckLabInfo": f"<root><id_no>{samples.ID_NO}</id_no><id_type>01</id_type></root>",
        "ExistsReCureInfo": f'<root id_no="{samples.ID_NO}" id_type="01"><check><item>{EXAM_CODE}</item></check><lab/></root>',
        "SubmitAccept": "<root><sehr_accept_record/></root>",
        "SubmitQuote": "<root><sehr_quote_record/></root>",
        "GetLabInfo": f"<root><id_no>{samples.ID_NO}</id_no><id_type>01</id_type></root>",
        "GetExamInfo": f"<root><id_no>{samples.ID_NO}</id_no><id_type>01</id_type></root>",
    }
    wrong = []
    for role, acct in ACCOUNTS.items():
        hc = HurenClient(str(client.base_url), acct[0], acct[4], acct[5], platform_key=platform.public, http=client)
        for method, name in SOAP_METHODS.items():
            answer = hc.call(method, data[method])
            assert "服务器内部错误" not in answer, (method, role, answer)
            refused = answer.startswith("error:") and f"当前账号（{access.role_name(role)}）无权" in answer
            if refused == (role in access.roles_for(name)):
                wrong.append((method, role, answer[:160]))
    assert wrong == [], "\n".join(map(str, wrong))


# -- scopes ----------------------------------------------------------------------------------------


def test_a_supervisor_reads_within_its_region_only(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    c_api = login(client, ORG_C)
    r = c_api.post("/api/v1/lab-reports", _moved(samples.lab(), ORG_C[0], 3, container, "C-lab"))
    assert r.status_code == 200, r.text
    c_lab = r.json()["report_id"]
    sup: Api = world["apis"]["supervisor"]
    # a report of C (652301, outside 6501): refused, naming the region; A's and B's: fine
    r = sup.get(f"/api/v1/lab-reports/{c_lab}")
    assert r.status_code == 403 and r.json()["problems"][0]["rule"] == "region", r.text
    assert sup.get(f"/api/v1/lab-reports/{world['b_lab']}").status_code == 200
    assert sup.get(f"/api/v1/lab-reports/{c_lab}/pdf").status_code == 403
    assert sup.post("/api/v1/links", {"kind": "lab", "report_id": c_lab}).status_code == 403
    # a patient's reports: those of the region's institutions only
    got = sup.post("/api/v1/query/lab-reports", PATIENT).json()["reports"]
    assert {x["labmaster"]["org_code"] for x in got} == {ORG_A[0], ORG_B[0]}
    # a doctor reads everybody's (mutual recognition)
    doc: Api = world["apis"]["doctor"]
    got = doc.post("/api/v1/query/lab-reports", PATIENT).json()["reports"]
    assert {x["labmaster"]["org_code"] for x in got} == {ORG_A[0], ORG_B[0], ORG_C[0]}
    assert doc.get(f"/api/v1/lab-reports/{c_lab}").status_code == 200
    # listings: the region's institutions; another region's by name is refused
    for path in ("/api/v1/quality/rejected", "/api/v1/statistics/recognition", "/api/v1/directory/patients", "/api/v1/recognition/accept"):
        assert sup.get(path).status_code == 200, path
        r = sup.get(path, params={"org_code": ORG_C[0]})
        assert r.status_code == 403 and r.json()["problems"][0]["rule"] == "region", (path, r.text)
        assert sup.get(path, params={"org_code": ORG_B[0]}).status_code == 200, path
    bad = c_api.post("/api/v1/lab-reports", {"labmaster": {"org_code": ORG_C[0]}}).json()["rejected_id"]
    assert sup.get(f"/api/v1/quality/rejected/{bad}/payload").status_code == 403
    assert all(r["org_code"] != ORG_C[0] for r in sup.get("/api/v1/quality/rejected").json()["rejected"])
    assert sup.get("/api/v1/transport/key", params={"org_code": ORG_C[0]}).status_code == 403
    assert sup.get("/api/v1/quality/completeness", params={"org_code": "nope"}).status_code == 404


def test_own_institution_only_for_hospitals(world: dict[str, Any]) -> None:
    adm: Api = world["apis"]["admin"]
    for path in ("/api/v1/quality/rejected", "/api/v1/statistics/recognition", "/api/v1/directory/depts", "/api/v1/recognition/quote"):
        r = adm.get(path, params={"org_code": ORG_B[0]})
        assert r.status_code == 403 and r.json()["problems"][0]["rule"] == "ownership", (path, r.text)
    assert adm.get(f"/api/v1/lab-reports/{world['b_lab']}/history").status_code == 403
    assert adm.get(f"/api/v1/lab-reports/{world['a_lab']}/history").status_code == 200


def test_a_refused_role_keeps_nothing(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    """A doctor's report upload is refused for the role, not kept as a rejected submission."""
    doc: Api = world["apis"]["doctor"]
    before = len(world["apis"]["hospital"].get("/api/v1/quality/rejected").json()["rejected"])
    r = doc.post("/api/v1/lab-reports", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 403 and "rejected_id" not in r.json()
    r = doc.post("/api/v1/lab-reports/void", {"filter": {}})
    assert r.status_code == 403 and "rejected_id" not in r.json()
    assert len(world["apis"]["hospital"].get("/api/v1/quality/rejected").json()["rejected"]) == before


def test_services_ask_the_policy_whatever_the_transport(container: Container, world: dict[str, Any]) -> None:
    doctor = Principal(ORG_A[0], "doc", "doctor")
    supervisor = Principal(SUPERVISOR[0], "admin", "supervisor")
    with pytest.raises(Forbidden):
        container.registry.register("lab", samples.lab(), doctor)
    with pytest.raises(Forbidden):
        container.registry.upload_daily(samples.daily(), supervisor)
    with pytest.raises(Forbidden):
        container.masterdata.upload("patient", {"patient": []}, supervisor)
    with pytest.raises(Forbidden):
        container.quality.rejected_payload(doctor, world["rejected"])
    with pytest.raises(Forbidden):
        container.statistics.recognition(doctor)


def test_the_pages_gate_with_the_same_table() -> None:
    from huren.web import render

    assert set(render.DOCTOR_ROLES) == set(access.roles_for("recognition.read"))
    assert set(render.SUPERVISION_ROLES) == set(access.roles_for("quality.read"))
    assert "supervisor" not in render.DOCTOR_ROLES and "doctor" not in render.SUPERVISION_ROLES
