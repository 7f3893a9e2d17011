"""The supervisor's overview in a real browser against `huren demo` (issue 11 items 6–8): the
landing page ranks the institutions, a header sorts, 只看异常 filters, the Excel export holds the
rows shown; a link leads down to the institution's completeness rows; every day of the range is on
the completeness and timeliness tables; nothing is refused by the CSP. Screenshots of each."""

from __future__ import annotations

import io
from typing import Any

import openpyxl

from tests.browser.conftest import account, login, shot
from tests.e2e.test_serve import Server


def _orgs_shown(page: Any, table: str) -> list[str]:
    rows: list[str] = page.eval_on_selector_all(f"#{table} tbody tr", "rows => rows.map(r => r.dataset.org)")
    return rows


def test_supervisor_lands_on_the_overview(demo_server: Server, context: Any) -> None:
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    login(page, demo_server, account(demo_server, "supervisor"))
    assert page.inner_text("h1") == "监管驾驶舱"
    orgs = _orgs_shown(page, "overview")
    assert len(orgs) >= 2
    levels = page.eval_on_selector_all("#overview tbody tr", "rows => rows.map(r => r.dataset.level)")
    assert set(levels) <= {"red", "yellow", "green"}
    assert page.locator("#thresholds").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "supervision-overview")

    # a header sorts (server-side link), a second click reverses
    page.click("#overview th a:text-is('机构')")
    page.wait_for_url("**sort=overview.org_code*")
    up = _orgs_shown(page, "overview")
    assert up == sorted(up)
    page.click("#overview th a:has-text('机构')")
    page.wait_for_url("**dir=desc*")
    assert _orgs_shown(page, "overview") == up[::-1]

    # 只看异常: red and yellow rows only
    page.click("a[data-exc=overview]")
    page.wait_for_url("**exc=overview*")
    shown = page.eval_on_selector_all("#overview tbody tr", "rows => rows.map(r => r.dataset.level)")
    assert set(shown) <= {"red", "yellow"}
    shot(page, "supervision-overview-exceptions")
    with page.expect_download() as dl:
        page.click(".table-tools[data-table=overview] a[data-export=xlsx]")
    assert dl.value.suggested_filename == "机构排名.xlsx"
    with open(dl.value.path(), "rb") as f:
        ws = openpyxl.load_workbook(io.BytesIO(f.read()), read_only=True).worksheets[0]
    sheet = list(ws.iter_rows(values_only=True))
    assert sheet[0][0] == "机构" and "完整率（%）" in sheet[0]
    assert len(sheet) - 1 == len(shown)

    # down to one institution's completeness rows
    first = up[0]
    page.goto(f"{demo_server.base_url}/ui/")
    page.click(f"#overview tr[data-org='{first}'] td:first-child a")
    page.wait_for_url(f"**/ui/quality/completeness?org_code={first}*")
    assert set(_orgs_shown(page, "completeness")) == {first}
    days = page.eval_on_selector_all("#completeness_days tbody tr", "rows => rows.map(r => r.dataset.day)")
    assert len(days) == 7  # every day of the default week, the ones without uploads too
    shot(page, "supervision-completeness-per-institution")

    page.goto(f"{demo_server.base_url}/ui/quality/timeliness")
    assert page.locator("#timeliness_orgs tbody tr").count() >= 2
    assert page.locator("#timeliness_days tbody tr").count() == 7
    shot(page, "supervision-timeliness-per-institution")
    assert refused == []


def test_hospital_admin_sees_its_own_overview(demo_server: Server, context: Any) -> None:
    page = context.new_page()
    admin = account(demo_server, "admin", 1)
    login(page, demo_server, admin)
    assert page.inner_text("h1") == "监管驾驶舱"
    assert _orgs_shown(page, "overview") == [admin["org_code"]]
    assert page.locator("select[name=org_code]").count() == 0
    shot(page, "supervision-overview-admin")
