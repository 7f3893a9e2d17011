"""What every service needs: the caller, the clock."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

ROLES = ("hospital", "doctor", "admin", "supervisor", "platform")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an institution's user with a role."""

    org_code: str
    username: str
    role: str = "hospital"
    remote_addr: str | None = None

    @property
    def actor(self) -> str:
        return f"{self.org_code}/{self.username}"



class Clock:
    """Wall clock in the platform's time zone (the documents' times are local, naive).

    ``offset`` (seconds) lets tests move time forward.
    """

    def __init__(self, tz: str = "Asia/Shanghai") -> None:
        self.tz = ZoneInfo(tz)
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), self.tz).replace(tzinfo=None, microsecond=0)
