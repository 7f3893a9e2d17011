"""The access policy (``huren.domain.access``) applied with what only the store knows: which
division each institution lies in. Every service asks here before it reads or writes.

    require(principal, action)                        the role may do it at all (Forbidden otherwise)
    check_org(conn, principal, action, org_code)      ... and to this institution's data
    org_scope(conn, principal, action, org_code)      the institutions a listing covers (None = all)
"""

from __future__ import annotations

from typing import Any

from huren.context import Principal
from huren.domain import access
from huren.domain.access import ALL, OWN, Scope
from huren.domain.regions import division_prefix
from huren.errors import NotFound, Problem
from huren.store import directory

require = access.require


def _region(conn: Any, org_code: str) -> str | None:
    o = directory.get_org(conn, org_code)
    return str(o["region_code"]) if o else None


def reach(conn: Any, principal: Principal, s: Scope, org_code: str) -> bool:
    """Whether ``org_code`` is within scope ``s`` of the caller."""
    if s is ALL or org_code == principal.org_code:
        return True
    if s is OWN:
        return False
    region = _region(conn, org_code)
    if region is None:  # the institutions and their regions are public (GET /api/v1/orgs)
        raise NotFound(f"机构“{org_code}”不存在", [Problem("org_code", "not_found", f"没有机构编码为“{org_code}”的机构")])
    return access.in_reach(principal, s, org_code, region, _region(conn, principal.org_code))


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
    own = _region(conn, principal.org_code)
    codes = {str(o["code"]) for o in directory.list_orgs(conn, division_prefix(own))} if own else set()
    return sorted(codes | {principal.org_code})


def in_scope(orgs: list[str] | None, org_code: str) -> bool:
    return orgs is None or org_code in orgs
