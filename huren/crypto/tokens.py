"""The one signed-claims codec: access tokens, page sessions, report-viewing links (next: imaging keys).

A signed value is ``<body>.<mac>``: ``body`` is the unpadded URL-safe Base64 (RFC 4648 §5) of a
compact JSON object of claims, ``mac`` the unpadded URL-safe Base64 of HMAC-SHA256 over the
ASCII ``body`` under a key of its own purpose, derived from the platform secret::

    key(purpose) = HMAC-SHA256(secret, "huren/claims/v1/" + purpose)

so a session is never a token, a link never either, whatever their claims say. Every value
carries its expiry (claim ``e``, epoch seconds).

:meth:`Signer.open` refuses, before it looks at any claim, anything not in the one canonical
encoding: padding (``=``), characters outside the URL-safe alphabet, Base64 whose unused trailing
bits are not zero (so ``…AB`` and ``…AA`` cannot both be "the same" signature), a MAC of the wrong
length, a value longer than :data:`MAX_LENGTH`. The MAC is compared in constant time; the claims
are parsed only after it matched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from huren.crypto import b64url

MAX_LENGTH = 4096
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
_MAC_CHARS = 43  # 32 bytes, unpadded
_RESERVED = ("e",)


@dataclass(frozen=True, slots=True)
class Opened:
    """The claims of a value whose signature is good; ``expired`` when its time is up."""

    claims: dict[str, Any]
    expires: int
    expired: bool


def derive_key(secret: bytes, purpose: str) -> bytes:
    """The key of one purpose (``"access-token"``, ``"web-session"``, ``"report-link"``, …)."""
    if not purpose or not purpose.isascii():
        raise ValueError("purpose must be a non-empty ASCII name")
    return hmac.new(secret, f"huren/claims/v1/{purpose}".encode(), hashlib.sha256).digest()


def _canonical_b64(text: str) -> bytes | None:
    """The bytes of canonical unpadded URL-safe Base64 text, else None (padding, foreign
    characters, non-zero trailing bits, an impossible length)."""
    if not text or not _ALPHABET.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        raw = b64url.decode(text)
    except ValueError:
        return None
    return raw if b64url.encode(raw) == text else None


class Signer:
    """Signs and opens claims for one purpose. ``now`` gives epoch seconds (a ``Clock.time``)."""

    def __init__(self, secret: bytes, purpose: str, now: Callable[[], float]) -> None:
        if len(secret) < 32:
            raise ValueError("the signing secret must be at least 32 bytes")
        self.purpose = purpose
        self._key = derive_key(secret, purpose)
        self._now = now

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()

    def sign(self, claims: Mapping[str, Any], ttl_seconds: int) -> str:
        """A signed value of ``claims`` that expires ``ttl_seconds`` from now."""
        if any(k in claims for k in _RESERVED):
            raise ValueError(f"claims may not set {_RESERVED}")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        return self.sign_until(claims, int(self._now()) + ttl_seconds)

    def sign_until(self, claims: Mapping[str, Any], expires: int) -> str:
        payload = {**claims, "e": int(expires)}
        body = b64url.encode(json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode())
        return f"{body}.{b64url.encode(self._mac(body))}"

    def open(self, value: str) -> Opened | None:
        """The claims of a value signed for this purpose, or None when forged, damaged, signed
        for another purpose or not canonically encoded. Expiry is reported, not refused: the
        caller decides what an expired value means (a link answers 410, a token 401)."""
        if not isinstance(value, str) or len(value) > MAX_LENGTH or value.count(".") != 1:
            return None
        body, mac_text = value.split(".")
        if len(mac_text) != _MAC_CHARS:
            return None
        mac = _canonical_b64(mac_text)
        raw = _canonical_b64(body)
        if mac is None or raw is None or not hmac.compare_digest(self._mac(body), mac):
            return None
        try:
            claims = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(claims, dict):
            return None
        exp = claims.pop("e", None)
        if type(exp) is not int:
            return None
        return Opened(claims, exp, self._now() >= exp)

    def verify(self, value: str) -> dict[str, Any] | None:
        """The claims of a good, unexpired value; None otherwise."""
        got = self.open(value)
        return None if got is None or got.expired else got.claims
