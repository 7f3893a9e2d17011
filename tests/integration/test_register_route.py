"""Single-report registration on its lean route (api.rest_reports._RegisterRoute) answers every
request exactly as the same endpoint on FastAPI's standard route: a registration and its
resubmission, and every kind of refusal (token, JSON, field rules), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from huren.api import rest_reports
from huren.api.app import create_app
from huren.services.container import Container
from tests import samples
from tests.conftest import ORG_A, Api, login

LEAN = "/api/v1/lab-reports"
STANDARD = "/api/v1/standard-route/lab-reports"  # the same endpoint, FastAPI's own APIRoute


@pytest.fixture
def pair(container: Container) -> tuple[TestClient, Api]:
    app = create_app(container)
    lean = [r for r in app.router.routes if isinstance(r, rest_reports._RegisterRoute) and r.path == LEAN]
    assert len(lean) == 1
    app.router.routes.insert(0, APIRoute(STANDARD, lean[0].endpoint, methods=["POST"]))
    client = TestClient(app)
    return client, login(client, ORG_A)


def _same(lean: Any, standard: Any) -> dict[str, Any]:
    """Both answers alike (a kept submission's own ref aside); the lean one's body."""
    assert lean.status_code == standard.status_code, (lean.text, standard.text)
    assert lean.headers["content-type"] == standard.headers["content-type"]
    assert lean.headers.get("x-content-type-options") == standard.headers.get("x-content-type-options") == "nosniff"
    a, b = lean.json(), standard.json()
    if "rejected_id" in a:
        assert isinstance(b.get("rejected_id"), str) and a["rejected_id"] != b["rejected_id"]
        a, b = (x | {"rejected_id": "", "message": re.sub(r"#\S+", "#", x["message"])} for x in (a, b))
    assert a == b
    return lean.json()  # type: ignore[no-any-return]


def test_registration_and_resubmission_alike(pair: tuple[TestClient, Api]) -> None:
    _, api = pair
    first = api.post(LEAN, samples.lab())
    assert first.status_code == 200 and first.json()["created"] is True
    assert first.content == first.content.strip() and b": " not in first.content  # compact JSON as FastAPI's
    again_std, again_lean = api.post(STANDARD, samples.lab()), api.post(LEAN, samples.lab())
    body = _same(again_lean, again_std)
    assert body == {"code": "ok", "message": "ok", "report_id": first.json()["report_id"], "version": 1, "created": False, "unchanged": True}


def test_refusals_alike(pair: tuple[TestClient, Api]) -> None:
    client, api = pair
    for headers in ({}, {"Authorization": "Bearer nope"}):
        body = _same(client.post(LEAN, json=samples.lab(), headers=headers), client.post(STANDARD, json=samples.lab(), headers=headers))
        assert body["code"] == "unauthorized"
    bad_json = {"content": b'{"labmaster": ', "headers": api.headers | {"Content-Type": "application/json"}}
    assert _same(client.post(LEAN, **bad_json), client.post(STANDARD, **bad_json))["problems"][0]["rule"] == "json"  # type: ignore[arg-type]
    broken = samples.lab()
    broken["labmaster"]["id_no"] = ""
    body = _same(api.post(LEAN, broken), api.post(STANDARD, broken))
    assert any(p["field"] == "labmaster.id_no" for p in body["problems"])
