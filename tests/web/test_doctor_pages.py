"""Doctor pages (issue #6): widget, reminder panel, decision dialog, report view, quote, embedding
notes; token mode and session mode with CSRF; roles; errors in Chinese. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient

from huren.context import Principal
from huren.domain import idcard
from huren.services.container import Container
from huren.store import catalog as catalog_store
from tests import samples
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api, login
from tests.web.test_login import web_login

EXAM_CODE = "115"
ALB = "250301002"  # 血清白蛋白测定
TP = "250301001"  # 血清总蛋白测定
DOCTOR = (ORG_B[0], ORG_B[1], ORG_B[2], ORG_B[3], "D1001", "doctor-pass-b")
NOBODY = idcard.make("650102", date(1980, 5, 6), 77)  # a patient without records


def _shift(payload: dict[str, Any], old_day: str, new_day: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(payload, ensure_ascii=False).replace(old_day, new_day))
    return out


def lab_report(c: Container) -> dict[str, Any]:
    """A's lab report of yesterday: 总蛋白 (high, recognizable) and 白蛋白 (recognizable)."""
    day = (c.clock.now() - timedelta(days=1)).date().isoformat()
    p = _shift(samples.lab(), "2024-03-11", day)
    ag = p["lab_subitem"][0]
    ag.update(class_code=TP, class_name="总蛋白(TP)", class_local_name="总蛋白", result_value="90.1", result_unit="g/L",
              norm_lower_limit="65", norm_upper_limit="85", result_interpre="H", recognition="1")
    return p


def exam_report(c: Container) -> dict[str, Any]:
    day = (c.clock.now() - timedelta(days=2)).date().isoformat()
    p = _shift(samples.exam(), "2024-05-11", day)
    p["exam_subitem"][0]["recognition"] = "1"
    return p


@pytest.fixture
def world(container: Container, api_a: Api, client: TestClient) -> dict[str, Any]:
    """Catalog, A's reports of the sample patient, and a doctor at B with department and staff rows."""
    now = container.clock.now()
    with container.db.write() as conn:
        catalog_store.upsert_items(
            conn,
            [
                {"kind": "lab", "code": ALB, "name": "血清白蛋白测定", "unit": "g/L", "recognizable": True,
                 "validity_days": 30, "min_level": 2, "region_scope": "", "source_note": ""},
                {"kind": "lab", "code": TP, "name": "血清总蛋白测定", "unit": "g/L", "recognizable": True,
                 "validity_days": 30, "min_level": 2, "region_scope": "", "source_note": ""},
                {"kind": "exam", "code": EXAM_CODE, "name": "CT平扫+三维重建", "unit": "", "recognizable": True,
                 "validity_days": 90, "min_level": 2, "region_scope": "", "source_note": ""},
            ],
            now=now,
        )
    container.recognition.invalidate()
    assert api_a.post("/api/v1/lab-reports", lab_report(container)).status_code == 200
    assert api_a.post("/api/v1/exam-reports", exam_report(container)).status_code == 200
    b = Principal(ORG_B[0], ORG_B[4], "hospital")
    container.masterdata.upload("dept", {"dept": [{"dept_code": "0101", "dept_name": "内科门诊", "dept_std_code": "A03"}]}, b)
    container.masterdata.upload("staff", {"staff": [{"staff_code": "D1001", "name": "王建国", "dept_code": "0101"}]}, b)
    container.directory.add_credential(ORG_B[0], "D1001", DOCTOR[5], role="doctor")
    token = client.post(
        "/api/v1/auth/token", json={"org_code": DOCTOR[0], "username": DOCTOR[4], "password": DOCTOR[5]}
    ).json()["access_token"]
    return {"token": token, "b": b}


def q(token: str, **kw: Any) -> dict[str, Any]:
    return {"id_type_code": "01", "id_no": samples.ID_NO, "token": token} | kw


def _texts(html: str, selector_id: str) -> str:
    """The text of the element with that id (a rough cut, enough for assertions)."""
    m = re.search(rf'<(\w+)[^>]*\bid="{selector_id}"(.*?)</\1>', html, re.S)
    assert m, f"#{selector_id} missing"
    return unescape(re.sub(r"<[^>]+>", " ", m.group(2)))


