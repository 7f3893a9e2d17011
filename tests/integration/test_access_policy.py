"""The one access policy (huren.domain.access) on every channel (issue 10 §1.4).

Every operation of the platform's /openapi.json and every SOAP method of huren/api/soap.py is
called with each role (doctor, admin, hospital system account, supervisor) and the outcome —
refused for the role (403 naming it) or not — is compared with the policy's table. The requests
touch the caller's own institution (or one within the supervisor's region), so a refusal can only
come from the role. Then the scopes: own institution, a supervisor's region, everybody's reports.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from huren.client import HurenClient
from huren.context import ROLES, Principal
from huren.crypto import keyfiles, sm2
from huren.domain import access
from huren.errors import Forbidden
from huren.services.container import Container
from huren.store import audit as audit_store
from huren.wire.soap import METHODS
from tests import samples
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api, login
from tests.integration.access_world import (
    ACCOUNTS,
    EXAM_CODE,
    IMAGE_STUDY,
    OPERATIONS,
    ORG_C,
    PATIENT,
    build_world,
    moved,
    request_op,
)

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


@pytest.fixture
def world(client: TestClient, container: Container) -> dict[str, Any]:
    return build_world(client, container)


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
            r = request_op(world["apis"][role], role, method, path, world)
            assert r.status_code != 500, (method, path, role, r.text)
            allowed = name is None or role in access.roles_for(name)
            if allowed == _role_refused(r) or (allowed and r.status_code in (401, 403)):
                wrong.append((method, path, role, "allowed" if allowed else "refused", r.status_code, r.text[:200]))
    assert wrong == [], "\n".join(map(str, wrong))


def test_every_soap_method_follows_the_table(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    platform = keyfiles.init_platform_key(container.settings.key_dir)
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
    r = c_api.post("/api/v1/lab-reports", moved(samples.lab(), ORG_C[0], 3, container, "C-lab"))
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


# -- the signature policy on every channel (§1.7) -------------------------------------------------


def test_an_institution_requiring_signatures_cannot_be_read_through_pages_or_soap(
    client: TestClient, container: Container, world: dict[str, Any]
) -> None:
    platform = keyfiles.init_platform_key(container.settings.key_dir)
    doc: Api = world["apis"]["doctor"]
    token = doc.headers["Authorization"].split()[1]
    widget = {"id_type_code": "01", "id_no": samples.ID_NO, "token": token}
    report = f"/ui/report/lab/{world['b_lab']}"
    acct = ACCOUNTS["doctor"]
    hc = HurenClient(str(client.base_url), acct[0], acct[4], acct[5], platform_key=platform.public, http=client)
    query = f"<root><id_no>{samples.ID_NO}</id_no><id_type>01</id_type></root>"
    assert client.get("/ui/widget", params=widget).status_code == 200
    assert client.get(report, params={"token": token}).status_code == 200
    assert not hc.call("GetCheckLabList", query).startswith("error:")

    key = sm2.generate_key()
    r = world["apis"]["hospital"].put("/api/v1/transport/key", json={"public_key": key.public_hex, "require_signature": True})
    assert r.status_code == 200, r.text
    # REST: unsigned refused (as before); pages opened with the token and SOAP: refused too
    assert doc.get(f"/api/v1/lab-reports/{world['b_lab']}").status_code == 401
    for path, params in (("/ui/widget", widget), (report, {"token": token}), ("/ui/panel", widget)):
        r = client.get(path, params=params)
        assert r.status_code == 401 and "本机构要求签名请求" in r.text, (path, r.text[-600:])
        assert "张三" not in r.text and "Traceback" not in r.text
    r = client.post("/ui/decide", params={"token": token}, data={"token": token, "id_no": samples.ID_NO})
    assert r.status_code == 401 and "本机构要求签名请求" in r.text
    answer = hc.call("GetCheckLabList", query)
    assert answer.startswith("error:本机构要求签名请求") and "SOAP" in answer, answer
    with container.db.read() as conn:
        refused = [r for r in audit_store.list_access(conn, container.keys.fields(), limit=50) if r["action"] == "unsigned_refused"]
    assert {r["target"] for r in refused} == {"page", "soap"}
    # another institution is not concerned
    b_token = login(client, ORG_B).headers["Authorization"].split()[1]
    assert client.get("/ui/widget", params=widget | {"token": b_token}).status_code == 200


def test_requiring_encryption_closes_the_page_token_path_too(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    platform = keyfiles.init_platform_key(container.settings.key_dir)
    key = sm2.generate_key()
    r = world["apis"]["hospital"].put("/api/v1/transport/key", json={"public_key": key.public_hex, "require_encryption": True})
    assert r.status_code == 200, r.text
    token = world["apis"]["doctor"].headers["Authorization"].split()[1]
    r = client.get(f"/ui/report/lab/{world['b_lab']}", params={"token": token})
    assert r.status_code == 401 and "本机构要求加密请求" in r.text
    # the SOAP profile's parameters are SM4-encrypted: an encryption-only policy lets it through
    acct = ACCOUNTS["doctor"]
    hc = HurenClient(str(client.base_url), acct[0], acct[4], acct[5], platform_key=platform.public, http=client)
    assert not hc.call("GetCheckLabList", f"<root><id_no>{samples.ID_NO}</id_no><id_type>01</id_type></root>").startswith("error:")


def test_the_supervision_pages_offer_the_region_s_institutions(client: TestClient, world: dict[str, Any]) -> None:
    token = world["apis"]["supervisor"].headers["Authorization"].split()[1]
    for path in ("/ui/stats", "/ui/quality/completeness", "/ui/quality/rejected"):
        r = client.get(path, params={"token": token})
        assert r.status_code == 200, (path, r.text[-400:])
        assert f'<option value="{ORG_B[0]}"' in r.text and f'value="{ORG_C[0]}"' not in r.text, path
        r = client.get(path, params={"token": token, "org_code": ORG_C[0]})
        assert r.status_code == 403 and "本监管区域" in r.text, path


#: every GET page → the action whose roles may open it (None: every role)
PAGES: dict[str, str | tuple[str, ...] | None] = {
    "/ui/doctor": "recognition.read",
    "/ui/widget": "recognition.read",
    "/ui/panel": "recognition.read",
    "/ui/decide": "recognition.read",
    "/ui/report/{kind}/{report_id}": "recognition.read",
    "/ui/report/{kind}/{report_id}/pdf": "recognition.read",
    "/ui/embed": ("doctor", "admin", "hospital", "supervisor"),  # the HIS embedding guide: not for a platform's system account
    "/ui/alive": None,
    "/ui/quality/completeness": "quality.read",
    "/ui/quality/timeliness": "quality.read",
    "/ui/quality/rejected": "quality.read",
    "/ui/quality/rejected/{rejected_id}/payload": "quality.read",
    "/ui/stats": "quality.read",
    "/ui/catalog": "quality.read",
    "/ui/catalog/download": "quality.read",
    "/ui/catalog/mappings/download": "quality.read",
    "/ui/overview": "quality.read",
    "/ui/platforms": "federation.read",  # the platform tree and the sync state (issue 13)
    "/ui/imaging/{study_uid}": "image_key.issue",  # the viewer issues a viewer key for its images
    # XC-E-note: a frame of a study not held here, rendered by the fallback platform (the viewer's roles)
    "/ui/imaging/{study_uid}/relayed/series/{series}/instances/{instance}/frames/{frame}/rendered": "image_key.issue",
}


def test_every_page_follows_the_table(client: TestClient, world: dict[str, Any]) -> None:
    from huren.web import (
        routes_catalog,
        routes_doctor,
        routes_imaging,
        routes_overview,
        routes_platforms,
        routes_rectification,
        routes_report,
        routes_stats,
        routes_supervision,
    )

    found = {
        r.path for m in (routes_doctor, routes_report, routes_supervision, routes_rectification, routes_stats, routes_catalog, routes_overview,
                                 routes_imaging, routes_platforms)
        for r in m.router.routes if "GET" in getattr(r, "methods", ())
    }
    assert found == set(PAGES), "pages without an entry in this test's table"
    wrong = []
    for path, name in sorted(PAGES.items()):
        url = path.replace("{kind}", "lab").replace("{report_id}", str(world["b_lab"])).replace("{rejected_id}", str(world["rejected"]))
        url = url.replace("{study_uid}", IMAGE_STUDY).replace("{series}", "1.2.3").replace("{instance}", "1.2.3.4").replace("{frame}", "1")
        for role in ROLES:
            token = world["apis"][role].headers["Authorization"].split()[1]
            r = client.get(url, params=PATIENT | {"token": token, "format": "csv"}, follow_redirects=False)
            assert r.status_code < 500, (path, role, r.text[-300:])
            allowed = name is None or role in (name if isinstance(name, tuple) else access.roles_for(name))
            if allowed == (r.status_code == 403):
                wrong.append((path, role, r.status_code))
    assert wrong == [], wrong
