"""When the demo hospitals send their reports: most within hours of approval, about one in ten a
day or more late (so that the timeliness page has something to show)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from huren.context import Principal
from huren.demo.institutions import DemoOrg
from huren.services.container import Container


def register_as_received(
    c: Container, rng: random.Random, orgs: list[DemoOrg], by_org: dict[str, list[dict[str, Any]]],
    kinds: dict[str, list[str]], now: datetime,
) -> int:
    """Register every demo report at the time its hospital would have sent it: most within hours
    of approval, about one in ten a day or more late, so the timeliness page has something to
    show. The platform's clock is moved for each registration and put back afterwards."""
    timeline = []
    for org in orgs:
        for p, kind in zip(by_org.get(org.code, []), kinds[org.code], strict=True):
            approved = datetime.fromisoformat((p.get("labmaster") or p["exammaster"])["authenticator_dtime"])
            late = rng.random() < 0.1
            delay = timedelta(hours=rng.uniform(24.5, 72)) if late else timedelta(minutes=rng.uniform(5, 360))
            timeline.append((min(approved + delay, now), org, kind, p))
    timeline.sort(key=lambda t: t[0])
    registered = 0
    base = c.clock.offset
    try:
        for at, org, kind, payload in timeline:
            c.clock.offset = base + (at - now).total_seconds()
            who = Principal(org.code, org.user, "hospital")
            c.registry.register(kind, payload, who, channel="gateway")
            registered += 1
    finally:
        c.clock.offset = base
    return registered