def _rows(html: str) -> list[str]:
    return [unescape(v) for v in re.findall(r'name="row" value="([^"]+)"', html)]


def _decide(client: TestClient, token: str) -> str:
    r = client.get("/ui/decide", params=q(token, check=[EXAM_CODE], lab=[TP, ALB]))
    assert r.status_code == 200, r.text
    return r.text


def _form(html: str, token: str, decisions: dict[int, tuple[str, str]], **extra: str) -> dict[str, Any]:
    data = [("token", token), ("id_type_code", "01"), ("id_no", samples.ID_NO), ("event_type", "1")]
    data += [("row", v) for v in _rows(html)]
    for k in ("dept_code", "dept_name", "dept_std_code", "dept_std_name", "doc_code", "doc_name"):
        m = re.search(rf'type="hidden" name="{k}" value="([^"]*)"', html)
        if m:
            data.append((k, unescape(m.group(1))))
    data += list(extra.items())
    for i, (acc, reason) in decisions.items():
        if acc:
            data.append((f"is_accept_{i}", acc))
        data.append((f"reason_{i}", reason))
    out: dict[str, Any] = {}
    for k, v in data:
        out[k] = [*out[k], v] if k in out and isinstance(out[k], list) else ([out[k], v] if k in out else v)
    if isinstance(out.get("row"), str):
        out["row"] = [out["row"]]
    return out


def _accepts(api: Api) -> list[dict[str, Any]]:
    r = api.get("/api/v1/recognition/accept")
    assert r.status_code == 200, r.text
    body = r.json()
    out: list[dict[str, Any]] = body["records"]
    return out


