"""Authentication: institution credentials (scrypt) → signed access tokens valid 7200 s (XC-P1, HZ-4/8/13)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from huren.context import Clock, Principal
from huren.crypto import b64url
from huren.errors import Unauthorized
from huren.store import directory
from huren.store.database import Database

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
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


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    expires_in: int
    principal: Principal


class AuthService:
    def __init__(self, db: Database, secret: bytes, clock: Clock, ttl_seconds: int = 7200) -> None:
        if len(secret) < 32:
            raise ValueError("token secret must be at least 32 bytes")
        self._db = db
        self._secret = secret
        self._clock = clock
        self.ttl = ttl_seconds

    @property
    def secret(self) -> bytes:
        """The platform secret (other signers derive their own keys from it)."""
        return self._secret

    def authenticate(self, org_code: str, username: str, password: str) -> Principal:
        """Check an institution's credentials; Unauthorized with one message for every failure."""
        with self._db.read() as conn:
            cred = directory.get_credential(conn, org_code, username)
        if cred is None or not verify_password(password, cred["password_hash"]):
            raise Unauthorized("机构编码、用户名或密码错误")
        return Principal(org_code, username, cred["role"])

    def issue(self, org_code: str, username: str, password: str) -> Token:
        principal = self.authenticate(org_code, username, password)
        return Token(self.sign(principal), self.ttl, principal)

    def sign(self, principal: Principal) -> str:
        exp = int(self._clock.time()) + self.ttl
        body = b64url.encode(
            json.dumps(
                {"o": principal.org_code, "u": principal.username, "r": principal.role, "e": exp},
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode()
        )
        mac = b64url.encode(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
        return f"{body}.{mac}"

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; Unauthorized when malformed, forged or expired."""
        try:
            body, mac = token.split(".")
            want = hmac.new(self._secret, body.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(want, b64url.decode(mac)):
                raise Unauthorized("访问令牌无效")
            claims = json.loads(b64url.decode(body))
            exp = int(claims["e"])
            principal = Principal(str(claims["o"]), str(claims["u"]), str(claims["r"]))
        except Unauthorized:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise Unauthorized("访问令牌格式错误") from exc
        if self._clock.time() >= exp:
            raise Unauthorized("访问令牌已过期，请重新获取（有效期7200秒）")
        return principal
