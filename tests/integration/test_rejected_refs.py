"""No walking the kept refusals (issue 10 §1.11): rejected submissions are named by opaque refs.

Before, ``rejected_id`` was the store's sequential id — in REST error bodies, batch results, the
quality list, the SOAP ``error:`` text ("已保存为被拒提交 #7") and the payload download paths of
REST and the supervision pages — so ``/quality/rejected/1/payload``, ``/2`` … fetched one kept
submission (a patient's data as submitted) after another. Now every channel names a kept
submission by the 22-character ref ``RegistryService.reject`` returns, and the one decode
(``QualityService.rejected_payload``) answers anything else — a number, a changed character, a
report's or another installation's ref — with the same 404 as a submission that does not exist.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from huren.client import HurenClient
from huren.crypto.opaque import REF_LEN, RefCodec
from huren.services.container import Container
from huren.services.refs import Refs
from tests import samples
from tests.conftest import ORG_A, Api
from tests.integration import test_soap_golden
from tests.integration.access_world import build_world
from tests.integration.test_opaque_refs import NUMERIC_SEGMENT, REF, _one_character_changed, _token

connect = test_soap_golden.connect
platform = test_soap_golden.platform
#: a rejected submission's payload link in a page (whatever the page's query string)
PAYLOAD_LINK = re.compile(r'href="(/ui/quality/rejected/([^/"?]*)/payload[^"]*)"')


@pytest.fixture
def world(client: TestClient, container: Container) -> dict[str, Any]:
    return build_world(client, container)


def _rest(ref: str) -> str:
    return f"/api/v1/quality/rejected/{ref}/payload"


def _page(ref: str) -> str:
    return f"/ui/quality/rejected/{ref}/payload"


def _kept_ref(body: dict[str, Any]) -> str:
    ref = body["rejected_id"]
    assert isinstance(ref, str) and REF.fullmatch(ref), body
    assert f"#{ref}" in body["message"], body  # the message names it as the field does
    return ref


def _refusals(a: Api, connect: Any, world: dict[str, Any]) -> dict[str, str]:
    """One refusal of every kind that keeps what it refused, by channel: its ``rejected_id``."""
    got: dict[str, str] = {}
    r = a.post("/api/v1/lab-reports", {"labmaster": {"org_code": ORG_A[0]}})
    assert r.status_code == 422
    got["register"] = _kept_ref(r.json())
    r = a.post("/api/v1/exam-reports", content=b'{"exammaster": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    got["malformed json"] = _kept_ref(r.json())
    bad_daily = samples.daily()
    bad_daily["lab_exam_report"][0]["lab_num"] = "12345"
    r = a.post("/api/v1/daily-counts", bad_daily)
    assert r.status_code == 422
    got["daily"] = _kept_ref(r.json())
    r = a.post("/api/v1/directory/depts", {"dept": [{"dept_name": "无编码"}]})
    assert r.status_code == 422, r.text
    got["master data"] = _kept_ref(r.json())
    r = a.post("/api/v1/recognition/accept", {"sehr_accept_record": [{"is_accept": "9"}]})
    assert r.status_code == 422, r.text
    got["accept record"] = _kept_ref(r.json())
    r = a.post("/api/v1/reminder-logs", {"reminder_log": [{"action": "shout", "id_no": "1", "id_type_code": "03"}]})
    assert r.status_code == 422, r.text
    got["reminder log"] = _kept_ref(r.json())
    r = a.put(f"/api/v1/lab-reports/{world['a_lab']}/pdf", content=b"%PDF-1.4 not really")
    assert r.status_code == 422, r.text
    got["pdf"] = _kept_ref(r.json())
    r = a.post("/api/v1/lab-reports/void", {"org_code": ORG_A[0]})
    assert r.status_code == 422, r.text
    got["void"] = _kept_ref(r.json())
    batch = a.post("/api/v1/exam-reports/batch", {"reports": [samples.exam(), {"exammaster": {"org_code": ORG_A[0]}}]})
    assert batch.status_code == 200, batch.text
    ok, bad = batch.json()["results"]
    assert ok["code"] == "ok" and ok.get("rejected_id") is None, ok
    assert isinstance(bad["rejected_id"], str) and REF.fullmatch(bad["rejected_id"]), bad
    got["batch"] = bad["rejected_id"]
    soap: HurenClient = connect(ORG_A)
    answer = soap.ArchiveAutoReport("<root><labmaster>")
    m = re.search(r"已保存为被拒提交 #([^）]*)）", answer)
    assert answer.startswith("error:") and m, answer
    got["soap"] = m.group(1)
    return got


def test_every_channel_names_a_kept_refusal_by_its_ref(
    client: TestClient, container: Container, connect: Any, world: dict[str, Any]
) -> None:
    a, sup = world["apis"]["hospital"], world["apis"]["supervisor"]
    got = _refusals(a, connect, world)
    for channel, ref in got.items():
        assert REF.fullmatch(ref) and len(ref) == REF_LEN, (channel, ref)
        assert container.refs.rejected_id(ref) >= 1  # one of this installation's rejected refs
    assert len(set(got.values())) == len(got)

    # the quality list names the same submissions by the same refs, and each one downloads
    listed = a.get("/api/v1/quality/rejected", params={"limit": 1000}).json()["rejected"]
    ids = [row["id"] for row in listed]
    assert all(isinstance(i, str) and REF.fullmatch(i) for i in ids), ids
    assert set(got.values()) | {world["rejected"]} <= set(ids)
    by_id = {row["id"]: row for row in listed}
    assert by_id[got["soap"]]["channel"] == "soap" and by_id[got["batch"]]["channel"] == "rest"
    for channel in ("register", "malformed json", "soap", "daily", "batch"):
        r = a.get(_rest(got[channel]))
        assert r.status_code == 200 and r.content, (channel, r.status_code)
        assert f"rejected-{got[channel]}." in r.headers["content-disposition"]
    assert sup.get(_rest(got["daily"])).status_code == 200  # the region's supervisor too
    assert b"12345" in a.get(_rest(got["daily"])).content

    # the rectification page: refs in its rows and its download links, no number in a link's path
    html = client.get("/ui/quality/rejected", params={"token": _token(a)}).text
    links = PAYLOAD_LINK.findall(html)
    assert links, html[:500]
    assert {ref for _, ref in links} <= set(ids)
    assert all(not NUMERIC_SEGMENT.search(url.split("?")[0]) for url, _ in links), links
    assert set(re.findall(r'data-id="([^"]*)"', html)) <= set(ids)
    page = client.get(_page(got["daily"]), params={"token": _token(a)})
    assert page.status_code == 200 and b"12345" in page.content
    assert f'filename="rejected-{got["daily"]}.json"' in page.headers["content-disposition"]


def _guesses(good: str) -> list[str]:
    ids = [str(n) for n in (*range(0, 41), 2**31, 2**63 - 1, 2**63, 2**64, -1)]
    return [*ids, *_one_character_changed(good), good.lower(), good.upper(), good + "A", good[:-1], "0" * REF_LEN]


def test_walking_ids_or_changed_refs_on_the_payload_download_gives_the_same_404(
    client: TestClient, container: Container, world: dict[str, Any]
) -> None:
    """What the audit's walk did, on the REST and the page download: only 404s, each the same 404
    as a well-made ref of a submission that does not exist."""
    good = world["rejected"]
    hospital, sup = world["apis"]["hospital"], world["apis"]["supervisor"]
    assert hospital.get(_rest(good)).status_code == 200
    missing = container.refs.rejected(10**9)
    expected = hospital.get(_rest(missing))
    assert expected.status_code == 404 and expected.json()["code"] == "not_found", expected.text
    assert expected.json()["message"] == "被拒提交不存在"
    expected_page = client.get(_page(missing), params={"token": _token(hospital)})
    assert expected_page.status_code == 404
    for guess in _guesses(good):
        if guess == good:
            continue
        for api in (hospital, sup):
            r = api.get(_rest(guess))
            assert r.status_code == 404, (guess, r.status_code, r.text[:200])
            assert r.json() == expected.json(), (guess, r.text[:200])
            p = client.get(_page(guess), params={"token": _token(api)})
            assert p.status_code == 404, (guess, p.status_code)
            assert _unnonced(p.text) == _unnonced(expected_page.text), guess
            assert samples.ID_NO not in p.text and "Traceback" not in p.text


def _unnonced(html: str) -> str:
    """A page with its per-response values (CSP nonce, CSRF token) blanked."""
    return re.sub(r'(nonce|value|content)="[A-Za-z0-9_\-+/=.]{16,}"', r'\1=""', html)


def test_a_ref_of_another_kind_or_installation_names_no_rejected_submission(
    client: TestClient, container: Container, world: dict[str, Any]
) -> None:
    hospital = world["apis"]["hospital"]
    good = world["rejected"]
    stored = container.refs.rejected_id(good)
    expected = hospital.get(_rest(container.refs.rejected(10**9))).json()
    record = hospital.get("/api/v1/recognition/accept").json()["records"][0]["id"]
    others = {
        "a lab report's ref": world["a_lab"],
        "a report ref of the same store id": container.refs.report("lab", stored),
        "an accept record's ref": record,
        "the same id under another installation's secret": Refs(RefCodec(bytes(range(32)))).rejected(stored),
    }
    for name, ref in others.items():
        assert ref != good
        r = hospital.get(_rest(ref))
        assert r.status_code == 404 and r.json() == expected, (name, r.text[:200])
        assert client.get(_page(ref), params={"token": _token(hospital)}).status_code == 404, name
    # and a rejected submission's ref opens no report
    assert hospital.get(f"/api/v1/lab-reports/{good}").status_code == 404
    assert hospital.get(f"/api/v1/exam-reports/{good}/pdf").status_code == 404


def test_the_openapi_names_the_rejected_ref_as_a_string(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/v1/quality/rejected/{rejected_id}/payload"]["get"]
    p = next(p for p in op["parameters"] if p["name"] == "rejected_id")
    assert p["schema"]["type"] == "string" and "不透明" in p["description"], p
