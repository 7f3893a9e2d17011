"""The platform tree in the store (``platform``; ``org.platform``), and the tree as a cached
:class:`~huren.domain.platforms.PlatformTree` per engine, reloaded when the table changes (a
platform added by ``huren platform add`` in another process is seen at the next write)."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from huren.domain.platforms import Platform, PlatformTree, from_rows
from huren.store.tables import org, platform

_cache: weakref.WeakKeyDictionary[Engine, tuple[tuple[Any, ...], PlatformTree]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_EMPTY = PlatformTree(())


def _stamp(conn: Connection) -> tuple[Any, ...]:
    row = conn.execute(select(func.count(), func.max(platform.c.updated_at))).one()
    return (int(row[0]), row[1])


#: how long a process uses the tree it read before asking the database again whether it changed
#: (a platform added or changed by ``huren platform`` in another process is seen by the running
#: servers within this many seconds; in this process at once)
TREE_SECONDS = 1.0
_checked: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()


def tree(conn: Connection) -> PlatformTree:
    """The platforms of this deployment: cached per engine, checked against the table (one cheap
    query) at most every ``TREE_SECONDS`` — every write asks for it, to know which feeds it goes to."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get(conn.engine)
        fresh = hit is not None and now - _checked.get(conn.engine, 0.0) < TREE_SECONDS
    if hit is not None and fresh:
        return hit[1]
    stamp = _stamp(conn)
    if hit is not None and hit[0] == stamp:
        with _lock:
            _checked[conn.engine] = now
        return hit[1]
    t = _EMPTY if stamp[0] == 0 else from_rows([dict(r) for r in conn.execute(select(platform)).mappings()])
    with _lock:
        _cache[conn.engine] = (stamp, t)
        _checked[conn.engine] = now
    return t


def forget(engine: Engine) -> None:
    with _lock:
        _cache.pop(engine, None)
        _checked.pop(engine, None)
        _of_cache.pop(engine, None)


def get(conn: Connection, code: str) -> dict[str, Any] | None:
    r = conn.execute(select(platform).where(platform.c.code == code)).mappings().first()
    return dict(r) if r else None


def rows(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(platform).order_by(platform.c.code)).mappings()]


def add(conn: Connection, p: Platform, now: datetime) -> None:
    conn.execute(
        insert(platform).values(
            code=p.code, name=p.name, level=p.level, parent=p.parent or None, division=p.division, virtual=p.virtual,
            local=p.local, last_seq=0, created_at=now, updated_at=now,
        )
    )
    forget(conn.engine)


def set_local(conn: Connection, code: str, local: bool, now: datetime) -> None:
    conn.execute(update(platform).where(platform.c.code == code).values(local=local, updated_at=now))
    forget(conn.engine)


def platforms_of(conn: Connection, org_codes: Iterable[str]) -> dict[str, str]:
    """Institution → its platform ("" when it has none, or is unknown; no query in a deployment
    without platforms)."""
    codes = sorted(set(org_codes))
    out = {c: "" for c in codes}
    if not len(tree(conn)):
        return out
    for i in range(0, len(codes), 500):
        for code, plat in conn.execute(select(org.c.code, org.c.platform).where(org.c.code.in_(codes[i : i + 500]))):
            out[code] = plat or ""
    return out


def assign(conn: Connection, org_codes: Iterable[str], code: str) -> int:
    """Put institutions into platform ``code``; how many changed."""
    codes = sorted(set(org_codes))
    n = 0
    for i in range(0, len(codes), 500):
        n += conn.execute(update(org).where(org.c.code.in_(codes[i : i + 500]), org.c.platform != code).values(platform=code)).rowcount
    return n


def members(conn: Connection, codes: Iterable[str]) -> list[str]:
    """The institutions of the given platforms."""
    return sorted(str(c) for c in conn.execute(select(org.c.code).where(org.c.platform.in_(sorted(set(codes))))).scalars())


def counts(conn: Connection) -> dict[str, int]:
    """Platform → how many institutions it holds directly."""
    return {str(p): int(n) for p, n in conn.execute(select(org.c.platform, func.count()).group_by(org.c.platform))}


#: (engine, institution) → (platform, when looked up): the log rows' platform on the hot read paths
_of_cache: weakref.WeakKeyDictionary[Engine, dict[str, tuple[str, float]]] = weakref.WeakKeyDictionary()
#: how long a cached institution → platform answer is used (a move to another platform shows in
#: the log rows written after at most this many seconds; reports and decisions look it up each time)
CACHE_SECONDS = 30.0


def platform_of_cached(conn: Connection, org_code: str) -> str:
    now = time.monotonic()
    with _lock:
        per = _of_cache.setdefault(conn.engine, {})
        hit = per.get(org_code)
    if hit is not None and now - hit[1] < CACHE_SECONDS:
        return hit[0]
    plat = conn.execute(select(org.c.platform).where(org.c.code == org_code)).scalar() or ""
    with _lock:
        if len(per) > 10_000:
            per.clear()
        per[org_code] = (str(plat), now)
    return str(plat)
