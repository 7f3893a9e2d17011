"""One signed-claims codec behind access tokens, page sessions and report links (issue 10 §3,
§1.14 "padded token signatures refused"): each refuses a padded or non-canonically encoded
signature, and none is accepted as another."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from huren.services.container import Container
from tests import samples
from tests.conftest import Api
from tests.unit.test_tokens import _flip_unused_bits
from tests.web.test_login import web_login


def _variants(value: str) -> list[str]:
    body, mac = value.split(".")
    return [f"{body}.{mac}=", f"{body}.{_flip_unused_bits(mac)}"]


def test_access_token_with_padded_or_non_canonical_signature_refused(api_a: Api, client: TestClient) -> None:
    token = api_a.headers["Authorization"][7:]
    for bad in _variants(token):
        r = client.get("/api/v1/orgs", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401, bad
    assert api_a.get("/api/v1/orgs").status_code == 200


def test_session_cookie_with_padded_or_non_canonical_signature_refused(client: TestClient) -> None:
    web_login(client, ("457759922", "", "", "", "his", "password-a"))
    good = client.cookies.get("huren_session")
    assert good and client.get("/ui/", follow_redirects=False).status_code == 200
    for bad in _variants(good):
        client.cookies.clear()
        client.cookies.set("huren_session", bad, path="/ui")
        assert client.get("/ui/", follow_redirects=False).status_code == 303, bad
    # a session cookie is not an access token, nor a token a session
    r = client.get("/api/v1/orgs", headers={"Authorization": f"Bearer {good}"})
    assert r.status_code == 401


def test_report_link_with_padded_or_non_canonical_signature_refused(
    api_a: Api, api_b: Api, client: TestClient, container: Container
) -> None:
    rid = api_a.post("/api/v1/lab-reports", samples.lab()).json()["report_id"]
    r = api_b.post("/api/v1/links", {"kind": "lab", "report_id": rid})
    assert r.status_code == 200, r.text
    token = r.json()["url"].rsplit("/", 1)[1]
    assert client.get(f"/api/v1/links/{token}").status_code == 200
    for bad in _variants(token):
        assert client.get(f"/api/v1/links/{bad}").status_code == 403, bad
    # a link is no token and a token no link
    assert client.get("/api/v1/orgs", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert client.get(f"/api/v1/links/{api_b.headers['Authorization'][7:]}").status_code == 403


@pytest.mark.parametrize("purpose", ["access-token", "web-session", "report-link"])
def test_one_codec_signs_all_three(container: Container, purpose: str) -> None:
    """The three signers are the one codec with its three purposes (no private HMAC left)."""
    import inspect

    from huren.services import auth, transport
    from huren.web import session

    for module in (auth, transport, session):
        src = inspect.getsource(module)
        assert "hmac.new(" not in src and "b64url" not in src, module.__name__
    signer = container.auth.signer(purpose)
    assert signer.purpose == purpose


def test_report_link_dies_with_its_creators_account(
    api_a: Api, api_b: Api, client: TestClient, container: Container
) -> None:
    """§1.5: a link is a read credential too; disabling its creator (or a new password) ends it."""
    rid = api_a.post("/api/v1/lab-reports", samples.lab()).json()["report_id"]
    url = api_b.post("/api/v1/links", {"kind": "lab", "report_id": rid}).json()["url"]
    path = "/api/v1/links/" + url.rsplit("/", 1)[1]
    assert client.get(path).status_code == 200
    container.directory.set_user_disabled("457759933", "lis", True)
    r = client.get(path)
    assert r.status_code == 403 and "已失效" in r.json()["message"]
    container.directory.set_user_disabled("457759933", "lis", False)
    assert client.get(path).status_code == 403  # the version moved on: the old link stays dead
