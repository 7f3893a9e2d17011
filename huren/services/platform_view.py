"""The platform tree and the sync state as the supervisor's page 「平台与同步」 shows them (issue 13
§1–3): every platform within the caller's reach (``federation.read``: a supervisor its platform's
subtree, an administrator its own institution's platform), with its level, whether it is virtual
and hosted here, its institutions; every child platform applied here with its applied and source
sequence numbers, backlog, last applied time, lag, idle time, gaps, last error, and the alerts a
supervisor acts on (silent for more than N minutes, backlog growing, gaps, refused changes).

The figures come from :meth:`FederationService.status`; this module adds the tree, the lag and
the alerts. Whether a backlog grows is judged from the backlogs this process saw on earlier
readings (kept in memory, per database and platform, for :data:`GROWTH_WINDOW` seconds).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from huren.context import Clock, Principal
from huren.domain import access as policy
from huren.domain.platforms import LEVELS, PlatformTree
from huren.services import access
from huren.services.federation import FederationService
from huren.store import directory, platforms
from huren.store.database import Database

if TYPE_CHECKING:
    from huren.services.container import Container

#: N of 「超过 N 分钟未同步」 by default
SILENT_MINUTES = 30.0
#: how long earlier backlog readings are kept to tell whether a backlog grows (seconds)
GROWTH_WINDOW = 3600.0
#: the last errors FederationService.apply stores (huren/services/federation.py)
_GAP = re.compile(r"变更序号不连续：应从 (\d+) 开始，收到 (\d+)")
_REFUSED = re.compile(r"(\d+) 条变更被拒收（已作为被拒提交保存）")


def platform_view(c: Container) -> PlatformView:
    """The page's view over a container's services (it keeps no state of its own but the backlog readings)."""
    return PlatformView(c.db, c.clock, c.federation)


@dataclass(frozen=True, slots=True)
class Alert:
    platform: str
    level: str  # bad | warn
    kind: str  # silent | never | backlog | gap | refused | error
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"platform": self.platform, "level": self.level, "kind": self.kind, "message": self.message}


class _Readings:
    """Backlog readings per (database, platform): (monotonic time, backlog), oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: dict[tuple[str, str], deque[tuple[float, int]]] = {}

    def add(self, db: str, code: str, backlog: int, now: float) -> list[tuple[float, int]]:
        with self._lock:
            q = self._by.setdefault((db, code), deque(maxlen=256))
            while q and now - q[0][0] > GROWTH_WINDOW:
                q.popleft()
            q.append((now, backlog))
            if len(self._by) > 10_000:
                self._by.clear()
            return list(q)


READINGS = _Readings()


def growing(readings: list[tuple[float, int]]) -> tuple[int, int, float] | None:
    """(from, to, over seconds) when the backlog grew over the readings kept: the last at least
    three readings each not below the one before and the last above the first; None otherwise."""
    if len(readings) < 3:
        return None
    tail = readings[-3:]
    values = [b for _, b in tail]
    if all(b >= a for a, b in itertools.pairwise(values)) and values[-1] > values[0]:
        return values[0], values[-1], tail[-1][0] - tail[0][0]
    return None


def minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} 秒"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} 分钟"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} 小时"
    return f"{seconds / 86400:.1f} 天"


def error_text(error: str | None) -> str:
    """The last error of an applied batch as a supervisor reads it."""
    if not error:
        return ""
    if m := _GAP.fullmatch(error):
        return f"变更序号不连续：应从 {m[1]} 开始，收到 {m[2]}（已要求从 {m[1]} 重新读取）"
    if m := _REFUSED.fullmatch(error):
        return f"最近一批中有 {m[1]} 条变更被本平台拒收（见整改进度）"
    return error


def alerts_for(peer: dict[str, Any], name: str, silent_minutes: float, grew: tuple[int, int, float] | None) -> list[Alert]:
    """The alerts of one child platform's sync state."""
    code = str(peer["platform"])
    out: list[Alert] = []
    backlog = int(peer["backlog"])
    idle = peer.get("idle_seconds")
    if peer.get("applied_at") is None:
        out.append(Alert(code, "bad", "never", f"{name}：尚未应用过该平台的任何变更" + (f"，积压 {backlog} 条" if backlog else "")))
    elif idle is not None and idle > silent_minutes * 60:
        out.append(Alert(code, "bad", "silent", f"{name}：已 {minutes(float(idle))}没有应用新的变更（超过 {silent_minutes:g} 分钟）"
                         + (f"，积压 {backlog} 条" if backlog else "")))
    if grew is not None:
        out.append(Alert(code, "warn", "backlog", f"{name}：积压在增长（{minutes(grew[2])}内由 {grew[0]} 条增至 {grew[1]} 条）"))
    if int(peer["gaps"]):
        out.append(Alert(code, "warn", "gap", f"{name}：检测到 {peer['gaps']} 次变更序号缺口（同步程序已按本平台的水位重新读取）"))
    err = str(peer.get("last_error") or "")
    if err and not _GAP.fullmatch(err):
        out.append(Alert(code, "warn", "refused" if _REFUSED.fullmatch(err) else "error", f"{name}：{error_text(err)}"))
    return out


