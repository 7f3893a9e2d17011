"""Opaque references: an integer row id shown outside as 22 characters nobody can walk.

A *ref* is one 16-byte block ``id (8 bytes, big-endian) | check (8 bytes)``, enciphered with a
keyed pseudo-random permutation (the block cipher itself: SM4 where this OpenSSL supports it, else
AES-128, one block, no mode to speak of) and written as unpadded base64url. ``check`` is the first
8 bytes of SHA-256 over ``"huren/ref/v1/" + tag``: it names what the id counts (``lab``, ``exam``,
``accept`` …) and is the redundancy that makes a forged ref fail.

Decoding anything that is not a ref this codec made under the same secret and tag — another tag
(a lab report's ref asked for as an exam report), another installation's secret, one character
changed, another length, a plain integer, a non-canonical base64url spelling of a good block — gives
``None``: the caller answers it as it answers a missing row, so an invalid ref and a missing
report cannot be told apart. A guess succeeds with probability 2^-64 per try, and the ids give
nothing away about their neighbours (one changed bit of the block changes the whole id).

Not encryption of data: a ref is deterministic (the same id always gives the same ref, so links in
records and the HIS stay valid) and hides only the id. The secret is derived once per purpose
(``FieldCipher.derive_secret``) from the blind-index secret, which neither data-key nor
token-secret rotation changes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
import threading
from typing import Any, Final

from cryptography.hazmat.backends.openssl import backend
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from huren.crypto import b64url

__all__ = ["REF_LEN", "RefCodec"]

#: characters of a ref (16 bytes of unpadded base64url)
REF_LEN: Final = 22
_BLOCK: Final = 16
_ID: Final = struct.Struct(">Q")
_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]{22}")


def _sm4_supported() -> bool:
    return bool(backend.cipher_supported(algorithms.SM4(b"\0" * 16), modes.ECB()))


class RefCodec:
    """Refs of integer ids (0 ≤ id < 2^64) under one 32-byte secret, one tag per kind of id."""

    def __init__(self, secret: bytes, *, sm4: bool | None = None) -> None:
        if len(secret) < 16:
            raise ValueError("a ref secret needs at least 16 bytes")
        use_sm4 = _sm4_supported() if sm4 is None else sm4
        key = bytes(secret[:16])
        self._cipher = Cipher(algorithms.SM4(key) if use_sm4 else algorithms.AES(key), modes.ECB())
        self._checks: dict[str, bytes] = {}
        # ECB over exactly one block keeps no state between calls, so one encryption and one
        # decryption context per thread serve every ref (a context costs more than the block)
        self._local = threading.local()

    def _contexts(self) -> tuple[Any, Any]:
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._local.ctx = (self._cipher.encryptor(), self._cipher.decryptor())
        return ctx

    def _check(self, tag: str) -> bytes:
        c = self._checks.get(tag)
        if c is None:
            c = self._checks[tag] = hashlib.sha256(b"huren/ref/v1/" + tag.encode()).digest()[:8]
        return c

    def encode(self, tag: str, n: int) -> str:
        if not 0 <= n < 2**64:
            raise ValueError(f"id {n} out of range")
        return b64url.encode(self._contexts()[0].update(_ID.pack(n) + self._check(tag)))

    def decode(self, tag: str, ref: object) -> int | None:
        """The id of a ref made by :meth:`encode` with this tag; None for anything else."""
        if not isinstance(ref, str) or not _SHAPE.fullmatch(ref):
            return None
        block = b64url.decode(ref)
        if len(block) != _BLOCK or b64url.encode(block) != ref:  # one spelling per block: no twin refs
            return None
        plain = self._contexts()[1].update(block)
        if not hmac.compare_digest(plain[8:], self._check(tag)):
            return None
        return int(_ID.unpack_from(plain)[0])
