"""Directory master data uploaded by hospitals: departments, staff, patients, lab instruments,
lab QC records (HZ-1/2/3, XC-L1, XC-L4)."""

from __future__ import annotations

from huren.services.context import Clock
from huren.store.database import Database


class MasterDataService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
