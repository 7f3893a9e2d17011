"""The one error hierarchy of huren, and the ``Problem`` every refusal is made of. Each transport
maps it to its own error form in one place (REST: JSON ``{code, message, problems, rejected_id}``
+ status; SOAP: ``error:原因``; pages: a message).

    HurenError
     ├── InvalidInput          bad input; carries the problems (field, rule, message)
     │    └── MalformedBody     the body is not parseable at all (bad JSON / XML)
     ├── Unauthorized          no, bad or expired credentials / token
     ├── Forbidden             authenticated, but not allowed (another institution's data, a role)
     ├── NotFound              the thing asked for does not exist
     ├── Conflict              the request contradicts stored state (a stale version, a duplicate)
     ├── TooLarge              the request or file is over a size limit
     ├── TooMany               a rate limit or a lock (failed logins, reads per minute)
     ├── UnsupportedEncoding   a Content-Encoding / Content-Type the channel does not take
     ├── LinkExpired           a signed viewing link whose time is up
     ├── NotConfigured         the platform lacks a key or setting the call needs
     ├── StoreUnavailable      the platform's own database could not be reached (restarting, failover)
     ├── PlatformUnavailable   (client side) the platform could not be reached
     └── PlatformRefused       (client side) the platform answered with an error

A refused submission that was kept carries the opaque ref it was kept under (``rejected_id``, made
by ``huren.services.refs.Refs.rejected`` where it is kept — never the store's sequential id), a
field, never text glued to the message; transports render it with :meth:`HurenError.text`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: A refusal carries back at most MAX_TEXT characters per message and MAX_PROBLEMS problems, so
#: no input reaches an error body (REST, SOAP, pages) whole: a 200 MB spreadsheet cell once made
#: a 419 MB error answer. Messages quote input through ``huren.domain.limits.excerpt``; this is
#: the backstop, in the one place every transport's error form is made from.
MAX_TEXT = 500
MAX_PROBLEMS = 200


def _cap(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…（已截断，共{len(text)}个字符）"


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule: the field (as the documents spell it), the rule, a Chinese message."""

    field: str
    rule: str
    message: str

    def __post_init__(self) -> None:
        if len(self.field) > 200 or len(self.message) > MAX_TEXT or len(self.rule) > 64:
            object.__setattr__(self, "field", _cap(self.field, 200))
            object.__setattr__(self, "rule", _cap(self.rule, 64))
            object.__setattr__(self, "message", _cap(self.message))

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


class HurenError(Exception):
    code = "error"
    status = 500

    def __init__(self, message: str, problems: Sequence[Problem] = (), *, rejected_id: str | None = None) -> None:
        message = _cap(message)
        super().__init__(message)
        self.message = message
        self.problems = list(problems)
        if len(self.problems) > MAX_PROBLEMS:
            more = len(self.problems) - MAX_PROBLEMS
            self.problems = [*self.problems[:MAX_PROBLEMS], Problem("", "more", f"另有{more}处问题未列出")]
        self.rejected_id = rejected_id

    def kept(self, rejected_id: str) -> HurenError:
        """Record that the refused submission was kept as rejected submission ``rejected_id`` (its ref)."""
        self.rejected_id = rejected_id
        return self

    def text(self) -> str:
        """The message a person reads, naming the kept submission when there is one."""
        if self.rejected_id is None:
            return self.message
        return f"{self.message}（已保存为被拒提交 #{self.rejected_id}）"


class InvalidInput(HurenError):
    """Raised when a submission breaks a field rule; ``problems`` lists every one."""

    code = "invalid_input"
    status = 422


class MalformedBody(InvalidInput):
    """Raised when a body cannot be parsed (malformed JSON or XML)."""

    code = "malformed_body"
    status = 400


class Unauthorized(HurenError):
    """Raised for missing, wrong or expired credentials or tokens."""

    code = "unauthorized"
    status = 401


class Forbidden(HurenError):
    """Raised when a caller touches what is not its own, or what its role may not do."""

    code = "forbidden"
    status = 403


class NotFound(HurenError):
    """Raised when the report, file or institution asked for does not exist."""

    code = "not_found"
    status = 404


class Conflict(HurenError):
    """Raised when a request contradicts stored state (a stale version, a duplicate code)."""

    code = "conflict"
    status = 409


class TooLarge(HurenError):
    """Raised when a request body or a file is over its size limit."""

    code = "too_large"
    status = 413


class TooMany(HurenError):
    """Raised when a caller is over a rate limit or locked out for a while."""

    code = "too_many"
    status = 429

    def __init__(self, message: str, problems: Sequence[Problem] = (), *, retry_after: int | None = None) -> None:
        super().__init__(message, problems)
        self.retry_after = retry_after


class UnsupportedEncoding(HurenError):
    """Raised for a Content-Encoding or Content-Type the channel does not accept."""

    code = "unsupported_encoding"
    status = 415


class LinkExpired(HurenError):
    """A viewing link whose time is up (its signature is good)."""

    code = "link_expired"
    status = 410


class NotConfigured(HurenError):
    """The platform lacks a key or setting the call needs (e.g. the SM2 key: ``huren keys init``)."""

    code = "not_configured"
    status = 503


class StoreUnavailable(HurenError):
    """The platform's own database could not be reached (restarting, failing over): try again."""

    code = "store_unavailable"
    status = 503


class PlatformUnavailable(HurenError):
    """The platform could not be reached and nothing is cached for the question."""

    code = "platform_unavailable"
    status = 503


class PlatformRefused(HurenError):
    """The platform answered the question with an error (its status, code and problems relayed)."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message", "") if isinstance(body, dict) else str(body)[:200]
        problems = []
        if isinstance(body, dict):
            for p in body.get("problems") or []:
                if isinstance(p, dict):
                    problems.append(Problem(str(p.get("field", "")), str(p.get("rule", "")), str(p.get("message", ""))))
        super().__init__(f"平台拒绝了请求：{message}" if message else f"平台拒绝了请求（HTTP {status}）", problems)
        self.status = status
        self.body = body  # the platform's answer as it came (kept by the gateway's dead letters)
        self.code = str(body.get("code", "platform_error")) if isinstance(body, dict) else "platform_error"
