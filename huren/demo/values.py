"""How the demo's payload values are written, and the stable hash its fixed details derive from.

Payload values are strings exactly as they would appear as XML attributes: times
``YYYY-MM-DD HH:MM:SS``, dates ``YYYY-MM-DD``; a report's PDF is Base64 text.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

_DT = "%Y-%m-%d %H:%M:%S"


def ts(moment: datetime) -> str:
    """A payload time: ``YYYY-MM-DD HH:MM:SS``."""
    return moment.strftime(_DT)


def digest(*parts: str) -> int:
    """A stable 64-bit number for ``parts`` (the same on every run, unlike ``hash``)."""
    raw = hashlib.blake2b("|".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(raw, "big")


def pdf_b64(data: bytes) -> str:
    """A report's PDF as the payload's Base64 text."""
    return base64.b64encode(data).decode("ascii")
