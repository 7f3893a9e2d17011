"""Signed REST transport (BJ-1.3/1.4 时间戳、签章、验证、加密、压缩): keys, policy, signatures, nonces.

An institution may register an SM2 public key and choose to require signed (and/or SM4-encrypted)
requests. A signed request carries a timestamp (±300 s of the platform clock), a nonce (never
accepted twice from one institution) and an SM3withSM2 signature over :func:`string_to_sign`.
Exactly what is signed, and the header formats, are in docs/signed-transport.md; the HTTP side is
``huren.api.signing``. Signed report-viewing links are ``huren.services.links``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from huren.context import Clock, Principal
from huren.crypto import b64, sm2, sm4
from huren.crypto.errors import GmError
from huren.domain.records import format_value
from huren.errors import InvalidInput, MalformedBody, NotFound, Problem, TooLarge, Unauthorized
from huren.services import access
from huren.services.audit import AuditService
from huren.store import directory, transport
from huren.store.database import Database
from huren.store.keys import Keyring

log = logging.getLogger("huren.transport")

WINDOW_SECONDS = 300  # replay window: |now - timestamp| ≤ 5 minutes
NONCE_RE = re.compile(r"[A-Za-z0-9_.:+/=-]{16,64}")
POLICY_TTL = 5.0  # seconds a worker process trusts its copy of the key table
PURGE_EVERY = 60.0  # seconds between purges of expired nonces (per process)
#: channels on which the signature policy is enforced without a signature to check
CHANNEL_NAMES = {"page": "以访问令牌打开的页面", "soap": "SOAP 接口"}


@dataclass(frozen=True, slots=True)
class Policy:
    """An institution's registered key and what it requires."""

    org_code: str
    public: sm2.Sm2Public
    require_signature: bool
    require_encryption: bool


def string_to_sign(timestamp: str, nonce: str, method: str, target: str, body: bytes) -> bytes:
    """``timestamp\\nnonce\\nMETHOD\\ntarget\\nsha256hex(body)`` in UTF-8: the header values
    exactly as sent, the path (+ ``?query``) as received, the body bytes exactly as sent."""
    return "\n".join((timestamp, nonce, method.upper(), target, hashlib.sha256(body).hexdigest())).encode()


