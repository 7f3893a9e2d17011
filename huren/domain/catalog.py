"""Standard item catalog rows and local → standard code mapping rows: pure parsing and checks.

A *record* is one row to check: a label that names it in problems and its values by column. Rows
come from a file (CSV / XLSX, see ``huren.wire.tabular``: the label is ``row[N]`` with N the row
number a spreadsheet shows, the header being row 1) or from a JSON array (``row[i]``, i the
0-based index in the array, as elsewhere in the API). Every problem of every row is returned at
once, as ``Problem("row[N].column", rule, 中文说明)``; the caller imports nothing when there is one.

Catalog columns (English names or the Chinese headers are accepted):

==============  ==============  =================================================================
column          Chinese header  value
==============  ==============  =================================================================
kind            类型            ``lab`` (检验 sub-item) or ``exam`` (检查 item); 检验 / 检查 accepted
code            项目编码        the standard code; no blanks or commas
name            项目名称        the standard name
unit            单位            optional
validity_days   有效天数        a positive integer: results are recognizable for this many days
recognizable    是否互认        1/0, 是/否, true/false, yes/no; empty → 1
min_level       最低机构等级    1/2/3 (一级/二级/三级); empty → 2 (seed 002: 二级及以上医疗机构)
region_scope    适用区域        administrative division prefixes (``65``, ``650100``) separated by
                                commas, semicolons or blanks; empty → anywhere
source_note     来源            optional free text
==============  ==============  =================================================================

Mapping columns: kind (类型), local_code (本地编码), local_name (本地名称), std_code (标准编码);
std_name (标准名称, as exported) is ignored, org_code (机构编码) is checked by the service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from huren.domain import kinds
from huren.domain.limits import excerpt, text_problem
from huren.domain.regions import LEVELS as REGION_LEVELS
from huren.domain.regions import parse_min_level, parse_scope
from huren.errors import Problem

LEVELS = tuple(REGION_LEVELS)
MAX_VALIDITY_DAYS = 36500
MAX_ROWS = 100_000

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


#: Lengths follow ``huren.store.tables.catalog_item`` / ``code_map`` (a unit test keeps them in step).
CATALOG_COLUMNS: tuple[Column, ...] = (
    Column("kind", "类型", True, 8, ("项目类型", "类别")),
    Column("code", "项目编码", True, 128, ("编码", "标准编码")),
    Column("name", "项目名称", True, 256, ("名称", "标准名称")),
    Column("unit", "单位", False, 256),
    Column("validity_days", "有效天数", True, None, ("有效期", "有效期天数", "互认有效天数")),
    Column("recognizable", "是否互认", False, None, ("互认",)),
    Column("min_level", "最低机构等级", False, None, ("机构等级",)),
    Column("region_scope", "适用区域", False, 512, ("区域", "互认区域")),
    Column("source_note", "来源", False, None, ("来源说明", "备注")),
)
#: Read-only columns of the JSON listing, accepted (and ignored) so a listing can be posted back.
CATALOG_IGNORED = ("updated_at",)

MAPPING_COLUMNS: tuple[Column, ...] = (
    Column("kind", "类型", True, 8, ("项目类型", "类别")),
    Column("local_code", "本地编码", True, 128, ("院内编码",)),
    Column("local_name", "本地名称", False, 256, ("院内名称",)),
    Column("std_code", "标准编码", True, 128, ("项目编码",)),
    Column("org_code", "机构编码", False, 128),
)
MAPPING_IGNORED = ("std_name", "标准名称", "updated_at")


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


class _Row:
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


def _int(value: Any) -> int | None:
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


def _flag(value: Any) -> bool | None:
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


def _level(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if value in LEVELS else None
    return parse_min_level(text(value))


# -- catalog rows ---------------------------------------------------------------------------


def parse_catalog(records: Sequence[Record], *, kind: str | None = None) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Records → catalog rows (the columns of ``catalog_item`` but ``updated_at``), and problems.

    ``kind`` (lab | exam), when given, fills an empty kind and must match a given one.
    """
    problems: list[Problem] = []
    if kind is not None and kind not in kinds.BY_NAME:
        return [], [Problem("kind", "dictionary", f"导入类型应为 lab 或 exam，而不是“{kind}”")]
    if not records:
        problems.append(Problem("rows", "required", "没有可导入的数据行"))
    if len(records) > MAX_ROWS:
        return [], [Problem("rows", "max_rows", f"一次最多导入{MAX_ROWS}行，实际{len(records)}行")]
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], str] = {}
    for rec in records:
        r = _Row(rec, CATALOG_COLUMNS, problems)
        row_kind = r.kind(kind)
        code = r.code("code")
        name = r.text("name")
        unit = r.text("unit")
        days = _days(r)
        flag = _flag(rec.values.get("recognizable"))
        if flag is None:
            r.fail("recognizable", "dictionary", f"是否互认（recognizable）应为 1/0、是/否 或 true/false，而不是“{excerpt(text(rec.values.get('recognizable')))}”")
        level = _level(rec.values.get("min_level"))
        if level is None:
            r.fail("min_level", "dictionary", f"最低机构等级（min_level）应为 1、2 或 3（一级/二级/三级），而不是“{excerpt(text(rec.values.get('min_level')))}”")
        scope, bad = parse_scope(text(rec.values.get("region_scope")))
        if bad:
            r.fail(
                "region_scope",
                "format",
                f"适用区域（region_scope）应为行政区划代码或其前缀（2、4、6、9或12位数字，如 65、650100），以逗号、分号或空格分隔；无效：{'、'.join(bad)}",
            )
        region_scope = ",".join(scope)
        if len(region_scope) > 512:
            r.fail("region_scope", "max_length", "适用区域（region_scope）不能超过512个字符")
        note = text(rec.values.get("source_note"))
        if reason := text_problem(note):
            r.fail("source_note", "characters", f"来源（source_note）{reason}")
        if row_kind and code:
            first = seen.get((row_kind, code))
            if first is not None:
                r.fail("code", "duplicate", f"{kinds.BY_NAME[row_kind].zh}项目编码“{excerpt(code)}”与 {first} 重复")
            else:
                seen[(row_kind, code)] = rec.label
        if r.ok:
            assert days is not None and flag is not None and level is not None
            out.append(
                {
                    "kind": row_kind,
                    "code": code,
                    "name": name,
                    "unit": unit,
                    "validity_days": days,
                    "recognizable": flag,
                    "min_level": level,
                    "region_scope": region_scope,
                    "source_note": note,
                }
            )
    return (out if not problems else []), problems


