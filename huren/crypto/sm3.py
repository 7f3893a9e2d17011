"""The SM3 digest (GB/T 32905) through ``gmssl-pyx`` (a C binding of GmSSL 3.2)."""

from __future__ import annotations

import gmssl_pyx as _gmssl  # type: ignore[import-untyped]

__all__ = ["sm3"]


def sm3(data: bytes) -> bytes:
    """The SM3 digest (32 bytes)."""
    return bytes(_gmssl.sm3_hash(bytes(data)))
