"""The demo deployment's platform tree (issue 13): it hosts the region (新疆维吾尔自治区平台) and two
virtual city platforms (乌鲁木齐市, 昌吉州), and knows a real city platform with its own deployment
(克拉玛依市) whose feed it applies. Each city's health commission has a supervisor account that
sees its city only; the regional health commission's sees them all.

The real city's sync state is simulated for the demo through the one apply path
(:meth:`FederationService.apply`, with its platform account): a first batch (its hospital and a
few lab reports) applied three quarters of an hour ago, then a batch that skipped sequence numbers
(refused as a gap), with the city's feed further ahead — so the page 「平台与同步」 shows a backlog,
a gap and a silent sync.
"""

from __future__ import annotations

import contextlib
import random
from datetime import datetime, timedelta
from typing import Any

from huren.context import Principal
from huren.demo.generator import DemoOrg, DemoPatient, make_lab_report
from huren.demo.institutions import gb11714
from huren.errors import Conflict
from huren.services.container import Container

REGION, URUMQI, CHANGJI, KARAMAY = "XJ", "XJ-6501", "XJ-6523", "XJ-6502"
#: code, name, level, parent, division, virtual, hosted here
TREE: tuple[tuple[str, str, str, str, str, bool, bool], ...] = (
    (REGION, "新疆维吾尔自治区平台", "region", "", "650000", False, True),
    (URUMQI, "乌鲁木齐市虚拟平台", "city", REGION, "650100", True, True),
    (CHANGJI, "昌吉州虚拟平台", "city", REGION, "652300", True, True),
    (KARAMAY, "克拉玛依市平台", "city", REGION, "650200", False, False),
)

#: the health commissions' supervisor accounts (demo only). The region's is listed first: the demo's
#: first supervisor sees every demo institution (as it did before there were platforms)
REGION_SUPERVISOR = DemoOrg("650000000", "新疆维吾尔自治区卫生健康委员会", "650000", 3, "", "admin", "huren-demo-region")
URUMQI_SUPERVISOR = DemoOrg("650100000", "乌鲁木齐市卫生健康委员会", "650100", 3, "", "admin", "huren-demo-admin")
CHANGJI_SUPERVISOR = DemoOrg("652300000", "昌吉回族自治州卫生健康委员会", "652300", 3, "", "admin", "huren-demo-changji")
SUPERVISORS = (REGION_SUPERVISOR, URUMQI_SUPERVISOR, CHANGJI_SUPERVISOR)
#: the real city's platform account on the region (its health commission) and one of its hospitals
KARAMAY_SYNC = DemoOrg("650200000", "克拉玛依市卫生健康委员会", "650200", 3, "", "sync", "huren-demo-karamay")
KARAMAY_HOSPITAL = DemoOrg(gb11714("45900112"), "克拉玛依市中心医院", "650203", 3, "甲", "his", "")
#: the simulated city feed's last sequence number (its first batch, applied here, ends at 4)
SOURCE_LAST = 57


def build_tree(c: Container) -> int:
    """Add the demo's platforms (those not there yet); how many were added."""
    have = {p["code"] for p in c.federation.list_platforms()}
    n = 0
    for code, name, level, parent, division, virtual, local in TREE:
        if code not in have:
            c.federation.add_platform(code, name, level, parent=parent, division=division, virtual=virtual, local=local)
            n += 1
    return n


def add_supervisors(c: Container) -> list[DemoOrg]:
    """The supervisors' institutions and accounts; each joins the platform of its division."""
    for s in SUPERVISORS:
        c.directory.add_org(s.code, s.name, s.region_code, s.level, user=s.user, password=s.password, role="supervisor")
    return list(SUPERVISORS)


def _entry(seq: int, at: datetime, **what: Any) -> dict[str, Any]:
    return {"seq": seq, "at": at.isoformat(sep=" ", timespec="seconds"), **what}


def simulate_remote_city(c: Container, rng: random.Random, patients: list[DemoPatient], now: datetime) -> dict[str, Any]:
    """The real city's feed as applied here: its hospital and ``reports`` lab reports (applied 45
    minutes ago, written at the city two minutes before), then a batch with a gap, refused."""
    k = KARAMAY_SYNC
    c.directory.add_org(k.code, k.name, k.region_code, k.level, user=k.user, password=k.password, role="platform", platform=KARAMAY)
    sync = Principal(k.code, k.user, "platform")
    h = KARAMAY_HOSPITAL
    applied_at = now - timedelta(minutes=45)
    written = applied_at - timedelta(minutes=2)
    org = {"code": h.code, "name": h.name, "region_code": h.region_code, "level": h.level, "grade": h.grade,
           "platform": KARAMAY, "disabled": False}
    changes = [_entry(1, written, kind="org", org_code=h.code, org=org)]
    for i in range(3):
        payload = make_lab_report(rng, h, rng.choice(patients), written - timedelta(days=i + 1, hours=rng.randint(0, 8)), with_pdf=False)
        changes.append(_entry(len(changes) + 1, written, kind="lab", org_code=h.code, report_kind="lab", report=payload,
                              version=1, voided=False, voided_at="", pdf_sha256="", pdf_size=0))
    first = len(changes)
    base = c.clock.offset
    try:
        c.clock.offset = base + (applied_at - now).total_seconds()
        out = c.federation.apply(sync, KARAMAY, {"from_seq": 1, "to_seq": first, "last_seq": first + 20, "changes": changes})
        c.clock.offset = base + (applied_at - now).total_seconds() + 60
        with contextlib.suppress(Conflict):  # the city's runner skipped sequence numbers once: refused (read again from first + 1)
            c.federation.apply(sync, KARAMAY, {"from_seq": first + 6, "to_seq": first + 6, "last_seq": SOURCE_LAST,
                                               "changes": [_entry(first + 6, written, kind="org", org_code=h.code, org=org)]})
    finally:
        c.clock.offset = base
    return {"platform": KARAMAY, "applied": out["applied"], "applied_seq": first, "source_last_seq": SOURCE_LAST,
            "refused": len(out["refused"]), "institutions": [k.code, h.code]}