def _days(r: _Row) -> int | None:
    raw = r.record.values.get("validity_days")
    if not text(raw):
        r.fail("validity_days", "required", "有效天数（validity_days）不能为空")
        return None
    days = _int(raw)
    if days is None:
        r.fail("validity_days", "integer", f"有效天数（validity_days）应为整数，而不是“{excerpt(text(raw))}”")
        return None
    if days <= 0:
        r.fail("validity_days", "positive", f"有效天数（validity_days）应为正整数，而不是{days}")
        return None
    if days > MAX_VALIDITY_DAYS:
        r.fail("validity_days", "range", f"有效天数（validity_days）不能超过{MAX_VALIDITY_DAYS}")
        return None
    return days


CATALOG_EXPORT = ("kind", "code", "name", "unit", "validity_days", "recognizable", "min_level", "region_scope", "source_note")


def catalog_export_row(item: Mapping[str, Any]) -> list[Any]:
    """A stored catalog row as exported (and imported again unchanged)."""
    return [
        item["kind"],
        item["code"],
        item["name"],
        item["unit"],
        int(item["validity_days"]),
        1 if item["recognizable"] else 0,
        int(item["min_level"]),
        item["region_scope"],
        item["source_note"],
    ]


# -- mapping rows ---------------------------------------------------------------------------


def parse_mappings(records: Sequence[Record], *, kind: str | None = None) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Records → mapping rows ``{kind, local_code, local_name, std_code, org_code, label}`` and
    problems. Whether each std_code is in the catalog, and org_code the caller's, the service checks
    (``label`` names the row for those problems)."""
    problems: list[Problem] = []
    if kind is not None and kind not in kinds.BY_NAME:
        return [], [Problem("kind", "dictionary", f"类型应为 lab 或 exam，而不是“{kind}”")]
    if not records:
        problems.append(Problem("rows", "required", "没有可上传的对照行"))
    if len(records) > MAX_ROWS:
        return [], [Problem("rows", "max_rows", f"一次最多上传{MAX_ROWS}行，实际{len(records)}行")]
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], str] = {}
    for rec in records:
        r = _Row(rec, MAPPING_COLUMNS, problems)
        row_kind = r.kind(kind)
        local = r.text("local_code")
        local_name = r.text("local_name")
        std = r.code("std_code")
        org = r.text("org_code")
        if row_kind and local:
            first = seen.get((row_kind, local))
            if first is not None:
                r.fail("local_code", "duplicate", f"本地编码“{excerpt(local)}”与 {first} 重复")
            else:
                seen[(row_kind, local)] = rec.label
        if r.ok:
            out.append({"kind": row_kind, "local_code": local, "local_name": local_name, "std_code": std, "org_code": org, "label": rec.label})
    return (out if not problems else []), problems


MAPPING_EXPORT = ("kind", "local_code", "local_name", "std_code", "std_name")
