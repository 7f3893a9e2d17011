"""The login page in a real browser: wrong password refused in Chinese, then the role's menu."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import account, login, shot
from tests.e2e.test_serve import Server


def test_login_then_menu_of_the_role(demo_server: Server, context: Any) -> None:
    page = context.new_page()
    page.goto(f"{demo_server.base_url}/ui/")
    assert "/ui/login" in page.url
    shot(page, "login")
    cred = account(demo_server, "admin")
    page.fill("input[name=org_code]", cred["org_code"])
    page.fill("input[name=username]", cred["username"])
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    assert "机构编码、用户名或密码错误" in page.inner_text(".alert.error")
    login(page, demo_server, cred)
    menu = page.inner_text("nav.sidemenu")
    assert "互认统计" in menu and "数据完整性" in menu
    shot(page, "home-admin")
    page.click("text=退出登录")
    page.wait_for_url("**/ui/login")
