"""The loop back to the HIS (issue 11 items 2-4): the REST read of one visit's decisions, page
tokens minted by the hospital's system account, the widget's refusal inside its own box, the
message the saved dialog and a citation post to the HIS (schema huren:decisions v1)."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

from fastapi.testclient import TestClient

from huren.services.container import Container
from huren.store import audit as audit_store
from tests import samples
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api, login
from tests.web import test_doctor_pages
from tests.web.test_doctor_pages import (
    ALB,
    DOCTOR,
    EXAM_CODE,
    TP,
    _decide,
    _form,
    _report_id,
    _texts,
    q,
)

world = test_doctor_pages.world  # the doctor pages' fixture: catalog, A's reports, a doctor at B

HIS = "https://his.example.org"
EVENT = "MZ20261201"
DEPT = {"dept_code": "0101", "dept_name": "内科门诊", "dept_std_code": "A03", "dept_std_name": "内科"}


def _message(html: str) -> tuple[dict[str, Any], str]:
    m = re.search(r'<script type="application/json" id="his-message" data-his-origins="([^"]*)">(.*?)</script>', html, re.S)
    assert m, "no message for the HIS on the page"
    got: dict[str, Any] = json.loads(m.group(2))
    return got, unescape(m.group(1))


def _save(client: TestClient, token: str, event_no: str = EVENT, **extra: str) -> Any:
    html = _decide(client, token)
    r = client.post("/ui/decide", data=_form(html, token, {0: ("2", "5"), 1: ("1", ""), 2: ("1", "")}, event_no=event_no) | extra)
    assert r.status_code == 200, r.text
    return r


def _mint(api: Api, **body: Any) -> Any:
    return api.post("/api/v1/auth/page-token", {"doc_code": "D2002", "doc_name": "李文静"} | body)


# -- item 2: the message, the REST read ------------------------------------------------------
def test_saved_dialog_posts_the_documented_message_to_the_allowed_origin_only(
    client: TestClient, container: Container, world: dict[str, Any]
) -> None:
    r = _save(client, world["token"])
    _, origins = _message(r.text)
    assert origins == ""  # frame_ancestors 'self' only: no HIS origin, nothing is posted anywhere
    container.settings.his_origins = HIS
    r = _save(client, world["token"], event_no=EVENT + "B")
    msg, origins = _message(r.text)
    assert origins == HIS and "*" not in origins
    assert 'src="/ui/static/his-bridge.js' in r.text
    assert set(msg) == {"type", "version", "action", "record_time", "patient", "visit", "accepted", "rejected", "quoted", "text"}
    assert (msg["type"], msg["version"], msg["action"]) == ("huren:decisions", 1, "decide")
    assert msg["patient"] == {"id_type_code": "01", "id_no": samples.ID_NO}
    assert msg["visit"]["event_no"] == EVENT + "B" and msg["visit"]["doc_code"] == "D1001"
    assert sorted(i["code"] for i in msg["accepted"]) == sorted([TP, ALB])
    [rej] = msg["rejected"]
    assert rej["code"] == EXAM_CODE and rej["kind"] == "exam" and rej["reason"] == "5" and rej["reason_name"]
    assert rej["hr_org_code"] == ORG_A[0] and rej["report_id"] and rej["org_name"] == ORG_A[1]
    lab = next(i for i in msg["accepted"] if i["code"] == TP)
    assert (lab["result"], lab["unit"], lab["flag"], lab["type"]) == ("90.1", "g/L", "H", "2")
    assert msg["quoted"] == [] and msg["text"] == ""


def test_a_his_polls_one_visit_s_decisions(client: TestClient, container: Container, api_b: Api, api_a: Api, world: dict[str, Any]) -> None:
    _save(client, world["token"])
    body = {"id_type_code": "01", "id_no": samples.ID_NO, "event_no": EVENT}
    r = api_b.post("/api/v1/recognition/visit-decisions", body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["version"] == 1 and got["visit"] == {"event_no": EVENT} and got["org_code"] == ORG_B[0]
    assert sorted(i["code"] for i in got["accepted"]) == sorted([TP, ALB])
    [rej] = got["rejected"]
    assert (rej["code"], rej["kind"], rej["reason"]) == (EXAM_CODE, "exam", "5") and rej["reason_name"]
    assert rej["report_id"] and rej["hr_org_code"] == ORG_A[0]
    # another visit: nothing; another institution's own read: nothing; its read of B: refused
    assert api_b.post("/api/v1/recognition/visit-decisions", body | {"event_no": "OTHER"}).json()["accepted"] == []
    assert api_a.post("/api/v1/recognition/visit-decisions", body).json()["accepted"] == []
    refused = api_a.post("/api/v1/recognition/visit-decisions", body | {"org_code": ORG_B[0]})
    assert refused.status_code == 403
    # the supervisor of the region reads B's; a doctor's token may not (records.read)
    sup = login(client, SUPERVISOR).post("/api/v1/recognition/visit-decisions", body | {"org_code": ORG_B[0]})
    assert sup.status_code == 200 and len(sup.json()["accepted"]) == 2
    doctor = Api(client, world["token"]).post("/api/v1/recognition/visit-decisions", body)
    assert doctor.status_code == 403
    assert api_b.post("/api/v1/recognition/visit-decisions", body | {"event_no": ""}).status_code == 422
    with container.db.read() as conn:
        reads = [a for a in audit_store.list_access(conn, container.keys.fields(), limit=100) if a["action"] == "visit_decisions"]
    assert len(reads) >= 4 and all(a["id_no"] == samples.ID_NO for a in reads)
    assert {(a["org_code"], a["target"]) for a in reads} >= {(ORG_B[0], f"{ORG_B[0]} visit:{EVENT}")}


# -- item 3: page tokens -------------------------------------------------------------------------
def test_a_page_token_is_minted_by_the_hospital_account_of_the_institution_only(
    client: TestClient, api_b: Api, world: dict[str, Any]
) -> None:
    r = _mint(api_b)
    assert r.status_code == 200, r.text
    assert r.json()["expires_in"] == 600 and r.json()["org_code"] == ORG_B[0] and r.json()["page_token"]
    assert _mint(api_b, org_code=ORG_A[0]).status_code == 403  # a doctor of another institution
    assert _mint(Api(client, world["token"])).status_code == 403  # a doctor mints none
    assert _mint(login(client, SUPERVISOR)).status_code == 403
    assert _mint(api_b, expires_in=999999).status_code == 422
    assert _mint(api_b, doc_code=" ").status_code == 422


def test_a_page_token_opens_the_doctor_pages_as_that_doctor_and_no_rest_operation(
    client: TestClient, container: Container, api_b: Api, world: dict[str, Any]
) -> None:
    token = _mint(api_b).json()["page_token"]
    client.cookies.clear()
    w = client.get("/ui/widget", params=q(token))
    assert w.status_code == 200 and 'data-count="' in w.text and "huren-widget on" in w.text
    assert client.get("/ui/panel", params=q(token)).status_code == 200
    html = _decide(client, token)
    assert 'name="doc_code" value="D2002"' in html and 'name="doc_name" value="李文静"' in html
    # the token's doctor wins over a form that names another
    r = client.post("/ui/decide", data=_form(html, token, {0: ("1", ""), 1: ("1", ""), 2: ("1", "")}, event_no="MZP1")
                    | DEPT | {"doc_code": "D1001", "doc_name": "王建国"})
    assert r.status_code == 200, r.text
    saved = [a for a in api_b.get("/api/v1/recognition/accept").json()["records"] if a["new_event_no"] == "MZP1"]
    assert len(saved) == 3 and {(a["doc_code"], a["doc_name"]) for a in saved} == {("D2002", "李文静")}
    # no REST operation opens with it
    page = Api(client, token)
    for method, path in (("get", "/api/v1/recognition/accept"), ("post", "/api/v1/recognition/recent"), ("get", "/api/v1/orgs")):
        resp = page.get(path) if method == "get" else page.post(path, {"id_type_code": "01", "id_no": samples.ID_NO})
        assert resp.status_code == 401, (path, resp.text)
    assert page.post("/api/v1/auth/page-token", {"doc_code": "X", "doc_name": "X"}).status_code == 401


def test_a_page_token_for_one_visit_opens_that_visit_only(client: TestClient, api_b: Api, world: dict[str, Any]) -> None:
    token = _mint(api_b, event_no="MZV1").json()["page_token"]
    html = _decide(client, token)
    assert 'name="event_no" value="MZV1"' in html
    other = client.get("/ui/decide", params=q(token, check=[EXAM_CODE], event_no="MZV2"))
    assert other.status_code == 403 and "只用于一次就诊" in other.text


def test_a_page_token_expires_and_is_revoked_with_its_account(client: TestClient, container: Container, api_b: Api, world: dict[str, Any]) -> None:
    short = _mint(api_b, expires_in=60).json()["page_token"]
    token = _mint(api_b).json()["page_token"]
    assert client.get("/ui/panel", params=q(short)).status_code == 200
    container.clock.offset += 61
    expired = client.get("/ui/panel", params=q(short))
    assert expired.status_code == 401 and "页面令牌已过期" in expired.text
    assert client.get("/ui/panel", params=q(token)).status_code == 200
    container.directory.set_password(ORG_B[0], ORG_B[4], "a-new-password-b")
    revoked = client.get("/ui/panel", params=q(token))
    assert revoked.status_code == 401 and "页面令牌已失效" in revoked.text


def test_the_widget_refuses_inside_its_own_box(client: TestClient, container: Container, api_b: Api, world: dict[str, Any]) -> None:
    token = _mint(api_b, expires_in=60).json()["page_token"]
    container.clock.offset += 61
    client.cookies.clear()
    for bad in (token, "not-a-token"):
        r = client.get("/ui/widget", params=q(bad), follow_redirects=False)
        assert r.status_code == 401
        assert 'class="topbar"' not in r.text and "huren-widget off error" in r.text
        title = unescape(re.search(r'title="([^"]+)"', r.text.split('id="huren-widget"', 1)[1]).group(1))  # type: ignore[union-attr]
        assert title.startswith("互认提醒暂不可用：") and "请在 HIS 中重新打开本页面" in title
        assert ("页面令牌已过期" if bad == token else "令牌无效") in title
        assert 'href="/ui/static/widget.css' in r.text
    # without any token or session: the same icon, not a login page in a 150×34 frame
    r = client.get("/ui/widget", params={"id_no": samples.ID_NO}, follow_redirects=False)
    assert r.status_code == 401 and "huren-widget off error" in r.text


# -- item 4: citing for real ---------------------------------------------------------------------
def test_citing_chosen_lab_sub_items_copies_their_text_and_sends_it(
    client: TestClient, container: Container, api_b: Api, world: dict[str, Any]
) -> None:
    container.settings.his_origins = HIS
    rid = _report_id(container, world["b"], "lab")
    page = client.get(f"/ui/report/lab/{rid}", params={"token": world["token"]}).text
    assert f'name="item" value="{TP}" form="quote-form" checked' in page
    data = {"token": world["token"], "kind": "lab", "report_id": rid, "event_no": "MZQ1", "event_type": "1",
            "dept_code": "0101", "dept_name": "内科门诊", "dept_std_code": "A03", "dept_std_name": "内科",
            "doc_code": "D1001", "doc_name": "王建国", "item": [TP]}
    r = client.post("/ui/quote", data=data)
    assert r.status_code == 200, r.text
    assert "已引用 1 项结果" in r.text
    quotes = [x for x in container.recognition.records(world["b"], "quote") if x["new_event_no"] == "MZQ1"]
    assert [x["code"] for x in quotes] == [TP]
    msg, origins = _message(r.text)
    text = msg["text"]
    assert "总蛋白" in text and "90.1 g/L↑（参考 65-85）" in text and ORG_A[1] in text and "白蛋白" not in text
    assert f'readonly>{text}</textarea>' in unescape(r.text)  # for the doctor to copy into the record
    assert origins == HIS and msg["action"] == "quote" and msg["type"] == "huren:decisions" and msg["version"] == 1
    assert [i["code"] for i in msg["quoted"]] == [TP]
    assert msg["accepted"] == [] and msg["rejected"] == [] and msg["visit"]["event_no"] == "MZQ1"
    # a sub-item of another report is none of this one's: nothing to cite
    none = client.post("/ui/quote", data=data | {"item": ["NOT-AN-ITEM"], "event_no": "MZQ2"})
    assert none.status_code == 422 and "请至少选择一项" in none.text
    assert DOCTOR[4] == "D1001"


def test_the_embedding_notes_document_the_trigger_the_return_path_and_page_tokens(client: TestClient, world: dict[str, Any]) -> None:
    r = client.get("/ui/embed", params={"token": world["token"]})
    assert r.status_code == 200
    text = unescape(r.text)
    assert "/ui/decide?id_type_code=01" in text and "check=" in text
    assert "huren:decisions" in text and "HUREN_HIS_ORIGINS" in text and "/api/v1/recognition/visit-decisions" in text
    assert "/api/v1/auth/page-token" in text and "不能调用任何接口" in text and "docs/his-sample/" in text
    assert "callback" in text and "平台服务器本身从不访问该地址" in text
    for field in ("accepted", "rejected", "quoted", "reason_name", "hr_report_form_no", "version"):
        assert field in _texts(r.text, "embed-schema")


def test_a_callback_named_by_the_page_token_is_allowed_origins_only(
    client: TestClient, container: Container, api_b: Api, world: dict[str, Any]
) -> None:
    assert _mint(api_b, callback=f"{HIS}/huren/decisions").status_code == 422  # no HIS origin configured
    container.settings.his_origins = HIS
    for bad in ("https://evil.example/x", "javascript:alert(1)", f"{HIS}.evil.example/x", "https://user@his.example.org/x",
                "http://his.example.org/x", "https://his.example.org:444/x"):
        r = _mint(api_b, callback=bad)
        assert r.status_code == 422 and "回调地址" in r.text, bad
    token = _mint(api_b, callback=f"{HIS}/huren/decisions?dept=0101").json()["page_token"]
    r = _save(client, token, **DEPT)
    assert r.status_code == 200
    assert f'data-callback="{HIS}/huren/decisions?dept=0101"' in unescape(r.text)
    csp = r.headers["content-security-policy"]
    assert csp.endswith(f"connect-src 'self' {HIS}") and "frame-ancestors" in csp and "script-src 'self'" in csp
    # a page without a callback keeps the one policy: connects to the platform only
    plain = _save(client, world["token"], event_no=EVENT + "C")
    assert "data-callback" not in plain.text and "connect-src" not in plain.headers["content-security-policy"]
