"""Regions and hospital levels: the one room for administrative division codes (GB/T 2260 and its
9- / 12-digit township and village extensions), their prefixes and scopes, and the levels and
grades of medical institutions (一级 / 二级 / 三级, 甲 / 乙 / 丙).

Used by the directory (an institution's level), the catalog (an item's ``min_level`` and
``region_scope``), the recognition rule (is the institution in the item's scope) and the access
policy (a supervisor's region). Pure: imports nothing of the project but ``huren.errors``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from huren.errors import InvalidInput, Problem

#: level → its Chinese name
LEVELS = {1: "一级", 2: "二级", 3: "三级"}
GRADES = ("甲", "乙", "丙", "")
#: the lowest institution level whose results are recognized when a catalog row names none
DEFAULT_MIN_LEVEL = 2

_LEVEL_DIGIT = {"一": 1, "二": 2, "三": 3}
#: an institution's level and grade: '3', '3甲', '三级甲等', '二级'
_ORG_LEVEL = re.compile(r"^(?P<level>[123一二三])级?(?P<grade>[甲乙丙]?)等?$")
#: a catalog row's lowest level: '2', '二级', '2级及以上'
_MIN_LEVEL = re.compile(r"^(?P<level>[123一二三])(?:级)?(?:及以上)?$")
#: what separates the codes of a scope
_SCOPE_SPLIT = re.compile(r"[\s,;，；、]+")
#: a division code or prefix: 2, 4 or 6 digits (province, city, county), 9 or 12 (township, village)
_DIVISION = re.compile(r"^\d{2}(?:\d{2}){0,2}$|^\d{9}$|^\d{12}$")
#: an institution's own division code: 6 digits, or 9 / 12
_ORG_REGION = re.compile(r"\d{6}(\d{3}|\d{6})?")


# -- levels ------------------------------------------------------------------------------------


def parse_level(text: str) -> tuple[int, str]:
    """An institution's level: '3', '3甲', '三级甲等', '二级' → (level, grade); InvalidInput otherwise."""
    m = _ORG_LEVEL.match(text.strip())
    if not m:
        raise InvalidInput("医疗机构等级无效", [Problem("level", "format", "等级应为 1/2/3，可带甲乙丙，例如“3甲”或“三级甲等”")])
    return _LEVEL_DIGIT.get(m["level"]) or int(m["level"]), m["grade"]


def parse_min_level(text: str) -> int | None:
    """A catalog row's lowest level as text: '' → DEFAULT_MIN_LEVEL; '2', '二级', '2级及以上' → 2;
    anything else → None."""
    if not text:
        return DEFAULT_MIN_LEVEL
    m = _MIN_LEVEL.match(text)
    if not m:
        return None
    return _LEVEL_DIGIT.get(m["level"]) or int(m["level"])


def level_name(level: int, grade: str = "") -> str:
    """(3, '甲') → '三级甲等'; an unknown level → '未定级'."""
    return LEVELS.get(level, "未定级") + (f"{grade}等" if grade else "")


# -- divisions and scopes --------------------------------------------------------------------------


def is_org_region(code: str) -> bool:
    """An institution's own division code: 6 digits (or 9 / 12)."""
    return _ORG_REGION.fullmatch(code) is not None


def division_prefix(code: str) -> str:
    """A division code → the prefix its subordinate codes share (650100 → 6501, 650000 → 65)."""
    code = code.strip()
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    return code


def in_division(region: str, division: str) -> bool:
    """Whether the division code ``region`` lies within ``division`` (itself or a subordinate)."""
    prefix = division_prefix(division)
    return bool(prefix) and region.startswith(prefix)


def split_scope(text: str) -> tuple[str, ...]:
    """A stored scope: '65, 650100;6523' → ('65', '650100', '6523') (no checking)."""
    return tuple(t for t in _SCOPE_SPLIT.split(text) if t)


def parse_scope(text: str) -> tuple[list[str], list[str]]:
    """A scope as entered: '65, 650100;6523' → (['65', '650100', '6523'], invalid tokens);
    repeats dropped, order kept."""
    good: list[str] = []
    bad: list[str] = []
    for token in split_scope(text):
        if _DIVISION.match(token):
            if token not in good:
                good.append(token)
        else:
            bad.append(token)
    return good, bad


def in_scope(region: str, scope: Sequence[str]) -> bool:
    """Whether ``region`` lies in one of the divisions of ``scope``; an empty scope is anywhere."""
    if not scope:
        return True
    return any(in_division(region, s) for s in scope)
