"""Issue 11 item 9: the rectification page as a workflow — rows in plain words (report form number,
masked patient, Chinese field label and rule; no record key, field path or rule code), a deadline,
and whether the institution has seen it (its own account opening its open items marks them)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from huren.domain import labels
from huren.services.container import Container
from tests import samples
from tests.conftest import ORG_A, SUPERVISOR, Api
from tests.web.test_login import web_login

PATIENT = "PAT-0012345"


def bad_exam(form: str) -> dict[str, Any]:
    p = samples.exam()
    p["exammaster"]["report_form_no"] = form
    p["exammaster"]["patient_id"] = PATIENT
    p["exammaster"]["performer_dept_std_code"] = "ZZZ"  # not in STD_DEPT
    for item in p.get("exam_subitem", []):
        item["report_form_no"] = form
        item["patient_id"] = PATIENT
    return p


def rejected_table(html: str) -> str:
    m = re.search(r'<table class="grid sortable" id="rejected">.*?</table>', html, re.S)
    assert m, html
    return m.group(0)


def test_rows_in_plain_words_with_deadline(client: TestClient, api_a: Api, container: Container) -> None:
    r = api_a.post("/api/v1/exam-reports", bad_exam("EX-R1"))
    assert r.status_code == 422, r.text
    assert any(p["field"].startswith("exammaster.performer_dept_std_code") for p in r.json()["problems"])
    web_login(client, SUPERVISOR)
    table = rejected_table(client.get("/ui/quality/rejected").text)
    text = re.sub(r"<[^>]+>", " ", table)
    text = re.sub(r'(href|class|data-[a-z-]+)="[^"]*"', "", text)
    assert "报告单号：EX-R1" in text
    assert f"患者：{PATIENT[:4]}" in text and PATIENT not in text  # masked (huren.domain.idcard.mask)
    assert "检查报告 · 检查执行标准科室编码" in text and "须为字典中的代码" in text
    # no developer identifier: no field path, no rule code, no record key
    assert not re.search(r"[a-z_]+\.[a-z_]+", text), re.findall(r"[a-z_]+\.[a-z_]+", text)
    assert not re.search(r"\b(dictionary|required|performer_dept_std_code|exammaster)\b", text)
    assert "exam:" not in text and "|" not in text
    # deadline: the configured days after the refusal, overdue once past
    [row] = container.quality.rejected(container_principal(container))
    assert row["deadline"][:10] in text
    container.clock.offset += 8 * 86400
    web_login(client, SUPERVISOR)  # the session ended meanwhile
    html = client.get("/ui/quality/rejected").text
    assert 'data-overdue="1"' in html and "已超期" in html


def container_principal(container: Container) -> Any:
    from huren.context import Principal

    return Principal(SUPERVISOR[0], SUPERVISOR[4], "supervisor")


def test_seen_flips_when_the_hospital_opens_its_open_items(client: TestClient, api_a: Api, container: Container) -> None:
    assert api_a.post("/api/v1/exam-reports", bad_exam("EX-S1")).status_code == 422
    web_login(client, SUPERVISOR)
    html = client.get("/ui/quality/rejected").text
    assert 'data-seen="0"' in html and "未查看" in rejected_table(html)
    assert 'data-kpi="unseen"><div class="v">1<' in html
    # the supervisor's own visit does not count as seen
    assert 'data-seen="0"' in client.get("/ui/quality/rejected").text
    web_login(client, ORG_A)
    own = client.get("/ui/quality/rejected", params={"only_open": "1"}).text
    assert "EX-S1" in own and 'data-seen="1"' in own  # the hospital sees its own open item
    web_login(client, SUPERVISOR)
    html = client.get("/ui/quality/rejected").text
    assert 'data-seen="1"' in html and "已查看" in rejected_table(html)
    assert 'data-kpi="unseen"><div class="v">0<' in html


def test_one_mapping_of_labels() -> None:
    assert labels.field("exammaster.performer_dept_std_code") == "检查报告 · 检查执行标准科室编码"
    assert labels.field("lab_subitem[2].report_form_no") == "检验子项第3项 · 所属报告单号"
    assert labels.field("no_such.thing") == labels.OTHER_FIELD
    assert labels.rule("dictionary") == "须为字典中的代码" and labels.rule("xyz") == labels.OTHER_RULE
    assert labels.message("审核者审核时间（authenticator_dtime）为必填项") == "审核者审核时间为必填项"
    assert labels.message("收到“a_b.c”") == "收到“a_b.c”"  # the value sent is kept as sent


def test_the_deadline_is_configurable(api_a: Api, container: Container) -> None:
    from datetime import datetime, timedelta

    import pytest

    from huren.services.quality import QualityService
    from huren.settings import Settings

    assert container.settings.rectify_days == 7
    with pytest.raises(ValueError):
        Settings(rectify_days=0)
    assert api_a.post("/api/v1/exam-reports", bad_exam("EX-D1")).status_code == 422
    short = QualityService(container.db, container.blobs, container.clock, container.audit, container.refs, rectify_days=3)
    [row] = short.rejected(container_principal(container))
    received = datetime.fromisoformat(row["received_at"])
    assert datetime.fromisoformat(row["deadline"]) == received + timedelta(days=3)
    assert short.rejected_page(container_principal(container))["rectify_days"] == 3


def test_error_pages_name_fields_and_rules_in_chinese(client: TestClient) -> None:
    web_login(client, SUPERVISOR)
    r = client.get("/ui/catalog", params={"kind": "zzz"})
    assert r.status_code == 422
    table = re.search(r'<table class="grid">.*?</table>', r.text, re.S)
    assert table and "须为字典中的代码" in table.group(0)
    assert "<td>dictionary</td>" not in r.text and "<td>kind</td>" not in r.text


def test_messages_lose_dictionary_names() -> None:
    text = labels.message("检查执行标准科室编码的值“3221”不在字典 STD_DEPT（标准科室代码）中")
    assert text == "检查执行标准科室编码的值“3221”不在字典 “标准科室代码”中" and "STD_" not in text


def test_rest_reads_the_workflow(api_a: Api, api_sup: Api) -> None:
    assert api_a.post("/api/v1/exam-reports", bad_exam("EX-REST")).status_code == 422
    body = api_sup.get("/api/v1/quality/rejected").json()
    assert (body["unseen"], body["overdue"], body["rectify_days"]) == (1, 0, 7)
    [row] = body["rejected"]
    assert row["seen_at"] is None and row["report_form_no"] == "EX-REST" and row["deadline"]
    assert row["problems_plain"][0]["field"] == "检查报告 · 检查执行标准科室编码"
    own = api_a.get("/api/v1/quality/rejected", params={"only_open": "true"}).json()  # the hospital reads its open items
    assert own["rejected"][0]["seen_at"] is not None
    assert api_sup.get("/api/v1/quality/rejected").json()["unseen"] == 0
