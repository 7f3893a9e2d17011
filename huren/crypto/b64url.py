"""Unpadded URL-safe Base64 (RFC 4648 §5), as used in tokens, session cookies and signed links."""

from __future__ import annotations

import base64


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode(text: str) -> bytes:
    """Raises ValueError (binascii.Error) on text that is not URL-safe Base64."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
