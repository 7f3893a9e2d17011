"""Headers and files (issue 10 §1.14): nosniff on every answer, a Content-Disposition on every file
answer, a Content-Security-Policy on the pages with frame-ancestors as configured, and the WSDL
address and report links from the configured public address, never from the Host header."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from huren.api.app import create_app
from huren.services.container import Container
from huren.settings import Settings
from tests import samples
from tests.conftest import ORG_A, SUPERVISOR, Api, login
from tests.integration import test_gateway_pages

LAB = "/api/v1/lab-reports"
EVIL = {"Host": "evil.example"}


def _token(client: TestClient, org: tuple[str, ...]) -> str:
    return str(login(client, org).headers["Authorization"].split()[1])


def _report(api: Api) -> Any:
    r = api.post(LAB, samples.lab())
    assert r.status_code == 200, r.text
    return r.json()["report_id"]


def _rejected(api: Api) -> Any:
    bad = samples.lab()
    bad["labmaster"]["name"] = ""
    assert api.post(LAB, bad).status_code == 422
    return api.get("/api/v1/quality/rejected").json()["rejected"][0]["id"]


def test_every_answer_says_nosniff(client: TestClient, api_a: Api) -> None:
    for r in (
        client.get("/healthz"),
        client.get("/openapi.json"),
        client.get("/api/v1/nope"),
        api_a.post(LAB, {"labmaster": {}}),
        client.get("/ui/login"),
        client.get("/Myhealth?wsdl"),
        client.get("/ui/static/huren.js"),
    ):
        assert r.headers.get("x-content-type-options") == "nosniff", (r.request.url, r.status_code)


def test_every_file_answer_has_a_content_disposition(
    client: TestClient, api_a: Api, api_b: Api, api_sup: Api, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = _report(api_a)
    kept = _rejected(api_a)
    link = api_b.post("/api/v1/links", {"kind": "lab", "report_id": rid}).json()["url"]
    monkeypatch.setattr(container.recognition, "accepted_pdf", lambda *a, **kw: samples.PDF_BYTES)
    sup, doc = _token(client, SUPERVISOR), _token(client, ORG_A)
    answers = {
        "report pdf": api_a.get(f"{LAB}/{rid}/pdf"),
        "accepted pdf": api_b.get(f"/api/v1/recognition/lab-reports/{rid}/pdf"),
        "link pdf": client.get(link[len(container.settings.public_base) :]),
        "rejected payload": api_a.get(f"/api/v1/quality/rejected/{kept}/payload"),
        "catalog csv": api_sup.get("/api/v1/catalog", params={"format": "csv"}),
        "catalog xlsx": api_sup.get("/api/v1/catalog", params={"format": "xlsx"}),
        "code map csv": api_a.get("/api/v1/code-map", params={"format": "csv"}),
        "page pdf": client.get(f"/ui/report/lab/{rid}/pdf", params={"token": doc}),
        "page catalog": client.get("/ui/catalog/download", params={"token": sup, "format": "xlsx"}),
    }
    for name, r in answers.items():
        assert r.status_code == 200, (name, r.text[:200])
        disposition = r.headers.get("content-disposition", "")
        assert disposition.startswith(("inline;", "attachment")), name
        assert r.headers.get("x-content-type-options") == "nosniff", name
    assert answers["rejected payload"].headers["content-disposition"].startswith("attachment")


def _csp(r: Any) -> dict[str, str]:
    policy = r.headers.get("content-security-policy", "")
    return {d.split()[0]: " ".join(d.split()[1:]) for d in (x.strip() for x in policy.split(";")) if d}


def test_pages_carry_a_content_security_policy(client: TestClient) -> None:
    token = _token(client, SUPERVISOR)
    for r in (client.get("/ui/login"), client.get("/ui/stats", params={"token": token}), client.get("/ui/nope")):
        assert r.headers["content-type"].startswith("text/html")
        csp = _csp(r)
        assert csp["script-src"] == "'self'" and csp["object-src"] == "'none'" and csp["frame-ancestors"] == "'self'"
        # the pages hold no inline script, handler or javascript: URL the policy would block
        assert not re.search(r"<script(?![^>]*\bsrc=)|\son[a-z]+=|javascript:", r.text), r.text[:300]
    assert "content-security-policy" not in client.get("/docs").headers  # swagger's inline script
    assert "content-security-policy" not in client.get("/openapi.json").headers


def test_frame_ancestors_are_configurable_for_his_embedding(container: Container) -> None:
    container.settings.frame_ancestors = "'self' https://his.example.org"
    with TestClient(create_app(container)) as tc:
        assert _csp(tc.get("/ui/login"))["frame-ancestors"] == "'self' https://his.example.org"


@pytest.mark.parametrize("value", ["'self'; script-src *", "", "'none' https://his.example.org", "https://a,b"])
def test_frame_ancestors_cannot_smuggle_a_directive(value: str) -> None:
    with pytest.raises(ValueError, match="HUREN_FRAME_ANCESTORS"):
        Settings(frame_ancestors=value)


@pytest.mark.parametrize("value", ["ftp://x.cn", "https://x.cn/?a=1", "https://u:p@x.cn", "x.cn", "https://x.cn/a b"])
def test_public_base_url_must_be_an_http_address(value: str) -> None:
    with pytest.raises(ValueError, match="HUREN_PUBLIC_BASE_URL"):
        Settings(public_base_url=value)


@pytest.fixture
def public(container: Container) -> TestClient:
    container.settings.public_base_url = "https://huren.example.gov.cn/gw"
    return TestClient(create_app(container))


@pytest.mark.parametrize("path", ["/Myhealth?wsdl", "/Myhealth.asmx?WSDL"])
def test_the_wsdl_address_is_the_configured_one_whatever_the_host(public: TestClient, path: str) -> None:
    r = public.get(path, headers=EVIL)
    assert r.status_code == 200
    locations = re.findall(r'location="([^"]+)"', r.text)
    assert locations and all(loc == "https://huren.example.gov.cn/gw" + path.split("?")[0] for loc in locations)
    assert "evil.example" not in r.text


def test_links_and_embedding_notes_use_the_configured_address(public: TestClient) -> None:
    with public:
        a, b = login(public, ORG_A), login(public, ("457759933", "", "", "", "lis", "password-b"))
        rid = _report(a)
        r = b.post("/api/v1/links", {"kind": "lab", "report_id": rid}, headers=EVIL)
        assert r.status_code == 200 and r.json()["url"].startswith("https://huren.example.gov.cn/gw/api/v1/links/"), r.text
        page = public.get("/ui/embed", params={"token": _token(public, ORG_A)}, headers=EVIL)
        assert page.status_code == 200
        assert "https://huren.example.gov.cn/gw/ui/static/widget.js" in page.text and "evil.example" not in page.text


def test_soap_answers_link_to_the_configured_address(public: TestClient, container: Container) -> None:
    """GetCheckLabList's report links are absolute for the hospital's browser: from the
    configured address, whatever Host the SOAP call was sent with."""
    from huren.crypto import b64, keyfiles, sm4
    from tests.integration.test_soap_golden import envelope12, recent_lab_xml, result_of, sealed

    platform = keyfiles.init_platform_key(container.settings.key_dir)
    with public:
        _, p = sealed(platform, recent_lab_xml(container))
        body = envelope12("ArchiveAutoReport", {"strReportInfo": p["data"], "strCredential": p["strCredential"], "strKey": p["strKey"]})
        assert result_of(public.post("/Myhealth", content=body, headers=EVIL).content, "ArchiveAutoReport") == "ok"
        key, p = sealed(platform, f"<root><id_no>{samples.ID_NO}</id_no><id_type>01</id_type></root>")
        body = envelope12("GetCheckLabList", {"strFilter": p["data"], "strCredential": p["strCredential"], "strKey": p["strKey"]})
        answer = sm4.sm4_decrypt(key, b64.b64d(result_of(public.post("/Myhealth", content=body, headers=EVIL).content, "GetCheckLabList")))
    text = answer.decode()
    assert 'url="https://huren.example.gov.cn/gw/' in text and "evil.example" not in text, text[:300]


# -- the gateway's pages --------------------------------------------------------------------------------------
gateway = test_gateway_pages.gateway  # the gateway serving the doctor's pages, as a fixture here too
catalog = test_gateway_pages.catalog


def test_the_gateways_pages_carry_the_same_headers_but_may_be_framed(gateway: Any) -> None:
    r = gateway.http.get("/ui/widget", params={"id_type_code": "01", "id_no": samples.ID_NO, "token": test_gateway_pages.PAGE_TOKEN})
    assert r.status_code == 200, r.text[:300]
    csp = _csp(r)
    assert csp["script-src"] == "'self'" and "frame-ancestors" not in csp  # a HIS frames them from anywhere
    assert r.headers["x-content-type-options"] == "nosniff"
    assert gateway.http.get("/healthz").headers["x-content-type-options"] == "nosniff"
