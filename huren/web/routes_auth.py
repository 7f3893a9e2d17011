"""Login, logout, password change and the home page with the menu of the caller's role."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from huren.errors import HurenError, InvalidInput, TooMany, Unauthorized
from huren.web.render import (
    SUPERVISION_ROLES,
    Caller,
    caller,
    codec,
    container,
    form_caller,
    menu_for,
    page,
    set_session_cookie,
)
from huren.web.routes_overview import overview_page
from huren.web.session import COOKIE, LOGIN_CSRF_COOKIE, same

router = APIRouter(include_in_schema=False)


def _safe_next(url: str) -> str:
    """Only a path of our own pages may be the target after login (no open redirect)."""
    if url.startswith("/ui") and not url.startswith("//") and "\\" not in url and "://" not in url:
        return url
    return "/ui/"


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.get("/ui")
@router.get("/ui/")
async def home(request: Request, who: Annotated[Caller, Depends(caller)]) -> Response:
    """Supervisors and hospital administrators land on the overview (驾驶舱); doctors on their menu."""
    if who.role in SUPERVISION_ROLES and not who.token:
        return await overview_page(request, who, status_home=True)
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

    def again(msg: str, status: int, retry_after: int | None = None) -> Response:
        token = cookie or secrets.token_urlsafe(24)
        resp = page(
            request, None, "login.html", status, next=target, login_csrf=token, error=msg,
            org_code=org_code, username=username,
        )
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict", path="/ui/login")
        if retry_after is not None:
            resp.headers["Retry-After"] = str(retry_after)
        return resp

    if not same(csrf_token, cookie):
        return again("登录表单已失效，请重新输入后登录", 403)
    if not org_code.strip() or not username.strip() or not password:
        return again("请填写机构编码、用户名和密码", 422)
    c = container(request)
    try:
        account = await run_in_threadpool(
            c.auth.login, org_code.strip(), username.strip(), password, channel="web", remote=_remote(request)
        )
    except TooMany as exc:
        return again(exc.text(), 429, exc.retry_after)
    except Unauthorized as exc:
        return again(exc.text(), 401)
    except InvalidInput as exc:  # a control or bidi character, an overlong field: named, never stored
        return again("；".join(p.message for p in exc.problems) or exc.text(), 422)
    c.audit.record(account.principal, "web_login")
    resp = RedirectResponse(target, 303)
    sc = codec(request)
    if sc is not None:
        set_session_cookie(request, resp, sc.new(account.principal, account.version))
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login")
    return resp


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    await form_caller(request)  # CSRF: nobody else may log the user out
    sc = codec(request)
    s = sc.decode(request.cookies.get(COOKIE, "")) if sc is not None else None
    if sc is not None and s is not None:
        await run_in_threadpool(sc.end, s)  # ended on the server: a copied cookie is refused too
    resp = RedirectResponse("/ui/login", 303)
    resp.delete_cookie(COOKIE, path="/ui")
    return resp


@router.get("/ui/password")
async def password_form(request: Request, who: Annotated[Caller, Depends(caller)], done: str = "") -> Response:
    return page(request, who, "password.html", error="", done=done == "1")


@router.post("/ui/password")
async def change_password(request: Request) -> Response:
    """The logged-in user's new password: every other session and token of the user ends."""
    who, form = await form_caller(request)
    old, new, again = (str(form.get(k) or "") for k in ("old_password", "new_password", "new_password2"))
    if who.token:
        return page(request, who, "password.html", 403, error="请登录后再修改密码（页面令牌不能修改密码）", done=False)
    if new != again:
        return page(request, who, "password.html", 422, error="两次输入的新密码（new_password2）不一致", done=False)
    c = container(request)
    p = who.principal
    try:
        await run_in_threadpool(c.auth.login, p.org_code, p.username, old, channel="web", remote=_remote(request))
        await run_in_threadpool(c.directory.set_password, p.org_code, p.username, new)
        account = await run_in_threadpool(c.auth.account, p.org_code, p.username)
    except HurenError as exc:
        if isinstance(exc, Unauthorized):
            msg = "原密码（old_password）错误"
        else:
            msg = "；".join([exc.text(), *(pr.message for pr in exc.problems)])
        return page(request, who, "password.html", exc.status, error=msg, done=False)
    c.audit.record(p, "password_changed", target="web")
    sc = codec(request)
    old_session = sc.decode(request.cookies.get(COOKIE, "")) if sc is not None else None
    resp = RedirectResponse("/ui/password?done=1", 303)
    if sc is not None:
        if old_session is not None:
            await run_in_threadpool(sc.end, old_session)
        set_session_cookie(request, resp, sc.new(account.principal, account.version))
    return resp
