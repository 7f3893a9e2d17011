"""The one error hierarchy of huren. Each transport maps it to its own error form in one place
(REST: JSON ``{code, message, problems}`` + status; SOAP: ``error:原因``; pages: a message).

    HurenError
     ├── InvalidInput        bad input; carries the problems (field, rule, message)
 │    └── MalformedBody   the body is not parseable at all (bad JSON / XML)
     ├── Unauthorized        no, bad or expired credentials / token
     ├── Forbidden           authenticated, but not allowed (another institution's data)
     ├── NotFound            the thing asked for does not exist
     ├── Conflict            the request contradicts stored state
     └── TooLarge            the request or file is over a size limit
"""

from __future__ import annotations

from collections.abc import Sequence

from huren.domain.validation import Problem


class HurenError(Exception):
    code = "error"
    status = 500

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems)


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
    """Raised when an institution touches what is not its own."""

    code = "forbidden"
    status = 403


class NotFound(HurenError):
    """Raised when the report, file or institution asked for does not exist."""

    code = "not_found"
    status = 404


class Conflict(HurenError):
    """Raised when a request contradicts stored state (e.g. a duplicate institution code)."""

    code = "conflict"
    status = 409


class TooLarge(HurenError):
    """Raised when a request body or a file is over its size limit."""

    code = "too_large"
    status = 413
