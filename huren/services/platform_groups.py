"""Grouping by platform (issue 13 §4: statistics and the completeness check per city): which row
of a 「按平台」 table each institution counts under.

An institution counts under the city platform its own platform lies in (itself, or the nearest
ancestor of level ``city``); an institution held directly by a region (or a cross-provincial)
platform counts under that platform, shown as 「直属」; one without a platform under the empty key
(「未归属平台」). The rows are those of the institutions within the caller's scope, so a city
supervisor gets one row (its city) and the regional one a row per city plus the region's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from huren.domain.figures import percent
from huren.domain.platforms import PlatformTree
from huren.store import directory, platforms

#: the key of the institutions that belong to no platform
NONE = ""


@dataclass(frozen=True, slots=True)
class Group:
    key: str  # the platform code ("" for none)
    name: str
    level: str  # city | region | cross | ""
    virtual: bool
    direct: bool  # the platform's own institutions only (a region's, not its cities')


def group_of(tree: PlatformTree, platform: str) -> str:
    """The row an institution of ``platform`` counts under (see the module's note)."""
    if not platform or platform not in tree:
        return NONE
    for code in tree.path(platform):
        if tree.by_code[code].level == "city":
            return code
    return platform


NO_PLATFORM = Group(NONE, "未归属平台", "", False, False)


def describe(tree: PlatformTree, key: str) -> Group:
    p = tree.get(key)
    if p is None:
        return NO_PLATFORM
    direct = p.level != "city"
    return Group(p.code, f"{p.name}（直属机构）" if direct else p.name, p.level, p.virtual, direct)


def groups(conn: Any, orgs: Iterable[str] | None) -> tuple[dict[str, str], dict[str, Group]]:
    """For the institutions ``orgs`` (None: every institution): institution → its row's key, and
    each row key → what it is."""
    tree = platforms.tree(conn)
    if orgs is None:
        of = {str(o["code"]): str(o["platform"] or "") for o in directory.list_orgs(conn)}
    else:
        of = platforms.platforms_of(conn, orgs)
    key_of = {code: group_of(tree, plat) for code, plat in of.items()}
    return key_of, {k: describe(tree, k) for k in sorted(set(key_of.values()))}


def ordered(keys: Iterable[str], described: dict[str, Group]) -> list[str]:
    """Cities first (by code), then the regions' own institutions, then those of no platform."""
    def rank(k: str) -> tuple[int, str]:
        g = described[k]
        return (0 if g.level == "city" else 2 if not g.key else 1, k)

    return sorted(set(keys), key=rank)


def completeness(
    orgs: list[dict[str, Any]], key_of: dict[str, str], described: dict[str, Group]
) -> list[dict[str, Any]]:
    """The per-institution completeness added up per platform row (issue 13 §4): declared,
    received, matched (received within each declared row), 完整率 over them, institutions, and how
    many of them declared nothing."""
    for o in orgs:
        if o["org_code"] not in key_of:
            key_of[o["org_code"]] = NONE
            described.setdefault(NONE, NO_PLATFORM)
    per: dict[str, dict[str, Any]] = {}
    for key in ordered(key_of.values(), described):
        g = described[key]
        per[key] = {"platform": key, "name": g.name, "level": g.level, "virtual": g.virtual, "direct": g.direct,
                    "institutions": 0, "declared": 0, "received": 0, "matched": 0, "undeclared": 0, "differences": 0, "undeclaring": 0}
    counted = set()
    for o in orgs:
        p = per[key_of[o["org_code"]]]
        counted.add(o["org_code"])
        p["institutions"] += 1
        for k in ("declared", "received", "matched", "undeclared", "differences"):
            p[k] += o[k]
        if not o["declared"]:
            p["undeclaring"] += 1
    for code, key in key_of.items():  # institutions of the scope without a row (nothing declared, nothing received)
        if code not in counted:
            per[key]["institutions"] += 1
            per[key]["undeclaring"] += 1
    return [p | {"completeness": percent(p["matched"], p["declared"])} for p in per.values()]
