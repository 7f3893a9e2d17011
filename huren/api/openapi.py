"""Per-operation OpenAPI extras: the interface IDs each operation implements."""

from __future__ import annotations

from typing import Any


def op(ids: list[str], summary: str, extra: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return {"summary": summary, "openapi_extra": {"x-interface-ids": ids} | (extra or {}), **kw}
