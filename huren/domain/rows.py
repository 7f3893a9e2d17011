"""Rows of an imported table (CSV / XLSX / a JSON array), by column: pure parsing and cell checks.

A *record* is one row to check: a label that names it in problems and its values by column. Rows
come from a file (CSV / XLSX, see ``huren.wire.tabular``: the label is ``row[N]`` with N the row
number a spreadsheet shows, the header being row 1) or from a JSON array (``row[i]``, i the
0-based index in the array, as elsewhere in the API). Headers are matched by a column's English
name, its Chinese title or an alias. :class:`RowCheck` collects every problem of a row, as
``Problem("row[N].column", rule, 中文说明)``; the catalog and the code mapping
(``huren.domain.catalog``) are the tables read this way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from huren.domain import kinds
from huren.domain.limits import excerpt, text_problem
from huren.errors import Problem

_TRUE = {"1", "是", "true", "t", "yes", "y", "互认"}
_FALSE = {"0", "否", "false", "f", "no", "n", "不互认"}
_DAYS = re.compile(r"^[+]?\d+(?:天)?$")
#: Characters a spreadsheet cannot hold (XML 1.0 forbids them): refused so every import exports.
_CODE_BAD = re.compile(r"[\s,，]")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    title: str  # the Chinese header, also used in messages
    required: bool = False
    max_length: int | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Record:
    """One row to check: ``label`` names it in problems (``row[3]``), ``values`` by column name."""

    label: str
    values: dict[str, Any]
    #: from JSON, where a value has a type of its own: a number or boolean is not text (a
    #: spreadsheet's numeric cell is, a code typed into Excel being stored as a number)
    typed: bool = False


def _key(text: Any) -> str:
    return str(text if text is not None else "").strip().lstrip("\ufeff").strip().lower()


def _lookup(columns: Sequence[Column]) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in columns:
        for alias in (c.name, c.title, *c.aliases):
            out[_key(alias)] = c.name
    return out


def _ignored(ignored: Sequence[str]) -> set[str]:
    return {_key(i) for i in ignored}


def records_from_table(
    header: Sequence[Any],
    rows: Sequence[tuple[int, Sequence[Any]]],
    columns: Sequence[Column],
    *,
    ignored: Sequence[str] = (),
    defaulted: Sequence[str] = (),
) -> tuple[list[Record], list[Problem]]:
    """A sheet's header and numbered rows → records by column name, and header problems.

    ``defaulted`` names required columns the caller can fill in (``--kind``): they may be absent.
    """
    names = _lookup(columns)
    skip = _ignored(ignored)
    problems: list[Problem] = []
    index: dict[str, int] = {}
    for i, raw in enumerate(header):
        key = _key(raw)
        if not key or key in skip:
            continue
        name = names.get(key)
        if name is None:
            problems.append(Problem(f"header.{excerpt(str(raw).strip())}", "unknown_column", f"无法识别的列“{excerpt(str(raw).strip())}”（第{i + 1}列）"))
        elif name in index:
            problems.append(Problem(f"header.{name}", "duplicate", f"列“{name}”出现了不止一次（第{index[name] + 1}列与第{i + 1}列）"))
        else:
            index[name] = i
    for c in columns:
        if c.required and c.name not in index and c.name not in defaulted:
            problems.append(Problem(f"header.{c.name}", "required", f"缺少必需的列“{c.name}”（{c.title}）"))
    records = []
    for number, cells in rows:
        values = {name: (cells[i] if i < len(cells) else None) for name, i in index.items()}
        records.append(Record(f"row[{number}]", values))
    return records, problems


def records_from_json(
    items: Any, columns: Sequence[Column], *, ignored: Sequence[str] = ()
) -> tuple[list[Record], list[Problem]]:
    """A JSON array of objects → records (keys matched like headers: English or Chinese)."""
    if not isinstance(items, list):
        return [], [Problem("rows", "type", "应为由对象组成的数组")]
    names = _lookup(columns)
    skip = _ignored(ignored)
    records: list[Record] = []
    problems: list[Problem] = []
    for i, item in enumerate(items):
        label = f"row[{i}]"
        if not isinstance(item, dict):
            problems.append(Problem(label, "type", "每一行应为一个对象"))
            continue
        values: dict[str, Any] = {}
        for k, v in item.items():
            key = _key(k)
            if key in skip:
                continue
            name = names.get(key)
            if name is None:
                problems.append(Problem(f"{label}.{excerpt(k)}", "unknown_column", f"无法识别的字段“{excerpt(k)}”"))
            elif name in values:
                problems.append(Problem(f"{label}.{name}", "duplicate", f"字段“{name}”出现了不止一次"))
            else:
                values[name] = v
        records.append(Record(label, values, typed=True))
    return records, problems


# -- values -------------------------------------------------------------------------------


def text(value: Any) -> str:
    """A cell as text: None → "", numbers without a spurious ``.0``, strings stripped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


class RowCheck:
    """Checks of one record, collecting problems under its label."""

    def __init__(self, record: Record, columns: Sequence[Column], problems: list[Problem]) -> None:
        self.record = record
        self.columns = {c.name: c for c in columns}
        self.problems = problems
        self.ok = True

    def fail(self, column: str, rule: str, message: str) -> None:
        self.ok = False
        self.problems.append(Problem(f"{self.record.label}.{column}", rule, message))

    def text(self, column: str) -> str:
        """The column as text, checked for presence, length and characters."""
        c = self.columns[column]
        raw = self.record.values.get(column)
        if self.record.typed and c.max_length is not None and raw is not None and not isinstance(raw, str):
            self.fail(column, "type", f"{c.title}（{column}）应为文本，不接受数字或布尔值")
            return ""
        value = text(raw)
        if not value:
            if c.required:
                self.fail(column, "required", f"{c.title}（{column}）不能为空")
            return ""
        if c.max_length is not None and len(value) > c.max_length:
            self.fail(column, "max_length", f"{c.title}（{column}）不能超过{c.max_length}个字符，实际{len(value)}个")
        if reason := text_problem(value):
            self.fail(column, "characters", f"{c.title}（{column}）{reason}")
        return value

    def kind(self, default: str | None) -> str:
        value = text(self.record.values.get("kind"))
        if not value:
            if default is not None:
                return default
            self.text("kind")  # reports it missing
            return ""
        k = kinds.BY_NAME.get(value.lower()) or kinds.BY_ZH.get(value)
        if k is None:
            self.fail("kind", "dictionary", f"类型（kind）应为 lab（检验）或 exam（检查），而不是“{excerpt(value)}”")
            return ""
        kind = k.name
        if default is not None and kind != default:
            self.fail("kind", "consistency", f"类型“{excerpt(value)}”与指定的导入类型“{default}”不一致")
        return kind

    def code(self, column: str) -> str:
        value = self.text(column)
        if value and _CODE_BAD.search(value):
            self.fail(column, "format", f"{self.columns[column].title}（{column}）不能包含空白或逗号")
        return value


def cell_int(value: Any) -> int | None:
    """An integer cell: 30, 30.0, "30", "30天" → 30; anything else → None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    s = text(value)
    if _DAYS.match(s):
        return int(s.removesuffix("天"))
    if s.startswith("-") and s[1:].isdigit():
        return int(s)
    return None


def cell_flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    s = text(value).lower()
    if not s:
        return True
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    return None
