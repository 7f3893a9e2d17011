"""No walking the store (issue 10 §1.11): reports are named by opaque refs in every URL and answer.

Before refs, ``GET /api/v1/lab-reports/1``, ``/2``, ``/3`` … read one report after another; now a
report path, page, link or PDF download holds a 22-character ref that only this installation can
make, and anything else — a sequential id, a neighbouring ref with one character changed, another
kind's ref, another installation's ref — is the same 404 as a report that does not exist.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from huren.bootstrap import keyring, report_refs
from huren.crypto import b64url
from huren.crypto.opaque import REF_LEN, RefCodec
from huren.crypto.tokens import Signer
from huren.services.container import Container
from huren.services.refs import Refs
from tests import samples
from tests.conftest import ORG_A, Api
from tests.integration import test_gateway_pages
from tests.integration.access_world import EXAM_CODE, LAB_CODE, PATIENT, VISIT, build_world
from tests.integration.test_gateway_pages import PAGE_TOKEN
from tests.integration.test_gateway_preload import Gateway, _reports

REF = re.compile(r"[A-Za-z0-9_-]{22}")
#: a path segment that is a number (a sequential id in a URL)
NUMERIC_SEGMENT = re.compile(r"/\d+(?=/|$|\?)")


@pytest.fixture
def world(client: TestClient, container: Container) -> dict[str, Any]:
    return build_world(client, container)


def _token(api: Api) -> str:
    return api.headers["Authorization"].split()[1]


def _missing(container: Container, kind: str) -> str:
    """A well-made ref of a report that does not exist."""
    return container.refs.report(kind, 10**9)


def _paths(kind: str, ref: str) -> list[str]:
    return [
        f"/api/v1/{kind}-reports/{ref}",
        f"/api/v1/{kind}-reports/{ref}/pdf",
        f"/api/v1/{kind}-reports/{ref}/history",
        f"/api/v1/recognition/{kind}-reports/{ref}/pdf",
    ]


def _one_character_changed(ref: str) -> list[str]:
    out = []
    for i in range(len(ref)):
        for ch in "AQgw0_":
            if ch != ref[i]:
                out.append(ref[:i] + ch + ref[i + 1 :])
                break
    return out


def test_walking_sequential_ids_or_neighbouring_refs_gives_404s_only(
    client: TestClient, container: Container, world: dict[str, Any]
) -> None:
    """What the 2 s / 300 reports walk of the audit did, on every report path, as a doctor and as
    the owning hospital: no answer but 404, the same 404 as a report that does not exist."""
    doctor, hospital = world["apis"]["doctor"], world["apis"]["hospital"]
    for kind in ("lab", "exam"):
        good = world[f"a_{kind}"]
        assert hospital.get(f"/api/v1/{kind}-reports/{good}").status_code == 200
        assert REF.fullmatch(good), good
        expected = {p: hospital.get(p).json() for p in _paths(kind, _missing(container, kind))}
        assert all(e["code"] == "not_found" for e in expected.values()), expected
        ids = [str(n) for n in (*range(0, 41), 2**31, 2**63 - 1, 2**63, 2**64, -1)]
        guesses = [*ids, *_one_character_changed(good), good.lower(), good + "A", good[:-1], "%2e%2e", "0" * REF_LEN]
        for guess in guesses:
            for missing, path in zip(expected, _paths(kind, guess), strict=True):
                for api in (doctor, hospital):
                    r = api.get(path)
                    assert r.status_code == 404, (path, r.status_code, r.text[:200])
                    assert r.json() == expected[missing], (path, r.text[:200])
            for page in (f"/ui/report/{kind}/{guess}", f"/ui/report/{kind}/{guess}/pdf"):
                r = client.get(page, params={"token": _token(doctor)})
                assert r.status_code == 404, (page, r.status_code)
                assert ORG_A[1] not in r.text and samples.ID_NO not in r.text
            r = doctor.post("/api/v1/links", {"kind": kind, "report_id": guess})
            assert r.status_code == 404, (guess, r.text)


def test_a_ref_is_of_one_kind_and_one_installation(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    hospital = world["apis"]["hospital"]
    lab = world["a_lab"]
    lab_id = container.refs.report_id("lab", lab)
    # a lab report's ref asked for as an exam report (even when an exam report has that store id)
    exam_id = container.refs.report_id("exam", world["a_exam"])
    assert hospital.get(f"/api/v1/exam-reports/{container.refs.report('exam', exam_id)}").status_code == 200
    for path in _paths("exam", lab):
        assert hospital.get(path).status_code == 404, path
    assert client.get(f"/ui/report/exam/{lab}", params={"token": _token(world["apis"]["doctor"])}).status_code == 404
    assert hospital.post("/api/v1/links", {"kind": "exam", "report_id": lab}).status_code == 404
    # the same store id under another installation's secret
    other = Refs(RefCodec(bytes(range(32))))
    foreign = other.report("lab", lab_id)
    assert foreign != lab
    for path in _paths("lab", foreign):
        assert hospital.get(path).status_code == 404, path
    assert hospital.put(f"/api/v1/lab-reports/{foreign}/pdf", content=samples.PDF_BYTES).status_code == 404


def _walk(value: Any, found: list[tuple[str, Any]], key: str = "") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _walk(v, found, k)
    elif isinstance(value, list):
        for v in value:
            _walk(v, found, key)
    else:
        found.append((key, value))


def test_answers_carry_refs_never_store_ids(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    """Every answer that names a report names it by a ref; every link in an answer holds no number."""
    a, b, doctor, sup = (world["apis"][r] for r in ("hospital", "admin", "doctor", "supervisor"))
    answers: dict[str, Any] = {
        "register": a.post("/api/v1/lab-reports", samples.lab()).json(),
        "batch": a.post("/api/v1/exam-reports/batch", {"reports": [samples.exam()]}).json(),
        "recent": doctor.post("/api/v1/recognition/recent", PATIENT | VISIT).json(),
        "detail": doctor.post("/api/v1/recognition/detail", PATIENT | VISIT).json(),
        "exists": doctor.post("/api/v1/recognition/exists", PATIENT | VISIT | {"check": [EXAM_CODE], "lab": [LAB_CODE]}).json(),
        "accepted lab": doctor.post("/api/v1/recognition/lab-reports", PATIENT).json(),
        "accepted exam": doctor.post("/api/v1/recognition/exam-reports", PATIENT).json(),
        "accept records": a.get("/api/v1/recognition/accept").json(),
        "query": doctor.post("/api/v1/query/lab-reports", PATIENT).json(),
        "abnormal": doctor.post("/api/v1/query/exam-abnormal", PATIENT).json(),
        "one report": doctor.get(f"/api/v1/lab-reports/{world['b_lab']}").json(),
        "org reports": sup.get("/api/v1/org-reports", params={"org_code": ORG_A[0], "kind": "lab"}).json(),
        "link": doctor.post("/api/v1/links", {"kind": "lab", "report_id": world["a_lab"]}).json(),
        "pdf put": a.put(f"/api/v1/lab-reports/{world['a_lab']}/pdf", content=samples.PDF_BYTES).json(),
        "void": a.post("/api/v1/lab-reports/void", _void_filter()).json(),
    }
    assert b is not None
    refs = 0
    for name, answer in answers.items():
        assert answer.get("code") == "ok", (name, answer)
        found: list[tuple[str, Any]] = []
        _walk(answer, found)
        for key, value in found:
            if key == "report_id" and value is not None:
                assert isinstance(value, str) and REF.fullmatch(value), (name, value)
                refs += 1
            if key in ("url", "pdf_url") and value:
                path = value.split("/api/v1/", 1)[-1]
                assert not NUMERIC_SEGMENT.search("/" + path), (name, value)
    assert refs >= 15, refs  # the walk met the answers' refs (recent, detail, exists, accepted, lists …)
    records = answers["accept records"]["records"]
    assert records and all(REF.fullmatch(r["id"]) and REF.fullmatch(r["report_id"]) for r in records), records
    assert len({r["id"] for r in records}) == len(records)
    # and each answer's url opens the report it names
    item = answers["recent"]["item"][0]
    url = item["url"]
    assert url.endswith(item["report_id"])
    assert doctor.get(url).status_code == 200


def _void_filter() -> dict[str, str]:
    m = samples.lab()["labmaster"]
    return {k: m[k] for k in ("org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_no")} | {"id_type": "01"}


def test_refs_outlive_data_key_rotation_and_a_restart(container: Container, world: dict[str, Any]) -> None:
    """URLs in records and the HIS outlive key rotation: the ref secret is derived from the
    blind-index secret, which neither data-key nor token-secret rotation changes."""
    ref = world["a_lab"]
    rid = container.refs.report_id("lab", ref)
    container.keys.rotate_data_key()
    fresh = report_refs(keyring(container.settings))  # another process, reading keys/ afresh
    assert fresh.report("lab", rid) == ref and fresh.report_id("lab", ref) == rid


def test_the_openapi_names_report_refs_as_strings(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/api/v1/lab-reports/{report_id}", "/api/v1/recognition/exam-reports/{report_id}/pdf"):
        op = next(iter(spec["paths"][path].values()))
        p = next(p for p in op["parameters"] if p["name"] == "report_id")
        assert p["schema"]["type"] == "string" and "不透明" in p["description"], p
    link = spec["components"]["schemas"]["LinkRequest"]["properties"]["report_id"]
    assert link["type"] == "string" and "不透明" in link["description"]


# -- the gateway's pages: the same refs, through huren.client ------------------------------------
gateway = test_gateway_pages.gateway
catalog = test_gateway_pages.catalog


def test_the_gateway_pages_open_refs_and_refuse_walks(gateway: Gateway, api_a: Api, container: Container) -> None:
    _reports(api_a, container)
    q = {"id_type_code": "01", "id_no": samples.ID_NO, "token": PAGE_TOKEN}
    assert gateway.http.get("/ui/panel", params=q).status_code == 200  # fills the cache
    entry = gateway.cache.load("01", samples.ID_NO)
    assert entry is not None
    ref = entry.detail["labmaster"][0]["report_id"]
    assert isinstance(ref, str) and REF.fullmatch(ref)
    assert gateway.http.get(f"/ui/report/lab/{ref}", params={"token": PAGE_TOKEN}).status_code == 200
    # sequential ids, a changed character, another kind, a path the client must not build
    for guess in ("1", "2", "3", *_one_character_changed(ref)[:6], "..", "%2E%2E", "a.b"):
        for page in (f"/ui/report/lab/{guess}", f"/ui/report/lab/{guess}/pdf"):
            r = gateway.http.get(page, params={"token": PAGE_TOKEN})
            assert r.status_code == 404, (page, r.status_code, r.text[:200])
    assert gateway.http.get(f"/ui/report/exam/{ref}", params={"token": PAGE_TOKEN}).status_code == 404


def test_a_link_signed_before_refs_still_opens_and_a_new_one_names_the_ref(
    client: TestClient, container: Container, world: dict[str, Any]
) -> None:
    """Links live at most a day: one signed with the store id before the upgrade still opens, and
    is answered under the report's ref; links made now carry the ref."""
    ref = world["a_lab"]
    rid = container.refs.report_id("lab", ref)
    doctor = world["apis"]["doctor"]
    new = doctor.post("/api/v1/links", {"kind": "lab", "report_id": ref}).json()
    token = new["url"].rsplit("/", 1)[1]
    claims = orjson.loads(b64url.decode(token.split(".")[0]))
    assert claims["i"] == ref and new["report_id"] == ref
    old = Signer(container.keys.token_secret(), "report-link", container.clock.time).sign_until(
        claims | {"i": rid}, int(container.clock.time()) + 60
    )
    r = client.get(f"/api/v1/links/{old}")
    assert r.status_code == 200, r.text
    assert r.content == samples.PDF_BYTES and ref in r.headers["content-disposition"]
