"""The pages under their Content-Security-Policy in a real browser (issue 10 §1.14): no page
the supervisor or a doctor opens makes Chromium refuse a script, a style, a frame or a form, and
the error page's "back" link works without a ``javascript:`` URL."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import account, login
from tests.e2e.test_serve import Server


def _watch(page: Any) -> list[str]:
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    return refused


def test_supervision_pages_keep_their_policy(demo_server: Server, context: Any) -> None:
    page = context.new_page()
    refused = _watch(page)
    login(page, demo_server, account(demo_server, "supervisor"))
    for path in ("/ui/", "/ui/quality/completeness", "/ui/quality/timeliness", "/ui/quality/rejected", "/ui/stats", "/ui/catalog"):
        r = page.goto(f"{demo_server.base_url}{path}")
        assert r is not None and r.status == 200, path
        assert "frame-ancestors 'self'" in (r.headers.get("content-security-policy") or ""), path
    assert refused == []


def test_error_page_back_link_without_javascript_url(demo_server: Server, context: Any) -> None:
    page = context.new_page()
    refused = _watch(page)
    login(page, demo_server, account(demo_server, "supervisor"))
    page.goto(f"{demo_server.base_url}/ui/quality/completeness?day_to=0001-01-01")
    assert "2099-12-31" in page.inner_text("main")  # the domain's date bounds, said on the page
    page.goto(f"{demo_server.base_url}/ui/stats")
    r = page.goto(f"{demo_server.base_url}/ui/quality/rejected/{2**63}/payload")
    assert r is not None and 400 <= r.status < 500
    page.click("a[data-back]")
    page.wait_for_url("**/ui/stats")
    assert refused == []
