"""Issue 11 item 7 on the remaining supervision pages: the rectification page (the progress per
institution and the rejected list, paged by 50 but exported whole), the statistics page (by the
grouping, 检查 / 检验, the six situations) and the catalog page (items, mappings, unmapped codes)
are tables of huren.web.tables — sorting and 只看异常 change the rows, and the .xlsx (openpyxl) and
CSV exports hold exactly the rows of the filter, under the page's Chinese headers."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient

from huren.services.container import Container
from huren.web import routes_catalog
from tests import samples
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api
from tests.integration.test_rectification import lab
from tests.web.test_catalog_edit import ADMIN_A, CATALOG, _import, admin  # noqa: F401
from tests.web.test_overview import _head, _norm
from tests.web.test_overview import _table as _body_and_foot
from tests.web.test_stats_meaning import _world
from tests.web.test_supervision_pages import _as, _bad_daily


def _table(html: str, table_id: str) -> list[dict[str, Any]]:
    """The rows of a table's body (a total line in its footer is not a row)."""
    return _body_and_foot(re.sub(r"<tfoot>.*?</tfoot>", "", html, flags=re.S), table_id)


def _flat(v: Any) -> Any:
    """A cell compared across page and file: the page's extra lines are the file cell's lines."""
    n = _norm(v)
    return re.sub(r"\s+", "", n) if isinstance(n, str) else n


def _export(client: TestClient, path: str, table: str, params: dict[str, Any], fmt: str) -> list[list[Any]]:
    r = client.get(path, params=params | {"export": table, "format": fmt})
    assert r.status_code == 200, r.text[:500]
    assert "attachment" in r.headers["content-disposition"]
    if fmt == "xlsx":
        assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
        ws = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
        rows = [list(x) for x in ws.iter_rows(values_only=True)]
        width = len(rows[0])
        return [x + [None] * (width - len(x)) for x in rows]
    assert r.headers["content-type"].startswith("text/csv")
    return [list(x) for x in csv.reader(io.StringIO(r.content.decode("utf-8-sig")))]


def assert_exports_hold(client: TestClient, path: str, table: str, params: dict[str, Any]) -> list[list[Any]]:
    """Both files: the page's Chinese headers (less page-only columns such as 修改) and exactly the
    rows shown."""
    html = client.get(path, params=params).text
    head = _head(html, table)
    shown = _table(html, table)
    out: list[list[Any]] = []
    for fmt in ("xlsx", "csv"):
        sheet = _export(client, path, table, params, fmt)
        header = [str(h) for h in sheet[0]]
        assert any("\u4e00" <= ch <= "\u9fff" for ch in "".join(header)), (table, header)
        assert set(header) <= set(head), (header, head)
        idx = [head.index(h) for h in header]
        assert len(sheet) - 1 == len(shown), (table, fmt, len(sheet) - 1, len(shown))
        for got, want in zip(sheet[1:], shown, strict=True):
            assert [_flat(v) for v in got] == [_flat(want["cells"][i]) for i in idx], (table, fmt)
        out = sheet
    return out


# -- rectification ------------------------------------------------------------------------------


@pytest.fixture
def rectification(api_a: Api, api_b: Api, container: Container) -> None:
    """ORG_A: 3 old open rejections, then 52 newer ones each fixed (55 rows: more than a page);
    ORG_B: one open rejected daily count."""
    for i in range(3):
        assert api_a.post("/api/v1/lab-reports", lab(f"P{i}", bad=True)).status_code == 422
    container.clock.offset += 60
    for i in range(52):
        assert api_a.post("/api/v1/lab-reports", lab(f"Q{i}", bad=True)).status_code == 422
        assert api_a.post("/api/v1/lab-reports", lab(f"Q{i}")).status_code == 200
    _bad_daily(api_b, ORG_B[0])


