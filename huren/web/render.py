"""Rendering and request plumbing shared by the pages: templates, the caller, menus, errors.

A page's caller is either a logged-in browser session (cookie, CSRF-checked forms) or, for the
widget and panel embedded in a HIS, the doctor's API token passed as ``token`` (query string or
form field): nothing ambient, so no CSRF token is needed, and every link of the page carries it on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from huren import __version__
from huren.context import Principal
from huren.domain import access, labels
from huren.errors import Forbidden, HurenError, InvalidInput, Problem, Unauthorized
from huren.web.backend import DoctorBackend
from huren.web.session import COOKIE, Session, SessionCodec, same

if TYPE_CHECKING:
    from huren.services.container import Container

log = logging.getLogger("huren.web")

HERE = Path(__file__).resolve().parent
TEMPLATES = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(("html", "svg", "js")),
    trim_blocks=True,
    lstrip_blocks=True,
)

ROLE_NAMES = access.ROLE_NAMES
#: who may use which side of the pages: the doctor's side is the recognition workflow, the
#: supervision side the quality views (the one policy, huren.domain.access)
DOCTOR_ROLES = access.roles_for("recognition.read")
SUPERVISION_ROLES = access.roles_for("quality.read")


@dataclass(frozen=True, slots=True)
class MenuItem:
    path: str
    label: str
    roles: tuple[str, ...]
    group: str


MENU: tuple[MenuItem, ...] = (
    MenuItem("/ui/doctor", "患者互认查询", DOCTOR_ROLES, "医生工作台"),
    MenuItem("/ui/embed", "HIS 嵌入说明", ("doctor", "admin", "hospital", "supervisor"), "医生工作台"),
    MenuItem("/ui/overview", "监管驾驶舱", SUPERVISION_ROLES, "质控监管"),
    MenuItem("/ui/quality/completeness", "数据完整性", SUPERVISION_ROLES, "质控监管"),
    MenuItem("/ui/quality/timeliness", "上传及时性", SUPERVISION_ROLES, "质控监管"),
    MenuItem("/ui/quality/rejected", "整改进度", SUPERVISION_ROLES, "质控监管"),
    MenuItem("/ui/stats", "互认统计", SUPERVISION_ROLES, "互认统计"),
    MenuItem("/ui/catalog", "项目目录与编码对照", SUPERVISION_ROLES, "目录维护"),
    MenuItem("/ui/platforms", "平台与同步", access.roles_for("federation.read"), "平台与同步"),
)


def menu_for(role: str) -> list[tuple[str, list[MenuItem]]]:
    groups: dict[str, list[MenuItem]] = {}
    for m in MENU:
        if role in m.roles:
            groups.setdefault(m.group, []).append(m)
    return list(groups.items())


@dataclass(slots=True)
class Caller:
    """Who is asking, and how they authenticated."""

    principal: Principal
    csrf: str = ""  # the session's CSRF token ("" in token mode)
    token: str = ""  # the API or page token the page was opened with ("" in session mode)
    refreshed: Session | None = field(default=None)
    #: visit fields a page token fixes (doctor, and one visit if it names one): they win over
    #: what a page's URL or form says
    pinned: dict[str, str] = field(default_factory=dict)
    #: where the browser also posts the pages' message to the HIS (a page token's, allowed at minting)
    callback: str = ""

    @property
    def role(self) -> str:
        return self.principal.role

    def url(self, path: str, **params: Any) -> str:
        """A link to another page, keeping the token of an embedded page."""
        q = {k: v for k, v in params.items() if v not in (None, "")}
        if self.token:
            q["token"] = self.token
        return f"{path}?{urlencode(q, doseq=True)}" if q else path

    def pin(self, visit: dict[str, str]) -> dict[str, str]:
        """``visit`` with the page token's fixed fields; Forbidden for another visit than the
        one the token was minted for."""
        ev = self.pinned.get("event_no", "")
        if ev and visit.get("event_no") not in ("", None, ev):
            raise Forbidden("该页面令牌只用于一次就诊，不能用于其他就诊", [Problem("event_no", "page_token", "就诊流水号与页面令牌不符")])
        return visit | self.pinned

    def require(self, roles: Iterable[str], what: str = "该页面") -> None:
        if self.principal.role not in tuple(roles):
            raise Forbidden(f"当前账号（{ROLE_NAMES.get(self.principal.role, self.principal.role)}）无权访问{what}")


class LoginRequired(Exception):
    """No valid session: the browser is sent to the login page (then back)."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


def codec(request: Request) -> SessionCodec | None:
    """The session codec; None where pages are only opened with a token (the gateway)."""
    sc: SessionCodec | None = getattr(request.app.state, "web_sessions", None)
    return sc


def backend(request: Request) -> DoctorBackend:
    """Who answers the doctor's pages: the platform's services, or a gateway's preload cache."""
    b: DoctorBackend = request.app.state.doctor_backend
    return b


def _client(request: Request, p: Principal) -> Principal:
    return Principal(p.org_code, p.username, p.role, request.client.host if request.client else None)