def _lag(peer: dict[str, Any]) -> float | None:
    """From the newest applied change's time at the source to when it was applied here (seconds)."""
    if not peer.get("source_at") or not peer.get("applied_at"):
        return None
    return max(0.0, (datetime.fromisoformat(peer["applied_at"]) - datetime.fromisoformat(peer["source_at"])).total_seconds())


class PlatformView:
    def __init__(self, db: Database, clock: Clock, federation: FederationService) -> None:
        self._db = db
        self._clock = clock
        self._federation = federation

    def _visible(self, conn: Any, principal: Principal, tree: PlatformTree) -> set[str]:
        """The platforms within the caller's reach for ``federation.read`` (as ``status`` counts them)."""
        s = policy.require(principal, "federation.read")
        own = access.place(conn, principal.org_code)
        if s is policy.OWN:
            return {own.platform} if own and own.platform in tree else set()
        return {c for c in tree.by_code if policy.platform_in_reach(principal, s, c, own, tree)}

    def tree(self, principal: Principal, feeds: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The visible platforms depth-first, each with its depth under the topmost visible one,
        its institutions (code, name) and its feed's last sequence number when hosted here (from
        ``feeds``, the ``sync`` answer's, whose reading numbers the changes committed since;
        else as last numbered)."""
        with self._db.read() as conn:
            tree = platforms.tree(conn)
            visible = self._visible(conn, principal, tree)
            own = access.place(conn, principal.org_code)
            members: dict[str, list[tuple[str, str]]] = {}
            for o in directory.list_orgs(conn):
                if o["platform"] in visible:
                    members.setdefault(str(o["platform"]), []).append((str(o["code"]), str(o["name"])))
            seqs = {str(r["code"]): int(r["last_seq"]) for r in platforms.rows(conn)}
        seqs |= {str(f["platform"]): int(f["last_seq"]) for f in feeds or ()}
        nodes: list[dict[str, Any]] = []

        def walk(code: str, depth: int) -> None:
            p = tree.by_code[code]
            below = sorted(tree.subtree(code) & visible)
            nodes.append({
                "code": p.code, "name": p.name, "level": p.level, "level_name": p.level_name, "virtual": p.virtual,
                "local": p.local, "parent": p.parent or None, "division": p.division, "depth": depth,
                "institutions": sorted(members.get(code, [])), "institutions_total": sum(len(members.get(c, [])) for c in below),
                "last_seq": seqs.get(code, 0) if p.local else None, "own": bool(own and own.platform == code),
            })
            for child in tree.children(code):
                if child.code in visible:
                    walk(child.code, depth + 1)

        tops = sorted((c for c in visible if tree.by_code[c].parent not in visible),
                      key=lambda c: (-LEVELS.get(tree.by_code[c].level, (0, ""))[0], c))
        for top in tops:
            walk(top, 0)
        return {"nodes": nodes, "own_platform": own.platform if own else ""}

    def sync(self, principal: Principal, silent_minutes: float = SILENT_MINUTES) -> dict[str, Any]:
        """The feeds hosted here and the child platforms applied here within the caller's reach,
        each child with its lag, idle time and alerts; all the alerts, the worst first."""
        st = self._federation.status(principal)
        with self._db.read() as conn:
            tree = platforms.tree(conn)
        names = {c: p.name for c, p in tree.by_code.items()}
        now = time.monotonic()
        peers, alerts = [], []
        for peer in st["peers"]:
            code = str(peer["platform"])
            grew = growing(READINGS.add(self._db.engine.url.render_as_string(hide_password=True), code, int(peer["backlog"]), now))
            a = alerts_for(peer, names.get(code, code), silent_minutes, grew)
            peers.append(peer | {"name": names.get(code, code), "lag_seconds": _lag(peer), "alerts": [x.as_dict() for x in a],
                                 "error_text": error_text(peer.get("last_error")), "growing": grew is not None})
            alerts.extend(a)
        alerts.sort(key=lambda a: (a.level != "bad", a.platform))
        return {"feeds": st["feeds"], "peers": peers, "alerts": [a.as_dict() for a in alerts], "silent_minutes": silent_minutes}