# -- widget --------------------------------------------------------------------------------------
def test_widget_count_is_the_services_recognizable_count(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    expected = sum(1 for r in container.recognition.recent(world["b"], "01", samples.ID_NO) if r["recognition"] == "1")
    assert expected == 2  # the exam item and the lab report
    r = client.get("/ui/widget", params=q(world["token"]))
    assert r.status_code == 200, r.text
    assert f'data-count="{expected}"' in r.text
    assert 'class="huren-widget on"' in r.text and "aria-disabled" not in r.text
    assert "/ui/panel?" in r.text and "topbar" not in r.text  # no chrome in the widget
    grey = client.get("/ui/widget", params=q(world["token"], id_no=NOBODY)).text
    assert 'data-count="0"' in grey and 'aria-disabled="true"' in grey and "huren-widget off" in grey
    assert "href=" not in grey.split('id="huren-widget"', 1)[1].split("</span>", 1)[0]  # inert: no link


# -- panel ---------------------------------------------------------------------------------------
def test_panel_lists_recent_exams_and_labs_with_stars(client: TestClient, world: dict[str, Any]) -> None:
    r = client.get("/ui/panel", params=q(world["token"], event_no="MZ123"))
    assert r.status_code == 200, r.text
    assert "检查检验结果互认提醒" in r.text and "topbar" not in r.text
    exams = _texts(r.text, "recent-exams")
    labs = _texts(r.text, "recent-labs")
    assert "CT平扫+三维重建" in exams and ORG_A[1] in exams and "★" in exams
    assert "常规报告" in labs and "★" in labs
    # rows link to the report view keeping the token and the visit
    assert re.search(r'href="/ui/report/exam/[A-Za-z0-9_-]{22}\?event_no=MZ123&amp;token=', r.text)  # opaque refs
    # the ordering form lists the catalog
    assert 'name="check" value="115"' in r.text and f'name="lab" value="{ALB}"' in r.text
    empty = client.get("/ui/panel", params=q(world["token"], id_no=NOBODY)).text
    assert "该患者近 90 天内没有检查检验记录" in empty


def test_doctor_lookup_page_in_session(client: TestClient, world: dict[str, Any]) -> None:
    web_login(client, DOCTOR, next_url="/ui/doctor")
    r = client.get("/ui/doctor", params={"id_type_code": "01", "id_no": samples.ID_NO})
    assert r.status_code == 200
    assert "CT平扫+三维重建" in r.text and "开立项目" in r.text and "患者互认查询" in r.text
    assert "该患者近 90 天内没有检查检验记录" in client.get("/ui/doctor", params={"id_no": NOBODY}).text
    bad = client.get("/ui/doctor", params={"id_no": "123"})
    assert bad.status_code == 200 and "alert error" in bad.text and "Traceback" not in bad.text


# -- decision dialog -----------------------------------------------------------------------------
def test_decide_lists_exam_and_lab_rows(client: TestClient, world: dict[str, Any]) -> None:
    html = _decide(client, world["token"])
    exam = _texts(html, "exam-rows")
    lab = _texts(html, "lab-rows")
    # compact rows (issue 11): name, institution, date, valid until, the result, the toggle
    for col in ("项目", "是否互认", "互认", "不互认"):
        assert col in exam and col in lab
    assert html.count('title="互认有效期至 ') == 3  # each row's valid-until date, the full time on hover
    assert "查看影像" in exam and "CT平扫+三维重建" in exam
    assert "90.1" in lab and "参考 65-85" in lab and "白蛋白(ALB)" in lab  # the range as the report writes it
    assert len(_rows(html)) == 3
    assert html.count("不互认理由") >= 3 and "因病情变化" in html
    assert 'id="decide-save"' in html
    # the visit comes from the directory (doctor D1001, 内科门诊); the missing 就诊流水号 is asked for
    assert 'name="doc_name" value="王建国"' in html and 'name="dept_std_code" value="A03"' in html
    assert 'name="event_no" value=""' in html and "就诊流水号" in html


def test_decide_nothing_recognizable(client: TestClient, world: dict[str, Any]) -> None:
    r = client.get("/ui/decide", params=q(world["token"], id_no=NOBODY, check=[EXAM_CODE], lab=["LOCAL-X"]))
    assert r.status_code == 200
    assert "所开项目没有仍在互认有效期内的结果，可直接开立" in r.text
    assert "LOCAL-X" in r.text  # unmapped code listed
    r = client.get("/ui/decide", params=q(world["token"]))
    assert r.status_code == 422 and "请至少选择一个" in r.text


def test_undecided_row_is_refused_and_nothing_saved(client: TestClient, api_b: Api, world: dict[str, Any]) -> None:
    html = _decide(client, world["token"])
    r = client.post("/ui/decide", data=_form(html, world["token"], {0: ("1", ""), 1: ("", "")}, event_no="MZ1"))
    assert r.status_code == 422
    msg = _texts(r.text, "decide-errors")
    assert "第 2 行" in msg and "尚未选择" in msg and "第 3 行" in msg
    assert 'value="1" checked' in r.text  # the doctor's choices are kept
    assert _accepts(api_b) == []


def test_reject_without_reason_is_refused(client: TestClient, api_b: Api, world: dict[str, Any]) -> None:
    html = _decide(client, world["token"])
    data = _form(html, world["token"], {0: ("2", ""), 1: ("1", ""), 2: ("1", "")}, event_no="MZ1")
    r = client.post("/ui/decide", data=data)
    assert r.status_code == 422
    assert "请选择不互认理由" in _texts(r.text, "decide-errors")
    assert _accepts(api_b) == []
    # a missing visit number is refused too
    data = _form(html, world["token"], {0: ("2", "5"), 1: ("1", ""), 2: ("1", "")})
    r = client.post("/ui/decide", data=data)
    assert r.status_code == 422 and "请填写就诊流水号" in r.text


def test_accept_and_reject_are_saved(client: TestClient, api_b: Api, world: dict[str, Any]) -> None:
    html = _decide(client, world["token"])
    rows = [json.loads(v) for v in _rows(html)]
    data = _form(html, world["token"], {0: ("2", "5"), 1: ("1", ""), 2: ("1", "")}, event_no="MZ20240001")
    r = client.post("/ui/decide", data=data)
    assert r.status_code == 200, r.text
    assert "已保存 3 条互认记录" in r.text
    saved = {(a["type"], a["code"]): a for a in _accepts(api_b)}
    assert len(saved) == 3
    exam = saved[("1", EXAM_CODE)]
    assert exam["is_accept"] == "2" and exam["reason"] == "5"
    assert exam["hr_org_code"] == ORG_A[0] and exam["hr_report_form_no"] == rows[0]["hr_report_form_no"]
    assert exam["new_event_no"] == "MZ20240001" and exam["doc_code"] == "D1001" and exam["dept_std_code"] == "A03"
    assert saved[("2", TP)]["is_accept"] == "1" and not saved[("2", TP)]["reason"]


def test_session_post_needs_csrf(client: TestClient, api_b: Api, world: dict[str, Any]) -> None:
    csrf = web_login(client, DOCTOR, next_url="/ui/doctor")
    r = client.get("/ui/decide", params={"id_type_code": "01", "id_no": samples.ID_NO, "check": EXAM_CODE})
    assert r.status_code == 200 and f'name="csrf_token" value="{csrf}"' in r.text
    data = {k: v for k, v in _form(r.text, "", {0: ("1", "")}, event_no="MZ9").items() if k != "token"}
    refused = client.post("/ui/decide", data=data)
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert _accepts(api_b) == []
    ok = client.post("/ui/decide", data=data | {"csrf_token": csrf})
    assert ok.status_code == 200 and "已保存 1 条互认记录" in ok.text


# -- auth and roles ------------------------------------------------------------------------------
def test_token_mode_needs_no_session_and_bad_tokens_are_chinese(client: TestClient, world: dict[str, Any]) -> None:
    client.cookies.clear()
    assert client.get("/ui/panel", params=q(world["token"])).status_code == 200
    r = client.get("/ui/widget", params=q("not-a-token"), follow_redirects=False)
    assert r.status_code == 401
    assert "请在 HIS 中重新打开本页面" in r.text and "Traceback" not in r.text
    # without token nor session: to the login page
    r = client.get("/ui/panel", params={"id_no": samples.ID_NO}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def test_expired_token_is_refused_in_chinese(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    container.clock.offset = 7201
    r = client.get("/ui/widget", params=q(world["token"]))
    assert r.status_code == 401 and "过期" in r.text


def test_supervisor_is_refused(client: TestClient, world: dict[str, Any]) -> None:
    sup = login(client, SUPERVISOR).headers["Authorization"].split()[1]
    for path in ("/ui/widget", "/ui/panel", "/ui/decide"):
        r = client.get(path, params=q(sup, check=EXAM_CODE))
        assert r.status_code == 403, path
        assert "无权访问" in r.text
    assert client.get("/ui/embed", params={"token": sup}).status_code == 200  # the notes are for everybody


def test_bad_patient_id_is_a_chinese_error(client: TestClient, world: dict[str, Any]) -> None:
    r = client.get("/ui/panel", params=q(world["token"], id_no="12345"))
    assert r.status_code == 422 and "输入有误" in r.text and "Traceback" not in r.text
    # a visit number too long for the records is refused by name, never cut to another visit's number
    long = client.get("/ui/panel", params=q(world["token"], event_no="MZ" + "9" * 127))
    assert long.status_code == 422 and "就诊流水号（event_no）长度不能超过128个字符" in long.text
    # the visit's own text rule too (the domain's): no direction-override characters
    spoof = client.get("/ui/panel", params=q(world["token"], doc_name="张\u202e三"))
    assert spoof.status_code == 422 and "医生姓名（doc_name）含有不允许的字符 U+202E" in spoof.text
    assert client.get("/ui/panel", params=q(world["token"], event_no="MZ" + "9" * 126)).status_code == 200


# -- report view, PDF, quote ---------------------------------------------------------------------
def _report_id(container: Container, principal: Principal, kind: str) -> str:
    return next(r["report_id"] for r in container.recognition.recent(principal, "01", samples.ID_NO)
                if r["type"] == ("lab" if kind == "lab" else "check"))


def test_report_view_marks_and_pdf(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    rid = _report_id(container, world["b"], "lab")
    r = client.get(f"/ui/report/lab/{rid}", params={"token": world["token"]})
    assert r.status_code == 200, r.text
    items = _texts(r.text, "lab-items")
    assert "90.1" in items and "g/L" in items and "65-85" in items
    assert 'class="flag-H"' in r.text
    assert ORG_A[1] in r.text and "14437173" in r.text and "张三" in r.text
    assert f'src="/ui/report/lab/{rid}/pdf?token=' in r.text
    pdf = client.get(f"/ui/report/lab/{rid}/pdf", params={"token": world["token"]})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("inline") and pdf.content.startswith(b"%PDF")
    eid = _report_id(container, world["b"], "exam")
    e = client.get(f"/ui/report/exam/{eid}", params={"token": world["token"]}).text
    assert "鼻息肉" in _texts(e, "conclusion") and "上颌窦" in _texts(e, "findings")
    assert 'id="pacs-link" href="https://pacs.example.invalid/view?study=1"' in e
    assert client.get("/ui/report/lab/999999", params={"token": world["token"]}).status_code == 404
    assert client.get(f"/ui/report/exam/{rid}", params={"token": world["token"]}).status_code == 404  # a lab ref is no exam
    assert client.get("/ui/report/xray/1", params={"token": world["token"]}).status_code == 422


def test_quote_is_recorded(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    rid = _report_id(container, world["b"], "exam")
    page = client.get(f"/ui/report/exam/{rid}", params={"token": world["token"], "event_no": "MZ77"}).text
    assert 'name="event_no" value="MZ77"' in page and "引用" in page
    data = {"token": world["token"], "kind": "exam", "report_id": str(rid), "event_no": "MZ77", "event_type": "1",
            "dept_code": "0101", "dept_name": "内科门诊", "dept_std_code": "A03", "dept_std_name": "内科",
            "doc_code": "D1001", "doc_name": "王建国"}
    r = client.post("/ui/quote", data=data)
    assert r.status_code == 200, r.text
    assert "已引用 1 项结果" in r.text and "已引用" in _texts(r.text, "quote-button")
    quotes = container.recognition.records(world["b"], "quote")
    assert [(x["code"], x["new_event_no"], x["type"]) for x in quotes] == [(EXAM_CODE, "MZ77", "1")]
    missing = client.post("/ui/quote", data=data | {"event_no": ""})
    assert missing.status_code == 422 and "请填写就诊流水号" in missing.text


def test_embed_notes_use_the_platform_url(client: TestClient, world: dict[str, Any]) -> None:
    r = client.get("/ui/embed", params={"token": world["token"]}, headers={"Host": "evil.example"})
    assert r.status_code == 200
    base = "http://127.0.0.1:8000"  # the configured address (HUREN_PUBLIC_BASE_URL unset: host and port), not the Host header
    assert f"{base}/ui/static/widget.js" in r.text and f"{base}/ui/widget?" in r.text and "evil.example" not in r.text
    assert "7200" in r.text and "data-id-no" in r.text
    assert "HUREN_FRAME_ANCESTORS" in r.text and "2 住院" in r.text  # what a HIS must ask the platform for, the event types
    js = client.get("/ui/static/widget.js")
    assert js.status_code == 200 and "huren:open-panel" in js.text


def test_the_first_url_is_a_landing_page(client: TestClient) -> None:
    """`make run` prints http://127.0.0.1:8000/: it leads to the pages and the API docs, not a JSON 404."""
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text[:200]
    for path in ("/ui/login", "/ui/doctor", "/ui/embed", "/docs", "/Myhealth?wsdl"):
        assert f'href="{path}"' in r.text, path
    assert client.get("/docs").status_code == 200
    assert client.get("/ui/login").status_code == 200


# -- issue 10 §2.4 / §2.7 ----------------------------------------------------------------------------
def test_decide_shows_what_this_visit_already_decided(client: TestClient, api_b: Api, world: dict[str, Any]) -> None:
    """HZ-16 in the dialog: rows decided for this visit show the decision and are not asked
    (nor sent) again; another visit is asked afresh."""
    html = _decide(client, world["token"])
    data = _form(html, world["token"], {0: ("2", "5"), 1: ("1", ""), 2: ("1", "")}, event_no="MZ-SEEN")
    assert client.post("/ui/decide", data=data).status_code == 200
    again = client.get("/ui/decide", params=q(world["token"], event_no="MZ-SEEN", check=[EXAM_CODE], lab=[TP, ALB]))
    assert again.status_code == 200
    assert again.text.count("本次就诊已记录") == 3 and 'id="all-decided"' in again.text
    # the short label, the dictionary's full text on hover
    assert re.search(r'本次就诊已记录：不互认（<span title="认为原检查诊断结果有疑的">原结果有疑</span>）', unescape(again.text))
    assert 'name="is_accept_0"' not in again.text  # nothing to choose
    resent = client.post("/ui/decide", data=_form(again.text, world["token"], {}, event_no="MZ-SEEN"))
    assert resent.status_code == 422 and "均已记录互认结果" in resent.text
    assert len(_accepts(api_b)) == 3  # not doubled
    other = client.get("/ui/decide", params=q(world["token"], event_no="MZ-OTHER", check=[EXAM_CODE], lab=[TP, ALB])).text
    assert "本次就诊已记录" not in other and 'name="is_accept_2"' in other


def test_visit_fields_take_part_in_the_ready_check(client: TestClient, world: dict[str, Any]) -> None:
    """The dialog's script counts the visit fields the HIS did not pass (data-visit), and the
    refusal box is focusable, so the page never says "可以保存" when the server would refuse."""
    html = _decide(client, world["token"])
    assert re.search(r'name="event_no" value="" maxlength="128" placeholder="请填写就诊流水号" data-visit="就诊流水号" required', html)
    assert 'id="decide-alert" tabindex="-1" hidden' in html
    refused = client.post("/ui/decide", data=_form(html, world["token"], {0: ("1", ""), 1: ("1", ""), 2: ("1", "")}))
    assert refused.status_code == 422 and 'id="decide-errors" tabindex="-1"' in refused.text
    js = client.get("/ui/static/doctor.js").text
    assert "errs.hidden = ready" not in js and "[data-visit]" in js and "登录已超时" in js


def test_alive_tells_the_dialog_whether_the_login_holds(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    assert client.get("/ui/alive", params={"token": world["token"]}).json() == {"alive": True, "csrf": ""}
    assert client.get("/ui/alive", params={"token": "not-a-token"}).status_code == 401
    client.cookies.clear()
    assert client.get("/ui/alive", follow_redirects=False).status_code == 401  # no session: no redirect either
    csrf = web_login(client, DOCTOR, next_url="/ui/doctor")
    assert client.get("/ui/alive").json() == {"alive": True, "csrf": csrf}
    container.clock.offset += 7 * 86400  # past any session's lifetime
    assert client.get("/ui/alive", follow_redirects=False).status_code == 401


def test_inpatient_workstation_saves_an_inpatient_visit(client: TestClient, api_b: Api, world: dict[str, Any]) -> None:
    """HZ-19: the inpatient workstation passes event_type 2 (住院, STD_EVENT_TYPE; 3 is 体检) and its
    ward visit number; the dialog offers 住院 and the records carry it."""
    r = client.get("/ui/decide", params=q(world["token"], event_no="ZY-0042", event_type="2", check=[EXAM_CODE], lab=[TP, ALB]))
    assert r.status_code == 200
    assert '<option value="2" selected>住院</option>' in r.text and '<option value="3" >体检</option>' in r.text.replace("\n", "")
    data = _form(r.text, world["token"], {0: ("1", ""), 1: ("1", ""), 2: ("2", "5")}, event_no="ZY-0042")
    data["event_type"] = "2"
    saved = client.post("/ui/decide", data=data)
    assert saved.status_code == 200, saved.text
    assert {(a["new_event_no"], a["new_event_type"]) for a in _accepts(api_b)} == {("ZY-0042", "2")}


def test_one_decision_row_per_code_of_a_report() -> None:
    """A panel's sub-items share its standard code (血常规); a decision is per code, so the dialog
    shows one row per (report, code) with the sub-items' results side by side, and saving stores
    what it says it stores."""
    from huren.web.routes_doctor import _rows

    def item(name: str, code: str, value: str, flag: str = "") -> dict[str, Any]:
        return {"item_code": code, "item_name": name, "result_value": value, "result_unit": "10^9/L", "lower_value": "",
                "upper_value": "", "result_interpre": flag, "expired_time": "2026-12-20 00:00:00"}

    answer = {"exammaster": [], "labmaster": [{
        "org_code": "O1", "report_form_no": "F1", "org_name": "一院", "dtime": "2026-12-01 08:00:00", "report_id": "r1",
        "item": [item("白细胞", "250101015", "4.5"), item("红细胞", "250101015", "5.1", "H"), item("白蛋白", "250301002", "40")],
    }]}
    rows = _rows(answer)
    assert [(r["code"], r["name"]) for r in rows] == [("250101015", "白细胞；红细胞"), ("250301002", "白蛋白")]
    assert rows[0]["result"] == "4.5；5.1" and rows[0]["flag"] == "；H" and rows[1]["flag"] == ""
