"""The platform tree of a deployment (issue 13 §1): adding platforms, putting institutions into
them, listing them, and recording what was stored before the tree existed in the feeds. Part of
``FederationService`` (its base class), in a room of its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from huren.context import Clock, Principal
from huren.domain import access as policy
from huren.domain import kinds
from huren.domain.platforms import LEVELS, Platform, check_new
from huren.domain.regions import in_division
from huren.errors import Conflict, InvalidInput, NotFound, Problem
from huren.store import changes, directory, platforms, reports
from huren.store.database import Database


def platform_out(p: Platform, members: int = 0, last_seq: int = 0) -> dict[str, Any]:
    return {
        "code": p.code, "name": p.name, "level": p.level, "level_name": p.level_name, "parent": p.parent or None,
        "division": p.division, "virtual": p.virtual, "local": p.local, "institutions": members, "last_seq": last_seq,
    }



class PlatformTree:
    """The tree's operations (``huren platform add | list | assign | backfill``)."""

    _db: Database
    _clock: Clock

    def add_platform(
        self, code: str, name: str, level: str, *, parent: str = "", division: str = "", virtual: bool = False, local: bool = True
    ) -> dict[str, Any]:
        """Add a platform; the institutions of its division that sat in its parent (or in no
        platform) move into it, and each is recorded in the feeds (``org`` changes)."""
        p = Platform(code=code.strip(), name=name.strip(), level=level, parent=parent.strip(), division=division.strip(), virtual=virtual, local=local)
        now = self._clock.now()
        with self._db.write() as conn:
            tree = platforms.tree(conn)
            if p.code in tree:
                raise Conflict(f"平台“{p.code}”已存在", [Problem("code", "duplicate", f"平台编码“{p.code}”已存在")])
            if problems := check_new(tree, p):
                raise InvalidInput("平台信息无效", problems)
            platforms.add(conn, p, now)
            moved = self._adopt(conn, p)
            if moved:
                changes.record(conn, "org", [(c, None, c) for c in moved], now)
            n = len(platforms.members(conn, [p.code]))
        return platform_out(p, n) | {"moved": len(moved)}

    def _adopt(self, conn: Any, p: Platform) -> list[str]:
        if not p.division:
            return []
        candidates = [o for o in directory.list_orgs(conn) if in_division(str(o["region_code"]), p.division)]
        take = [str(o["code"]) for o in candidates if (o["platform"] or "") in ("", p.parent)]
        platforms.assign(conn, take, p.code)
        return take

    def assign(self, org_codes: Sequence[str], code: str) -> int:
        """Put institutions into platform ``code`` (``huren platform assign``)."""
        now = self._clock.now()
        with self._db.write() as conn:
            if code not in platforms.tree(conn):
                raise NotFound(f"平台“{code}”不存在", [Problem("platform", "not_found", f"没有编码为“{code}”的平台")])
            unknown = [c for c in org_codes if directory.get_org(conn, c) is None]
            if unknown:
                raise NotFound("机构不存在", [Problem("org_code", "not_found", f"没有机构编码为“{c}”的机构") for c in unknown])
            n = platforms.assign(conn, org_codes, code)
            changes.record(conn, "org", [(c, None, c) for c in org_codes], now)
        return n

    def list_platforms(self, principal: Principal | None = None) -> list[dict[str, Any]]:
        """The tree, each platform with its institutions and last sequence number; public like the
        institutions (``reference.read``); ``principal`` None for the operator's CLI."""
        if principal is not None:
            policy.require(principal, "reference.read")
        with self._db.read() as conn:
            tree = platforms.tree(conn)
            counts = platforms.counts(conn)
            seqs = {str(r["code"]): int(r["last_seq"]) for r in platforms.rows(conn)}
        return [platform_out(p, counts.get(p.code, 0), seqs.get(p.code, 0)) for p in sorted(tree.by_code.values(), key=lambda p: (-LEVELS.get(p.level, (0, ""))[0], p.code))]

    def backfill(self, code: str) -> int:
        """Record every report, decision and institution of platform ``code`` already stored in its
        feeds (reports registered before the platform tree existed): the first sync sends them."""
        now = self._clock.now()
        with self._db.write() as conn:
            tree = platforms.tree(conn)
            if code not in tree:
                raise NotFound(f"平台“{code}”不存在")
            orgs = platforms.members(conn, tree.subtree(code))
            n = changes.record(conn, "org", [(c, None, c) for c in orgs], now)
            for kind in kinds.BY_NAME:
                n += changes.record(conn, kind, reports.ids_of_orgs(conn, kind, orgs), now)
        return n
