"""The supervision pages over TestClient on SQLite and PostgreSQL: completeness, timeliness,
rectification, recognition statistics, catalog and mapping maintenance; roles and scope, CSRF,
Chinese errors and empty states."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from fastapi.testclient import TestClient

from huren.context import Principal
from huren.services.container import Container
from huren.store import catalog as catalog_store
from tests import samples
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api
from tests.integration.test_api_recognition import EXAM_CODE, LAB_CODE, decision, recent_exam, recent_lab
from tests.integration.test_timeliness import received_after
from tests.web.test_login import web_login

ADMIN_A = (ORG_A[0], ORG_A[1], ORG_A[2], ORG_A[3], "admin", "password-admin-a")
DOCTOR_A = (ORG_A[0], ORG_A[1], ORG_A[2], ORG_A[3], "D1001", "password-doctor-a")
PAGES = ("/ui/quality/completeness", "/ui/quality/timeliness", "/ui/quality/rejected", "/ui/stats", "/ui/catalog")
DEMO_CATALOG = resources.files("huren.demo").joinpath("data/catalog-demo.csv").read_bytes()


@pytest.fixture
def accounts(container: Container) -> None:
    container.directory.add_credential(ORG_A[0], ADMIN_A[4], ADMIN_A[5], role="admin")
    container.directory.add_credential(ORG_A[0], DOCTOR_A[4], DOCTOR_A[5], role="doctor")


def _as(client: TestClient, org: tuple[str, ...], next_url: str = "/ui/") -> str:
    client.cookies.clear()
    return web_login(client, org, next_url=next_url)


def _kpi(html: str, name: str) -> str:
    m = re.search(rf'data-kpi="{name}"><div class="v">([^<]*)<', html)
    assert m, name
    return m.group(1)


def _gap(api_a: Api) -> None:
    """ORG_A declares 2 lab reports for 2024-03-11 (dept 1511) and sends one; it sends the exam
    report of 2024-05-11 without declaring that day."""
    daily = {"lab_exam_report": [{
        "last_update_dtime": "2024-03-12 03:00:00", "org_code": ORG_A[0], "date_t": "2024-03-11", "dept_code": "1511",
        "dept_name": "保健科门诊", "dept_std_code": "A01", "dept_std_name": "预防保健科", "lab_num": "2", "exam_num": "0"}]}
    assert api_a.post("/api/v1/daily-counts", daily).status_code == 200
    assert api_a.post("/api/v1/lab-reports", samples.lab()).status_code == 200
    assert api_a.post("/api/v1/exam-reports", samples.exam()).status_code == 200


def _bad_daily(api: Api, org_code: str) -> None:
    bad = samples.daily()
    for row in bad["lab_exam_report"]:
        row["org_code"] = org_code
    bad["lab_exam_report"][0]["lab_num"] = "12345"
    assert api.post("/api/v1/daily-counts", bad).status_code == 422


# -- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_login(client: TestClient, path: str) -> None:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next=")


def test_doctors_are_refused(client: TestClient, accounts: None) -> None:
    _as(client, DOCTOR_A)
    for path in (*PAGES, "/ui/catalog/download?format=csv", "/ui/quality/rejected/1/payload"):
        r = client.get(path)
        assert r.status_code == 403, path
        assert "无权访问" in r.text and "医生" in r.text and "Traceback" not in r.text


def test_empty_states_for_supervisor_and_admin(client: TestClient, accounts: None) -> None:
    for who in (SUPERVISOR, ADMIN_A, ORG_A):
        _as(client, who)
        texts = {path: client.get(path) for path in PAGES}
        assert all(r.status_code == 200 for r in texts.values()), {p: r.status_code for p, r in texts.items()}
        assert "所选期间没有日报申报，也没有收到报告" in texts["/ui/quality/completeness"].text
        assert "所选期间没有审核的报告上传到平台" in texts["/ui/quality/timeliness"].text
        assert "没有被拒绝的提交" in texts["/ui/quality/rejected"].text
        assert "所选期间没有互认提醒或医生的互认决定" in texts["/ui/stats"].text
        assert "项目目录为空" in texts["/ui/catalog"].text
        for r in texts.values():
            assert '<link rel="stylesheet" href="/ui/static/supervision.css' in r.text
            assert 'class="active"' in r.text  # the side menu marks the page
        # the institution filter is the supervisor's only
        assert ('name="org_code"' in texts["/ui/stats"].text) is (who is SUPERVISOR)
    assert client.get("/ui/static/supervision.css").status_code == 200


# -- completeness -------------------------------------------------------------------------------


def test_completeness_shows_gaps_and_scope(client: TestClient, api_a: Api, api_b: Api, accounts: None) -> None:
    _gap(api_a)
    march = {"day_from": "2024-03-11", "day_to": "2024-03-11"}
    _as(client, ADMIN_A)
    r = client.get("/ui/quality/completeness", params=march)
    assert r.status_code == 200
    row = re.search(r'<tr class="bad" data-org="457759922" data-day="2024-03-11">(.*?)</tr>', r.text, re.S)
    assert row, r.text
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row.group(1))
    assert cells == ["2", "1", "1", "0", "0", "0"]
    assert "不一致" in row.group(1) and "保健科门诊" in row.group(1)
    assert _kpi(r.text, "differences") == "1" and _kpi(r.text, "orgs") == "1"
    assert "<svg" in r.text and "每日申报数量与实收数量" in r.text
    may = client.get("/ui/quality/completeness", params={"day_from": "2024-05-11", "day_to": "2024-05-11"}).text
    assert "未申报" in may and _kpi(may, "undeclared") == "1"

    # ORG_B's declarations are not ORG_A's business
    daily = samples.daily()
    for row_b in daily["lab_exam_report"]:
        row_b["org_code"] = ORG_B[0]
    assert api_b.post("/api/v1/daily-counts", daily).status_code == 200
    may29 = {"day_from": "2024-05-29", "day_to": "2024-05-29"}
    assert "所选期间没有日报申报" in client.get("/ui/quality/completeness", params=may29).text
    forbidden = client.get("/ui/quality/completeness", params={"org_code": ORG_B[0]})
    assert forbidden.status_code == 403 and "只能查看本机构的数据" in forbidden.text

    _as(client, SUPERVISOR)
    sup = client.get("/ui/quality/completeness", params={"day_from": "2024-03-01", "day_to": "2024-05-31"}).text
    assert ORG_A[1] in sup and ORG_B[1] in sup and "不一致" in sup
    only_b = client.get("/ui/quality/completeness", params=may29 | {"org_code": ORG_B[0]}).text
    assert f'data-org="{ORG_B[0]}"' in only_b and f'data-org="{ORG_A[0]}"' not in only_b
    assert f'<option value="{ORG_B[0]}" selected>' in only_b


def test_filter_errors_are_shown_on_the_page(client: TestClient) -> None:
    _as(client, SUPERVISOR)
    for path in ("/ui/quality/completeness", "/ui/quality/timeliness", "/ui/stats"):
        r = client.get(path, params={"day_from": "2024-3-1"})
        assert r.status_code == 422, path
        assert "开始日期格式应为 YYYY-MM-DD" in r.text and '<form class="filters"' in r.text
        r = client.get(path, params={"day_from": "2024-03-02", "day_to": "2024-03-01"})
        assert r.status_code == 422 and "开始日期不能晚于结束日期" in r.text, path
    assert "超时阈值应为小时数" in client.get("/ui/quality/timeliness", params={"late_hours": "x"}).text
    assert client.get("/ui/stats", params={"by": "week"}).status_code == 422
    r = client.get("/ui/stats", params={"day_from": "2020-01-01", "day_to": "2024-01-01"})
    assert r.status_code == 422 and "日期范围不能超过" in r.text
    r = client.get("/ui/quality/rejected", params={"page": "x"})
    assert r.status_code == 422 and "Traceback" not in r.text


# -- timeliness ---------------------------------------------------------------------------------


def test_timeliness_page(client: TestClient, api_a: Api, container: Container) -> None:
    lab = api_a.post("/api/v1/lab-reports", recent_lab(container, 2)).json()["report_id"]
    exam = api_a.post("/api/v1/exam-reports", recent_exam(container, 2)).json()["report_id"]
    day = received_after(container, "lab", lab, 3).date().isoformat()
    received_after(container, "exam", exam, 27)
    _as(client, ORG_A)
    r = client.get("/ui/quality/timeliness")
    assert r.status_code == 200
    row = re.search(rf'<tr class="bad" data-org="{ORG_A[0]}" data-day="{day}">(.*?)</tr>', r.text, re.S)
    assert row, r.text
    cells = re.findall(r'<td class="num">(.*?)</td>', row.group(1))
    assert cells[:7] == ["2", "1", "1", "15.0", "15.0", "27.0", '<span class="tag bad">1</span>']
    assert _kpi(r.text, "late") == "1" and r.text.count("<svg") == 2
    assert "超时（&gt;24 小时）数" in r.text
    relaxed = client.get("/ui/quality/timeliness", params={"late_hours": "48"}).text
    assert _kpi(relaxed, "late") == "0" and "超时（&gt;48 小时）数" in relaxed
    assert client.get("/ui/quality/timeliness", params={"org_code": ORG_B[0]}).status_code == 403
    _as(client, SUPERVISOR)
    assert "所选期间没有审核的报告" in client.get("/ui/quality/timeliness", params={"org_code": ORG_B[0]}).text
    assert f'data-org="{ORG_A[0]}"' in client.get("/ui/quality/timeliness").text


# -- rectification ------------------------------------------------------------------------------


def test_rejected_submissions_and_their_state(client: TestClient, api_a: Api, api_b: Api, container: Container) -> None:
    _bad_daily(api_a, ORG_A[0])
    _bad_daily(api_b, ORG_B[0])
    _as(client, ORG_A)
    r = client.get("/ui/quality/rejected")
    assert r.status_code == 200
    assert r.text.count('<tr class="bad" data-id=') == 1
    assert "检查检验日报" in r.text and "REST 接口" in r.text and "未整改" in r.text
    assert "检查检验日报第1项 · 检验数量" in r.text and "超过位数上限" in r.text and ORG_A[1] in r.text
    assert "lab_exam_report[0].lab_num" not in r.text and "max_digits" not in r.text  # no developer identifiers
    assert ORG_B[1] not in r.text
    [rid] = re.findall(r'href="/ui/quality/rejected/([A-Za-z0-9_-]{22})/payload"', r.text)
    payload = client.get(f"/ui/quality/rejected/{rid}/payload")
    assert payload.status_code == 200 and b"12345" in payload.content
    assert payload.headers["content-type"].startswith("application/json")
    assert f'filename="rejected-{rid}.json"' in payload.headers["content-disposition"]
    assert client.get("/ui/quality/rejected", params={"org_code": ORG_B[0]}).status_code == 403

    # fixed by a later good upload: shown as such, and hidden by "只看未整改"
    assert api_a.post("/api/v1/daily-counts", samples.daily()).status_code == 200
    fixed = client.get("/ui/quality/rejected").text
    assert '<tr class="ok"' in fixed and "已整改" in fixed and _kpi(fixed, "fixed") == "1"
    assert "没有未整改的被拒提交" in client.get("/ui/quality/rejected", params={"only_open": "1"}).text

    _as(client, SUPERVISOR)
    every = client.get("/ui/quality/rejected").text
    assert ORG_A[1] in every and ORG_B[1] in every
    only_open = client.get("/ui/quality/rejected", params={"only_open": "1"}).text
    assert ORG_B[1] in only_open and f'<a href="/ui/quality/rejected/{rid}/payload"' not in only_open
    other = re.findall(r'href="/ui/quality/rejected/([A-Za-z0-9_-]{22})/payload"', only_open)
    _as(client, ORG_A)
    assert client.get(f"/ui/quality/rejected/{other[0]}/payload").status_code == 403
    assert client.get("/ui/quality/rejected/99999/payload").status_code == 404


# -- statistics -------------------------------------------------------------------------------


def test_stats_match_the_service(client: TestClient, api_a: Api, api_b: Api, container: Container) -> None:
    with container.db.write() as conn:
        catalog_store.upsert_items(conn, [
            {"kind": "lab", "code": LAB_CODE, "name": "血清白蛋白测定", "unit": "g/L", "recognizable": True,
             "validity_days": 30, "min_level": 2, "region_scope": "", "source_note": ""},
            {"kind": "exam", "code": EXAM_CODE, "name": "CT平扫+三维重建", "unit": "", "recognizable": True,
             "validity_days": 90, "min_level": 2, "region_scope": "", "source_note": ""},
        ], now=container.clock.now())
    container.recognition.invalidate()
    api_a.post("/api/v1/lab-reports", recent_lab(container))
    api_a.post("/api/v1/exam-reports", recent_exam(container))
    now = container.clock.now().strftime("%Y-%m-%d %H:%M:%S")
    records = [decision(LAB_CODE, "14437173", "2", "1", record_time=now),
               decision(EXAM_CODE, "71468573", "1", "2", "4", record_time=now)]
    assert api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": records}).status_code == 200

    b = Principal(ORG_B[0], ORG_B[4], "hospital")
    _as(client, ORG_B)
    for by in ("org", "dept", "item", "day"):
        r = client.get("/ui/stats", params={"by": by})
        assert r.status_code == 200, by
        want = container.statistics.recognition(b, by=by)
        for k in ("accepted", "rejected", "cited", "reminders", "tests_avoided"):
            assert _kpi(r.text, k) == str(want["total"][k]), (by, k)
        assert _kpi(r.text, "recognition_rate") == "50.0%"
        assert r.text.count("<svg") >= 3, by  # the trend, the daily decisions, the grouping or the reasons
        assert "原检查、检验结果与目前病情明显不符的" in r.text  # the reason of the rejection
        assert len(re.findall(r'<tr class="[^"]*" data-key=', r.text)) == len(want["rows"])
    items = client.get("/ui/stats", params={"by": "item"}).text
    assert f"血清白蛋白测定（{LAB_CODE}）" in items and "各项目互认率" in items
    assert "各机构互认率" in client.get("/ui/stats").text
    assert client.get("/ui/stats", params={"org_code": ORG_A[0]}).status_code == 403

    _as(client, SUPERVISOR)
    sup = client.get("/ui/stats").text
    assert _kpi(sup, "accepted") == "1" and _kpi(sup, "rejected") == "1" and ORG_B[1] in sup
    a_only = client.get("/ui/stats", params={"org_code": ORG_A[0]}).text
    assert "所选期间没有互认提醒或医生的互认决定" in a_only


# -- catalog and mapping ------------------------------------------------------------------------


def test_catalog_upload_download_and_mappings(client: TestClient, accounts: None) -> None:
    csrf = _as(client, SUPERVISOR, "/ui/catalog")
    ok = client.post("/ui/catalog/upload", data={"csrf_token": csrf, "kind": ""},
                     files={"file": ("catalog-demo.csv", DEMO_CATALOG, "text/csv")})
    assert ok.status_code == 200, ok.text
    n = DEMO_CATALOG.decode().count("\n") - 1
    assert f"已导入 {n} 个项目" in ok.text and 'id="catalog"' in ok.text
    page = client.get("/ui/catalog", params={"q": "白蛋白"}).text
    assert "250301002" in page and "250302001" not in page  # 葡萄糖测定 filtered out
    assert "没有符合条件的项目" in client.get("/ui/catalog", params={"q": "不存在的项目"}).text
    assert 'action="/ui/catalog/mappings/upload"' not in page  # the supervisor maps no local codes

    bad = b"kind,code,name,validity_days\nlab,,\xe6\x97\xa0\xe7\xbc\x96\xe7\xa0\x81,abc\n"
    r = client.post("/ui/catalog/upload", data={"csrf_token": csrf}, files={"file": ("bad.csv", bad, "text/csv")})
    assert r.status_code == 422
    assert "未导入任何行" in r.text and "第2行 · 互认项目标准编码" in r.text and "第2行 · 有效天数" in r.text
    assert "row[2]" not in r.text
    r = client.post("/ui/catalog/upload", data={"csrf_token": csrf}, files={"file": ("", b"", "application/octet-stream")})
    assert r.status_code == 422 and "请选择要上传的文件" in r.text
    r = client.post("/ui/catalog/upload", files={"file": ("catalog-demo.csv", DEMO_CATALOG, "text/csv")})
    assert r.status_code == 403 and "CSRF" in r.text
    r = client.post("/ui/catalog/upload", data={"csrf_token": "forged"}, files={"file": ("c.csv", DEMO_CATALOG, "text/csv")})
    assert r.status_code == 403

    xlsx = client.get("/ui/catalog/download", params={"format": "xlsx"})
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert xlsx.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert 'filename="catalog.xlsx"' in xlsx.headers["content-disposition"]
    csv = client.get("/ui/catalog/download", params={"format": "csv", "kind": "exam"})
    assert csv.headers["content-type"].startswith("text/csv") and "210300001" in csv.text and "250301002" not in csv.text
    assert client.get("/ui/catalog/download", params={"format": "pdf"}).status_code == 422

    # an institution: no catalog import, its own mappings
    csrf = _as(client, ADMIN_A, "/ui/catalog")
    r = client.post("/ui/catalog/upload", data={"csrf_token": csrf}, files={"file": ("c.csv", DEMO_CATALOG, "text/csv")})
    assert r.status_code == 403 and "无权导入标准项目目录" in r.text
    assert "本机构尚未上传编码对照" in client.get("/ui/catalog").text
    good = "kind,local_code,local_name,std_code\nlab,ALB,白蛋白,250301002\nexam,CT-HEAD,颅脑CT,210300001\n".encode()
    r = client.post("/ui/catalog/mappings/upload", data={"csrf_token": csrf},
                    files={"file": ("map.csv", good, "text/csv")})
    assert r.status_code == 200 and "已保存 2 条编码对照" in r.text and "ALB" in r.text
    wrong = "kind,local_code,local_name,std_code\nlab,ALB,白蛋白,999999999\n".encode()
    r = client.post("/ui/catalog/mappings/upload", data={"csrf_token": csrf}, files={"file": ("map.csv", wrong, "text/csv")})
    assert r.status_code == 422 and "第2行 · 标准编码" in r.text and "不在检验项目目录中" in r.text
    maps = client.get("/ui/catalog/mappings/download", params={"format": "csv"})
    assert maps.status_code == 200 and "ALB" in maps.text and "250301002" in maps.text
    assert f'filename="code-map-{ORG_A[0]}.csv"' in maps.headers["content-disposition"]
    mx = client.get("/ui/catalog/mappings/download", params={"format": "xlsx"})
    assert mx.content[:2] == b"PK"

    # doctors neither upload nor download
    _as(client, DOCTOR_A)
    r = client.post("/ui/catalog/mappings/upload", data={"csrf_token": csrf}, files={"file": ("map.csv", good, "text/csv")})
    assert r.status_code == 403


def test_the_catalog_page_offers_what_the_policy_allows(client: TestClient, container: Container) -> None:
    """The catalog import to whoever may import the catalog (the supervisor), the institution's
    code mapping to whoever may upload its directory data (a hospital account) — asked of the one
    access policy, not of a role name on the page."""
    _as(client, SUPERVISOR, "/ui/catalog")
    sup = client.get("/ui/catalog")
    assert sup.status_code == 200 and 'action="/ui/catalog/upload"' in sup.text
    assert 'id="mapping-section"' not in sup.text
    client.cookies.clear()
    _as(client, ORG_A, "/ui/catalog")
    hosp = client.get("/ui/catalog")
    assert hosp.status_code == 200 and 'id="mapping-section"' in hosp.text
    assert 'action="/ui/catalog/upload"' not in hosp.text
