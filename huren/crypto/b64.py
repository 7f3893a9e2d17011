"""Standard Base64 (RFC 4648 §4, padded) of the SOAP envelope, the signed REST transport and PEM.
Unpadded URL-safe Base64 for tokens is :mod:`huren.crypto.b64url`."""

from __future__ import annotations

import pybase64

from huren.crypto.errors import GmError

__all__ = ["b64d", "b64e"]


def b64e(data: bytes) -> str:
    """Standard Base64 with padding, no line breaks. pybase64 (SIMD): the standard library's
    binascii spent as long on the envelope's Base64 as SM4 on its encryption (bench/sm2.py)."""
    return pybase64.b64encode_as_string(data)


def b64d(text: str) -> bytes:
    """Strict standard Base64: whitespace (line breaks) ignored, anything else must be valid."""
    try:
        return pybase64.b64decode(text, validate=True)  # the usual case: one unbroken line
    except (ValueError, TypeError):
        pass
    try:
        return pybase64.b64decode("".join(text.split()), validate=True)
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError; non-ASCII text too
        raise GmError("invalid Base64") from exc
