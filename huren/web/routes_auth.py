"""Login, logout and the home page with the menu of the caller's role."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from huren.errors import Unauthorized
from huren.web.render import Caller, caller, codec, container, form_caller, menu_for, page, set_session_cookie
from huren.web.session import COOKIE, LOGIN_CSRF_COOKIE, same

router = APIRouter(include_in_schema=False)


def _safe_next(url: str) -> str:
    """Only a path of our own pages may be the target after login (no open redirect)."""
    if url.startswith("/ui") and not url.startswith("//") and "\\" not in url and "://" not in url:
        return url
    return "/ui/"


@router.get("/ui")
@router.get("/ui/")
async def home(request: Request, who: Annotated[Caller, Depends(caller)]) -> Response:
    return page(request, who, "home.html", groups=menu_for(who.role))


@router.get("/ui/login")
async def login_form(request: Request, next: str = "/ui/") -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    resp = page(request, None, "login.html", next=_safe_next(next), login_csrf=token, error="", org_code="", username="")
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict", path="/ui/login")
    return resp


@router.post("/ui/login")
async def login(
    request: Request,
    org_code: Annotated[str, Form()] = "",
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/ui/",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    target = _safe_next(next)

    def again(msg: str, status: int) -> Response:
        token = cookie or secrets.token_urlsafe(24)
        resp = page(
            request, None, "login.html", status, next=target, login_csrf=token, error=msg,
            org_code=org_code, username=username,
        )
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict", path="/ui/login")
        return resp

    if not same(csrf_token, cookie):
        return again("登录表单已失效，请重新输入后登录", 403)
    if not org_code.strip() or not username.strip() or not password:
        return again("请填写机构编码、用户名和密码", 422)
    c = container(request)
    try:
        principal = c.auth.authenticate(org_code.strip(), username.strip(), password)
    except Unauthorized as exc:
        return again(exc.text(), 401)
    c.audit.record(principal, "web_login")
    resp = RedirectResponse(target, 303)
    sc = codec(request)
    if sc is not None:
        set_session_cookie(request, resp, sc.new(principal))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login")
    return resp


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    await form_caller(request)  # CSRF: nobody else may log the user out
    resp = RedirectResponse("/ui/login", 303)
    resp.delete_cookie(COOKIE, path="/ui")
    return resp
