"""Access tokens (XC-P1): issued from institution credentials, required everywhere, 7200 s."""

from __future__ import annotations

from fastapi.testclient import TestClient

from huren.services.container import Container
from tests import samples
from tests.conftest import ORG_A, Api


def test_token_issued_and_used(client: TestClient) -> None:
    r = client.post("/api/v1/auth/token", json={"org_code": ORG_A[0], "username": ORG_A[4], "password": ORG_A[5]})
    assert r.status_code == 200
    body = r.json()
    assert body["expires_in"] == 7200 and body["token_type"] == "Bearer"
    ok = client.get("/api/v1/orgs", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert ok.status_code == 200
    alt = client.get("/api/v1/orgs", headers={"X-Access-Token": body["access_token"]})
    assert alt.status_code == 200


def test_wrong_password_and_unknown_org(client: TestClient) -> None:
    for org, user, pw in ((ORG_A[0], ORG_A[4], "wrong-password"), ("000", "his", ORG_A[5])):
        r = client.post("/api/v1/auth/token", json={"org_code": org, "username": user, "password": pw})
        assert r.status_code == 401
        assert r.json()["code"] == "unauthorized"


def test_missing_token(client: TestClient) -> None:
    r = client.post("/api/v1/lab-reports", json=samples.lab())
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "令牌" in r.json()["message"]


def test_forged_token(client: TestClient, api_a: Api) -> None:
    token = api_a.headers["Authorization"].split()[1]
    body, mac = token.split(".")
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac
    r = client.get("/api/v1/orgs", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    r = client.get("/api/v1/orgs", headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 401


def test_expired_token(client: TestClient, api_a: Api, container: Container) -> None:
    assert api_a.get("/api/v1/orgs").status_code == 200
    container.clock.offset += 7199
    assert api_a.get("/api/v1/orgs").status_code == 200
    container.clock.offset += 2
    r = api_a.get("/api/v1/orgs")
    assert r.status_code == 401
    assert "过期" in r.json()["message"]
    r = api_a.post("/api/v1/lab-reports", samples.lab())
    assert r.status_code == 401


def test_passwords_stored_with_kdf(container: Container) -> None:
    from huren.store import directory

    with container.db.read() as conn:
        cred = directory.get_credential(conn, ORG_A[0], ORG_A[4])
    assert cred is not None
    assert cred["password_hash"].startswith("scrypt$") and ORG_A[5] not in cred["password_hash"]


def test_api_documentation_works_without_internet(client: TestClient) -> None:
    """/docs and /redoc load their scripts from the platform itself, never from a CDN."""
    for path, script in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "cdn.jsdelivr.net" not in page.text and "unpkg.com" not in page.text
        assert f"/static-offline-docs/{script}" in page.text
        asset = client.get(f"/static-offline-docs/{script}")
        assert asset.status_code == 200 and len(asset.content) > 100_000
    assert client.get("/openapi.json").json()["info"]["title"] == "huren 互认平台"
