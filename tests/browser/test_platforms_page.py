"""The page 「平台与同步」 in a real browser against `huren demo` (issue 13): the regional supervisor
sees the tree (the region, the two virtual cities hosted here, the real city with its own
deployment) and the real city's sync alerts; a city supervisor only its city; the statistics page
groups by platform. Nothing is refused by the CSP. Screenshots of each."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import login, shot
from tests.e2e.test_serve import Server

REGION_SUPERVISOR, CHANGJI_SUPERVISOR = "650000000", "652300000"


def _supervisor(server: Server, org_code: str) -> dict[str, str]:
    return next(dict(c) for c in server.demo["credentials"] if c["role"] == "supervisor" and c["org_code"] == org_code)


def _tree(page: Any) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = page.eval_on_selector_all(
        "#platform-tree tbody tr", "rows => rows.map(r => [r.dataset.platform, r.dataset.level, r.dataset.virtual, r.dataset.local])"
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_the_regional_supervisor_sees_the_tree_and_an_alert(demo_server: Server, context: Any) -> None:
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    login(page, demo_server, _supervisor(demo_server, REGION_SUPERVISOR))
    page.click("nav.sidemenu a:text-is('平台与同步')")
    page.wait_for_url("**/ui/platforms")
    assert page.inner_text("h1") == "平台与同步"
    assert _tree(page) == [
        ("XJ", "region", "false", "true"),
        ("XJ-6501", "city", "true", "true"),
        ("XJ-6502", "city", "false", "false"),
        ("XJ-6523", "city", "true", "true"),
    ]
    assert page.locator("#platform-tree tr[data-platform=XJ-6523] summary").inner_text() == "4 家机构"  # three hospitals and the health commission
    gap = page.locator("#sync-alerts [data-alert=gap][data-platform=XJ-6502]")
    assert gap.is_visible() and "克拉玛依市平台：检测到 1 次变更序号缺口" in gap.inner_text()
    silent = page.locator("#sync-alerts [data-alert=silent]")
    assert silent.is_visible() and "积压 53 条" in silent.inner_text()
    assert page.locator("#sync-peers tr[data-platform=XJ-6502] td[data-col=backlog]").inner_text().startswith("53")
    shot(page, "platforms-region")

    # statistics grouped by platform: a row per city within reach
    page.goto(f"{demo_server.base_url}/ui/stats?by=platform")
    keys = page.eval_on_selector_all("#stats tbody tr", "rows => rows.map(r => r.dataset.key)")
    assert keys == ["XJ-6501", "XJ-6502", "XJ-6523", "XJ"]
    shot(page, "stats-by-platform")
    assert refused == []


def test_a_city_supervisor_sees_its_city_only(demo_server: Server, context: Any) -> None:
    page = context.new_page()
    login(page, demo_server, _supervisor(demo_server, CHANGJI_SUPERVISOR), "/ui/platforms")
    assert _tree(page) == [("XJ-6523", "city", "true", "true")]
    assert page.locator("#sync-alerts").count() == 0 and "乌鲁木齐" not in page.inner_text("#platform-tree")
    page.goto(f"{demo_server.base_url}/ui/quality/completeness")
    plats = page.eval_on_selector_all("#completeness_platforms tbody tr", "rows => rows.map(r => r.dataset.platform)")
    assert plats == ["XJ-6523"]
    shot(page, "platforms-city")
