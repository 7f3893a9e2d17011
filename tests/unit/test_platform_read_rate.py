"""A platform's sync account (role ``platform``) is held to the system accounts' read rate, not a
person's: under a steady load the runner reads the feed several times a second (issue 13), and at
120 reads a minute the sync stalled for half a minute at a time (bench/federation.py lag p99 58 s)."""

from __future__ import annotations

from huren.context import Clock, Principal
from huren.services.audit import ReadLimiter


def test_the_platform_account_reads_at_the_system_rate() -> None:
    limiter = ReadLimiter(Clock(), per_minute=3, system_per_minute=0)
    sync, doctor = Principal("650100000", "sync", "platform"), Principal("650100000", "doc", "doctor")
    assert limiter.limit(sync) == 0 and limiter.limit(doctor) == 3
    assert all(limiter.take(sync)[0] for _ in range(50))
    assert [limiter.take(doctor)[0] for _ in range(4)] == [True, True, True, False]
