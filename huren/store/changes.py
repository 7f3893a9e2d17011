"""The change feed of each local platform (issue 13 §2): pull-based and gap-free.

Every write that another platform must learn of (a registration or resubmission, a void, a PDF
attached later — recorded as a change of its report —, a daily count, a decision, a quote, an
institution) records a row here in the same transaction, one
per local platform on its institution's path (``PlatformTree.feeds``: a virtual city's change is
in its own feed and in its region's). In a deployment without platforms nothing is recorded.

Sequence numbers are given by the sequencer after commit, not by the writers: ``sequence`` numbers
the committed rows that have none, in one transaction holding the feed's row lock, so numbers are
dense and a reader that has seen N has seen everything up to N — even on PostgreSQL, where
concurrent writers commit in any order (a number drawn inside a writer's transaction could
become visible after a higher one was read: the classic lost update of an id-based feed).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update

from huren.store import platforms
from huren.store.tables import feed_change, platform

#: the kinds of change a feed carries
KINDS = ("org", "lab", "exam", "void_lab", "void_exam", "daily", "accept", "quote")
_LOCK = text("UPDATE platform SET last_seq = last_seq WHERE code = :feed RETURNING last_seq")


def record(conn: Connection, kind: str, entries: Iterable[tuple[str, int | None, str | None]], at: datetime) -> int:
    """Record changes of ``kind`` — (org_code, entity_id, entity_key) each — in the feeds their
    institutions' platforms go into; how many rows were written."""
    tree = platforms.tree(conn)
    if not len(tree):
        return 0
    entries = list(entries)
    plats = platforms.platforms_of(conn, (e[0] for e in entries))
    rows: list[dict[str, Any]] = []
    for org_code, entity_id, entity_key in entries:
        for feed in tree.feeds(plats.get(org_code, "")):
            rows.append({"feed": feed, "seq": None, "kind": kind, "org_code": org_code, "entity_id": entity_id, "entity_key": entity_key, "at": at})
    if rows:
        conn.execute(insert(feed_change), rows)
    return len(rows)


def sequence(conn: Connection, feed: str, limit: int = 50_000) -> int:
    """Number the committed, unnumbered changes of ``feed`` (at most ``limit``); the feed's last
    sequence number. Call in a transaction of its own: it holds the feed's lock until commit."""
    last = conn.execute(_LOCK, {"feed": feed}).scalar()
    if last is None:
        return 0
    ids = list(
        conn.execute(
            select(feed_change.c.id).where(feed_change.c.feed == feed, feed_change.c.seq.is_(None)).order_by(feed_change.c.id).limit(limit)
        ).scalars()
    )
    if not ids:
        return int(last)
    base = int(last)
    conn.execute(
        update(feed_change).where(feed_change.c.id == bindparam("rid")).values(seq=bindparam("rseq")),
        [{"rid": i, "rseq": base + n} for n, i in enumerate(ids, start=1)],
    )
    conn.execute(update(platform).where(platform.c.code == feed).values(last_seq=base + len(ids)))
    return base + len(ids)


def pending(conn: Connection, feed: str) -> int:
    """Committed changes of ``feed`` not yet numbered."""
    return int(conn.execute(select(func.count()).where(feed_change.c.feed == feed, feed_change.c.seq.is_(None))).scalar_one())


def last_seq(conn: Connection, feed: str) -> int:
    v = conn.execute(select(platform.c.last_seq).where(platform.c.code == feed)).scalar()
    return int(v or 0)


def read(conn: Connection, feed: str, since: int, limit: int) -> list[dict[str, Any]]:
    """The numbered changes of ``feed`` after ``since``, in order, at most ``limit``."""
    q = select(feed_change).where(feed_change.c.feed == feed, feed_change.c.seq > since).order_by(feed_change.c.seq).limit(limit)
    return [dict(r) for r in conn.execute(q).mappings()]


def oldest_after(conn: Connection, feed: str, seq: int) -> datetime | None:
    """When the first change after ``seq`` was written (None when there is none): the lag's start."""
    q = select(feed_change.c.at).where(feed_change.c.feed == feed, feed_change.c.seq > seq).order_by(feed_change.c.seq).limit(1)
    at = conn.execute(q).scalar()
    if at is None and conn.execute(select(feed_change.c.at).where(feed_change.c.feed == feed, feed_change.c.seq.is_(None)).limit(1)).first():
        at = conn.execute(select(func.min(feed_change.c.at)).where(feed_change.c.feed == feed, feed_change.c.seq.is_(None))).scalar()
    return at if isinstance(at, datetime) else None
