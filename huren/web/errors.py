"""The pages' own error form: Chinese HTML pages (never JSON, never a stack trace), installed on the
pages' sub-application, so the REST handlers never look at the path."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from huren.api.errors import validation_problems
from huren.errors import HurenError
from huren.web.render import LoginRequired, error_page, html_error

_HTTP_MESSAGES = {404: "页面不存在", 405: "不支持该请求方法", 413: "请求体过大"}


def install(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return html_error(request, exc)

    @app.exception_handler(HurenError)
    async def _huren(request: Request, exc: HurenError) -> Response:
        return html_error(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return error_page(request, 422, "请求参数无效", validation_problems(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return error_page(request, exc.status_code, _HTTP_MESSAGES.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        return html_error(request, exc)
