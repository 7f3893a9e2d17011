"""Keeping what was received: a payload as bytes for the rejected-submission store."""

from __future__ import annotations

from typing import Any

import orjson


def dump(payload: Any) -> bytes:
    """The payload as JSON bytes (or its repr when it is not JSON-able), never raising."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return repr(payload).encode()
