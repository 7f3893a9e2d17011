"""Recognition engine over REST on SQLite and PostgreSQL: recent, detail, exists-for-order,
accept / reject / quote, accepted reports, citations on void, reminder logs, statistics."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from huren.context import Principal
from huren.errors import InvalidInput
from huren.services.container import Container
from huren.store import catalog as catalog_store
from huren.store import recognition as rstore
from tests import samples
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api

LAB_CODE = "250301002"  # 血清白蛋白测定, recognizable in the sample (recognition="1")
EXAM_CODE = "115"


def _shift(payload: dict[str, Any], old_day: str, new_day: str) -> dict[str, Any]:
    return json.loads(json.dumps(payload, ensure_ascii=False).replace(old_day, new_day))


def recent_lab(c: Container, days_ago: int = 1, **master: str) -> dict[str, Any]:
    day = (c.clock.now() - timedelta(days=days_ago)).date().isoformat()
    p = _shift(samples.lab(), "2024-03-11", day)
    p["labmaster"].update(master)
    for item in p["lab_subitem"]:
        item["report_form_no"] = p["labmaster"]["report_form_no"]
    return p


def _newer(p: dict[str, Any], at: str) -> dict[str, Any]:
    """A resubmission: the same report with a later last_update_dtime (same day, time ``at``)."""
    for row in [p["labmaster"], *p["lab_subitem"]]:
        row["last_update_dtime"] = row["last_update_dtime"][:11] + at
    return p


def recent_exam(c: Container, days_ago: int = 1) -> dict[str, Any]:
    day = (c.clock.now() - timedelta(days=days_ago)).date().isoformat()
    p = _shift(samples.exam(), "2024-05-11", day)
    p["exam_subitem"][0]["recognition"] = "1"
    return p


@pytest.fixture
def catalog(container: Container) -> None:
    with container.db.write() as conn:
        catalog_store.upsert_items(
            conn,
            [
                {"kind": "lab", "code": LAB_CODE, "name": "血清白蛋白测定", "unit": "g/L", "recognizable": True,
                 "validity_days": 30, "min_level": 2, "region_scope": "65", "source_note": ""},
                {"kind": "lab", "code": "250301001", "name": "血清总蛋白测定", "unit": "g/L", "recognizable": True,
                 "validity_days": 30, "min_level": 2, "region_scope": "", "source_note": ""},
                {"kind": "exam", "code": EXAM_CODE, "name": "CT平扫+三维重建", "unit": "", "recognizable": True,
                 "validity_days": 90, "min_level": 2, "region_scope": "", "source_note": ""},
            ],
            now=container.clock.now(),
        )
    container.recognition.invalidate()


def patient(**kw: Any) -> dict[str, Any]:
    return {"id_type_code": "01", "id_no": samples.ID_NO} | kw


VISIT = {"event_no": "5036612", "dept_code": "ZSBY-10", "dept_name": "急诊外科", "dept_std_code": "A50.16",
         "dept_std_name": "急诊科专业", "doc_code": "9050", "doc_name": "郑伟军"}


def decision(code: str, form_no: str, type_: str, is_accept: str, reason: str = "", **kw: str) -> dict[str, str]:
    return {"hr_org_code": ORG_A[0], "hr_report_form_no": form_no, "code": code, "id_no": samples.ID_NO,
            "id_type_code": "01", "record_time": "2026-11-20 13:19:04", "type": type_, "new_event_no": "5036612",
            "new_event_type": "1", "is_accept": is_accept, "reason": reason, "dept_code": "ZSBY-10",
            "dept_name": "急诊外科", "dept_std_code": "A50.16", "dept_std_name": "急诊科专业", "doc_code": "9050",
            "doc_name": "郑伟军"} | kw


def test_recent_marks_recognizable(api_a: Api, api_b: Api, container: Container, catalog: None) -> None:
    assert api_a.post("/api/v1/lab-reports", recent_lab(container)).status_code == 200
    assert api_a.post("/api/v1/exam-reports", recent_exam(container)).status_code == 200
    r = api_b.post("/api/v1/recognition/recent", patient(days=30))
    assert r.status_code == 200, r.text
    items = {i["type"]: i for i in r.json()["item"]}
    assert items["check"]["recognition"] == "1" and items["check"]["item_code"] == EXAM_CODE
    assert items["check"]["org_name"] == ORG_A[1] and items["check"]["pacs_url"]
    assert items["lab"]["recognition"] == "1" and items["lab"]["expired_time"]
    assert items["lab"]["item_name"] == "常规报告"
    # outside the 30-day window it is gone; the window is 30 or 90 days only
    old = recent_lab(container, days_ago=45, report_form_no="OLD-1")
    assert api_a.post("/api/v1/lab-reports", old).status_code == 200
    assert len(api_b.post("/api/v1/recognition/recent", patient(days=30)).json()["item"]) == 2
    assert len(api_b.post("/api/v1/recognition/recent", patient(days=90)).json()["item"]) == 3
    assert api_b.post("/api/v1/recognition/recent", patient(days=60)).status_code == 422


def test_detail_has_expiry_only_on_recognizable_items(api_a: Api, api_b: Api, container: Container, catalog: None) -> None:
    api_a.post("/api/v1/lab-reports", recent_lab(container))
    res = api_b.post("/api/v1/recognition/detail", patient()).json()
    [lab] = res["labmaster"]
    expiry = {i["class_code"]: i["expired_time"] for i in lab["item"]}
    assert expiry["AG"] == "" and expiry[LAB_CODE] != ""
    assert lab["org_name"] == ORG_A[1] and lab["pdf_url"].endswith("/pdf")
    assert res["exammaster"] == []


def test_exists_for_order_with_local_codes(api_a: Api, api_b: Api, container: Container, catalog: None) -> None:
    api_a.post("/api/v1/lab-reports", recent_lab(container))
    api_a.post("/api/v1/exam-reports", recent_exam(container))
    with container.db.write() as conn:
        catalog_store.upsert_mappings(
            conn, ORG_B[0], [{"kind": "lab", "local_code": "ALB-LOC", "local_name": "白蛋白", "std_code": LAB_CODE}],
            now=container.clock.now(),
        )
    r = api_b.post("/api/v1/recognition/exists", patient(check=[EXAM_CODE], lab=["ALB-LOC", "250301001", "NOPE"]) | VISIT)
    assert r.status_code == 200, r.text
    body = r.json()
    [lab] = body["labmaster"]
    assert [(i["item_code"], i["ordered_code"]) for i in lab["item"]] == [(LAB_CODE, "ALB-LOC")]
    assert lab["item"][0]["result_value"] == "45.3" and lab["item"][0]["lower_value"] == "40.0000"
    assert [e["item_code"] for e in body["exammaster"]] == [EXAM_CODE]
    assert body["unmapped"] == [{"kind": "lab", "code": "NOPE"}]
    assert (body["ordered"], body["recognizable"]) == (4, 2)
    with container.db.read() as conn:
        stats = rstore.statistics(conn, "org", [ORG_B[0]], container.clock.now() - timedelta(days=1), container.clock.now() + timedelta(days=1))
    # one reminder per kind shown (seed 002 §1.3.2.3: 检查和检验各操作一次)
    assert stats[ORG_B[0]]["reminders"] == 2 and stats[ORG_B[0]]["recognizable"] == 2
    assert {k: (v["reminders"], v["recognizable"]) for k, v in stats[ORG_B[0]]["by_kind"].items()} == {"exam": (1, 1), "lab": (1, 1)}
    assert api_b.post("/api/v1/recognition/exists", patient()).status_code == 422  # nothing ordered
    # a question carries a prescription, not a catalog: more than 200 ordered items is refused
    too_many = api_b.post("/api/v1/recognition/exists", patient(lab=[f"L{i}" for i in range(201)]))
    assert too_many.status_code == 422 and too_many.json()["problems"][0]["field"].endswith("lab"), too_many.text
    with pytest.raises(InvalidInput) as refused:  # the same limit in the service, for the SOAP profile
        container.recognition.exists(
            Principal(ORG_B[0], ORG_B[4], "hospital"), "01", samples.ID_NO, check=[EXAM_CODE] * 100, lab=[LAB_CODE] * 101
        )
    assert refused.value.problems[0].rule == "max_items"


def test_exists_honours_the_rule(api_a: Api, api_b: Api, container: Container, catalog: None) -> None:
    order = patient(lab=[LAB_CODE])

    def found() -> int:
        return len(api_b.post("/api/v1/recognition/exists", order).json()["labmaster"])

    api_a.post("/api/v1/lab-reports", recent_lab(container, days_ago=31))
    assert found() == 0  # 31 days old: past its 30 validity days (inside the 90-day window)
    api_a.post("/api/v1/lab-reports", recent_lab(container, days_ago=29))  # same key, resubmitted
    assert found() == 1
    # resubmitted with recognition 0: the newest version counts
    p = recent_lab(container, days_ago=29)
    p["lab_subitem"][1]["recognition"] = "0"
    assert api_a.post("/api/v1/lab-reports", _newer(p, "09:30:00")).status_code == 200
    assert found() == 0
    p["lab_subitem"][1]["recognition"] = "1"
    assert api_a.post("/api/v1/lab-reports", _newer(p, "09:31:00")).status_code == 200
    assert found() == 1
    # the item must sit at an institution of at least the catalog's level
    with container.db.write() as conn:
        catalog_store.upsert_items(conn, [{"kind": "lab", "code": LAB_CODE, "name": "血清白蛋白测定", "unit": "g/L",
                                           "recognizable": True, "validity_days": 30, "min_level": 3, "region_scope": "6523",
                                           "source_note": ""}], now=container.clock.now())
    container.recognition.invalidate()
    assert found() == 0  # ORG_A (650102) is outside scope 6523
    # voided reports are never recognizable
    with container.db.write() as conn:
        catalog_store.upsert_items(conn, [{"kind": "lab", "code": LAB_CODE, "name": "血清白蛋白测定", "unit": "g/L",
                                           "recognizable": True, "validity_days": 30, "min_level": 2, "region_scope": "",
                                           "source_note": ""}], now=container.clock.now())
    container.recognition.invalidate()
    assert found() == 1
    m = p["labmaster"]
    filt = {k: m[k] for k in ("org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_no")} | {"id_type": "01"}
    assert api_a.post("/api/v1/lab-reports/void", filt).status_code == 200
    assert found() == 0


def test_two_id_types_are_two_identities(api_a: Api, api_b: Api, container: Container, catalog: None) -> None:
    passport = recent_lab(container, id_type_code="03", id_no="E12345678", report_form_no="PP-1")
    assert api_a.post("/api/v1/lab-reports", passport).status_code == 200
    assert api_b.post("/api/v1/recognition/exists", patient(lab=[LAB_CODE])).json()["labmaster"] == []
    by_passport = api_b.post("/api/v1/recognition/exists", {"id_type_code": "03", "id_no": "E12345678", "lab": [LAB_CODE]})
    assert len(by_passport.json()["labmaster"]) == 1


def test_accept_reject_and_cite(api_a: Api, api_b: Api, api_sup: Api, container: Container, catalog: None) -> None:
    lab = recent_lab(container)
    lab_id = api_a.post("/api/v1/lab-reports", lab).json()["report_id"]
    exam_id = api_a.post("/api/v1/exam-reports", recent_exam(container)).json()["report_id"]
    records = [decision(LAB_CODE, "14437173", "2", "1"), decision(EXAM_CODE, "71468573", "1", "2", "1")]
    r = api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": records})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == 2

    labs = api_b.post("/api/v1/recognition/lab-reports", patient(event_no="5036612")).json()["labmaster"]
    assert [x["report_id"] for x in labs] == [lab_id]
    assert {i["class_code"] for i in labs[0]["item"]} == {"AG", LAB_CODE}
    assert api_b.post("/api/v1/recognition/exam-reports", patient(event_no="5036612")).json()["exammaster"] == []
    assert api_b.post("/api/v1/recognition/lab-reports", patient(event_no="other")).json()["labmaster"] == []

    pdf = api_b.get(f"/api/v1/recognition/lab-reports/{lab_id}/pdf")
    assert pdf.status_code == 200 and pdf.content == samples.PDF_BYTES
    assert api_b.get(f"/api/v1/recognition/exam-reports/{exam_id}/pdf").status_code == 403  # rejected, not accepted
    assert api_sup.get(f"/api/v1/recognition/lab-reports/{lab_id}/pdf").status_code == 403  # never accepted it

    mine = api_b.get("/api/v1/recognition/accept").json()["records"]
    assert {(x["code"], x["is_accept"], x["reason"]) for x in mine} == {(LAB_CODE, "1", ""), (EXAM_CODE, "2", "1")}
    assert api_a.get("/api/v1/recognition/accept", params={"org_code": ORG_B[0]}).status_code == 403
    assert len(api_sup.get("/api/v1/recognition/accept", params={"org_code": ORG_B[0]}).json()["records"]) == 2

    # cite the lab result, then the owner voids it: the answer names the citer
    q = {k: v for k, v in decision(LAB_CODE, "14437173", "2", "1").items() if k not in ("is_accept", "reason")}
    assert api_b.post("/api/v1/recognition/quote", {"sehr_quote_record": [q]}).status_code == 200
    m = lab["labmaster"]
    filt = {k: m[k] for k in ("org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_no")} | {"id_type": "01"}
    voided = api_a.post("/api/v1/lab-reports/void", filt).json()
    [cite] = voided["citations"]
    assert (cite["org_code"], cite["org_name"], cite["dept_name"], cite["doc_name"]) == (ORG_B[0], ORG_B[1], "急诊外科", "郑伟军")


def test_accept_bad_input_is_refused_and_kept(api_a: Api, api_b: Api, container: Container, catalog: None) -> None:
    api_a.post("/api/v1/lab-reports", recent_lab(container))
    cases = [
        (decision(LAB_CODE, "14437173", "2", "2", "11"), "sehr_accept_record[0].reason", "dictionary"),
        (decision(LAB_CODE, "14437173", "2", "2", ""), "sehr_accept_record[0].reason", "required"),
        (decision("999999999", "14437173", "2", "1"), "sehr_accept_record[0].code", "unknown_item"),
        (decision(LAB_CODE, "NO-SUCH-FORM", "2", "1"), "sehr_accept_record[0].hr_report_form_no", "not_found"),
        (decision(LAB_CODE, "14437173", "2", "1", hr_org_code=ORG_B[0]), "sehr_accept_record[0].hr_report_form_no", "not_found"),
        (decision(LAB_CODE, "14437173", "2", "3"), "sehr_accept_record[0].is_accept", "dictionary"),
    ]
    for record, field, rule in cases:
        r = api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": [record]})
        assert r.status_code == 422, (field, r.text)
        assert any(p["field"] == field and p["rule"] == rule for p in r.json()["problems"]), r.text
    kept = api_b.get("/api/v1/quality/rejected").json()["rejected"]
    assert [k["kind"] for k in kept] == ["accept"] * len(cases)
    assert api_b.get("/api/v1/recognition/accept").json()["records"] == []  # nothing half-written


def test_reminder_logs_and_statistics(api_a: Api, api_b: Api, api_sup: Api, container: Container, catalog: None) -> None:
    lab_id = api_a.post("/api/v1/lab-reports", recent_lab(container)).json()["report_id"]
    api_a.post("/api/v1/exam-reports", recent_exam(container))
    api_b.post("/api/v1/recognition/exists", patient(check=[EXAM_CODE], lab=[LAB_CODE]) | VISIT)
    now = container.clock.now().strftime("%Y-%m-%d %H:%M:%S")
    logs = {"reminder_log": [
        {"action": "reminder", "at": now, "id_no": samples.ID_NO, "id_type_code": "01", "dept_std_code": "A50.16",
         "doc_code": "9050", "item_codes": LAB_CODE, "ordered": "1", "recognizable": "1"},
        {"action": "view", "at": now, "id_no": samples.ID_NO, "id_type_code": "01", "hr_org_code": ORG_A[0],
         "hr_report_form_no": "14437173", "type": "2"},
    ]}
    assert api_b.post("/api/v1/reminder-logs", logs).status_code == 200
    bad = api_b.post("/api/v1/reminder-logs", {"reminder_log": [{"action": "shout", "at": now, "id_no": "1", "id_type_code": "03"}]})
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "reminder_log[0].action"

    day = container.clock.now().date().isoformat()
    records = [decision(LAB_CODE, "14437173", "2", "1", record_time=now), decision(EXAM_CODE, "71468573", "1", "2", "4", record_time=now)]
    assert api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": records}).status_code == 200
    q = {k: v for k, v in records[0].items() if k not in ("is_accept", "reason")}
    assert api_b.post("/api/v1/recognition/quote", {"sehr_quote_record": [q]}).status_code == 200

    stats = api_b.get("/api/v1/statistics/recognition", params={"by": "org", "day_from": day, "day_to": day}).json()
    [row] = stats["rows"]
    assert row["key"] == ORG_B[0] and row["name"] == ORG_B[1]
    # the platform's exists answer showed one exam and one lab result (two reminders), the hospital uploaded one
    assert (row["reminders"], row["recognizable"], row["accepted"], row["rejected"], row["cited"]) == (3, 3, 1, 1, 1)
    assert row["views"] == 1  # the uploaded view record; a platform view adds one more:
    assert api_b.get(f"/api/v1/lab-reports/{lab_id}").status_code == 200
    again = api_b.get("/api/v1/statistics/recognition", params={"by": "org", "day_from": day, "day_to": day}).json()
    assert again["rows"][0]["views"] == 2
    assert row["rejected_by_reason"] == [{"reason": "4", "name": "原检查、检验结果与目前病情明显不符的", "count": 1}]
    assert row["recognition_rate"] == 0.5 and row["tests_avoided"] == 1
    by_item = api_b.get("/api/v1/statistics/recognition", params={"by": "item", "day_from": day, "day_to": day}).json()
    assert {r["key"]: (r["accepted"], r["rejected"]) for r in by_item["rows"]} == {LAB_CODE: (1, 0), EXAM_CODE: (0, 1)}
    by_dept = api_b.get("/api/v1/statistics/recognition", params={"by": "dept", "day_from": day, "day_to": day}).json()
    assert {r["key"]: r["name"] for r in by_dept["rows"]} == {"A50.16": "急诊科专业", "": "（未填写）"}
    assert api_a.get("/api/v1/statistics/recognition", params={"org_code": ORG_B[0]}).status_code == 403
    sup = api_sup.get("/api/v1/statistics/recognition", params={"day_from": day, "day_to": day}).json()
    assert sup["total"]["accepted"] == 1 and SUPERVISOR[0] not in {r["key"] for r in sup["rows"]}


def test_a_resent_decision_is_not_doubled(api_a: Api, api_b: Api, container: Container, catalog: None) -> None:
    api_a.post("/api/v1/lab-reports", recent_lab(container))
    body = {"sehr_accept_record": [decision(LAB_CODE, "14437173", "2", "1")]}
    assert api_b.post("/api/v1/recognition/accept", body).status_code == 200
    assert api_b.post("/api/v1/recognition/accept", body).status_code == 200  # the gateway retried
    assert len(api_b.get("/api/v1/recognition/accept").json()["records"]) == 1
    later = {"sehr_accept_record": [decision(LAB_CODE, "14437173", "2", "2", "1", record_time="2026-11-20 13:25:00")]}
    assert api_b.post("/api/v1/recognition/accept", later).status_code == 200  # a new decision is kept
    assert len(api_b.get("/api/v1/recognition/accept").json()["records"]) == 2


# -- issue 10 §2: reminders, the search window, decisions known to HZ-16, inpatients ----------------
def _reminders(c: Container, org: str = ORG_B[0]) -> dict[str, Any]:
    now = c.clock.now()
    with c.db.read() as conn:
        stats = rstore.statistics(conn, "org", [org], now - timedelta(days=1), now + timedelta(days=1))
    return stats.get(org, {"reminders": 0, "views": 0, "by_kind": {"exam": {"reminders": 0}, "lab": {"reminders": 0}}})


def test_a_reminder_is_recognizable_results_shown_for_an_order(api_a: Api, api_b: Api, container: Container, catalog: None) -> None:
    """XC-P4: the recent list (widget, panel), the preload detail and an order with nothing
    recognizable are not reminders; an order shown recognizable results is, once per kind shown;
    a report opened is a view, counted apart."""
    lab_id = api_a.post("/api/v1/lab-reports", recent_lab(container)).json()["report_id"]
    api_a.post("/api/v1/exam-reports", recent_exam(container))
    for _ in range(3):  # the widget, the panel, the lookup page all ask for the recent list
        assert api_b.post("/api/v1/recognition/recent", patient() | VISIT).status_code == 200
    assert api_b.post("/api/v1/recognition/detail", patient() | VISIT).status_code == 200
    assert api_b.post("/api/v1/recognition/exists", patient(lab=["250301001"]) | VISIT).json()["recognizable"] == 0
    assert _reminders(container)["reminders"] == 0
    assert api_b.post("/api/v1/recognition/exists", patient(lab=[LAB_CODE]) | VISIT).json()["recognizable"] == 1
    r = _reminders(container)
    assert (r["reminders"], r["by_kind"]["lab"]["reminders"], r["by_kind"]["exam"]["reminders"]) == (1, 1, 0)
    assert api_b.get(f"/api/v1/lab-reports/{lab_id}").status_code == 200
    r = _reminders(container)
    assert (r["reminders"], r["views"], r["by_kind"]["lab"]["views"]) == (1, 1, 1)
    # the access log still records every read of the patient's data
    with container.db.read() as conn:
        from sqlalchemy import select

        from huren.store.tables import access_log

        actions = [a for (a,) in conn.execute(select(access_log.c.action).where(access_log.c.org_code == ORG_B[0]))]
    assert actions.count("recognition_recent") == 3 and actions.count("recognition_detail") == 1
    assert actions.count("recognition_exists") == 2


def test_statistics_split_exam_and_lab(api_a: Api, api_b: Api, container: Container, catalog: None) -> None:
    api_a.post("/api/v1/lab-reports", recent_lab(container))
    api_a.post("/api/v1/exam-reports", recent_exam(container))
    api_b.post("/api/v1/recognition/exists", patient(check=[EXAM_CODE], lab=[LAB_CODE]))
    now = container.clock.now().strftime("%Y-%m-%d %H:%M:%S")
    records = [decision(LAB_CODE, "14437173", "2", "1", record_time=now), decision(EXAM_CODE, "71468573", "1", "2", "4", record_time=now)]
    assert api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": records}).status_code == 200
    # a hospital's reminder naming both kinds counts once for each, as the platform's own
    logs = {"reminder_log": [{"action": "reminder", "at": now, "id_no": samples.ID_NO, "id_type_code": "01",
                              "item_codes": f"exam:{EXAM_CODE},lab:{LAB_CODE}", "ordered": "2", "recognizable": "2"}]}
    assert api_b.post("/api/v1/reminder-logs", logs).json()["rows"] == 1
    day = container.clock.now().date().isoformat()
    stats = api_b.get("/api/v1/statistics/recognition", params={"by": "org", "day_from": day, "day_to": day}).json()
    kinds = stats["rows"][0]["by_kind"]
    assert (kinds["exam"]["reminders"], kinds["exam"]["accepted"], kinds["exam"]["rejected"]) == (2, 0, 1)
    assert (kinds["lab"]["reminders"], kinds["lab"]["accepted"], kinds["lab"]["rejected"]) == (2, 1, 0)
    assert stats["total"]["by_kind"]["lab"]["accepted"] == 1 and stats["total"]["reminders"] == 4


def test_each_hospital_sees_its_results_recognized_elsewhere(
    api_a: Api, api_b: Api, api_sup: Api, container: Container, catalog: None
) -> None:
    api_a.post("/api/v1/lab-reports", recent_lab(container))
    api_a.post("/api/v1/exam-reports", recent_exam(container))
    now = container.clock.now().strftime("%Y-%m-%d %H:%M:%S")
    records = [decision(LAB_CODE, "14437173", "2", "1", record_time=now), decision(EXAM_CODE, "71468573", "1", "2", "4", record_time=now)]
    assert api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": records}).status_code == 200
    mine = api_a.get("/api/v1/statistics/recognized-elsewhere")
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert (body["org_code"], body["total"]) == (ORG_A[0], {"accepted": 1, "rejected": 1})
    assert {k["kind"]: (k["accepted"], k["rejected"]) for k in body["by_kind"]} == {"exam": (0, 1), "lab": (1, 0)}
    assert [(o["org_code"], o["org_name"], o["accepted"]) for o in body["by_org"]] == [(ORG_B[0], ORG_B[1], 1)]
    # B's own results were recognized nowhere; B may not look at A's
    assert api_b.get("/api/v1/statistics/recognized-elsewhere").json()["total"] == {"accepted": 0, "rejected": 0}
    assert api_b.get("/api/v1/statistics/recognized-elsewhere", params={"org_code": ORG_A[0]}).status_code == 403
    sup = api_sup.get("/api/v1/statistics/recognized-elsewhere", params={"org_code": ORG_A[0]})
    assert sup.status_code == 200 and sup.json()["total"]["accepted"] == 1


def test_search_window_covers_the_longest_validity(api_a: Api, api_b: Api, container: Container, catalog: None) -> None:
    """A result still valid by the catalog (180 days) but older than the 90-day list window is
    offered by exists, detail and recent (★); an old one not recognizable stays out of the list."""
    with container.db.write() as conn:
        catalog_store.upsert_items(conn, [{"kind": "exam", "code": EXAM_CODE, "name": "CT平扫+三维重建", "unit": "",
                                           "recognizable": True, "validity_days": 180, "min_level": 2, "region_scope": "",
                                           "source_note": ""}], now=container.clock.now())
    container.recognition.invalidate()
    assert api_a.post("/api/v1/exam-reports", recent_exam(container, days_ago=120)).status_code == 200
    old_lab = recent_lab(container, days_ago=120, report_form_no="OLD-LAB")  # lab validity is 30 days: long expired
    assert api_a.post("/api/v1/lab-reports", old_lab).status_code == 200
    body = api_b.post("/api/v1/recognition/exists", patient(check=[EXAM_CODE], lab=[LAB_CODE])).json()
    assert [e["item_code"] for e in body["exammaster"]] == [EXAM_CODE] and body["labmaster"] == []
    assert len(api_b.post("/api/v1/recognition/detail", patient()).json()["exammaster"]) == 1
    recent = api_b.post("/api/v1/recognition/recent", patient(days=90)).json()["item"]
    assert [(i["type"], i["recognition"]) for i in recent] == [("check", "1")]
    # past the longest validity in force it is not offered
    with container.db.write() as conn:
        catalog_store.upsert_items(conn, [{"kind": "exam", "code": EXAM_CODE, "name": "CT平扫+三维重建", "unit": "",
                                           "recognizable": True, "validity_days": 100, "min_level": 2, "region_scope": "",
                                           "source_note": ""}], now=container.clock.now())
    container.recognition.invalidate()
    assert api_b.post("/api/v1/recognition/exists", patient(check=[EXAM_CODE])).json()["exammaster"] == []
    assert api_b.post("/api/v1/recognition/recent", patient(days=90)).json()["item"] == []


def test_exists_knows_the_decisions_recorded_for_the_visit(api_a: Api, api_b: Api, container: Container, catalog: None) -> None:
    """HZ-16: items already decided for this visit come back with the decision, and are no new reminder."""
    api_a.post("/api/v1/lab-reports", recent_lab(container))
    api_a.post("/api/v1/exam-reports", recent_exam(container))
    order = patient(check=[EXAM_CODE], lab=[LAB_CODE]) | VISIT
    first = api_b.post("/api/v1/recognition/exists", order).json()
    assert "decision" not in first["exammaster"][0] and "decision" not in first["labmaster"][0]["item"][0]
    assert _reminders(container)["reminders"] == 2
    records = [decision(LAB_CODE, "14437173", "2", "2", "4", record_time="2026-11-20 13:00:00"),
               decision(LAB_CODE, "14437173", "2", "1", record_time="2026-11-20 13:19:04")]  # changed its mind
    assert api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": records}).status_code == 200
    again = api_b.post("/api/v1/recognition/exists", order).json()
    assert again["labmaster"][0]["item"][0]["decision"] == {"is_accept": "1", "reason": "", "record_time": "2026-11-20 13:19:04"}
    assert "decision" not in again["exammaster"][0]  # the exam item is still to be decided
    r = _reminders(container)  # the exam item still pending was shown in this visit already: no new reminder
    assert (r["reminders"], r["by_kind"]["lab"]["reminders"], r["by_kind"]["exam"]["reminders"]) == (2, 1, 1)
    # the HIS checked the order on save, then opened the dialog: the same order, one reminder
    assert api_b.post("/api/v1/recognition/exists", patient(check=[EXAM_CODE]) | VISIT).json()["recognizable"] == 1
    assert _reminders(container)["reminders"] == 2
    # without a visit number each answer is a reminder (nothing tells two orders apart)
    api_b.post("/api/v1/recognition/exists", patient(check=[EXAM_CODE]))
    api_b.post("/api/v1/recognition/exists", patient(check=[EXAM_CODE]))
    assert _reminders(container)["reminders"] == 4
    # another visit, or another institution, knows nothing of these decisions
    other = api_b.post("/api/v1/recognition/exists", order | {"event_no": "OTHER-VISIT"}).json()
    assert "decision" not in other["labmaster"][0]["item"][0]
    by_a = api_a.post("/api/v1/recognition/exists", order).json()
    assert "decision" not in by_a["labmaster"][0]["item"][0]


def test_inpatient_visit_through_exists_and_accept(api_a: Api, api_b: Api, container: Container, catalog: None) -> None:
    """STD_EVENT_TYPE 2 is 住院 (3 is 体检): an inpatient report offered to an inpatient visit,
    accepted for it, and cited back for that visit."""
    from huren.domain import dictionaries

    assert dictionaries.load("STD_EVENT_TYPE")["2"] == "住院" and dictionaries.load("STD_EVENT_TYPE")["3"] == "体检"
    inpatient = recent_lab(container, event_type="2", event_no="ZY-2026-0042")
    for item in inpatient["lab_subitem"]:
        item["event_no"] = "ZY-2026-0042"
    r = api_a.post("/api/v1/lab-reports", inpatient)
    assert r.status_code == 200, r.text
    ward = VISIT | {"event_no": "ZY-B-7781", "dept_name": "心内科病区"}
    body = api_b.post("/api/v1/recognition/exists", patient(lab=[LAB_CODE]) | ward).json()
    [lab] = body["labmaster"]
    assert (lab["event_type"], lab["event_no"]) == ("2", "ZY-2026-0042")
    rec = decision(LAB_CODE, lab["report_form_no"], "2", "1", new_event_no="ZY-B-7781", new_event_type="2")
    assert api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": [rec]}).status_code == 200
    [stored] = api_b.get("/api/v1/recognition/accept").json()["records"]
    assert (stored["new_event_type"], stored["new_event_no"]) == ("2", "ZY-B-7781")
    cited = api_b.post("/api/v1/recognition/lab-reports", patient(event_no="ZY-B-7781")).json()["labmaster"]
    assert [c["report_form_no"] for c in cited] == [lab["report_form_no"]]
    again = api_b.post("/api/v1/recognition/exists", patient(lab=[LAB_CODE]) | ward).json()
    assert again["labmaster"][0]["item"][0]["decision"]["is_accept"] == "1"


def test_statistics_and_timeliness_ranges_are_bounded_on_rest_as_on_the_pages(api_sup: Api) -> None:
    """The one-year range and the lateness bound are domain rules: REST meets them as the pages do."""
    long = api_sup.get("/api/v1/statistics/recognition", params={"day_from": "2024-01-01", "day_to": "2026-01-01"})
    assert long.status_code == 422 and long.json()["problems"][0]["field"] == "day_to", long.text
    late = api_sup.get("/api/v1/quality/timeliness", params={"late_hours": 10**6})
    assert late.status_code == 422 and late.json()["problems"][0]["field"] == "late_hours", late.text
    ok = api_sup.get("/api/v1/statistics/recognition", params={"day_from": "2025-01-01", "day_to": "2025-12-31"})
    assert ok.status_code == 200, ok.text
