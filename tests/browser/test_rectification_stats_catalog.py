"""Issue 11 items 9–11 in Chromium: the rectification workflow (plain words, deadline, seen by the
hospital), the statistics (situations, cost, n by the trend points) and the catalog edited in the
page and the unmapped local codes; screenshots under test-artifacts/screenshots/."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.conftest import Server, account, login, shot


def _fresh(context: Any) -> Any:
    context.clear_cookies()
    return context.new_page()


def test_rectification_workflow_in_the_browser(demo_server: Server, context: Any) -> None:
    page = _fresh(context)
    login(page, demo_server, account(demo_server, "supervisor"), "/ui/quality/rejected")
    table = page.inner_text("#rejected")
    assert "报告单号" in table or "患者" in table or "检查检验日报" in table
    assert not re.search(r"[a-z_]+\.[a-z_]+", table), table  # no field path
    assert not re.search(r"\b(dictionary|required|id_checksum|format)\b", table)  # no rule code
    assert page.locator("#rejected tbody tr[data-seen='0']").count() == 2
    assert page.locator("#rejected [data-deadline]").count() == 2
    shot(page, "rectification-unseen")

    page = _fresh(context)
    login(page, demo_server, account(demo_server, "admin", 0), "/ui/quality/rejected")
    assert page.locator("#rejected tbody tr").count() == 2  # its own open items
    shot(page, "rectification-hospital")

    page = _fresh(context)
    login(page, demo_server, account(demo_server, "supervisor"), "/ui/quality/rejected")
    assert page.locator("#rejected tbody tr[data-seen='1']").count() == 2
    assert page.inner_text("[data-kpi=unseen] .v") == "0"
    shot(page, "rectification-seen")


def test_statistics_and_catalog_edit_in_the_browser(demo_server: Server, context: Any) -> None:
    page = _fresh(context)
    login(page, demo_server, account(demo_server, "supervisor"), "/ui/stats?by=item")
    rejected = int(page.inner_text("[data-kpi=rejected] .v"))
    cells = page.locator("#stats_situations td[data-situation]").all_inner_texts()
    assert len(cells) == 6 and sum(map(int, cells)) == rejected
    assert page.locator("text.point-note").count() >= 1  # n beside the trend points
    assert int(page.inner_text("[data-kpi=reminders] .v")) > 0  # grouped by item, the cards keep their meaning
    shot(page, "stats-situations-item")

    # edit one item in the page: saved, said, in the log
    page.goto(f"{demo_server.base_url}/ui/catalog?q=250301002")
    page.click("#catalog a:has-text('修改')")
    page.wait_for_selector("#edit-item")
    page.fill("#edit-item input[name=validity_days]", "21")
    page.fill("#edit-item input[name=fee]", "9.5")
    shot(page, "catalog-edit-form")
    page.click("#edit-item button[type=submit]")
    page.wait_for_selector(".alert.ok")
    assert "有效天数" in page.inner_text(".alert.ok") and "→ 21" in page.inner_text(".alert.ok")
    assert "9.50" in page.inner_text("#catalog")
    shot(page, "catalog-edit-saved")

    page = _fresh(context)
    login(page, demo_server, account(demo_server, "admin", 0), "/ui/catalog")
    assert page.locator("#unmapped, #unmapped-empty").count() == 1
    assert page.locator("#catalog a:has-text('修改')").count() == 0
    shot(page, "catalog-unmapped-admin")


def test_catalog_edit_form_fits_at_1280_and_1024(demo_server: Server, context: Any) -> None:
    """The edit form of one item: its fields at their own width (not a full-width input each),
    nothing past the right edge of the window at 1280 and at 1024 CSS px."""
    page = _fresh(context)
    login(page, demo_server, account(demo_server, "supervisor"), "/ui/catalog")
    page.goto(f"{demo_server.base_url}/ui/catalog?edit=lab:250301002&q=250301002")
    page.wait_for_selector("#edit-item")
    for width in (1280, 1024):
        page.set_viewport_size({"width": width, "height": 800})
        form = page.locator("#edit-item").bounding_box()
        assert form is not None
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), width
        for name in ("validity_days", "fee", "region_scope", "min_level"):
            box = page.locator(f"#edit-item [name={name}]").bounding_box()
            assert box is not None and box["x"] + box["width"] <= form["x"] + form["width"] + 0.5, (width, name)
            assert box["width"] < form["width"] / 2, (width, name)  # not full width
        # the first fields share one line
        days = page.locator("#edit-item [name=validity_days]").bounding_box()
        level = page.locator("#edit-item [name=min_level]").bounding_box()
        assert days is not None and level is not None and abs(days["y"] - level["y"]) < 20, width
        shot(page, f"catalog-edit-form-{width}")
