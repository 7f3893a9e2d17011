"""Authentication: institution credentials (scrypt) → signed access tokens valid 7200 s (XC-P1, HZ-4/8/13).

Every token (and every page session, ``huren.web.session``) carries the credential version of its
user. Disabling the user or its institution, enabling it again, or changing the password bumps
the version in the database (``huren.services.directory``), so what was issued before is refused
on use. Each process checks versions through a bounded cache at most :data:`CHECK_TTL` seconds
stale (changes made by this process drop their entries at once). Failed logins are throttled and
logged by :class:`~huren.services.logins.LoginThrottle`; an unknown user costs the same scrypt
as a known one (a dummy hash is verified).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

from huren.context import Clock, Principal
from huren.crypto.tokens import Signer
from huren.domain import access
from huren.domain.limits import clean_text
from huren.domain.recognition import VISIT_MAX
from huren.errors import InvalidInput, Problem, Unauthorized
from huren.services.audit import AuditService
from huren.services.logins import LoginThrottle
from huren.store import directory
from huren.store.database import Database

#: scrypt cost of new password hashes in production (``Settings.password_hash_n``)
SCRYPT_N = 2**14
CHECK_TTL = 60.0  # seconds a process trusts its copy of an account's version
CHECK_CACHE = 4096
TOKEN_CACHE = 4096  # access tokens whose signature this process checked (AuthService.verify)
BAD_CREDENTIALS = "机构编码、用户名或密码错误"
MAX_NAME = 128  # org_code, username
MAX_PASSWORD = 256


class PasswordHasher:
    """scrypt password hashes (``scrypt$N$r$p$salt$digest``) of a configurable cost. Stored hashes
    are checked at the cost they were made with."""

    def __init__(self, n: int = SCRYPT_N, r: int = 8, p: int = 1) -> None:
        if n < 2 or n & (n - 1):
            raise ValueError("scrypt N must be a power of two, at least 2")
        self.n, self.r, self.p = n, r, p
        self._dummy: str | None = None  # made on first use: building a container costs no scrypt

    def hash(self, password: str) -> str:
        salt = secrets.token_bytes(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, n=self.n, r=self.r, p=self.p, dklen=32)
        return f"scrypt${self.n}${self.r}${self.p}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"

    @staticmethod
    def verify(password: str, stored: str) -> bool:
        try:
            scheme, n, r, p, salt, digest = stored.split("$")
            if scheme != "scrypt":
                return False
            got = hashlib.scrypt(
                password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
            )
        except (ValueError, TypeError):
            return False
        return hmac.compare_digest(got, base64.b64decode(digest))

    def warm(self) -> None:
        """Make the dummy hash (once), before the first login tells known from unknown users."""
        if self._dummy is None:
            self._dummy = self.hash(secrets.token_urlsafe(16))

    def waste(self, password: str) -> None:
        """Spend what verifying a real hash costs (an unknown user answers as slowly as a known one)."""
        self.warm()
        assert self._dummy is not None
        self.verify(password, self._dummy)


@dataclass(frozen=True, slots=True)
class Account:
    """An authenticated user and the credential version its tokens and sessions carry."""

    principal: Principal
    version: int


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    expires_in: int
    principal: Principal


#: a page token's life when the HIS asks for none (seconds); at most ``page_max`` (settings)
PAGE_TTL = 600


def _callback_allowed(url: str, origins: tuple[str, ...]) -> bool:
    """An http(s) URL without credentials or fragment whose origin is one of ``origins``."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        return False
    if u.scheme not in ("http", "https") or not u.hostname or u.username or u.password or u.fragment or any(ch.isspace() for ch in url):
        return False
    return f"{u.scheme}://{u.hostname}{f':{port}' if port else ''}" in origins