def test_rejected_list_is_exported_whole_not_just_the_page(client: TestClient, rectification: None) -> None:
    _as(client, SUPERVISOR)
    html = client.get("/ui/quality/rejected").text
    page = _table(html, "rejected")
    assert len(page) == 50 and "下一页" in html
    assert "本页显示 50 行，共 56 行" in html and "导出全部 56 行（不只本页）" in html  # said on the page
    sheet = _export(client, "/ui/quality/rejected", "rejected", {}, "xlsx")
    assert len(sheet) - 1 == 56 and sheet[0][:3] == ["被拒时间", "机构", "提交内容"] and "原始提交" not in sheet[0]
    forms = {re.search(r"报告单号：(\S+)", str(r[2])).group(1) for r in sheet[1:] if "报告单号" in str(r[2])}  # type: ignore[union-attr]
    assert forms == {f"P{i}" for i in range(3)} | {f"Q{i}" for i in range(52)}  # the second page's rows too
    assert all("sex_code" not in str(c) and "dictionary" not in str(c) for r in sheet[1:] for c in r)  # plain words
    lines = _export(client, "/ui/quality/rejected", "rejected", {"page": "2"}, "csv")
    assert len(lines) - 1 == 56  # whatever page the link is on
    # the filters apply: only open (the checkbox, or 只看异常), sorted
    for params in ({"only_open": "1"}, {"exc": "rejected"}):
        shown = _table(client.get("/ui/quality/rejected", params=params).text, "rejected")
        assert len(shown) == 4 and all(r["class"] == "bad" for r in shown), params
        assert_exports_hold(client, "/ui/quality/rejected", "rejected", params)
    # sorted: every matching row on one page, in the column's order (not one page's rows re-ordered)
    asc = _table(client.get("/ui/quality/rejected", params={"sort": "rejected.received_at", "dir": "asc"}).text, "rejected")
    assert len(asc) == 56
    times = [r["cells"][0][:19] for r in asc]
    assert times == sorted(times) and times[0] < page[-1]["cells"][0][:19]
    assert {r["data"]["id"] for r in asc[:3]} != {r["data"]["id"] for r in page[:3]}
    assert_exports_hold(client, "/ui/quality/rejected", "rejected", {"sort": "rejected.received_at", "dir": "asc"})


def test_rectification_progress_sorts_filters_and_exports(client: TestClient, rectification: None) -> None:
    _as(client, SUPERVISOR)
    by_open = _table(client.get("/ui/quality/rejected", params={"sort": "progress.open", "dir": "desc"}).text, "progress")
    assert [r["data"]["org"] for r in by_open][:2] == [ORG_A[0], ORG_B[0]] and by_open[0]["data"]["open"] == "3"
    asc = _table(client.get("/ui/quality/rejected", params={"sort": "progress.open", "dir": "asc"}).text, "progress")
    assert [r["data"]["org"] for r in asc] == [r["data"]["org"] for r in by_open][::-1]
    exc = _table(client.get("/ui/quality/rejected", params={"exc": "progress"}).text, "progress")
    assert {r["data"]["org"] for r in exc} == {r["data"]["org"] for r in by_open if r["data"]["open"] != "0"}
    for params in ({"sort": "progress.open", "dir": "desc"}, {"exc": "progress"}):
        sheet = assert_exports_hold(client, "/ui/quality/rejected", "progress", params)
        assert sheet[0][:4] == ["机构", "被拒提交", "已整改", "未整改"]


# -- statistics -------------------------------------------------------------------------------


def test_stats_tables_sort_filter_and_export(client: TestClient, api_a: Api, api_b: Api, container: Container) -> None:
    _world(container, api_a, api_b)  # ORG_B decided two results of ORG_A: the lab accepted, the CT refused
    _as(client, SUPERVISOR)
    items = _table(client.get("/ui/stats", params={"by": "item"}).text, "stats")
    assert len(items) == 2
    up = [r["data"]["key"] for r in _table(client.get("/ui/stats", params={"by": "item", "sort": "stats.recognition_rate", "dir": "asc"}).text, "stats")]
    down = [r["data"]["key"] for r in _table(client.get("/ui/stats", params={"by": "item", "sort": "stats.recognition_rate", "dir": "desc"}).text, "stats")]
    assert up == down[::-1] and len(set(up)) == 2
    # 只看异常: recognition below the overview's yellow level (60 %) or more refused than accepted — the CT (0 %)
    html = client.get("/ui/stats", params={"by": "item", "exc": "stats"}).text
    only = _table(html, "stats")
    assert len(only) == 1 and "CT" in only[0]["cells"][0] and only[0]["cells"][7] == "0.0%"
    assert "互认率低于 60% 或不予互认多于接受" in html
    container.settings.overview_recognition_yellow = 0  # nothing is low any more; the CT still refused more than accepted
    assert len(_table(client.get("/ui/stats", params={"by": "item", "exc": "stats"}).text, "stats")) == 1
    container.settings.overview_recognition_yellow = 60
    for params in ({"by": "item", "exc": "stats"}, {"by": "item", "sort": "stats.key", "dir": "desc"}, {"by": "day"}):
        sheet = assert_exports_hold(client, "/ui/stats", "stats", params)
        assert sheet[0][1:3] == ["提醒次数", "可互认结果"]
    assert "合计（查看范围内全部）" in html  # the total line stays (everything in scope), not exported
    kinds = _table(client.get("/ui/stats", params={"exc": "stats_kinds"}).text, "stats_kinds")
    assert [r["data"]["kind"] for r in kinds] == ["exam"]  # the CT refused
    assert_exports_hold(client, "/ui/stats", "stats_kinds", {})
    situations = _table(client.get("/ui/stats", params={"sort": "stats_situations.count", "dir": "desc"}).text, "stats_situations")
    assert situations[0]["cells"] == ["病情变化", "1"] and len(situations) == 6
    assert_exports_hold(client, "/ui/stats", "stats_situations", {"sort": "stats_situations.count", "dir": "desc"})


