"""Standard item catalog (XC-P2 upload, XC-P6 query/download) and local → standard mapping."""

from __future__ import annotations

from huren.services.context import Clock
from huren.store.database import Database


class CatalogService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
