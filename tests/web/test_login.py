"""Pages: login with roles, sessions that expire, CSRF on forms, errors as Chinese pages."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from huren.services.container import Container
from tests.conftest import ORG_A, SUPERVISOR


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def web_login(client: TestClient, org: tuple[str, ...], *, next_url: str = "/ui/") -> str:
    """Log in through the form; the session CSRF token of the landing page."""
    r = client.get("/ui/login")
    assert r.status_code == 200
    r = client.post(
        "/ui/login",
        data={"org_code": org[0], "username": org[4], "password": org[5], "csrf_token": _csrf(r.text), "next": next_url},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == next_url
    page = client.get(next_url)
    assert page.status_code == 200
    return _csrf(page.text)


def test_pages_need_login_and_come_back(client: TestClient) -> None:
    r = client.get("/ui/?tab=1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2F%3Ftab%3D1"


def test_login_wrong_password_is_shown_in_chinese(client: TestClient) -> None:
    r = client.get("/ui/login")
    r = client.post("/ui/login", data={"org_code": ORG_A[0], "username": ORG_A[4], "password": "x", "csrf_token": _csrf(r.text)})
    assert r.status_code == 401
    assert "机构编码、用户名或密码错误" in r.text
    assert "huren_session" not in r.headers.get("set-cookie", "")


def test_login_form_needs_its_csrf_cookie(client: TestClient) -> None:
    r = client.post("/ui/login", data={"org_code": ORG_A[0], "username": ORG_A[4], "password": ORG_A[5], "csrf_token": "forged"})
    assert r.status_code == 403
    assert "登录表单已失效" in r.text


def test_open_redirect_after_login_is_refused(client: TestClient) -> None:
    r = client.get("/ui/login?next=https://evil.example/")
    assert 'value="/ui/"' in r.text


def test_home_menu_follows_the_role(client: TestClient) -> None:
    web_login(client, SUPERVISOR)
    home = client.get("/ui/").text
    assert "互认统计" in home and "数据完整性" in home
    assert "患者互认查询" not in home  # supervisors make no clinical decisions


def test_logout_needs_csrf_then_ends_the_session(client: TestClient) -> None:
    csrf = web_login(client, ORG_A)
    r = client.post("/ui/logout", data={"csrf_token": "wrong"}, follow_redirects=False)
    assert r.status_code == 403
    assert "CSRF" in r.text
    r = client.post("/ui/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.clear()
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_session_expires_when_idle(client: TestClient, container: Container) -> None:
    web_login(client, ORG_A)
    assert client.get("/ui/", follow_redirects=False).status_code == 200
    container.clock.offset += container.settings.web_session_idle_seconds + 1
    try:
        assert client.get("/ui/", follow_redirects=False).status_code == 303
    finally:
        container.clock.offset = 0


def test_forged_session_cookie_is_ignored(client: TestClient) -> None:
    client.cookies.set("huren_session", "eyJvIjoiNjUwMTAwMDAwIiwidSI6ImFkbWluIiwiciI6InN1cGVydmlzb3IifQ.AAAA", path="/ui")
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_unknown_page_is_a_chinese_page(client: TestClient) -> None:
    r = client.get("/ui/nope")
    assert r.status_code == 404
    assert "页面不存在" in r.text and "Traceback" not in r.text


@pytest.mark.parametrize("path", ["/ui/login", "/ui/static/huren.css", "/ui/static/huren.js"])
def test_public_assets(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


def test_logout_ends_the_session_on_the_server(client: TestClient) -> None:
    """A copy of the cookie (another tab, a stolen value) is refused after logout (§1.5)."""
    csrf = web_login(client, ORG_A)
    cookie = client.cookies.get("huren_session")
    assert cookie
    r = client.post("/ui/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.clear()
    client.cookies.set("huren_session", cookie, path="/ui")
    r = client.get("/ui/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def test_session_ends_when_the_user_or_org_is_disabled(client: TestClient, container: Container) -> None:
    web_login(client, ORG_A)
    assert client.get("/ui/", follow_redirects=False).status_code == 200
    container.directory.set_user_disabled(ORG_A[0], ORG_A[4], True)
    assert client.get("/ui/", follow_redirects=False).status_code == 303
    container.directory.set_user_disabled(ORG_A[0], ORG_A[4], False)
    assert client.get("/ui/", follow_redirects=False).status_code == 303  # the old session stays dead
    web_login(client, ORG_A)
    container.directory.set_org_disabled(ORG_A[0], True)
    assert client.get("/ui/", follow_redirects=False).status_code == 303
    r = client.get("/ui/login")
    r = client.post("/ui/login", data={"org_code": ORG_A[0], "username": ORG_A[4], "password": ORG_A[5], "csrf_token": _csrf(r.text)})
    assert r.status_code == 401 and "已停用" in r.text


def test_login_page_throttles_wrong_passwords(client: TestClient, container: Container) -> None:
    token = _csrf(client.get("/ui/login").text)
    for _ in range(5):
        r = client.post("/ui/login", data={"org_code": ORG_A[0], "username": ORG_A[4], "password": "wrong-pass", "csrf_token": token})
        assert r.status_code == 401
    r = client.post("/ui/login", data={"org_code": ORG_A[0], "username": ORG_A[4], "password": ORG_A[5], "csrf_token": token})
    assert r.status_code == 429 and "登录失败次数过多" in r.text and r.headers["retry-after"] == "2"
    assert "huren_session" not in r.headers.get("set-cookie", "")
    from sqlalchemy import select

    from huren.store.tables import access_log

    with container.db.read() as conn:
        targets = [t for (t,) in conn.execute(select(access_log.c.target).where(access_log.c.action == "login_failed"))]
    assert targets == ["web:password"] * 5


def test_password_change_page(client: TestClient, container: Container) -> None:
    csrf = web_login(client, ORG_A)
    old_cookie = client.cookies.get("huren_session")
    assert 'href="/ui/password"' in client.get("/ui/").text  # reachable from every page
    page = client.get("/ui/password")
    assert page.status_code == 200 and "原密码" in page.text
    form = {"csrf_token": csrf, "old_password": "wrong-password", "new_password": "a-new-password", "new_password2": "a-new-password"}
    r = client.post("/ui/password", data=form)
    assert r.status_code == 401 and "原密码（old_password）错误" in r.text
    r = client.post("/ui/password", data=form | {"old_password": ORG_A[5], "new_password2": "something-else"})
    assert r.status_code == 422 and "new_password2" in r.text
    r = client.post("/ui/password", data=form | {"old_password": ORG_A[5], "new_password": "short", "new_password2": "short"})
    assert r.status_code == 422 and "密码至少8个字符" in r.text
    r = client.post("/ui/password", data=form | {"old_password": ORG_A[5]}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/password?done=1"
    assert "密码已修改" in client.get("/ui/password?done=1").text  # the new session cookie works
    client.cookies.clear()
    client.cookies.set("huren_session", old_cookie or "", path="/ui")  # the session from before does not
    assert client.get("/ui/", follow_redirects=False).status_code == 303
    client.cookies.clear()
    web_login(client, (*ORG_A[:5], "a-new-password"))
    assert container.auth.authenticate(ORG_A[0], ORG_A[4], "a-new-password").org_code == ORG_A[0]
