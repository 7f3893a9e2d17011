"""Browser sessions for the pages: a signed cookie that expires, revocable on the server, and CSRF tokens.

A session cookie holds the caller (institution, user, role), the user's credential version, a
random nonce, a random CSRF token, when it was issued and when it was last used, signed by the
one signed-claims codec (``huren.crypto.tokens``, purpose ``web-session``: a session cookie is
never an access token nor a link). It expires after ``idle`` seconds without use and ``absolute``
seconds after login, whichever comes first; each use slides the idle window (the cookie is
re-issued at most once a minute). It is refused on use when its nonce was revoked (logout ends
the session on the server, not just in the browser) or its credential version is no longer the
user's (the user or institution disabled, the password changed) — see ``AuthService``.

Forms carry the session's CSRF token (hidden field ``csrf_token``; scripts send ``X-CSRF-Token``)
and every state-changing request checks it. The login form, before any session exists, uses a
double-submit cookie (``huren_login_csrf``) instead.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Protocol

from huren.context import Clock, Principal
from huren.crypto.tokens import Signer

COOKIE = "huren_session"
LOGIN_CSRF_COOKIE = "huren_login_csrf"


class Guard(Protocol):
    """Who says whether a session still holds (``AuthService``)."""

    def current(self, org_code: str, username: str, version: int) -> bool: ...

    def session_revoked(self, nonce: str) -> bool: ...

    def end_session(self, nonce: str, expires_at: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf: str
    issued: int
    last: int
    version: int = 0
    nonce: str = ""


class SessionCodec:
    def __init__(
        self, secret: bytes, clock: Clock, *, idle: int = 1800, absolute: int = 8 * 3600, guard: Guard | None = None
    ) -> None:
        self._signer = Signer(secret, "web-session", clock.time)
        self._clock = clock
        self._guard = guard
        self.idle = idle
        self.absolute = absolute

    def new(self, principal: Principal, version: int = 0) -> Session:
        now = int(self._clock.time())
        return Session(principal, secrets.token_urlsafe(24), now, now, version, secrets.token_urlsafe(18))

    def encode(self, s: Session) -> str:
        p = s.principal
        claims = {"o": p.org_code, "u": p.username, "r": p.role, "c": s.csrf, "i": s.issued, "l": s.last, "v": s.version, "n": s.nonce}
        return self._signer.sign_until(claims, s.issued + self.absolute)

    def decode(self, value: str) -> Session | None:
        """The session of a cookie value, or None when forged, malformed, expired or revoked."""
        got = self._signer.open(value)
        if got is None or got.expired:
            return None
        c = got.claims
        try:
            s = Session(
                Principal(str(c["o"]), str(c["u"]), str(c["r"])), str(c["c"]), int(c["i"]), int(c["l"]),
                int(c["v"]), str(c["n"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        now = int(self._clock.time())
        if now - s.last >= self.idle or now - s.issued >= self.absolute or s.last > now + 60:
            return None
        if self._guard is not None and (
            not s.nonce
            or self._guard.session_revoked(s.nonce)
            or not self._guard.current(s.principal.org_code, s.principal.username, s.version)
        ):
            return None
        return s

    def end(self, s: Session) -> None:
        """Logout: the session is refused from now on, wherever its cookie is replayed."""
        if self._guard is not None and s.nonce:
            self._guard.end_session(s.nonce, s.issued + self.absolute)

    def touch(self, s: Session) -> Session | None:
        """The session with its idle window slid forward, when worth re-issuing (once a minute)."""
        now = int(self._clock.time())
        if now - s.last < 60:
            return None
        return Session(s.principal, s.csrf, s.issued, now, s.version, s.nonce)


def same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())
