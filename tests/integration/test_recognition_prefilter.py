"""The prior-items query's freshness filter (``fresh_after``): the part of the recognition rule
that concerns the row itself, pushed into the SQL for exists-for-order — result time within the
code's validity, the item's flag 1, the report not voided — on SQLite and PostgreSQL; the rows it
keeps are exactly those of the unfiltered query that pass these three conditions, in order, and
exists-for-order answers the same report."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from huren.context import Principal
from huren.services.container import Container
from huren.store import catalog as catalog_store
from huren.store import recognition as rstore
from tests import samples
from tests.conftest import ORG_A

HOSPITAL = Principal(ORG_A[0], ORG_A[4], "hospital")
CODE = "250301002"


def _lab(c: Container, form_no: str, days_ago: float, flag: str = "1") -> dict[str, Any]:
    when = c.clock.now() - timedelta(days=days_ago)
    p: dict[str, Any] = json.loads(json.dumps(samples.lab(), ensure_ascii=False).replace("2024-03-11", when.date().isoformat()))
    for row in [p["labmaster"], *p["lab_subitem"]]:
        row["report_form_no"] = form_no
    for it in p["lab_subitem"]:
        if it["class_code"] == CODE:
            it["recognition"] = flag
    return p


def test_fresh_after_keeps_only_what_the_rule_can_accept(container: Container) -> None:
    c = container
    with c.db.write() as conn:
        catalog_store.upsert_items(conn, [{
            "kind": "lab", "code": CODE, "name": "白细胞计数", "unit": "10^9/L", "recognizable": True, "validity_days": 7,
            "min_level": 1, "region_scope": "", "source_note": "test",
        }], now=c.clock.now())
    c.recognition.invalidate()
    for form_no, days_ago, flag in (("F-FRESH", 1, "1"), ("F-FLAG0", 2, "0"), ("F-OLD", 20, "1"), ("F-VOID", 3, "1")):
        c.registry.register("lab", _lab(c, form_no, days_ago, flag), HOSPITAL)
    with c.db.write() as conn:
        conn.execute(text("UPDATE lab_report SET voided = :t WHERE report_form_no = 'F-VOID'"), {"t": True})
    now = c.clock.now()
    since = now - timedelta(days=90)
    bound = now - timedelta(days=7)
    with c.db.read() as conn:
        everything = rstore.prior_items(conn, "lab", "01", samples.ID_NO, since, codes=[CODE])
        fresh = rstore.prior_items(conn, "lab", "01", samples.ID_NO, since, codes=[CODE], fresh_after=[bound])
    assert {r["report_form_no"] for r in everything} == {"F-FRESH", "F-FLAG0", "F-OLD", "F-VOID"}
    expected = [
        r for r in everything
        if int(r["i_recognition"]) == 1 and not r["voided"] and (r["i_effective_dtime"] or r["authenticator_dtime"]) > bound
    ]
    assert [r["report_form_no"] for r in fresh] == [r["report_form_no"] for r in expected] == ["F-FRESH"]
    assert fresh == expected
    answer = c.recognition.exists(HOSPITAL, "01", samples.ID_NO, lab=[CODE])
    assert [e["report_form_no"] for e in answer["labmaster"]] == ["F-FRESH"]
    assert answer["recognizable"] == 1


def test_fresh_after_needs_one_time_per_code(container: Container) -> None:
    with container.db.read() as conn:
        now = container.clock.now()
        try:
            rstore.prior_items(conn, "lab", "01", samples.ID_NO, now, codes=[CODE, "AG"], fresh_after=[now])
        except ValueError:
            pass
        else:  # pragma: no cover - the assertion below names the failure
            raise AssertionError("fresh_after with one time for two codes was accepted")
