"""The supervisor's overview (issue 11 items 6–8) over TestClient on SQLite and PostgreSQL: the
figures are the services' own, thresholds colour the rows, links lead to the filtered rows, the
scope is the access policy's; every supervision table sorts, filters to its exceptions and exports
exactly the rows shown (.xlsx / CSV, Chinese headers); the date axes hold the days without uploads;
silent institutions are highlighted."""

from __future__ import annotations

import csv
import html as html_lib
import io
import re
from datetime import timedelta
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient

from huren.context import Principal
from huren.services.container import Container
from huren.services.overview import overview_service
from huren.store import catalog as catalog_store
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api
from tests.integration.test_api_recognition import EXAM_CODE, LAB_CODE, decision, recent_exam, recent_lab
from tests.integration.test_timeliness import received_after
from tests.web.test_supervision_pages import ADMIN_A, DOCTOR_A, _as, _bad_daily, _kpi, accounts  # noqa: F401

SUP = Principal(SUPERVISOR[0], SUPERVISOR[4], "supervisor")


@pytest.fixture
def world(client: TestClient, api_a: Api, api_b: Api, container: Container, accounts: None) -> dict[str, Any]:  # noqa: F811
    """Two days ago ORG_A declared 2 lab reports (dept 1511) and sent one (3 h after approval) and an
    undeclared exam report (27 h after); today it sent an old report. ORG_B sent nothing (silent),
    has one open rectification and decided two results of ORG_A two days ago (1 accepted)."""
    day = (container.clock.now() - timedelta(days=2)).date().isoformat()
    daily = {"lab_exam_report": [{
        "last_update_dtime": f"{day} 23:00:00", "org_code": ORG_A[0], "date_t": day, "dept_code": "1511",
        "dept_name": "保健科门诊", "dept_std_code": "A01", "dept_std_name": "预防保健科", "lab_num": "2", "exam_num": "0"}]}
    assert api_a.post("/api/v1/daily-counts", daily).status_code == 200
    lab = api_a.post("/api/v1/lab-reports", recent_lab(container, 2)).json()["report_id"]
    exam = api_a.post("/api/v1/exam-reports", recent_exam(container, 2)).json()["report_id"]
    received_after(container, "lab", lab, 3)
    received_after(container, "exam", exam, 27)
    assert api_a.post("/api/v1/lab-reports", recent_lab(container, 30, report_form_no="OLD-1")).status_code == 200
    _bad_daily(api_b, ORG_B[0])
    with container.db.write() as conn:
        catalog_store.upsert_items(conn, [
            {"kind": "lab", "code": LAB_CODE, "name": "血清白蛋白测定", "unit": "g/L", "recognizable": True,
             "validity_days": 30, "min_level": 2, "region_scope": "", "source_note": ""},
            {"kind": "exam", "code": EXAM_CODE, "name": "CT平扫+三维重建", "unit": "", "recognizable": True,
             "validity_days": 90, "min_level": 2, "region_scope": "", "source_note": ""},
        ], now=container.clock.now())
    container.recognition.invalidate()
    at = f"{day} 10:00:00"
    records = [decision(LAB_CODE, "14437173", "2", "1", record_time=at),
               decision(EXAM_CODE, "71468573", "1", "2", "4", record_time=at)]
    assert api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": records}).status_code == 200
    return {"day": day}


def _relaxed(c: Container) -> None:
    """Thresholds under which ORG_A (50 % complete, 50 % timely, nothing open) is green."""
    s = c.settings
    s.overview_rate_red, s.overview_rate_yellow, s.overview_recognition_red, s.overview_recognition_yellow = 0, 0, 0, 0


