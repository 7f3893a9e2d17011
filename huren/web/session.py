"""Browser sessions for the pages: a signed cookie that expires, and CSRF tokens.

A session cookie holds the caller (institution, user, role), a random CSRF token, when it was
issued and when it was last used, signed with HMAC-SHA256 under the platform's token secret. It
expires after ``idle`` seconds without use and ``absolute`` seconds after login, whichever comes
first; each use slides the idle window (the cookie is re-issued at most once a minute).

Forms carry the session's CSRF token (hidden field ``csrf_token``; scripts send ``X-CSRF-Token``)
and every state-changing request checks it. The login form, before any session exists, uses a
double-submit cookie (``huren_login_csrf``) instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from huren.context import Clock, Principal
from huren.crypto import b64url

COOKIE = "huren_session"
LOGIN_CSRF_COOKIE = "huren_login_csrf"


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf: str
    issued: int
    last: int


class SessionCodec:
    def __init__(self, secret: bytes, clock: Clock, *, idle: int = 1800, absolute: int = 8 * 3600) -> None:
        # a key of its own, derived from the platform secret: a session cookie is never a token
        self._key = hmac.new(secret, b"huren web session v1", hashlib.sha256).digest()
        self._clock = clock
        self.idle = idle
        self.absolute = absolute

    def new(self, principal: Principal) -> Session:
        now = int(self._clock.time())
        return Session(principal, secrets.token_urlsafe(24), now, now)

    def encode(self, s: Session) -> str:
        p = s.principal
        body = b64url.encode(
            json.dumps(
                {"o": p.org_code, "u": p.username, "r": p.role, "c": s.csrf, "i": s.issued, "l": s.last},
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode()
        )
        return f"{body}.{b64url.encode(hmac.new(self._key, body.encode(), hashlib.sha256).digest())}"

    def decode(self, value: str) -> Session | None:
        """The session of a cookie value, or None when forged, malformed or expired."""
        try:
            body, mac = value.split(".")
            want = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(want, b64url.decode(mac)):
                return None
            c = json.loads(b64url.decode(body))
            s = Session(Principal(str(c["o"]), str(c["u"]), str(c["r"])), str(c["c"]), int(c["i"]), int(c["l"]))
        except (ValueError, KeyError, TypeError):
            return None
        now = int(self._clock.time())
        if now - s.last >= self.idle or now - s.issued >= self.absolute or s.last > now + 60:
            return None
        return s

    def touch(self, s: Session) -> Session | None:
        """The session with its idle window slid forward, when worth re-issuing (once a minute)."""
        now = int(self._clock.time())
        if now - s.last < 60:
            return None
        return Session(s.principal, s.csrf, s.issued, now)


def same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())