def token_caller(request: Request, token: str) -> Caller:
    """The caller of a page opened with a token: a page token minted by the hospital's system
    account (``POST /api/v1/auth/page-token``, the platform only), else the doctor's access token."""
    c: Container | None = getattr(request.app.state, "container", None)
    grant = c.auth.page_grant(token) if c is not None else None
    if grant is not None:
        return Caller(_client(request, grant.principal), token=token, pinned=grant.visit, callback=grant.callback)
    return Caller(_client(request, backend(request).verify_token(token)), token=token)


async def caller(request: Request) -> Caller:
    """The page's caller: ``token`` (query string) first, then the session cookie."""
    token = request.query_params.get("token", "")
    if token:
        return token_caller(request, token)
    sc = codec(request)
    if sc is None:
        raise Unauthorized("缺少页面令牌（token）：请从 HIS 中打开本页面")
    raw = request.cookies.get(COOKIE, "")
    s = sc.decode(raw) if raw else None
    if s is None:
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(nxt)
    return Caller(_client(request, s.principal), csrf=s.csrf, refreshed=sc.touch(s))


async def form_caller(request: Request) -> tuple[Caller, dict[str, Any]]:
    """The caller of a submitted form, and the form (CSRF checked in session mode)."""
    form = await request.form()
    data: dict[str, Any] = {}
    for k, v in form.multi_items():
        data.setdefault(k, []).append(v)
    flat = {k: (v[0] if len(v) == 1 else v) for k, v in data.items()}
    try:
        token = str(flat.get("token") or request.query_params.get("token", ""))
        if token:
            return token_caller(request, token), flat
        c = await caller(request)
        sent = str(flat.get("csrf_token") or request.headers.get("x-csrf-token", ""))
        if not same(sent, c.csrf):
            raise Forbidden("表单已失效（CSRF 校验未通过），请刷新页面后重试", [Problem("csrf_token", "csrf", "缺少或不匹配的表单令牌")])
    except BaseException:
        await form.close()  # a refused form's uploaded files are not kept open
        raise
    return c, flat


def page(request: Request, who: Caller | None, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """Render a page; a sliding session's cookie is re-issued on the way out."""
    html = TEMPLATES.get_template(template).render(
        request=request,
        who=who,
        menu=menu_for(who.role) if who else [],
        role_names=ROLE_NAMES,
        version=__version__,
        **ctx,
    )
    resp = HTMLResponse(html, status)
    if who is not None and who.refreshed is not None:
        set_session_cookie(request, resp, who.refreshed)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    return resp


def set_session_cookie(request: Request, resp: Response, s: Session) -> None:
    sc = codec(request)
    if sc is None:
        return
    resp.set_cookie(
        COOKIE, sc.encode(s), max_age=sc.absolute, httponly=True, samesite="lax", path="/ui",
        secure=request.url.scheme == "https",
    )


WIDGET_PATH = "/ui/widget"


def widget_error(request: Request, status: int, message: str) -> Response:
    """The widget's refusal inside its own 150×34 box: a grey icon whose tooltip says why in
    Chinese (never the platform's top bar or a login page cut off by the HIS's small iframe)."""
    if status == 401 and not message:
        message = "互认提醒暂不可用：缺少页面令牌或令牌无效，请在 HIS 中重新打开本页面"
    elif status >= 500:
        message = "互认提醒暂不可用：平台暂时无法应答，请稍后重试"
    else:
        message = f"互认提醒暂不可用：{message}"
    return page(request, None, "doctor/widget.html", status, title="互认提醒", error=message, count=0, total=0,
                panel_url="", embedded=False)


def error_page(request: Request, status: int, message: str, problems: Sequence[dict[str, str]] = ()) -> Response:
    """A Chinese error page; never a stack trace."""
    if request.url.path == WIDGET_PATH:
        return widget_error(request, status, message)
    if status == 401 and not request.query_params.get("token") and codec(request) is not None:
        return RedirectResponse(f"/ui/login?{urlencode({'next': request.url.path})}", 303)
    titles = {400: "请求有误", 401: "需要登录", 403: "无权访问", 404: "未找到", 409: "数据冲突", 413: "文件过大", 422: "输入有误", 429: "请求过于频繁"}
    return page(
        request, None, "error.html", status,
        # field paths and rule codes as a user reads them (huren.domain.labels)
        title=titles.get(status, "出错了"), message=message, problems=[labels.problem(p) for p in problems], code=status,
    )


def html_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, LoginRequired):
        if request.url.path == WIDGET_PATH:
            return widget_error(request, 401, "")  # no token, no session: not a login page in 150×34
        return RedirectResponse(f"/ui/login?{urlencode({'next': exc.next_url})}", 303)
    if isinstance(exc, HurenError):
        if isinstance(exc, Unauthorized) and request.query_params.get("token"):
            return error_page(request, 401, f"{exc.text()}。请在 HIS 中重新打开本页面。")
        return error_page(request, exc.status, exc.text(), [p.as_dict() for p in exc.problems])
    log.exception("unhandled error on a page", exc_info=exc)
    return error_page(request, 500, "服务器内部错误，请稍后重试；如持续出现请联系平台运维。")


def invalid(field_name: str, rule: str, message: str) -> InvalidInput:
    return InvalidInput(message, [Problem(field_name, rule, message)])
