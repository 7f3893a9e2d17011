"""The supervision pages in a real browser against `huren demo`: completeness gaps, rectification,
timeliness, recognition statistics with SVG charts, the catalog with its downloads; reached from
the side menu; a hospital administrator sees only its own institution."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import account, login, shot
from tests.e2e.test_serve import Server


def _orgs(server: Server) -> list[str]:
    return list(dict.fromkeys(c["org_code"] for c in server.demo["credentials"] if c["role"] == "hospital"))


def _menu(page: Any, label: str, path: str) -> None:
    page.click(f"nav.sidemenu a:text-is('{label}')")
    page.wait_for_url(f"**{path}*")
    assert page.inner_text("nav.sidemenu a.active") == label


def test_supervisor_walks_the_supervision_pages(demo_server: Server, context: Any) -> None:
    first, second = _orgs(demo_server)[:2]
    page = context.new_page()
    login(page, demo_server, account(demo_server, "supervisor"))

    # completeness: the first hospital over-declared its last day, the second did not declare it
    _menu(page, "数据完整性", "/ui/quality/completeness")
    assert page.locator(f"#completeness tr.bad[data-org='{first}'] .tag.bad", has_text="不一致").count() >= 1
    assert page.locator(f"#completeness tr.bad[data-org='{second}'] .tag.warn", has_text="未申报").count() >= 1
    assert page.locator(".chart svg").count() == 2  # declared vs received, and the daily 完整率
    shot(page, "supervision-completeness")
    # narrowed to the first hospital
    page.select_option("select[name=org_code]", first)
    page.click("form.filters button[type=submit]")
    page.wait_for_url(f"**org_code={first}*")
    orgs_shown = set(page.eval_on_selector_all("#completeness tbody tr", "rows => rows.map(r => r.dataset.org)"))
    assert orgs_shown == {first}

    # rectification: the demo's two rejected submissions, with their problems, not fixed
    _menu(page, "整改进度", "/ui/quality/rejected")
    rows = page.locator("#rejected tbody tr")
    assert rows.count() == 2
    assert "居民身份证号码校验位错误" in page.inner_text("#rejected")
    assert page.locator("#rejected .tag.bad", has_text="未整改").count() == 2
    with page.expect_download() as dl:
        rows.first.locator("a", has_text="下载").click()
    assert dl.value.suggested_filename.startswith("rejected-")
    shot(page, "supervision-rejected")
    page.check("input[name=only_open]")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**only_open=1*")
    assert page.locator("#rejected tbody tr").count() == 2

    # timeliness: the demo's reports were approved days before they reached the platform
    _menu(page, "上传及时性", "/ui/quality/timeliness")
    assert page.locator("#timeliness tbody tr").count() >= 1
    assert page.locator(".chart svg").count() == 2
    assert int(page.inner_text("[data-kpi=late] .v")) >= 1
    shot(page, "supervision-timeliness")

    # statistics: every grouping, with SVG charts
    _menu(page, "互认统计", "/ui/stats")
    accepted = int(page.inner_text("[data-kpi=accepted] .v"))
    rejected = int(page.inner_text("[data-kpi=rejected] .v"))
    assert accepted > 0 and rejected > 0
    assert int(page.inner_text("[data-kpi=tests_avoided] .v")) == accepted
    shot(page, "supervision-stats-org")
    for by, name in (("dept", "科室"), ("item", "项目"), ("day", "日期"), ("org", "机构")):
        page.select_option("select[name=by]", by)
        page.click("form.filters button[type=submit]")
        page.wait_for_url(f"**by={by}*")
        assert page.locator(".chart svg").count() >= 2, by
        assert f"按{name}明细" in page.inner_text("main")
        assert int(page.inner_text("[data-kpi=accepted] .v")) == accepted
        assert int(page.inner_text("[data-kpi=rejected] .v")) == rejected
        if by in ("day", "item"):
            shot(page, f"supervision-stats-{by}")

    # catalog: the table, a filter, downloads
    _menu(page, "项目目录与编码对照", "/ui/catalog")
    assert page.locator("#catalog tbody tr").count() > 20
    assert page.locator("form[action='/ui/catalog/upload']").count() == 1
    shot(page, "supervision-catalog")
    with page.expect_download() as dl:
        page.click("text=下载目录（Excel）")
    assert dl.value.suggested_filename == "catalog.xlsx"
    with open(dl.value.path(), "rb") as f:
        assert f.read(2) == b"PK"
    with page.expect_download() as dl:
        page.click("text=下载目录（CSV）")
    assert dl.value.suggested_filename == "catalog.csv"
    page.fill("input[name=q]", "葡萄糖")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**q=*")
    assert all("葡萄糖" in t for t in page.locator("#catalog tbody tr td:nth-child(2)").all_inner_texts())


def test_hospital_admin_sees_only_its_own(demo_server: Server, context: Any) -> None:
    first, second = _orgs(demo_server)[:2]
    page = context.new_page()
    login(page, demo_server, account(demo_server, "admin", 1), "/ui/quality/completeness")
    assert page.locator("select[name=org_code]").count() == 0
    shown = set(page.eval_on_selector_all("#completeness tbody tr", "rows => rows.map(r => r.dataset.org)"))
    assert shown == {second}
    assert page.locator("#completeness .tag.warn", has_text="未申报").count() >= 1
    shot(page, "supervision-completeness-admin")

    _menu(page, "整改进度", "/ui/quality/rejected")
    assert "没有被拒绝的提交" in page.inner_text(".empty")  # the demo's rejected ones are the first hospital's
    _menu(page, "上传及时性", "/ui/quality/timeliness")
    assert set(page.eval_on_selector_all("#timeliness tbody tr", "rows => rows.map(r => r.dataset.org)")) <= {second}

    # asking for another institution: a Chinese 403 page
    resp = page.goto(f"{demo_server.base_url}/ui/quality/completeness?org_code={first}")
    assert resp is not None and resp.status == 403
    assert "只能查看本机构的数据" in page.inner_text("main")
    shot(page, "supervision-forbidden")

    page.goto(f"{demo_server.base_url}/ui/catalog")
    assert page.locator("form[action='/ui/catalog/upload']").count() == 0
    assert page.locator("form[action='/ui/catalog/mappings/upload']").count() == 1
    with page.expect_download() as dl:
        page.click("text=下载对照（Excel）")
    assert dl.value.suggested_filename == f"code-map-{second}.xlsx"
    shot(page, "supervision-catalog-admin")


def test_first_hospital_admin_sees_its_mappings_and_rejected(demo_server: Server, context: Any) -> None:
    first = _orgs(demo_server)[0]
    page = context.new_page()
    login(page, demo_server, account(demo_server, "admin", 0), "/ui/catalog")
    assert page.locator("#mappings tbody tr").count() >= 9  # the demo maps nine local codes
    _menu(page, "整改进度", "/ui/quality/rejected")
    assert page.locator("#rejected tbody tr").count() == 2
    assert all(first in t for t in page.locator("#rejected tbody tr td:nth-child(2)").all_inner_texts())
    _menu(page, "互认统计", "/ui/stats")
    assert page.locator(".chart svg").count() >= 2
    shot(page, "supervision-stats-admin")
