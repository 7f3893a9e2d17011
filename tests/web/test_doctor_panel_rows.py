"""What the panel and the dialog say of each row (issue 11 item 1), without a browser: the recent
list's reason codes and lab sub-items (additive fields of the service's answer), the Chinese
reason once mapped, the summary line and the valid-until dates equal to the answer, the patient
header with a masked ID, reference ranges as the report writes them, short reject-reason labels
with the full text on hover. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from html import unescape
from typing import Any

from fastapi.testclient import TestClient

from huren.domain.idcard import mask
from huren.domain.recognition import REASONS, SHORT_REASONS
from huren.services.container import Container
from huren.web.doctor_visit import REJECT_SHORT, patient_header, ref_range, short_date, summary
from tests import samples
from tests.conftest import Api
from tests.web.test_doctor_pages import ALB, TP, _decide, _rows, _shift, lab_report, q, world

__all__ = ["world"]  # the doctor pages' world fixture: catalog, A's reports, a doctor at B


def _old_lab(c: Container) -> dict[str, Any]:
    """A's lab report of 40 days ago: within the 90-day list, past the catalog's 30 days."""
    day = (c.clock.now() - timedelta(days=40)).date().isoformat()
    p = _shift(lab_report(c), (c.clock.now() - timedelta(days=1)).date().isoformat(), day)
    return _renumber(p, "LAB-OLD-40")


def _renumber(p: dict[str, Any], form_no: str) -> dict[str, Any]:
    """The same report under another report number (master and sub-items)."""
    return _shift(p, p["labmaster"]["report_form_no"], form_no)


def _recent(client: TestClient, token: str) -> list[dict[str, Any]]:
    r = client.post("/api/v1/recognition/recent", json={"id_type_code": "01", "id_no": samples.ID_NO},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["item"]
    return items


def test_recent_names_why_and_judges_each_sub_item(client: TestClient, api_a: Api, container: Container, world: dict[str, Any]) -> None:
    assert api_a.post("/api/v1/lab-reports", _old_lab(container)).status_code == 200
    recent = _recent(client, world["token"])
    labs = sorted((e for e in recent if e["type"] == "lab"), key=lambda e: e["dtime"])
    old, new = labs
    assert (old["recognition"], old["reason"]) == ("0", "expired")
    assert sorted((i["item_code"], i["recognition"], i["reason"]) for i in old["items"]) == [(TP, "0", "expired"), (ALB, "0", "expired")]
    assert all(i["expired_time"] < container.clock.now().strftime("%Y-%m-%d %H:%M:%S") for i in old["items"])
    assert (new["recognition"], new["reason"]) == ("1", "")
    assert sorted((i["item_code"], i["recognition"]) for i in new["items"]) == [(TP, "1"), (ALB, "1")]
    assert new["expired_time"] == max(i["expired_time"] for i in new["items"])
    [exam] = [e for e in recent if e["type"] == "check"]
    assert (exam["recognition"], exam["reason"]) == ("1", "")


def test_recent_reason_for_codes_outside_the_catalog(client: TestClient, api_a: Api, container: Container, world: dict[str, Any]) -> None:
    p = _renumber(lab_report(container), "LAB-NOCAT")
    for i in p["lab_subitem"]:
        i["class_code"] = "NOT-IN-CATALOG-" + i["class_code"]
    assert api_a.post("/api/v1/lab-reports", p).status_code == 200
    [row] = [e for e in _recent(client, world["token"]) if e["type"] == "lab" and e["recognition"] == "0"]
    assert row["reason"] == "not_in_catalog" and {i["reason"] for i in row["items"]} == {"not_in_catalog"}
    panel = client.get("/ui/panel", params=q(world["token"])).text
    why = re.search(r'<tr class="not-recognizable"[^>]*>.*?<span class="why" title="([^"]+)">([^<]+)</span>', panel, re.S)
    assert why and why.groups() == (REASONS["not_in_catalog"], SHORT_REASONS["not_in_catalog"])
    assert "not_in_catalog" not in panel  # the code never reaches the doctor


def test_panel_summary_valid_until_and_patient(client: TestClient, api_a: Api, container: Container, world: dict[str, Any]) -> None:
    assert api_a.post("/api/v1/lab-reports", _old_lab(container)).status_code == 200
    recent = _recent(client, world["token"])
    panel = client.get("/ui/panel", params=q(world["token"]))
    assert panel.status_code == 200
    html = unescape(panel.text)
    year = container.clock.now().year
    starred = [e for e in recent if e["recognition"] == "1"]
    ends = [i["expired_time"] for e in starred for i in e.get("items") or [] if i["recognition"] == "1"]
    ends += [e["expired_time"] for e in starred if not e.get("items")]
    line = f"{len(starred)} 项可互认，最早 {min(ends)[5:10]} 到期"
    assert f'<p class="summary" id="panel-summary">{line}</p>' in html
    for e in recent:
        row = re.search(rf'<tr class="[^"]*" data-code="[^"]*" data-report="{e["report_id"]}">(.*?)</tr>', html, re.S)
        assert row, e
        if e["recognition"] == "1":
            assert f'title="互认有效期至 {e["expired_time"][:10]}">{short_date(e["expired_time"], year)}<' in row.group(1)
        else:
            assert f'title="{REASONS["expired"]}">已过期<' in row.group(1)
    # the ★ lab report lists each sub-item's own valid-until
    sub = re.search(r'<tr class="subitems-row"[^>]*>(.*?)</tr>', html, re.S)
    assert sub and sub.group(1).count('class="valid-until"') == 2
    head = re.search(r'<p class="patient-head" id="patient-head">(.*?)</p>', html, re.S)
    assert head
    text = re.sub(r"<[^>]+>", " ", head.group(1))
    born = date(1967, 2, 1)
    today = container.clock.now().date()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    assert text.split() == ["张三", "男性", f"{age}岁", mask(samples.ID_NO)]
    assert samples.ID_NO not in head.group(0)


def test_dialog_rows_summary_reasons_and_ranges(client: TestClient, world: dict[str, Any], container: Container) -> None:
    html = unescape(_decide(client, world["token"]))
    ends = re.findall(r'class="valid-until" title="互认有效期至 ([0-9: -]{16})"', html)
    assert len(ends) == 3
    year = container.clock.now().year
    assert f'<p class="summary" id="decide-summary">3 项可互认，最早 {short_date(min(ends), year)} 到期</p>' in html
    assert 'id="accept-all"' in html and "全部互认" in html
    # the reject reasons: short label in the list, the dictionary's full text as each option's title
    assert '<option value="1"  title="因病情变化，已有的检验、检查结果难以反映病人当前实际病情的项目">1. 病情变化</option>' in html
    assert all(f"{code}. {label}" in html for code, label in REJECT_SHORT.items())
    assert "参考 65-85" in html and "参考 40.0000-55.0000" in html


def test_ranges_and_lines_as_written() -> None:
    assert ref_range("", "5.20") == "<5.20"
    assert ref_range("3.5", "5.5") == "3.5-5.5"
    assert ref_range("60", "") == ">60"
    assert ref_range("", "", "阴性") == "阴性" and ref_range("", "") == ""
    assert summary(7, ["2026-12-31 10:00:00", "2026-12-29 08:00:00", ""], 2026) == "7 项可互认，最早 12-29 到期"
    assert summary(1, ["2027-01-02 00:00:00"], 2026) == "1 项可互认，最早 2027-01-02 到期"
    assert summary(0, [], 2026) == "没有可互认的结果"
    # sex and age from a resident ID when no report says them; the ID always masked
    h = patient_header({}, "01", samples.ID_NO, date(2026, 2, 1))
    assert h == {"name": "", "sex": "男", "age": "59岁", "id": mask(samples.ID_NO)}
    assert patient_header({"name": "李四", "sex_name": "女性"}, "02", "P1234567", date(2026, 1, 1))["sex"] == "女性"


def test_upper_limit_only_is_written_as_the_report_does(client: TestClient, api_a: Api, container: Container, world: dict[str, Any]) -> None:
    p = _renumber(lab_report(container), "LAB-UPPER")
    for i in p["lab_subitem"]:
        i.update(norm_lower_limit="", norm_upper_limit="5.20")
    assert api_a.post("/api/v1/lab-reports", p).status_code == 200
    html = _decide(client, world["token"])
    assert "参考 <5.20" in unescape(html)
    [ref] = {r["report_id"] for r in map(json.loads, _rows(html)) if r["hr_report_form_no"] == "LAB-UPPER"}
    page = client.get(f"/ui/report/lab/{ref}", params={"token": world["token"]})
    assert page.status_code == 200
    assert "&lt;5.20" in page.text and "–5.20" not in page.text
