"""The platform tree (seed 002 §1.1–1.2, issue 13): which platform each institution belongs to and
what flows up.

    cross      跨省区域平台  (京津冀 / 长三角 / 成渝 …), or a national one
      region   省级（自治区）平台  (the Xinjiang regional platform of seed 002)
        city   地州市平台, real (its own deployment) or virtual (hosted by the region)
          institutions

Every institution belongs to exactly one platform; a platform's subtree is itself, its children
and theirs. Changes flow up: a city's feed is applied on its region, a region's on the level above.
A deployment hosts one or more platforms (``local``: the region and its virtual cities, say); the
others it knows (its parent, its real cities) only as names in the tree.

The access policy (``huren.domain.access``) scopes supervisors and platform accounts by the subtree
of their institution's platform, combined with their administrative division. Pure: imports only
the ground floor and ``huren.domain.regions``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from huren.domain.regions import division_prefix, in_division
from huren.errors import Problem

#: level → (rank, Chinese name); a child's rank is below its parent's
LEVELS: dict[str, tuple[int, str]] = {
    "city": (1, "地州市平台"),
    "region": (2, "省级（自治区）平台"),
    "cross": (3, "跨省区域平台"),
}
#: a platform code: letters, digits, '-', '_' and '.', 1–64 characters
CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class Platform:
    code: str
    name: str
    level: str
    parent: str = ""
    division: str = ""  # the administrative division it covers ("650100"); "" for a cross-provincial one
    virtual: bool = False  # a city without a platform of its own, hosted by the region
    local: bool = False  # its data is kept on this deployment (it has a feed here)

    @property
    def level_name(self) -> str:
        name = LEVELS[self.level][1] if self.level in LEVELS else self.level
        return f"虚拟{name}" if self.virtual else name


class PlatformTree:
    """The platforms known to a deployment, as a tree."""

    def __init__(self, platforms: Iterable[Platform]) -> None:
        self.by_code: dict[str, Platform] = {p.code: p for p in platforms}
        self._children: dict[str, list[str]] = {}
        for p in self.by_code.values():
            if p.parent:
                self._children.setdefault(p.parent, []).append(p.code)

    def __contains__(self, code: object) -> bool:
        return code in self.by_code

    def __len__(self) -> int:
        return len(self.by_code)

    def get(self, code: str) -> Platform | None:
        return self.by_code.get(code)

    def path(self, code: str) -> list[str]:
        """``code`` and its ancestors, nearest first (cycles cannot be stored: ``check_new``)."""
        out: list[str] = []
        while code and code in self.by_code and code not in out:
            out.append(code)
            code = self.by_code[code].parent
        return out

    def subtree(self, code: str) -> set[str]:
        """``code`` and every platform below it."""
        out: set[str] = set()
        todo = [code] if code in self.by_code else []
        while todo:
            c = todo.pop()
            if c not in out:
                out.add(c)
                todo.extend(self._children.get(c, ()))
        return out

    def covers(self, ancestor: str, code: str) -> bool:
        """Whether platform ``code`` lies in the subtree of ``ancestor``."""
        return ancestor in self.path(code)

    def feeds(self, code: str) -> list[str]:
        """The platforms whose feeds a change of an institution of ``code`` goes into: those on its
        path kept on this deployment (a virtual city's change is in its own feed and its region's)."""
        return [c for c in self.path(code) if self.by_code[c].local]

    def children(self, code: str) -> list[Platform]:
        return [self.by_code[c] for c in sorted(self._children.get(code, ()))]

    def roots(self) -> list[Platform]:
        return sorted((p for p in self.by_code.values() if not p.parent or p.parent not in self.by_code), key=lambda p: p.code)

    def for_division(self, region_code: str) -> str:
        """The local platform whose division covers ``region_code`` most closely ("" when none):
        where a new institution of that division belongs unless told otherwise."""
        best, best_len = "", -1
        for p in self.by_code.values():
            if not p.local or not p.division:
                continue
            prefix = division_prefix(p.division)
            if in_division(region_code, p.division) and len(prefix) > best_len:
                best, best_len = p.code, len(prefix)
        return best


def check_new(tree: PlatformTree, p: Platform) -> list[Problem]:
    """What is wrong with adding ``p`` to ``tree`` (a new platform, or a changed one)."""
    problems: list[Problem] = []
    if not CODE.fullmatch(p.code):
        problems.append(Problem("code", "format", "平台编码应为1到64个字母、数字、“-”“_”“.”，且以字母或数字开头"))
    if not p.name.strip() or len(p.name) > 256:
        problems.append(Problem("name", "required", "平台名称不能为空且不超过256个字符"))
    if p.level not in LEVELS:
        problems.append(Problem("level", "dictionary", "平台级别应为 city（地州市）、region（省级/自治区）、cross（跨省区域）之一"))
    if p.division and not re.fullmatch(r"\d{6}", p.division):
        problems.append(Problem("division", "format", "平台覆盖的行政区划代码应为6位数字，例如 650100"))
    if p.level in ("city", "region") and not p.division:
        problems.append(Problem("division", "required", "地州市平台与省级平台须给出其覆盖的行政区划代码"))
    if p.virtual and p.level != "city":
        problems.append(Problem("virtual", "level", "只有地州市平台可以是虚拟平台（由上级平台代管）"))
    if p.parent:
        parent = tree.get(p.parent)
        if parent is None:
            problems.append(Problem("parent", "not_found", f"上级平台“{p.parent}”不存在"))
        else:
            if p.level in LEVELS and parent.level in LEVELS and LEVELS[parent.level][0] <= LEVELS[p.level][0]:
                problems.append(Problem("parent", "level", f"上级平台“{parent.code}”（{parent.level_name}）的级别须高于本平台"))
            if p.code in tree.path(p.parent):
                problems.append(Problem("parent", "cycle", "上级平台不能是本平台或其下级平台"))
            if p.division and parent.division and not in_division(p.division, parent.division):
                problems.append(Problem("division", "region", f"行政区划“{p.division}”不在上级平台“{parent.code}”的区划“{parent.division}”内"))
            if p.virtual and not parent.local:
                problems.append(Problem("virtual", "hosted", "虚拟地州市平台须由本部署承载的上级平台代管"))
    elif p.level == "city" and p.virtual:
        problems.append(Problem("parent", "required", "虚拟地州市平台须有上级平台"))
    return problems


def from_rows(rows: Iterable[Mapping[str, object]]) -> PlatformTree:
    return PlatformTree(
        Platform(
            code=str(r["code"]),
            name=str(r["name"]),
            level=str(r["level"]),
            parent=str(r["parent"] or ""),
            division=str(r["division"] or ""),
            virtual=bool(r["virtual"]),
            local=bool(r["local"]),
        )
        for r in rows
    )