# -- catalog --------------------------------------------------------------------------------------


def test_catalog_page_shows_a_limit_and_exports_every_row(client: TestClient, api_sup: Api,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _import(api_sup)
    monkeypatch.setattr(routes_catalog, "CATALOG_SHOWN", 2)
    _as(client, SUPERVISOR)
    html = client.get("/ui/catalog").text
    assert len(_table(html, "catalog")) == 2 and "共 3 行，页面只显示前 2 行" in html and "导出全部 3 行" in html
    for fmt in ("xlsx", "csv"):
        assert len(_export(client, "/ui/catalog", "catalog", {}, fmt)) - 1 == 3


def test_catalog_tables_sort_filter_and_export(client: TestClient, api_sup: Api, api_a: Api, container: Container,
                                               admin: None) -> None:  # noqa: F811
    _import(api_sup)  # 3 items; 尿液分析 has no fee
    r = api_sup.client.patch("/api/v1/catalog/items/exam/115", json={"recognizable": False}, headers=api_sup.headers)
    assert r.status_code == 200, r.text
    _as(client, SUPERVISOR)
    rows = _table(client.get("/ui/catalog").text, "catalog")
    assert len(rows) == 3 and rows[0]["cells"][-1] == "修改"
    up = [r["data"]["code"] for r in _table(client.get("/ui/catalog", params={"sort": "catalog.validity_days", "dir": "asc"}).text, "catalog")]
    assert up == ["250102035", "250301002", "115"]
    html = client.get("/ui/catalog", params={"exc": "catalog"}).text
    assert {r["data"]["code"] for r in _table(html, "catalog")} == {"250102035", "115"}  # no fee; not recognizable
    assert "不互认、无有效天数或未给收费标准" in html
    for params in ({}, {"exc": "catalog", "sort": "catalog.code", "dir": "desc"}, {"kind": "lab"}, {"q": "CT"}):
        sheet = assert_exports_hold(client, "/ui/catalog", "catalog", params)
        assert sheet[0][:4] == ["编码", "名称", "类型", "单位"] and "操作" not in sheet[0]
    units = {r[0]: r[3] for r in _export(client, "/ui/catalog", "catalog", {}, "xlsx")[1:]}
    assert units["250102035"] == "定性"  # the unit column in Chinese, as on the page
    # the answer of a form (POST /ui/catalog/item) links its tables to the catalog page, not to the form
    csrf = _as(client, SUPERVISOR, next_url="/ui/catalog")
    saved = client.post("/ui/catalog/item", data={"csrf_token": csrf, "kind": "lab", "code": "250102035",
                                                  "validity_days": "5", "recognizable": "1", "min_level": "2", "fee": "8"})
    assert saved.status_code == 200 and "已保存项目 250102035" in saved.text
    assert 'href="/ui/catalog?sort=catalog.code&amp;dir=asc"' in saved.text and "/ui/catalog/item?" not in saved.text
    assert 'href="/ui/catalog?export=catalog&amp;format=xlsx"' in saved.text

    # an institution's admin: its mappings and unmapped codes, sorted and exported
    assert api_a.post("/api/v1/lab-reports", samples.lab()).status_code == 200  # AG is unmapped
    good = "kind,local_code,local_name,std_code\nlab,L-ALB,白蛋白,250301002\nlab,L-URINE,尿常规,250102035\n".encode()
    assert api_a.put("/api/v1/code-map/file?filename=m.csv", content=good).status_code == 200
    _as(client, ADMIN_A)
    maps = [r["data"]["code"] for r in _table(client.get("/ui/catalog", params={"sort": "mappings.local_code", "dir": "desc"}).text, "mappings")]
    assert maps == ["L-URINE", "L-ALB"]
    assert "没有异常的行" in client.get("/ui/catalog", params={"exc": "mappings"}).text  # every standard code is in the catalog
    assert_exports_hold(client, "/ui/catalog", "mappings", {"sort": "mappings.local_code", "dir": "desc"})
    unmapped = _table(client.get("/ui/catalog").text, "unmapped")
    assert "AG" in [r["data"]["code"] for r in unmapped]
    assert 'data-exc="unmapped"' not in client.get("/ui/catalog").text  # every row is one to fix: no toggle
    assert_exports_hold(client, "/ui/catalog", "unmapped", {})
    assert client.get("/ui/catalog", params={"export": "catalog", "format": "pdf"}).status_code == 422
