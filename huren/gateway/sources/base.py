"""What every source shares: configuration reading, the seed's text forms, record keys, voids.

A source turns rows, files or answers of a hospital system into :class:`~huren.gateway.model.Record`
payloads in the seed 002 field names (``{"labmaster": {…}, "lab_subitem": […]}``). Values become the
seed's strings (times ``YYYY-MM-DD hh24:mi:ss``); a PDF travels in ``Record.attachments["pdf"]`` as
bytes, never Base64 in the payload.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from huren.domain import kinds
from huren.domain.fields import EXAM_KEY, LAB_KEY
from huren.domain.records import report_key_text

DT = "%Y-%m-%d %H:%M:%S"

#: Master / item node of each report kind.
NODES = {k.name: (k.master_node, k.item_node) for k in (kinds.LAB, kinds.EXAM)}

#: ``data_status`` values meaning "this report is withdrawn" unless a source says otherwise.
VOID_VALUES = ("0",)


class SourceError(Exception):
    """A hospital system could not be read this time (down, answered badly); poll again later."""


class ConfigError(ValueError):
    """A source's configuration is wrong; the message names the source and the key."""


class Conf:
    """Typed reading of one ``[[sources]]`` table; every error names ``sources[<name>].<key>``."""

    def __init__(self, raw: Mapping[str, Any], allowed: Sequence[str]) -> None:
        self.raw = raw
        self.name = str(raw.get("name") or raw.get("type") or "?")
        unknown = sorted(set(raw) - {"name", "type", *allowed})
        if unknown:
            raise ConfigError(f"sources[{self.name}]：不认识的配置项 {'、'.join(unknown)}；可用的有 {'、'.join(allowed)}")

    def where(self, key: str) -> str:
        return f"sources[{self.name}].{key}"

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw.get(key, default)
        if value is None:
            raise ConfigError(f"缺少 {self.where(key)}")
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ConfigError(f"{self.where(key)} 应为字符串")
        return str(value)

    def integer(self, key: str, default: int, *, minimum: int = 1) -> int:
        value = self.raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(f"{self.where(key)} 应为不小于 {minimum} 的整数")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.raw.get(key, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < minimum:
            raise ConfigError(f"{self.where(key)} 应为不小于 {minimum:g} 的数")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where(key)} 应为 true 或 false")
        return value

    def strings(self, key: str, default: Sequence[str]) -> tuple[str, ...]:
        value = self.raw.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{self.where(key)} 应为字符串数组")
        return tuple(str(v) for v in value)

    def table(self, key: str, allowed: Sequence[str] | None = None) -> dict[str, str]:
        """A ``{name = "value"}`` table of strings; with ``allowed``, names outside it are refused."""
        value = self.raw.get(key, {})
        if not isinstance(value, Mapping) or not all(isinstance(v, (str, int)) for v in value.values()):
            raise ConfigError(f"{self.where(key)} 应为值均为字符串的表")
        if allowed is not None:
            unknown = sorted(set(value) - set(allowed))
            if unknown:
                raise ConfigError(f"{self.where(key)}：不认识的字段 {'、'.join(unknown)}")
        return {str(k): str(v) for k, v in value.items()}

    def sub(self, key: str) -> Mapping[str, Any] | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self.where(key)} 应为一个表（TOML table）")
        return value

    def path(self, key: str, base: Path | None, default: str | None = None) -> Path:
        p = Path(self.text(key, default)).expanduser()
        return p if p.is_absolute() or base is None else base / p


def to_text(value: Any, kind: str = "str") -> str:
    """A database / JSON value as the seed's string; ``kind`` is a field kind (dt, date, str, num)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if kind == "date" else value.strftime(DT)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else format(value.normalize(), "f")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace").strip()
    return str(value).strip()


def report_key(kind: str, master: Mapping[str, Any]) -> str:
    """The outbox key of a report: ``lab:<org>|<report_form_no>|<patient_id>|<event_type>|<event_no>``
    (a void of the report has the same key, so it is never uploaded before the registration)."""
    fields = LAB_KEY if kind.endswith("lab") else EXAM_KEY
    return report_key_text(kind.removeprefix("void_"), [to_text(master.get(f)) for f in fields])


def void_filter(master: Mapping[str, Any]) -> dict[str, str]:
    """DeleteLabInfo / DeleteExamInfo filter fields of a report (seed 002 §1.2.2.2)."""
    out = {f: to_text(master.get(f)) for f in ("org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_no")}
    out["id_type"] = to_text(master.get("id_type_code", master.get("id_type")))
    return out


def missing_key_fields(master: Mapping[str, Any]) -> list[str]:
    """Key and identity fields a report needs before the gateway can even queue it."""
    need = (*LAB_KEY, "id_no", "id_type_code")
    return [f for f in need if not to_text(master.get(f))]


def take_pdf(master: dict[str, Any]) -> bytes | None:
    """Remove a Base64 ``pdf`` from a master node; its bytes, or None when there was none.
    Raises ValueError when the text is not Base64."""
    raw = master.pop("pdf", None)
    if raw is None:
        raw = next((master.pop(k) for k in list(master) if k.lower() == "pdf"), None)
    text = to_text(raw)
    if not text:
        return None
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"pdf 不是合法的 Base64：{exc}") from exc


def parse_time(text: str) -> datetime:
    """``YYYY-MM-DD``, ``YYYY-MM-DD hh:mm:ss`` (or ISO with ``T`` / fraction) → datetime."""
    text = text.strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time())
    return datetime.fromisoformat(text)