def sign_headers(
    key: sm2.Sm2Key, method: str, target: str, body: bytes, *, timestamp: str | None = None, nonce: str | None = None
) -> dict[str, str]:
    """The three signature headers for a request (what a hospital's client does)."""
    ts = timestamp if timestamp is not None else str(int(time.time()))
    nc = nonce if nonce is not None else secrets.token_urlsafe(24)
    sig = sm2.sm2_sign(key, string_to_sign(ts, nc, method, target, body))
    return {"X-Huren-Timestamp": ts, "X-Huren-Nonce": nc, "X-Huren-Signature": b64.b64e(sig)}


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress a gzip body (several members allowed), refusing more than ``limit`` bytes of
    output (a zip bomb) without ever producing more than ``limit + 1``."""
    out = bytearray()
    d = zlib.decompressobj(wbits=31)
    buf = data
    try:
        while True:
            out += d.decompress(buf, limit + 1 - len(out))
            if len(out) > limit:
                raise TooLarge(
                    f"解压后的请求体超过上限 {limit} 字节",
                    [Problem("body", "max_size", f"gzip 解压后不能超过 {limit} 字节")],
                )
            if d.eof:
                buf = d.unused_data
                if not buf:
                    return bytes(out)
                d = zlib.decompressobj(wbits=31)
            elif d.unconsumed_tail:
                buf = d.unconsumed_tail
            else:
                raise MalformedBody("gzip 请求体不完整", [Problem("Content-Encoding", "gzip", "gzip 数据被截断")])
    except zlib.error as exc:
        raise MalformedBody("gzip 请求体无法解压", [Problem("Content-Encoding", "gzip", f"gzip 数据无效：{exc}")]) from exc


def _refuse(field: str, rule: str, message: str) -> Unauthorized:
    return Unauthorized(f"请求签名验证失败：{message}", [Problem(field, rule, message)])


class TransportService:
    def __init__(self, db: Database, clock: Clock, audit: AuditService, keys: Keyring) -> None:
        self._db = db
        self._clock = clock
        self._audit = audit
        self._keys = keys
        self._lock = threading.Lock()
        self._policies: dict[str, Policy] = {}
        self._loaded_at = -1e9
        self._purged_at = -1e9

    # -- institutions' keys ----------------------------------------------------------------
    def _target_org(self, principal: Principal, org_code: str | None, action: str = "transport.read") -> str:
        code = org_code or principal.org_code
        with self._db.read() as conn:
            access.check_org(conn, principal, action, code)
        return code

    def refuse_unsigned(self, principal: Principal, channel: str) -> None:
        """The signature / encryption policy on a channel that cannot carry them: an institution
        that requires them is refused. A page opened with an access token carries neither; the
        SOAP profile's parameters are SM4-encrypted (strKey), but nothing in it is signed."""
        pol = self.policy(principal.org_code)
        if pol is None:
            return
        encrypted = channel == "soap"
        if not (pol.require_signature or (pol.require_encryption and not encrypted)):
            return
        what = "签名" if pol.require_signature else "加密"
        self._audit.record(principal, "unsigned_refused", target=channel, read=False)
        raise Unauthorized(
            f"本机构要求{what}请求，{CHANNEL_NAMES.get(channel, channel)}无法携带签名或加密，已拒绝；请使用签名的 REST 接口",
            [Problem("require_signature" if pol.require_signature else "require_encryption", "transport_policy", f"机构 {principal.org_code} 要求每个请求都经过{what}")],
        )

    def put_key(
        self,
        principal: Principal,
        public_key: str,
        *,
        require_signature: bool = False,
        require_encryption: bool = False,
        org_code: str | None = None,
    ) -> dict[str, Any]:
        """Register (or replace) an institution's SM2 public key and its policy."""
        code = self._target_org(principal, org_code, "transport.write")
        try:
            public = sm2.load_public(public_key.strip())
        except GmError as exc:
            raise InvalidInput("SM2公钥无效", [Problem("public_key", "sm2_public_key", str(exc))]) from exc
        now = self._clock.now()
        with self._db.write() as conn:
            if directory.get_org(conn, code) is None:
                raise NotFound(f"机构 {code} 不存在")
            transport.put_key(conn, code, public.hex, require_signature, require_encryption, now)
        self.invalidate()
        self._audit.record(
            principal, "transport_key_set", target=f"{code} sig={int(require_signature)} enc={int(require_encryption)} {public.hex[:18]}…"
        )
        return self.get_key(principal, code, audit=False)

    def get_key(self, principal: Principal, org_code: str | None = None, *, audit: bool = True) -> dict[str, Any]:
        code = self._target_org(principal, org_code)
        with self._db.read() as conn:
            row = transport.get_key(conn, code)
        if row is None:
            raise NotFound(f"机构 {code} 未登记传输公钥")
        if audit:
            self._audit.record(principal, "transport_key_get", target=code)
        return {
            "org_code": code,
            "public_key": row["public_key_hex"],
            "require_signature": bool(row["require_signature"]),
            "require_encryption": bool(row["require_encryption"]),
            "created_at": format_value(row["created_at"]),
            "updated_at": format_value(row["updated_at"]),
            "platform_public_key": self.platform_public_hex(),
        }

    def policy(self, org_code: str) -> Policy | None:
        """The institution's key and policy, from a per-process copy at most POLICY_TTL old."""
        now = time.monotonic()
        if now - self._loaded_at > POLICY_TTL:
            with self._db.read() as conn:
                rows = transport.policies(conn)
            fresh = {}
            for r in rows:
                try:
                    fresh[r["org_code"]] = Policy(
                        r["org_code"], sm2.load_public(r["public_key_hex"]), bool(r["require_signature"]), bool(r["require_encryption"])
                    )
                except GmError:  # stored keys were checked on the way in
                    log.error("unreadable public key stored for %s", r["org_code"])
            with self._lock:
                self._policies, self._loaded_at = fresh, now
        return self._policies.get(org_code)

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = -1e9

    # -- signed requests ---------------------------------------------------------------------
    def parse_timestamp(self, text: str) -> float:
        """Epoch seconds, or ``YYYY-MM-DD hh:mm:ss`` in the platform's time zone."""
        if re.fullmatch(r"\d{1,13}", text):  # 13 digits: milliseconds, refused as out of window
            return float(text)
        try:
            return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=self._clock.tz).timestamp()
        except ValueError:
            raise _refuse("X-Huren-Timestamp", "format", "时间戳应为 Unix 秒数或 YYYY-MM-DD hh:mm:ss") from None

    def verify(
        self, org_code: str, timestamp: str, nonce: str, signature: str, method: str, target: str, body: bytes
    ) -> None:
        """Check one signed request; Unauthorized (with the reason) unless it is good and new."""
        pol = self.policy(org_code)
        if pol is None:
            raise _refuse("X-Huren-Signature", "no_key", f"机构 {org_code} 未登记SM2公钥，无法验证签名")
        if not timestamp or not nonce or not signature:
            missing = [h for h, v in (("X-Huren-Timestamp", timestamp), ("X-Huren-Nonce", nonce), ("X-Huren-Signature", signature)) if not v]
            raise _refuse(missing[0], "required", f"缺少签名头 {', '.join(missing)}")
        ts = self.parse_timestamp(timestamp)
        now = self._clock.time()
        if abs(now - ts) > WINDOW_SECONDS:
            hint = "（应为秒，不是毫秒）" if ts > now + 1e8 else ""
            raise _refuse("X-Huren-Timestamp", "window", f"时间戳与平台时间相差超过 {WINDOW_SECONDS} 秒{hint}")
        if not NONCE_RE.fullmatch(nonce):
            raise _refuse("X-Huren-Nonce", "format", "随机数应为16～64个字母、数字或 _ . : + / = -")
        try:
            sig = b64.b64d(signature)
        except GmError:
            raise _refuse("X-Huren-Signature", "base64", "签名不是合法的Base64") from None
        if not sm2.sm2_verify(pol.public, string_to_sign(timestamp, nonce, method, target, body), sig):
            raise _refuse("X-Huren-Signature", "signature", "SM3withSM2 签名与登记的公钥不符（或请求内容被改动）")
        expires = datetime.fromtimestamp(max(ts, now) + WINDOW_SECONDS + 1, self._clock.tz).replace(tzinfo=None)
        with self._db.write() as conn:
            if time.monotonic() - self._purged_at > PURGE_EVERY:
                self._purged_at = time.monotonic()
                transport.purge_nonces(conn, self._clock.now())
            fresh = transport.use_nonce(conn, org_code, nonce, expires)
        if not fresh:
            raise _refuse("X-Huren-Nonce", "replay", "随机数已使用过（重放的请求）")

    # -- SM4 bodies --------------------------------------------------------------------------
    def platform_public_hex(self) -> str | None:
        """The platform's SM2 public key (04‖x‖y hex) that wraps SM4 keys, if one is configured."""
        return self._keys.platform_public_hex()

    def unwrap(self, key_b64: str) -> bytes:
        """The SM4 key of ``X-Huren-Key`` (SM2-encrypted with the platform's public key, Base64)."""
        if not key_b64.strip():
            raise MalformedBody("缺少 X-Huren-Key", [Problem("X-Huren-Key", "required", "SM4 加密的请求须带 X-Huren-Key")])
        unwrapper = self._keys.unwrapper()  # NotConfigured (the keyring's one message) without a key
        try:
            return unwrapper.unwrap(key_b64)
        except GmError as exc:
            raise MalformedBody(
                "X-Huren-Key 解密失败：应为用平台SM2公钥加密的16字节SM4密钥（Base64）", [Problem("X-Huren-Key", "sm2", str(exc))]
            ) from exc

    @staticmethod
    def decrypt(key: bytes, body: bytes) -> bytes:
        try:
            return sm4.sm4_decrypt(key, body)
        except GmError as exc:
            raise MalformedBody("请求体SM4解密失败", [Problem("body", "sm4", str(exc))]) from exc
