"""exists-for-order on its lean route (api.deps.LeanRoute) answers every request exactly as the
same endpoint on FastAPI's standard route: good bodies and every kind of refusal (content type,
JSON, shape, field rules, missing or bad token), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from huren.api import deps, rest_recognition
from huren.api.app import create_app
from huren.api.deps import Caller, LeanRoute, Services
from huren.api.models import Order
from huren.api.responses import Json
from huren.domain.answers import MAX_CODE, MAX_ORDERED
from huren.services.container import Container
from tests import samples
from tests.conftest import ORG_A, ORG_B, Api, login
from tests.integration.test_api_recognition import EXAM_CODE, LAB_CODE, catalog, recent_exam, recent_lab

__all__ = ["catalog"]  # the catalog fixture, used by name

LEAN = "/api/v1/recognition/exists"
STANDARD = "/api/v1/standard-route/exists"  # the same endpoint, FastAPI's own APIRoute


@pytest.fixture
def pair(container: Container, catalog: None) -> tuple[TestClient, str]:
    """A client of an app with both routes, a lab and an exam report of ORG_A, ORG_B's token."""
    app = create_app(container)
    assert any(isinstance(r, LeanRoute) and r.path == LEAN for r in app.router.routes)
    app.router.routes.insert(0, APIRoute(STANDARD, rest_recognition.exists, methods=["POST"], response_class=Json))
    client = TestClient(app)
    a: Api = login(client, ORG_A)
    assert a.post("/api/v1/lab-reports", recent_lab(container)).status_code == 200
    assert a.post("/api/v1/exam-reports", recent_exam(container)).status_code == 200
    return client, container.auth.issue(ORG_B[0], ORG_B[4], ORG_B[5]).access_token


ID = samples.ID_NO.encode()
GOOD = b'{"id_type_code": "01", "id_no": "%s", "lab": ["%s", "NOPE"], "check": ["%s"], "days": 90}' % (ID, LAB_CODE.encode(), EXAM_CODE.encode())
CASES: list[tuple[str, bytes, str | None]] = [
    ("good", GOOD, "application/json"),
    ("good, charset", GOOD, "application/json; charset=utf-8"),
    ("good, upper case type", GOOD, "Application/JSON"),
    ("no content type", GOOD, None),
    ("text/plain", GOOD, "text/plain"),
    ("good, +json type", GOOD, "application/problem+json"),
    ("empty body", b"", "application/json"),
    ("malformed JSON", b'{"id_no": "65010', "application/json"),
    ("NaN (stdlib JSON only)", b'{"id_no": "x", "days": NaN}', "application/json"),
    ("lone surrogate", b'{"id_no": "\\ud800"}', "application/json"),
    ("duplicate keys", b'{"id_no": "a", "id_no": "%s", "lab": ["%s"]}' % (ID, LAB_CODE.encode()), "application/json"),
    ("array", b'[{"id_no": "x"}]', "application/json"),
    ("string", b'"x"', "application/json"),
    ("null", b"null", "application/json"),
    ("missing id_no", b'{"lab": ["250301002"]}', "application/json"),
    ("number as text", b'{"id_no": %s}' % ID, "application/json"),
    ("days not 30/90", b'{"id_no": "x", "days": 7}', "application/json"),
    ("id_no too long", b'{"id_no": "' + b"1" * 129 + b'"}', "application/json"),
    ("control character", b'{"id_no": "65\\u0000x"}', "application/json"),
    ("bidi override in a code", b'{"id_no": "x", "lab": ["25\\u202e"]}', "application/json"),
    ("code too long", b'{"id_no": "x", "lab": ["' + b"1" * (MAX_CODE + 1) + b'"]}', "application/json"),
    ("too many codes", b'{"id_no": "x", "lab": [' + b",".join([b'"1"'] * (MAX_ORDERED + 1)) + b"]}", "application/json"),
    ("bad date", b'{"id_no": "x", "since": "2024-13-01"}', "application/json"),
    ("date out of bounds", b'{"id_no": "x", "since": "1800-01-01T00:00:00"}', "application/json"),
    ("unknown field", b'{"id_no": "%s", "lab": ["%s"], "whatever": 1}' % (ID, LAB_CODE.encode()), "application/json"),
]


def _both(client: TestClient, body: bytes, ctype: str | None, headers: dict[str, str]) -> list[tuple[int, Any, str | None]]:
    h = dict(headers) | ({"Content-Type": ctype} if ctype is not None else {})
    out = []
    for path in (LEAN, STANDARD):
        r = client.post(path, content=body, headers=h)
        out.append((r.status_code, r.json(), r.headers.get("www-authenticate")))
    return out


@pytest.mark.parametrize(("name", "body", "ctype"), CASES, ids=[c[0] for c in CASES])
def test_same_answer_as_the_standard_route(pair: tuple[TestClient, str], name: str, body: bytes, ctype: str | None) -> None:
    client, token = pair
    lean, standard = _both(client, body, ctype, {"Authorization": f"Bearer {token}"})
    assert lean == standard
    if name.startswith("good") or name == "duplicate keys":
        assert lean[0] == 200 and len(lean[1]["labmaster"]) == 1, lean  # the last id_no of the duplicates counts
    elif name == "unknown field":
        assert lean[0] == 200 and lean[1]["code"] == "ok", lean
    else:
        assert lean[0] == 422, lean
        assert lean[1]["problems"] and all(p["field"] is not None for p in lean[1]["problems"])


@pytest.mark.parametrize("auth", [None, "Bearer garbage", "Basic abc"])
@pytest.mark.parametrize("body", [GOOD, b'{"id_no": 1}', b"{bad"])
def test_refused_callers_answer_as_on_the_standard_route(pair: tuple[TestClient, str], auth: str | None, body: bytes) -> None:
    client, _ = pair
    lean, standard = _both(client, body, "application/json", {"Authorization": auth} if auth else {})
    assert lean == standard
    assert lean[0] == (422 if body == b"{bad" else 401)  # a body that is no JSON is refused first, as FastAPI does
    if lean[0] == 401:
        assert lean[2] == "Bearer"


def test_well_formed_requests_take_the_lean_path(pair: tuple[TestClient, str], monkeypatch: pytest.MonkeyPatch) -> None:
    client, token = pair
    seen: list[str] = []
    real = deps.principal

    async def counted(request: Any) -> Any:
        seen.append(request.url.path)
        return await real(request)

    monkeypatch.setattr(deps, "principal", counted)  # the lean handler's own call, not the dependency's
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert client.post(LEAN, content=GOOD, headers=headers).status_code == 200
    assert client.post(LEAN, content=b'{"id_no": 1}', headers=headers).status_code == 422  # lean caller, then standard
    assert client.post(LEAN, content=b"{bad", headers=headers).status_code == 422  # standard only
    assert seen == [LEAN, LEAN]


def test_openapi_describes_the_lean_route_like_any_other(container: Container) -> None:
    spec = create_app(container).openapi()
    post = spec["paths"][LEAN]["post"]
    assert post["x-interface-ids"][0] == "XJ-1.4.2.2"
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Order")
    assert "422" in post["responses"]


def test_only_endpoints_of_the_lean_shape() -> None:
    async def wrong(c: Services, who: Caller) -> Json:
        raise AssertionError

    async def returns_dict(q: Order, c: Services, who: Caller) -> dict[str, Any]:
        raise AssertionError

    app = FastAPI()
    for fn in (wrong, returns_dict):
        with pytest.raises(TypeError, match="LeanRoute"):
            app.router.add_api_route("/x", fn, methods=["POST"], route_class_override=LeanRoute)
