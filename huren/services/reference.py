"""What every room of the recognition engine reads: the catalog rules and the institutions
(cached), the patient check, the report links and the full-report shape for citing.

Shared by the answers (``services/recognition.py``) and the decisions
(``services/decisions.py``); nothing here writes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from huren.domain import kinds, validation
from huren.domain.recognition import CatalogRule
from huren.domain.records import format_value, to_text
from huren.domain.regions import split_scope
from huren.services.refs import Refs, pdf_url, report_url
from huren.store import recognition as rstore
from huren.store import reports
from huren.store.database import Database


def check_patient(id_type: str, id_no: str) -> str:
    """The canonical ID number, or InvalidInput (the domain's rule: huren.domain.validation)."""
    return validation.check_patient(id_type, id_no)


@dataclass(slots=True)
class Reference:
    """One snapshot of the catalog rules and the institutions."""

    at: float = 0.0
    rules: dict[tuple[str, str], CatalogRule] = field(default_factory=dict)
    orgs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the longest validity (days) of a recognizable catalog item: how far back a result can
    #: still be recognizable, so how far back the answers must search
    longest: int = -1

    def org_name(self, code: str) -> str:
        return str(self.orgs.get(code, {}).get("name", ""))

    def longest_validity(self) -> int:
        if self.longest < 0:
            self.longest = max((r.validity_days for r in self.rules.values() if r.recognizable), default=0)
        return self.longest


class ReferenceCache:
    """The catalog rules and institutions, re-read at most every ``seconds``."""

    def __init__(self, db: Database, seconds: float = 30.0) -> None:
        self._db = db
        self._seconds = seconds
        self._ref = Reference()
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Forget cached catalog and institutions (other processes refresh within the cache time)."""
        with self._lock:
            self._ref = Reference()

    def get(self) -> Reference:
        ref = self._ref
        if time.monotonic() - ref.at < self._seconds and ref.at:
            return ref
        with self._db.read() as conn:
            rows = rstore.catalog(conn)
            orgs = rstore.orgs(conn)
        rules = {
            (r["kind"], r["code"]): CatalogRule(
                r["kind"], r["code"], r["name"], bool(r["recognizable"]), int(r["validity_days"]),
                int(r["min_level"]), split_scope(r["region_scope"] or ""),
            )
            for r in rows
        }
        fresh = Reference(time.monotonic(), rules, orgs)
        with self._lock:
            self._ref = fresh
        return fresh


def full_reports(
    conn: Any,
    ref: Reference,
    refs: Refs,
    kind: str,
    report_ids: Sequence[int],
    expiry: dict[int, dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Masters with their items (seed 002 §1.3.2.2 / §1.4.2.4-5 shape), each named by its ref;
    ``expired_time`` on the items named in ``expiry``."""
    k = kinds.BY_NAME[kind]
    mspec, ispec = k.master_fields, k.item_fields
    items = reports.get_items(conn, kind, report_ids)
    code_key = k.item_code_field
    out = []
    for rid in report_ids:
        m = reports.get_master(conn, kind, rid)
        if m is None:
            continue
        exp = (expiry or {}).get(rid, {})
        out.append(
            {
                "report_id": refs.report(kind, rid),
                "org_name": ref.org_name(m["org_code"]),
                # seed 002 §1.4.2.4/5 answers carry the institution's region and the upload time
                "area_code": str(ref.orgs.get(m["org_code"], {}).get("region_code", "")),
                "create_at": format_value(m["received_at"]),
            }
            | to_text(m, mspec)
            | {"url": report_url(refs, kind, rid), "pdf_url": pdf_url(refs, kind, rid) if m["pdf_sha256"] else ""}
            | {"item": [to_text(i, ispec) | {"expired_time": exp.get(i[code_key], "")} for i in items[rid]]}
        )
    return out
