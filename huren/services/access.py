"""The access policy (``huren.domain.access``) applied with what only the store knows: which
division and platform each institution lies in, and the platform tree. Every service asks here
before it reads or writes.

    require(principal, action)                        the role may do it at all (Forbidden otherwise)
    check_org(conn, principal, action, org_code)      ... and to this institution's data
    org_scope(conn, principal, action, org_code)      the institutions a listing covers (None = all)
    check_platform(conn, principal, action, code)     ... and to this platform (its feed, its status)
"""

from __future__ import annotations

from typing import Any

from huren.context import Principal
from huren.domain import access
from huren.domain.access import ALL, OWN, Place, Scope
from huren.domain.regions import division_prefix
from huren.errors import Forbidden, NotFound, Problem
from huren.store import directory, platforms

require = access.require


def place(conn: Any, org_code: str) -> Place | None:
    """An institution's division and platform; None when there is no such institution."""
    o = directory.get_org(conn, org_code)
    return Place(str(o["region_code"] or ""), str(o["platform"] or "")) if o else None


def reach(conn: Any, principal: Principal, s: Scope, org_code: str) -> bool:
    """Whether ``org_code`` is within scope ``s`` of the caller."""
    if s is ALL or org_code == principal.org_code:
        return True
    if s is OWN:
        return False
    where = place(conn, org_code)
    if where is None:  # the institutions and their regions are public (GET /api/v1/orgs)
        raise NotFound(f"机构“{org_code}”不存在", [Problem("org_code", "not_found", f"没有机构编码为“{org_code}”的机构")])
    return access.in_reach(principal, s, org_code, where, place(conn, principal.org_code), platforms.tree(conn))


def check_platform(conn: Any, principal: Principal, action: str, code: str, field: str = "platform") -> Scope:
    """The caller may do ``action`` to platform ``code`` (read its feed, apply a batch of it, see
    its sync state); NotFound for an unknown platform, Forbidden outside the caller's reach. A
    platform account may read the feed of a platform above its own (``platform_in_reach``)."""
    s = access.require(principal, action)
    tree = platforms.tree(conn)
    if code not in tree:
        raise NotFound(f"平台“{code}”不存在", [Problem(field, "not_found", f"没有编码为“{code}”的平台")])
    if not access.platform_in_reach(principal, s, code, place(conn, principal.org_code), tree, ancestors=action == "feed.read"):
        raise Forbidden(
            f"当前账号无权{access.action(action).title}：平台“{code}”不在本账号所属平台及其下级平台之内",
            [Problem(field, "region", f"平台“{code}”不在当前账号的管辖范围内")],
        )
    return s


def check_org(conn: Any, principal: Principal, action: str, org_code: str, field: str = "org_code") -> Scope:
    """The caller may do ``action`` to the data of institution ``org_code``; Forbidden otherwise."""
    s = access.require(principal, action)
    if not reach(conn, principal, s, org_code):
        raise access.refuse(principal, s, action, org_code, field)
    return s


def org_scope(conn: Any, principal: Principal, action: str, org_code: str | None = None) -> list[str] | None:
    """The institutions a listing of ``action`` covers: ``org_code`` when given (and within reach),
    else the caller's own, its region's, or None for every institution."""
    s = access.require(principal, action)
    if org_code:
        check_org(conn, principal, action, org_code)
        return [org_code]
    if s is ALL:
        return None
    if s is OWN:
        return [principal.org_code]
    own = place(conn, principal.org_code)
    tree = platforms.tree(conn)
    codes: set[str] = set()
    if own is not None and own.platform and own.platform in tree:
        subtree = tree.subtree(own.platform)
        codes = {str(o["code"]) for o in directory.list_orgs(conn, division_prefix(own.region) if own.region else None) if o["platform"] in subtree}
    elif own is not None and own.region:
        codes = {str(o["code"]) for o in directory.list_orgs(conn, division_prefix(own.region))}
    return sorted(codes | {principal.org_code})


def in_scope(orgs: list[str] | None, org_code: str) -> bool:
    return orgs is None or org_code in orgs
