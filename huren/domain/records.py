"""Record formatting: stored values back to the seed's text forms (the inverse of validation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from huren.domain.fields import Field


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def to_text(row: Mapping[str, Any], spec: Sequence[Field]) -> dict[str, str]:
    """The fields of ``spec`` from ``row`` as the seed's strings, in table order."""
    return {f.name: format_value(row.get(f.name)) for f in spec}


def report_key_text(kind: str, key: Sequence[Any]) -> str:
    """A stable text form of a report's primary key, for logs and the rejected list."""
    return kind + ":" + "|".join(format_value(k) for k in key)