def _table(html: str, table_id: str) -> list[dict[str, Any]]:
    m = re.search(rf'<table class="grid sortable" id="{table_id}">(.*?)</table>', html, re.S)
    assert m, table_id
    head = [html_lib.unescape(re.sub(r"<[^>]+>|[ ▲▼]+$", "", h)).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", m.group(1), re.S)]
    rows = []
    for cls, attrs, body in re.findall(r'<tr class="([^"]*)"([^>]*)>(.*?)</tr>', m.group(1), re.S):
        cells = re.findall(r"<td([^>]*)>(.*?)</td>", body, re.S)
        rows.append({
            "class": cls, "data": dict(re.findall(r'data-([a-z]+)="([^"]*)"', attrs)),
            "cells": [html_lib.unescape(re.sub(r"<[^>]+>", "", c)).strip() for _, c in cells],
            "cell_attrs": [a for a, _ in cells], "html": body, "head": head,
        })
    return rows


def _head(html: str, table_id: str) -> list[str]:
    m = re.search(rf'<table class="grid sortable" id="{table_id}">(.*?)</table>', html, re.S)
    assert m
    return [html_lib.unescape(re.sub(r"<[^>]+>", "", h)).strip().rstrip(" ▲▼") for h in re.findall(r"<th[^>]*>(.*?)</th>", m.group(1), re.S)]


# -- item 6: the overview -----------------------------------------------------------------------


def test_overview_figures_are_the_services(client: TestClient, container: Container, api_sup: Api, world: dict[str, Any]) -> None:
    day_from = (container.clock.now() - timedelta(days=7)).date()
    day_to = (container.clock.now() - timedelta(days=1)).date()
    comp = {r["org_code"]: r for r in container.quality.completeness(SUP, day_from=day_from, day_to=day_to)["orgs"]}
    tim = {r["org_code"]: r for r in container.quality.timeliness(SUP, day_from=day_from, day_to=day_to)["orgs"]}
    rect = {r["org_code"]: r for r in container.quality.rectification(SUP)}
    stats = {r["key"]: r for r in container.statistics.recognition(SUP, by="org", day_from=day_from, day_to=day_to)["rows"]}
    assert comp[ORG_A[0]]["completeness"] == 50.0 and tim[ORG_A[0]]["timeliness"] == 50.0
    assert rect[ORG_B[0]]["open"] == 1 and stats[ORG_B[0]]["recognition_rate"] == 0.5

    r = api_sup.get("/api/v1/quality/overview")
    assert r.status_code == 200, r.text
    body = r.json()
    rows = {x["org_code"]: x for x in body["rows"]}
    assert set(rows) == {ORG_A[0], ORG_B[0]}  # the supervising body itself is not ranked
    for org, x in rows.items():
        assert x["completeness"] == comp.get(org, {}).get("completeness")
        assert x["timeliness"] == tim.get(org, {}).get("timeliness")
        assert x["open"] == rect.get(org, {}).get("open", 0)
        rate = stats.get(org, {}).get("recognition_rate")
        assert x["recognition"] == (round(rate * 100, 1) if rate is not None else None)
    assert rows[ORG_A[0]]["today"] == 1 and not rows[ORG_A[0]]["silent"]
    assert rows[ORG_B[0]]["silent"] and rows[ORG_B[0]]["last_received_at"] is None
    assert body["total"] == {"institutions": 2, "connected": 1, "silent": 1, "today": 1, "open": 1, "red": 2, "yellow": 0}
    spec = api_sup.get("/openapi.json").json()["paths"]["/api/v1/quality/overview"]["get"]
    assert "XC-S2" in spec["x-interface-ids"]

    # the page shows the same figures, and is the supervisor's landing page
    _as(client, SUPERVISOR)
    home = client.get("/ui/").text
    assert "监管驾驶舱" in home and "数据完整性" in home  # the overview, and the menu cards below it
    page = {x["data"]["org"]: x for x in _table(home, "overview")}
    head = _head(home, "overview")
    a = dict(zip(head, page[ORG_A[0]]["cells"], strict=True))
    assert a["完整率（%）"] == "50.0%" and a["及时率（%）"] == "50.0%" and a["未整改"] == "0" and a["今日上传报告"] == "1"
    b = dict(zip(head, page[ORG_B[0]]["cells"], strict=True))
    assert b["互认率（%）"] == "50.0%" and b["未整改"] == "1" and b["完整率（%）"] == "—" and b["最近上传时间"] == "从未上传"
    assert _kpi(home, "today") == "1" and _kpi(home, "silent") == "1" and _kpi(home, "connected") == "1"


def test_thresholds_colour_the_rows(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    _as(client, SUPERVISOR)
    strict = {x["data"]["org"]: x for x in _table(client.get("/ui/overview").text, "overview")}
    assert "level-red" in strict[ORG_A[0]]["class"]  # 50 % complete < 80 %
    assert 'class="num lvl-red"' in strict[ORG_A[0]]["html"]
    assert "红（完整率、及时率）" in strict[ORG_A[0]]["cells"]  # the status says which figures
    container.settings.overview_rate_red = 40  # 50 % is now yellow (below 95 %)
    mid = {x["data"]["org"]: x for x in _table(client.get("/ui/overview").text, "overview")}
    assert "level-yellow" in mid[ORG_A[0]]["class"] and 'class="num lvl-yellow"' in mid[ORG_A[0]]["html"]
    _relaxed(container)
    page = client.get("/ui/overview").text
    easy = {x["data"]["org"]: x for x in _table(page, "overview")}
    assert "level-green" in easy[ORG_A[0]]["class"]
    assert "level-red" in easy[ORG_B[0]]["class"] and "silent" in easy[ORG_B[0]]["class"]  # silent stays red
    assert "低于 0%" in page  # the legend names the configured thresholds


def test_links_lead_to_the_filtered_rows(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    _as(client, SUPERVISOR)
    html = client.get("/ui/overview").text
    links = dict(re.findall(r'<a href="(/ui/quality/completeness\?org_code=(\d+)[^"]*exc=completeness)">', html))
    link = next(k for k, v in links.items() if v == ORG_A[0])
    page = client.get(html_lib.unescape(link)).text
    rows = _table(page, "completeness")
    assert rows and {r["data"]["org"] for r in rows} == {ORG_A[0]}
    assert all(r["class"] == "bad" for r in rows)  # only the exceptions
    rejected = re.search(rf'<a href="(/ui/quality/rejected\?org_code={ORG_B[0]}&amp;only_open=1)">1</a>', html)
    assert rejected
    r = client.get(html_lib.unescape(rejected.group(1)))
    assert r.status_code == 200 and "data-id=" in r.text  # the open rejected submission of ORG_B
    timely = re.search(rf'<a href="(/ui/quality/timeliness\?org_code={ORG_A[0]}[^"]*)">50.0%</a>', html)
    assert timely
    t_rows = _table(client.get(html_lib.unescape(timely.group(1))).text, "timeliness")
    assert {r["data"]["org"] for r in t_rows} == {ORG_A[0]}
    stats = re.search(rf'<a href="(/ui/stats\?org_code={ORG_B[0]}[^"]*)">50.0%</a>', html)
    assert stats and client.get(html_lib.unescape(stats.group(1))).status_code == 200


def test_scope_region_own_and_doctor(client: TestClient, container: Container, api_a: Api, world: dict[str, Any]) -> None:
    _as(client, ADMIN_A)
    home = client.get("/ui/")
    assert home.status_code == 200 and "监管驾驶舱" in home.text
    assert {r["data"]["org"] for r in _table(home.text, "overview")} == {ORG_A[0]}
    assert client.get("/ui/overview", params={"org_code": ORG_B[0]}).status_code == 403
    assert {r["org_code"] for r in api_a.get("/api/v1/quality/overview").json()["rows"]} == {ORG_A[0]}
    assert api_a.get("/api/v1/quality/overview", params={"org_code": ORG_B[0]}).status_code == 403
    _as(client, DOCTOR_A)
    assert client.get("/ui/overview").status_code == 403
    doctor_home = client.get("/ui/").text
    assert "监管驾驶舱" not in doctor_home and "患者互认查询" in doctor_home  # doctors keep their start
    doctor = Principal(ORG_A[0], DOCTOR_A[4], "doctor")
    with pytest.raises(Exception, match="无权"):
        overview_service(container).overview(doctor)


# -- item 7: sort, 只看异常, export ---------------------------------------------------------------


def test_sorting_and_exceptions_change_the_rows(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    _relaxed(container)
    _as(client, SUPERVISOR)
    up = [r["data"]["org"] for r in _table(client.get("/ui/overview", params={"sort": "overview.org_code", "dir": "asc"}).text, "overview")]
    down = [r["data"]["org"] for r in _table(client.get("/ui/overview", params={"sort": "overview.org_code", "dir": "desc"}).text, "overview")]
    assert up == sorted(up) and down == up[::-1] and len(up) == 2
    page = client.get("/ui/overview", params={"exc": "overview"}).text
    assert [r["data"]["org"] for r in _table(page, "overview")] == [ORG_B[0]]  # ORG_A is green
    assert 'aria-pressed="true"' in page
    # the header link of a sorted column reverses it; other parameters are kept
    days = client.get("/ui/quality/completeness", params={"sort": "completeness_days.received", "dir": "desc"}).text
    rows = _table(days, "completeness_days")
    assert rows[0]["data"]["day"] == world["day"] and rows[0]["cells"][2] == "2"
    assert 'href="/ui/quality/completeness?sort=completeness_days.received&amp;dir=asc"' in days
    only = _table(client.get("/ui/quality/timeliness", params={"exc": "timeliness_orgs"}).text, "timeliness_orgs")
    assert [r["data"]["org"] for r in only] == [ORG_B[0]]  # no upload, silent


def test_exports_hold_exactly_the_rows_shown(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    _as(client, SUPERVISOR)
    for path, table, params in (
        ("/ui/overview", "overview", {"sort": "overview.org_code", "dir": "desc"}),
        ("/ui/quality/completeness", "completeness_days", {"exc": "completeness_days"}),
        ("/ui/quality/completeness", "completeness", {}),
        ("/ui/quality/timeliness", "timeliness_orgs", {}),
        ("/ui/quality/timeliness", "timeliness_days", {"sort": "timeliness_days.date_t", "dir": "desc"}),
    ):
        html = client.get(path, params=params).text
        shown = _table(html, table)
        head = _head(html, table)
        x = client.get(path, params=params | {"export": table, "format": "xlsx"})
        assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxmlformats")
        assert "attachment" in x.headers["content-disposition"]
        ws = openpyxl.load_workbook(io.BytesIO(x.content), read_only=True).worksheets[0]
        sheet = [list(r) + [None] * (len(head) - len(r)) for r in ws.iter_rows(values_only=True)]  # trailing blanks
        assert sheet[0] == head and any("\u4e00" <= ch <= "\u9fff" for ch in "".join(head)), table  # Chinese headers
        assert len(sheet) - 1 == len(shown), table
        for got, want in zip(sheet[1:], shown, strict=True):
            assert [_norm(v) for v in got] == [_norm(v) for v in want["cells"]], table
        c = client.get(path, params=params | {"export": table, "format": "csv"})
        assert c.status_code == 200 and c.headers["content-type"].startswith("text/csv")
        lines = list(csv.reader(io.StringIO(c.content.decode("utf-8-sig"))))
        assert lines[0] == head and len(lines) - 1 == len(shown)
        assert [[_norm(v) for v in r["cells"]] for r in shown] == [[_norm(v) for v in line] for line in lines[1:]]
    assert client.get("/ui/overview", params={"export": "overview", "format": "pdf"}).status_code == 422


def _norm(v: Any) -> Any:
    """A cell of the page or of a file, comparable: no "—" placeholder, numbers (per cent without
    the sign) as numbers."""
    if v is None or v in ("", "—"):
        return ""
    text = str(v)
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)%?", text)
    return float(m.group(1)) if m else text


# -- item 8: per institution, every day, silence ----------------------------------------------


def test_days_without_uploads_are_on_the_axis_and_in_the_table(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    _as(client, SUPERVISOR)
    days = [(container.clock.now() - timedelta(days=i)).date().isoformat() for i in range(7, 0, -1)]
    for path, table, count in (("/ui/quality/completeness", "completeness_days", 2), ("/ui/quality/timeliness", "timeliness_days", 1)):
        html = client.get(path).text
        rows = _table(html, table)
        assert [r["data"]["day"] for r in rows] == days, path
        zero = [r["data"]["day"] for r in rows if "zero" in r["class"]]
        assert zero == [d for d in days if d != world["day"]], path
        assert _kpi(html, "zero_days") == "6"
        svg = html[html.index("<svg"):html.rindex("</svg>")]
        for d in days:  # every day is a label of the chart's axis, the empty ones too
            assert f">{d[5:]}<" in svg, (path, d)
        assert count  # (declared + received: 2 series; reports: on time + late)
    per_org = {r["data"]["org"]: r for r in _table(client.get("/ui/quality/completeness").text, "completeness_orgs")}
    assert per_org[ORG_A[0]]["cells"][3] == "50.0%" and per_org[ORG_B[0]]["cells"][3] == "—"


def test_silent_institutions_are_highlighted(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    _as(client, SUPERVISOR)
    for path, table in (("/ui/quality/completeness", "completeness_orgs"), ("/ui/quality/timeliness", "timeliness_orgs"),
                        ("/ui/overview", "overview")):
        html = client.get(path).text
        rows = {r["data"]["org"]: r for r in _table(html, table)}
        assert "silent" in rows[ORG_B[0]]["class"] and "从未上传" in rows[ORG_B[0]]["html"], path
        assert "silent" not in rows[ORG_A[0]]["class"], path
        assert _kpi(html, "silent") == "1"
    # N is configurable (HUREN_OVERVIEW_SILENT_HOURS, or silent_hours on the page): two hours on,
    # ORG_A's last receipt is older than N = 1
    container.settings.overview_silent_hours = 1
    assert "超过 1 小时未上传" in client.get("/ui/quality/timeliness").text
    container.clock.offset += 2 * 3600
    _as(client, SUPERVISOR)  # the session idled out meanwhile
    rows = {r["data"]["org"]: r for r in _table(client.get("/ui/quality/timeliness").text, "timeliness_orgs")}
    assert "silent" in rows[ORG_A[0]]["class"]
    assert "静默阈值应为小时数" in client.get("/ui/quality/timeliness", params={"silent_hours": "x"}).text
    for path in ("/ui/overview", "/ui/quality/completeness", "/ui/quality/timeliness"):
        r = client.get(path, params={"silent_hours": "0"})
        assert r.status_code == 422 and "静默阈值应在 0 到" in r.text, path


def test_the_menu_leads_to_the_overview(client: TestClient, container: Container, accounts: None) -> None:  # noqa: F811
    """"监管驾驶舱" in the side menu of whoever sees the overview, marked on the overview itself;
    not in a doctor's menu."""
    for who in (SUPERVISOR, ADMIN_A, ORG_A):
        _as(client, who)
        html = client.get("/ui/overview").text
        assert '<a href="/ui/overview" class="active">监管驾驶舱</a>' in html, who
        assert '<a href="/ui/overview" >监管驾驶舱</a>' in client.get("/ui/stats").text
    _as(client, DOCTOR_A)
    assert "/ui/overview" not in client.get("/ui/doctor").text
