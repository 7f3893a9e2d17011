"""Structured logs: one JSON object per line — ``ts``, ``level``, ``logger``, ``msg`` and whatever
was passed in ``extra`` (``source``, ``stored``, ``error`` …), for the hospital's log collector.

Messages are in Chinese (the hospital's operators read them). No log line carries a resident ID
number: every text value is passed through :func:`huren.domain.idcard.mask_in_text` (an error
text from a source or the platform may quote one)."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import IO, Any

import orjson

from huren.domain.idcard import mask_in_text

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_in_text(record.getMessage()),
        }
        for k, v in record.__dict__.items():
            if k not in _STANDARD and not k.startswith("_"):
                doc[k] = _masked(v)
        if record.exc_info:
            doc["exc"] = mask_in_text(self.formatException(record.exc_info))
        return orjson.dumps(doc, default=str).decode()


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_in_text(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return mask_in_text(str(value))


def setup(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Send the ``huren.gateway`` loggers' records, as JSON lines, to ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("huren.gateway")
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
