"""`huren demo`: load a realistic demo region through the services (as hospitals would).

The payloads come from the generator (:mod:`huren.demo.generator`); the hospitals' departments,
doctors and accounts from :mod:`huren.demo.accounts`, the times their reports are sent from
:mod:`huren.demo.uploads`, the doctors' decisions from :mod:`huren.demo.decisions`.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from huren.context import Principal
from huren.demo.accounts import DEMO_DOCTORS, add_staff_and_accounts
from huren.demo.catalog import import_packaged_demo
from huren.demo.decisions import doctor_decisions
from huren.demo.generator import DemoOrg, demo_orgs, make_daily_counts, make_exam_report, make_lab_report, make_patients
from huren.demo.imaging import load_demo_images
from huren.demo.uploads import register_as_received
from huren.errors import HurenError
from huren.services.container import Container

#: The city's health commission: a supervisor account (demo only).
SUPERVISOR = DemoOrg("650100000", "乌鲁木齐市卫生健康委员会", "650100", 3, "", "admin", "huren-demo-admin")


def _day(payload: dict[str, Any]) -> date:
    master = payload.get("labmaster") or payload["exammaster"]
    return datetime.fromisoformat(master["authenticator_dtime"]).date()


def load_demo(c: Container, *, reports: int = 200, seed: int = 20241122, if_empty: bool = False) -> dict[str, Any]:
    """Institutions with credentials, patients, lab and exam reports with PDFs, daily counts
    (one institution under-declares a day, one forgets a day), and a few rejected submissions."""
    if if_empty and c.directory.list_orgs():
        return {"skipped": True, "reason": "数据库中已有机构，未重复生成演示数据"}
    rng = random.Random(seed)
    orgs = demo_orgs()
    catalog_items = import_packaged_demo(
        c.catalog,
        Principal(SUPERVISOR.code, SUPERVISOR.user, "supervisor"),
        map_org=Principal(orgs[0].code, orgs[0].user, "hospital"),
    )
    for o in orgs:
        c.directory.add_org(o.code, o.name, o.region_code, f"{o.level}{o.grade}", user=o.user, password=o.password)
        add_staff_and_accounts(c, o)
    s = SUPERVISOR
    c.directory.add_org(s.code, s.name, s.region_code, s.level, user=s.user, password=s.password, role="supervisor")

    patients = make_patients(rng, max(10, reports // 4))
    now = c.clock.now()
    weights = [o.level for o in orgs]  # bigger hospitals report more
    by_org: dict[str, list[dict[str, Any]]] = defaultdict(list)
    kinds: dict[str, list[str]] = defaultdict(list)
    for _ in range(reports):
        org = rng.choices(orgs, weights)[0]
        patient = rng.choice(patients)
        when = now - timedelta(days=rng.randint(1, 30), hours=rng.randint(0, 10), minutes=rng.randint(0, 59))
        if rng.random() < 0.6:
            by_org[org.code].append(make_lab_report(rng, org, patient, when))
            kinds[org.code].append("lab")
        else:
            by_org[org.code].append(make_exam_report(rng, org, patient, when))
            kinds[org.code].append("exam")

    registered = register_as_received(c, rng, orgs, by_org, kinds, now)
    images = load_demo_images(c, orgs, by_org)  # DICOM studies behind the exam reports (no randomness drawn)
    for org in orgs:
        who = Principal(org.code, org.user, "hospital")
        payloads = by_org.get(org.code, [])

        # daily counts per day; the first institution under-declares one day, the second skips one
        days: dict[date, list[dict[str, Any]]] = defaultdict(list)
        for p in payloads:
            days[_day(p)].append(p)
        last = len(days) - 1  # the most recent day, inside the default completeness window
        for i, (day, reps) in enumerate(sorted(days.items())):
            if org is orgs[1] and i == last:
                continue
            daily = make_daily_counts(org, day, reps)
            if org is orgs[0] and i == last:
                row = daily["lab_exam_report"][0]
                row["lab_num"] = str(int(row["lab_num"]) + 2)
            c.registry.upload_daily(daily, who, channel="gateway")

    # rejected submissions for the rectification view
    org = orgs[0]
    who = Principal(org.code, org.user, "hospital")
    bad = make_lab_report(rng, org, patients[0], now - timedelta(days=2))
    bad["labmaster"]["id_no"] = bad["labmaster"]["id_no"][:17] + ("0" if bad["labmaster"]["id_no"][17] != "0" else "1")
    bad["labmaster"]["id_type_code"] = "01"
    bad2 = make_exam_report(rng, org, patients[1], now - timedelta(days=3))
    bad2["exammaster"]["performer_dept_std_code"] = "3221"
    rejected = 0
    for kind, payload in (("lab", bad), ("exam", bad2)):
        try:
            c.registry.register(kind, payload, who, channel="gateway")
        except HurenError:
            rejected += 1

    decisions = doctor_decisions(c, rng, orgs, by_org, now)

    return {
        "institutions": len(orgs) + 1,
        "decisions": decisions,
        "catalog_items": catalog_items,
        "patients": len(patients),
        "reports_registered": registered,
        "imaging": images,
        "rejected_examples": rejected,
        "credentials": [
            {"org_code": o.code, "name": o.name, "username": o.user, "password": o.password, "role": "hospital"}
            for o in orgs
        ]
        + [
            {"org_code": o.code, "name": o.name, "username": user, "password": o.password, "role": role}
            for o in orgs
            for user, role in (("admin", "admin"), (DEMO_DOCTORS[0][0], "doctor"))
        ]
        + [{"org_code": s.code, "name": s.name, "username": s.user, "password": s.password, "role": "supervisor"}],
    }
