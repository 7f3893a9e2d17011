"""REST error form: JSON ``{code, message, problems: [{field, rule, message}]}`` with a fitting status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from huren.api.responses import Json
from huren.domain.limits import excerpt
from huren.errors import HurenError, TooMany, Unauthorized

log = logging.getLogger("huren.api")

_HTTP_MESSAGES = {404: "接口不存在", 405: "不支持该请求方法", 413: "请求体过大"}


def error_body(
    code: str, message: str, problems: list[dict[str, str]] | None = None, rejected_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "problems": problems or []}
    if rejected_id is not None:
        body["rejected_id"] = rejected_id
    return body


def huren_error_body(exc: HurenError) -> dict[str, Any]:
    """The REST error form of a HurenError (the kept submission's ref as a field of its own)."""
    return error_body(exc.code, exc.text(), [p.as_dict() for p in exc.problems], exc.rejected_id)


def validation_problems(exc: RequestValidationError) -> list[dict[str, str]]:
    """The problems of a request that failed FastAPI's parameter validation, each naming its field."""
    problems = []
    for e in exc.errors():
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path", "header")]
        problems.append({"field": excerpt(".".join(loc), 120), "rule": str(e.get("type", "invalid")), "message": _zh(e)})
    return problems


def install(app: FastAPI) -> None:
    """The REST error form on an app (the pages under /ui are a sub-application with their own)."""

    @app.exception_handler(HurenError)
    async def _huren(request: Request, exc: HurenError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        if isinstance(exc, TooMany) and exc.retry_after is not None:
            headers = {"Retry-After": str(exc.retry_after)}
        return Json(huren_error_body(exc), exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return Json(error_body("invalid_input", "请求参数无效", validation_problems(exc)), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        msg = _HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
        return Json(error_body("http_error", msg), exc.status_code)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return Json(error_body("internal_error", "服务器内部错误，请稍后重试"), 500)


def _zh(err: Any) -> str:
    """A Chinese message for one of pydantic's errors, saying the rule (never echoing the input)."""
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "必填参数缺失"
    if kind == "value_error" and ctx.get("error") is not None:
        return excerpt(str(ctx["error"]), 200)  # the domain's own rule (huren.domain.limits), in Chinese
    if kind in ("string_too_long", "too_long"):
        return f"长度不能超过{ctx.get('max_length', '')}" + ("个字符" if kind == "string_too_long" else "项")
    if kind in ("string_too_short", "too_short"):
        return f"长度不能少于{ctx.get('min_length', '')}" + ("个字符" if kind == "string_too_short" else "项")
    if kind == "string_type":
        return "应为文本（不接受数字或布尔值）"
    bounds = {"less_than_equal": ("不能大于", "le"), "less_than": ("应小于", "lt"),
              "greater_than_equal": ("不能小于", "ge"), "greater_than": ("应大于", "gt")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"{words} {ctx.get(key, '')}"
    if "date" in kind or "datetime" in kind:
        return "日期格式无效，应为 YYYY-MM-DD 或 YYYY-MM-DD hh24:mi:ss"
    if "int" in kind:
        return "应为整数"
    if kind == "literal_error":
        return f"应为 {excerpt(str(ctx.get('expected', '')), 80)} 之一"
    return "参数无效"