@dataclass(frozen=True, slots=True)
class PageGrant:
    """What a page token opens: the doctor pages as this doctor (``principal``: the institution,
    the doctor's code as user name, role ``doctor``), named ``doc_name``; one visit only when
    ``event_no`` is set. ``issuer`` is the hospital system account that minted it."""

    principal: Principal
    doc_name: str
    event_no: str
    issuer: str
    expires: int
    callback: str = ""  # where the browser also posts the pages' message (an allowed HIS origin)

    @property
    def visit(self) -> dict[str, str]:
        """The visit fields the token fixes (they win over what a page's URL or form says)."""
        v = {"doc_code": self.principal.username, "doc_name": self.doc_name}
        return v | ({"event_no": self.event_no} if self.event_no else {})


class AuthService:
    def __init__(
        self,
        db: Database,
        secret: bytes,
        clock: Clock,
        ttl_seconds: int = 7200,
        *,
        audit: AuditService | None = None,
        hasher: PasswordHasher | None = None,
        check_ttl: float = CHECK_TTL,
        page_max: int = 3600,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("token secret must be at least 32 bytes")
        self._db = db
        self._secret = secret
        self._clock = clock
        self.ttl = ttl_seconds
        self.hasher = hasher or PasswordHasher()
        self._audit = audit or AuditService(db, clock)
        self.throttle = LoginThrottle(db, clock, self._audit)
        self._tokens = self.signer("access-token")
        self._pages = self.signer("page-token")  # a purpose of its own: never an access token
        self.page_max = page_max  # the longest a page token may live (Settings.page_token_max_seconds)
        self.check_ttl = check_ttl
        self._states: OrderedDict[tuple[str, str], tuple[tuple[int, str, bool] | None, float]] = OrderedDict()
        self._sessions: OrderedDict[str, tuple[bool, float]] = OrderedDict()
        self._opened: dict[str, tuple[Principal, object, int]] = {}  # token -> (principal, version, expires)
        self._lock = threading.Lock()

    @property
    def secret(self) -> bytes:
        """The platform secret (other signers derive their own keys from it)."""
        return self._secret

    def signer(self, purpose: str) -> Signer:
        """The signed-claims codec of one purpose, under a key derived from the platform secret."""
        return Signer(self._secret, purpose, self._clock.time)

    # -- logging in ----------------------------------------------------------------------------
    def login(
        self, org_code: str, username: str, password: str, *, channel: str = "rest", remote: str | None = None
    ) -> Account:
        """Check an institution's credentials: Unauthorized with one message for every wrong
        account or password, TooMany while the account or address is throttled."""
        # refused before anything is looked up or counted: text no store can hold (NUL, bidi)
        clean_text(org_code, "org_code", "机构编码", MAX_NAME)
        clean_text(username, "username", "用户名", MAX_NAME)
        if len(password) > MAX_PASSWORD:
            raise InvalidInput("密码过长", [Problem("password", "max_length", f"密码（password）不超过{MAX_PASSWORD}个字符")])
        self.hasher.warm()
        counted = self.throttle.check(org_code, username, remote, channel)
        with self._db.read() as conn:
            cred = directory.get_credential(conn, org_code, username)
            state = directory.account_state(conn, org_code, username)  # asked for unknown users too: same cost
        if cred is None or state is None:
            self.hasher.waste(password)
            reason = "unknown"
        elif not self.hasher.verify(password, cred["password_hash"]):
            reason = "password"
        elif not state[2]:
            reason = "disabled"
        else:
            if counted:
                self.throttle.succeeded(org_code, username)
            return Account(Principal(org_code, username, cred["role"], remote), state[0])
        self.throttle.failed(org_code, username, remote, channel, reason)
        if reason == "disabled":
            raise Unauthorized("该账号或其所属机构已停用，请联系平台管理员")
        raise Unauthorized(BAD_CREDENTIALS)

    def authenticate(
        self, org_code: str, username: str, password: str, *, channel: str = "rest", remote: str | None = None
    ) -> Principal:
        return self.login(org_code, username, password, channel=channel, remote=remote).principal

    def issue(self, org_code: str, username: str, password: str, *, remote: str | None = None) -> Token:
        account = self.login(org_code, username, password, channel="rest", remote=remote)
        return Token(self.sign(account), self.ttl, account.principal)

    def account(self, org_code: str, username: str) -> Account:
        """The user as the database has it now (after a change: the version new tokens carry)."""
        self.forget(org_code, username)
        with self._db.read() as conn:
            cred = directory.get_credential(conn, org_code, username)
            state = directory.account_state(conn, org_code, username)
        if cred is None or state is None or not state[2]:
            raise Unauthorized("该账号不存在或已停用")
        return Account(Principal(org_code, username, cred["role"]), state[0])

    # -- access tokens -------------------------------------------------------------------------
    def sign(self, account: Account) -> str:
        p = account.principal
        return self._tokens.sign({"o": p.org_code, "u": p.username, "r": p.role, "v": account.version}, self.ttl)

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; Unauthorized when malformed, forged, expired or revoked.
        A token whose signature was checked once is remembered (exactly that string, until it
        expires, at most TOKEN_CACHE of them): a repeat skips the MAC and the claims' decoding
        only — its expiry and its account's credential version (revocation) are checked on every
        call as for a new one."""
        hit = self._opened.get(token)
        if hit is None:
            hit = self._open_token(token)
        principal, version, expires = hit
        if self._clock.time() >= expires:
            raise Unauthorized("访问令牌已过期，请重新获取（有效期7200秒）")
        if type(version) is not int or not self.current(principal.org_code, principal.username, version):
            raise Unauthorized("访问令牌已失效（账号已停用或密码已修改），请重新获取")
        return principal

    def _open_token(self, token: str) -> tuple[Principal, object, int]:
        """Check a token's signature and decode its claims (Unauthorized when it is none of ours
        or malformed); a good one is remembered for :meth:`verify`."""
        got = self._tokens.open(token)
        if got is None:
            raise Unauthorized("访问令牌无效")
        c = got.claims
        try:
            principal = Principal(str(c["o"]), str(c["u"]), str(c["r"]))
            version = c["v"]
        except KeyError as exc:
            raise Unauthorized("访问令牌格式错误") from exc
        hit = (principal, version, got.expires)
        if not got.expired:
            with self._lock:
                while len(self._opened) >= TOKEN_CACHE:
                    del self._opened[next(iter(self._opened))]  # the oldest first (insertion order)
                self._opened[token] = hit
        return hit

    # -- page tokens (embedding without the doctor's password) ---------------------------------
    def page_token(
        self, issuer: Principal, doc_code: str, doc_name: str, event_no: str = "", ttl: int = PAGE_TTL,
        *, callback: str = "", callback_origins: tuple[str, ...] = (),
    ) -> tuple[str, int]:
        """A short-lived token for the doctor pages of one doctor of the issuer's institution
        (and one visit, if ``event_no``), minted by its system account (``page_token.issue``).
        It carries the issuer's credential version: disabling the account, or its institution, or
        changing its password revokes every page token it minted. Returns (token, seconds)."""
        access.require(issuer, "page_token.issue")
        doc_code = clean_text(doc_code.strip(), "doc_code", "医生编码", VISIT_MAX)
        doc_name = clean_text(doc_name.strip(), "doc_name", "医生姓名", VISIT_MAX)
        event_no = clean_text(event_no.strip(), "event_no", "就诊流水号", VISIT_MAX)
        problems = [Problem(f, "required", f"请填写{label}（{f}）") for f, label, v in (("doc_code", "医生编码", doc_code), ("doc_name", "医生姓名", doc_name)) if not v]
        if not 30 <= ttl <= self.page_max:
            problems.append(Problem("expires_in", "range", f"有效期（expires_in）应在 30 到 {self.page_max} 秒之间"))
        callback = callback.strip()
        if callback and not _callback_allowed(callback, callback_origins):
            problems.append(Problem("callback", "allowed_origin", "回调地址（callback）须为平台配置的 HIS 地址（HUREN_HIS_ORIGINS）下的 http(s) 地址"))
        if problems:
            raise InvalidInput("页面令牌参数有误", problems)
        version = self.version_of(issuer.org_code, issuer.username)
        if version is None:
            raise Unauthorized("该账号不存在或已停用")
        claims = {"o": issuer.org_code, "h": issuer.username, "v": version, "d": doc_code, "n": doc_name, "ev": event_no}
        if callback:
            claims["cb"] = callback
        token = self._pages.sign(claims, ttl)
        self._audit.record(issuer, "page_token_issued", target=f"doctor:{doc_code}" + (f" visit:{event_no}" if event_no else ""))
        return token, ttl

    def page_grant(self, token: str) -> PageGrant | None:
        """What a page token opens; None when ``token`` is no page token at all (an access token,
        a forgery); Unauthorized when it is one that expired or was revoked with its issuer."""
        got = self._pages.open(token)
        if got is None:
            return None
        c = got.claims
        try:
            grant = PageGrant(
                Principal(str(c["o"]), str(c["d"]), "doctor"), str(c["n"]), str(c["ev"]), str(c["h"]), got.expires,
                str(c.get("cb") or ""),
            )
            version = c["v"]
        except KeyError as exc:
            raise Unauthorized("页面令牌格式错误") from exc
        if got.expired:
            raise Unauthorized("页面令牌已过期，请在 HIS 中重新打开")
        if type(version) is not int or not self.current(grant.principal.org_code, grant.issuer, version):
            raise Unauthorized("页面令牌已失效（签发账号已停用或密码已修改）")
        return grant

    # -- revocation ----------------------------------------------------------------------------
    def current(self, org_code: str, username: str, version: int) -> bool:
        """Whether a token or session of this credential version is still good: the user exists,
        it and its institution are enabled, and the version was not bumped (≤ check_ttl stale)."""
        state = self._state(org_code, username)
        return state is not None and state[2] and state[0] == version

    def version_of(self, org_code: str, username: str) -> int | None:
        """The credential version of an enabled user (≤ check_ttl stale), None otherwise."""
        state = self._state(org_code, username)
        return state[0] if state is not None and state[2] else None

    def _state(self, org_code: str, username: str) -> tuple[int, str, bool] | None:
        key = (org_code, username)
        now = time.monotonic()
        with self._lock:
            hit = self._states.get(key)
        if hit is None or hit[1] <= now:
            with self._db.read() as conn:
                state = directory.account_state(conn, org_code, username)
            with self._lock:
                self._states[key] = (state, now + self.check_ttl)
                self._states.move_to_end(key)
                while len(self._states) > CHECK_CACHE:
                    self._states.popitem(last=False)
        else:
            state = hit[0]
        return state

    def forget(self, org_code: str | None = None, username: str | None = None) -> None:
        """Drop cached account states (one user, one institution, or all): called by this
        process's own changes, so they hold here at once."""
        with self._lock:
            for key in list(self._states):
                if (org_code is None or key[0] == org_code) and (username is None or key[1] == username):
                    del self._states[key]

    def end_session(self, nonce: str, expires_at: int) -> None:
        """Revoke a page session on the server (logout): its cookie is refused from now on."""
        with self._db.write() as conn:
            directory.revoke_session(conn, nonce, expires_at, int(self._clock.time()))
        self._remember_session(nonce, True, float("inf"))

    def session_revoked(self, nonce: str) -> bool:
        now = time.monotonic()
        with self._lock:
            hit = self._sessions.get(nonce)
        if hit is not None and hit[1] > now:
            return hit[0]
        with self._db.read() as conn:
            revoked = directory.session_revoked(conn, nonce)
        self._remember_session(nonce, revoked, now + self.check_ttl)
        return revoked

    def _remember_session(self, nonce: str, revoked: bool, until: float) -> None:
        with self._lock:
            self._sessions[nonce] = (revoked, until)
            self._sessions.move_to_end(nonce)
            while len(self._sessions) > CHECK_CACHE:
                self._sessions.popitem(last=False)
