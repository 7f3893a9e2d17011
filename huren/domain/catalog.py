"""Standard item catalog rows and local → standard code mapping rows: pure parsing and checks.

Rows are read as *records* (``huren.domain.rows``: one row by column, labelled ``row[N]``).
Every problem of every row is returned at once, as ``Problem("row[N].column", rule, 中文说明)``; the caller imports nothing when there is one.

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
fee             收费标准        optional fee per item in yuan (单价 accepted), at most 2 decimals;
                                empty → none (the statistics' cost-avoided estimate skips it)
==============  ==============  =================================================================

Mapping columns: kind (类型), local_code (本地编码), local_name (本地名称), std_code (标准编码);
std_name (标准名称, as exported) is ignored, org_code (机构编码) is checked by the service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from huren.domain import kinds
from huren.domain.limits import excerpt, text_problem
from huren.domain.regions import LEVELS as REGION_LEVELS
from huren.domain.regions import parse_min_level, parse_scope
from huren.domain.rows import (
    Column,
    Record,
    RowCheck,
    cell_flag,
    cell_int,
    records_from_json,
    records_from_table,
    text,
)
from huren.errors import Problem

__all__ = [
    "CATALOG_COLUMNS", "CATALOG_EXPORT", "CATALOG_IGNORED", "MAPPING_COLUMNS", "MAPPING_EXPORT", "MAPPING_IGNORED",
    "Column", "Record", "catalog_export_row", "parse_catalog", "parse_mappings", "records_from_json",
    "records_from_table", "text",
]

LEVELS = tuple(REGION_LEVELS)
MAX_VALIDITY_DAYS = 36500
MAX_ROWS = 100_000


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
    Column("fee", "收费标准", False, None, ("单价", "收费标准（元）", "费用")),
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
        r = RowCheck(rec, CATALOG_COLUMNS, problems)
        row_kind = r.kind(kind)
        code = r.code("code")
        name = r.text("name")
        unit = r.text("unit")
        days = _days(r)
        flag = cell_flag(rec.values.get("recognizable"))
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
        fee = _fee(r)
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
                    "fee": fee,
                }
            )
    return (out if not problems else []), problems


MAX_FEE = Decimal("1000000")


def parse_fee(raw: Any) -> tuple[Decimal | None, str | None]:
    """A fee cell → (yuan, None), (None, None) when empty, or (None, 中文说明) when not a fee."""
    value = text(raw) if not isinstance(raw, (int, float)) or isinstance(raw, bool) else str(raw)
    value = value.strip().removesuffix("元").strip()
    if not value:
        return None, None
    try:
        fee = Decimal(value)
    except InvalidOperation:
        return None, f"收费标准应为金额（元），而不是“{excerpt(value)}”"
    if not fee.is_finite() or fee < 0 or fee > MAX_FEE:
        return None, f"收费标准应为 0 到 {MAX_FEE} 元之间的金额，而不是“{excerpt(value)}”"
    if fee != fee.quantize(Decimal("0.01")):
        return None, f"收费标准最多保留两位小数，而不是“{excerpt(value)}”"
    return fee.quantize(Decimal("0.01")), None


def _fee(r: RowCheck) -> Decimal | None:
    fee, problem = parse_fee(r.record.values.get("fee"))
    if problem:
        r.fail("fee", "format", problem)
    return fee


def _days(r: RowCheck) -> int | None:
    raw = r.record.values.get("validity_days")
    if not text(raw):
        r.fail("validity_days", "required", "有效天数（validity_days）不能为空")
        return None
    days = cell_int(raw)
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


CATALOG_EXPORT = ("kind", "code", "name", "unit", "validity_days", "recognizable", "min_level", "region_scope", "source_note", "fee")


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
        "" if item.get("fee") is None else str(Decimal(str(item["fee"])).quantize(Decimal("0.01"))),
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
        r = RowCheck(rec, MAPPING_COLUMNS, problems)
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
